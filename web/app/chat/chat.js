// The chat room: duplex.js on the channel chat:{room}. History on entry,
// live messages, presence (join and leave), the connection's state, and
// what reconnection recovered, shown in the log.
import { Duplex } from "/duplex.js";

const $ = (id) => document.getElementById(id);
const ROOM = /^[A-Za-z0-9_.@=-]{1,64}$/;
const NICK_KEY = "duplex.chat.nick";
const HISTORY = 50;

const ui = {
  join: $("join"),
  joinForm: $("join-form"),
  joinError: $("join-error"),
  nick: $("nick"),
  room: $("room"),
  view: $("room-view"),
  roomName: $("room-name"),
  me: $("me"),
  state: $("state"),
  leave: $("leave"),
  presence: $("presence"),
  presenceCount: $("presence-count"),
  messages: $("messages"),
  sendForm: $("send-form"),
  text: $("text"),
};

/** The room named by the page's URL (/chat/{room}), if any. */
function roomFromURL() {
  const m = location.pathname.match(/^\/chat\/([^/]+)$/);
  if (!m) return "";
  try {
    const room = decodeURIComponent(m[1]);
    return ROOM.test(room) ? room : "";
  } catch {
    return "";
  }
}

let session = null; // the room joined: {client, channel, nick, members, ...}

function timeOf(ms) {
  const d = new Date(ms);
  return Number.isFinite(d.getTime()) ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
}

// Keep the log scrolled to the end unless the reader scrolled up.
function append(li) {
  const log = ui.messages;
  const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(li);
  if (atEnd) log.scrollTop = log.scrollHeight;
}

function system(text) {
  const li = document.createElement("li");
  li.className = "system";
  li.textContent = text;
  append(li);
}

// A message's data is {user, text, at, from} from this app, a string from
// a plain /chat/{room} member, or any JSON value someone else published.
function showMessage(data, offset, s) {
  const li = document.createElement("li");
  li.className = "msg";
  li.dataset.offset = String(offset);
  let who = "";
  let text;
  let at;
  if (data && typeof data === "object" && typeof data.text === "string") {
    who = typeof data.user === "string" && data.user ? data.user : "anonymous";
    text = data.text;
    at = data.at;
    if (data.from && data.from === s.id) li.classList.add("mine");
  } else if (typeof data === "string") {
    who = "plain client";
    text = data;
  } else {
    who = "data";
    text = JSON.stringify(data);
  }
  const head = document.createElement("div");
  const name = document.createElement("span");
  name.className = "who";
  name.textContent = who;
  head.append(name);
  if (at !== undefined && timeOf(at)) {
    const t = document.createElement("time");
    t.className = "meta";
    t.dateTime = new Date(at).toISOString();
    t.textContent = timeOf(at);
    head.append(t);
  }
  const p = document.createElement("p");
  p.className = "text";
  p.textContent = text;
  li.append(head, p);
  append(li);
}

function renderPresence(s) {
  const list = [...s.members.entries()].sort((a, b) => a[1].localeCompare(b[1]) || a[0].localeCompare(b[0]));
  ui.presence.replaceChildren(
    ...list.map(([id, user]) => {
      const li = document.createElement("li");
      li.textContent = user || "anonymous";
      li.dataset.client = id;
      if (id === s.client.client) li.classList.add("you");
      return li;
    }),
  );
  ui.presenceCount.textContent = String(list.length);
}

async function refreshPresence(s) {
  try {
    const clients = await s.client.presence(s.channel);
    if (session !== s) return;
    s.members = new Map(clients.map((c) => [c.client, c.user]));
    renderPresence(s);
  } catch (err) {
    if (session === s) system(`Could not list who is here: ${err.message}`);
  }
}

const STATE_TEXT = {
  connecting: "connecting",
  open: "open",
  disconnected: "disconnected, reconnecting",
  closing: "closing",
  closed: "closed",
};

function showState(state) {
  ui.state.dataset.state = state;
  ui.state.textContent = STATE_TEXT[state] ?? state;
  document.body.dataset.state = state;
}

async function join(nick, room) {
  const channel = `chat:${room}`;
  const client = new Duplex("/ws", { user: nick });
  // id marks this page's own messages; the connection's id changes when it reconnects.
  const id = Math.random().toString(36).slice(2) + Date.now().toString(36);
  const s = { client, channel, nick, room, id, members: new Map(), subscribed: 0, sub: null };
  session = s;
  localStorage.setItem(NICK_KEY, nick);
  if (location.pathname !== `/chat/${room}`) history.pushState(null, "", `/chat/${encodeURIComponent(room)}`);
  document.title = `#${room} · Chat · Duplex`;
  ui.roomName.textContent = room;
  ui.me.textContent = nick;
  ui.messages.replaceChildren();
  ui.presence.replaceChildren();
  ui.presenceCount.textContent = "0";
  ui.join.hidden = true;
  ui.view.hidden = false;
  ui.text.focus();

  showState(client.state ?? "connecting");
  client.on("state", (state) => session === s && showState(state));
  client.on("disconnected", ({ code, reason, delay }) => {
    if (session !== s) return;
    const why = reason ? ` "${reason}"` : "";
    system(`Connection lost (close code ${code}${why}). Reconnecting in ${(delay / 1000).toFixed(1)} s…`);
  });
  client.on("closed", ({ code, reason }) => {
    if (session === s) system(`Connection closed (code ${code}${reason ? ` "${reason}"` : ""}).`);
  });
  client.on("error", (err) => session === s && system(`Error: ${err.message}`));

  // The room's recent history first, then the subscription resumes right
  // after it, so no message falls between the two and none shows twice.
  let since;
  try {
    const h = await client.history(channel, { limit: HISTORY });
    if (session !== s) return;
    if (h.messages.length) system(`Last ${h.messages.length} message${h.messages.length === 1 ? "" : "s"} of #${room}:`);
    for (const m of h.messages) showMessage(m.data, m.offset, s);
    since = { offset: h.offset, epoch: h.epoch };
  } catch (err) {
    if (session !== s) return;
    system(`No history: ${err.message}`);
  }

  s.sub = client.subscribe(channel, (data, msg) => showMessage(data, msg.offset, s), {
    since,
    onSubscribed(info) {
      if (session !== s) return;
      s.subscribed++;
      if (s.subscribed === 1) {
        system(`You joined #${room} as ${nick}.`);
      } else if (info.recovered) {
        // Recovered messages follow this answer; the SDK hands each offset once.
        const missed = info.offset - s.sub.offset;
        system(`Reconnected: ${missed} missed message${missed === 1 ? "" : "s"} filled in.`);
      } else {
        system("Reconnected, but the room's history moved on: some messages may be missing.");
      }
      refreshPresence(s);
    },
    onJoin(c) {
      if (session !== s || s.members.has(c.client)) return;
      s.members.set(c.client, c.user);
      renderPresence(s);
      if (c.client !== client.client) system(`${c.user || "anonymous"} joined.`);
    },
    onLeave(c) {
      if (session !== s || !s.members.has(c.client)) return;
      s.members.delete(c.client);
      renderPresence(s);
      system(`${c.user || "anonymous"} left.`);
    },
    onError(err) {
      if (session === s) system(`Cannot join #${room}: ${err.message}`);
    },
  });
}

async function leave() {
  const s = session;
  if (!s) return;
  await s.client.close();
  session = null;
  ui.view.hidden = true;
  ui.join.hidden = false;
  document.title = "Chat · Duplex";
  if (location.pathname !== "/chat/") history.pushState(null, "", "/chat/");
  ui.room.value = s.room;
  ui.nick.focus();
}

ui.joinForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const nick = ui.nick.value.trim();
  const room = ui.room.value.trim();
  if (!nick) return void (ui.joinError.textContent = "Choose a nickname.");
  if (!ROOM.test(room)) return void (ui.joinError.textContent = "A room name is 1 to 64 letters, digits and _ - . @ =.");
  ui.joinError.textContent = "";
  join(nick, room);
});

ui.sendForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const s = session;
  const text = ui.text.value;
  if (!s || !text.trim()) return;
  ui.text.value = "";
  try {
    // Sent at once when open, or as soon as the connection is back.
    await s.client.publish(s.channel, { user: s.nick, text, at: Date.now(), from: s.id });
  } catch (err) {
    if (session !== s) return;
    system(`Not sent: ${err.message}`);
    if (!ui.text.value) ui.text.value = text;
  }
});

ui.leave.addEventListener("click", leave);

window.addEventListener("popstate", () => {
  if (session && location.pathname === "/chat/") leave();
});

ui.nick.value = localStorage.getItem(NICK_KEY) ?? "";
const room = roomFromURL();
if (room) ui.room.value = room;
(ui.nick.value ? ui.room : ui.nick).focus();

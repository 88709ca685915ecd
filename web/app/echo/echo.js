// The echo tester: the browser's own WebSocket, to any ws:// or wss:// URL.
// Round-trip times assume the server answers in order, as an echo does.
const $ = (id) => document.getElementById(id);

const ui = {
  connectForm: $("connect-form"),
  url: $("url"),
  connect: $("connect"),
  state: $("state"),
  sendForm: $("send-form"),
  message: $("message"),
  send: $("send"),
  sendError: $("send-error"),
  closeForm: $("close-form"),
  closeCode: $("close-code"),
  closeReason: $("close-reason"),
  close: $("close"),
  closeError: $("close-error"),
  closeInfo: $("close-info"),
  log: $("log"),
  stats: $("stats"),
  clear: $("clear"),
};

const STATES = ["connecting", "open", "closing", "closed"]; // by readyState
const MAX_SHOWN = 2000; // characters of a payload shown in the log
const MAX_LOG = 500; // log entries kept

let ws = null;
let sentAt = []; // send times (performance.now()) of the messages not yet back
let rtts = [];

const defaultURL = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/echo`;
ui.url.value = new URLSearchParams(location.search).get("url") || defaultURL;

function kind() {
  return ui.sendForm.elements.kind.value;
}

function bytesUTF8(s) {
  return new TextEncoder().encode(s).length;
}

/** parseHex reads bytes written as hex digits, with optional spaces, colons or 0x prefixes. */
export function parseHex(s) {
  const digits = s.replace(/0x/gi, "").replace(/[\s:,]/g, "");
  if (!/^[0-9a-f]*$/i.test(digits)) throw new Error("binary messages are written in hex: 0-9 and a-f, spaces allowed");
  if (digits.length % 2) throw new Error(`an odd number of hex digits (${digits.length})`);
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function toHex(bytes) {
  const shown = bytes.subarray(0, MAX_SHOWN / 3);
  const hex = Array.from(shown, (b) => b.toString(16).padStart(2, "0")).join(" ");
  return shown.length < bytes.length ? `${hex} …` : hex;
}

function clip(s) {
  return s.length > MAX_SHOWN ? `${s.slice(0, MAX_SHOWN)}…` : s;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function log(kindName, dir, text, extra) {
  const li = document.createElement("li");
  li.dataset.kind = kindName;
  const time = document.createElement("span");
  time.className = "meta";
  time.textContent = new Date().toLocaleTimeString() + " ";
  const d = document.createElement("span");
  d.className = "dir";
  d.textContent = dir + " ";
  const body = document.createElement("span");
  body.className = "payload";
  body.textContent = text;
  li.append(time, d, body);
  if (extra) {
    const x = document.createElement("span");
    x.className = "rtt";
    x.textContent = " " + extra;
    li.append(x);
  }
  const atEnd = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 40;
  ui.log.append(li);
  while (ui.log.children.length > MAX_LOG) ui.log.firstElementChild.remove();
  if (atEnd) ui.log.scrollTop = ui.log.scrollHeight;
  return li;
}

function showState() {
  const state = ws ? STATES[ws.readyState] : "closed";
  ui.state.dataset.state = state;
  ui.state.textContent = state;
  const open = state === "open";
  ui.send.disabled = !open;
  ui.close.disabled = !open;
  ui.connect.textContent = ws && state !== "closed" ? "Disconnect" : "Connect";
}

function showStats() {
  if (!rtts.length) return void (ui.stats.textContent = "");
  const sorted = [...rtts].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  ui.stats.textContent = `${plural(rtts.length, "round trip")}, median ${median.toFixed(1)} ms`;
}

function connect() {
  let url;
  try {
    url = new URL(ui.url.value.trim());
    if (url.protocol !== "ws:" && url.protocol !== "wss:") throw new Error("the URL must start with ws:// or wss://");
  } catch (err) {
    log("error", "!", `Cannot connect: ${err.message}`);
    return;
  }
  sentAt = [];
  ui.closeInfo.textContent = "";
  log("info", "…", `Connecting to ${url.href}`);
  const sock = new WebSocket(url.href);
  sock.binaryType = "arraybuffer";
  ws = sock;
  const t0 = performance.now();
  sock.onopen = () => {
    if (ws !== sock) return;
    const ext = sock.extensions ? `, extensions: ${sock.extensions}` : "";
    const proto = sock.protocol ? `, subprotocol: ${sock.protocol}` : "";
    log("open", "✓", `Connected in ${(performance.now() - t0).toFixed(1)} ms${proto}${ext}`);
    showState();
    ui.message.focus();
  };
  sock.onmessage = (e) => {
    if (ws !== sock) return;
    const t = sentAt.shift();
    const rtt = t === undefined ? undefined : performance.now() - t;
    if (rtt !== undefined) {
      rtts.push(rtt);
      if (rtts.length > 1000) rtts.shift();
      showStats();
    }
    let li;
    if (typeof e.data === "string") {
      li = log("received", "←", `text (${plural(bytesUTF8(e.data), "byte")}): ${clip(e.data)}`, rtt === undefined ? "" : `${rtt.toFixed(1)} ms`);
      li.dataset.type = "text";
    } else {
      const bytes = new Uint8Array(e.data);
      li = log("received", "←", `binary (${plural(bytes.length, "byte")}): ${toHex(bytes)}`, rtt === undefined ? "" : `${rtt.toFixed(1)} ms`);
      li.dataset.type = "binary";
    }
    if (rtt !== undefined) li.dataset.rtt = rtt.toFixed(3);
  };
  sock.onerror = () => {
    if (ws === sock) log("error", "!", "WebSocket error (the browser gives no detail; the close below says how it ended)");
  };
  sock.onclose = (e) => {
    if (ws !== sock) return;
    const reason = e.reason ? `"${e.reason}"` : "(no reason)";
    const how = e.wasClean ? "clean closing handshake" : "no closing handshake";
    log("close", "×", `Closed: code ${e.code}, reason ${reason}, ${how}`);
    ui.closeInfo.textContent = `Closed with code ${e.code}, reason ${reason}`;
    ui.closeInfo.dataset.code = String(e.code);
    ui.closeInfo.dataset.reason = e.reason;
    showState();
  };
  showState();
}

ui.connectForm.addEventListener("submit", (e) => {
  e.preventDefault();
  if (ws && ws.readyState !== WebSocket.CLOSED) {
    ws.close(1000);
    showState();
    return;
  }
  connect();
});

function send() {
  ui.sendError.textContent = "";
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  const text = ui.message.value;
  let li;
  if (kind() === "binary") {
    let bytes;
    try {
      bytes = parseHex(text);
    } catch (err) {
      ui.sendError.textContent = `Not sent: ${err.message}.`;
      return;
    }
    sentAt.push(performance.now());
    ws.send(bytes);
    li = log("sent", "→", `binary (${plural(bytes.length, "byte")}): ${toHex(bytes)}`);
    li.dataset.type = "binary";
  } else {
    sentAt.push(performance.now());
    ws.send(text);
    li = log("sent", "→", `text (${plural(bytesUTF8(text), "byte")}): ${clip(text)}`);
    li.dataset.type = "text";
  }
}

ui.sendForm.addEventListener("submit", (e) => {
  e.preventDefault();
  send();
});

ui.message.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    send();
  }
});

ui.sendForm.addEventListener("change", (e) => {
  if (e.target.name !== "kind") return;
  if (kind() === "binary" && !/^[0-9a-f\s:]*$/i.test(ui.message.value)) {
    ui.message.value = Array.from(new TextEncoder().encode(ui.message.value), (b) => b.toString(16).padStart(2, "0")).join(" ");
  }
});

ui.closeForm.addEventListener("submit", (e) => {
  e.preventDefault();
  ui.closeError.textContent = "";
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  const code = Number(ui.closeCode.value);
  const reason = ui.closeReason.value;
  if (!(code === 1000 || (Number.isInteger(code) && code >= 3000 && code <= 4999))) {
    ui.closeError.textContent = "A browser may close with 1000 or a code from 3000 to 4999.";
    return;
  }
  if (bytesUTF8(reason) > 123) {
    ui.closeError.textContent = `The reason is ${bytesUTF8(reason)} bytes long in UTF-8; at most 123 fit in a close frame.`;
    return;
  }
  log("closing", "→", `Close: code ${code}, reason ${reason ? `"${reason}"` : "(none)"}`);
  ws.close(code, reason);
  showState();
});

ui.clear.addEventListener("click", () => {
  ui.log.replaceChildren();
  rtts = [];
  showStats();
});

showState();

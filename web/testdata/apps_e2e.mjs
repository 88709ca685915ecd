// End-to-end tests of duplex serve's web apps in headless Chromium, driven by
// playwright-core: the landing page, the chat room (two pages in one room;
// a page whose connection the server drops), the echo tester and the ticker,
// with a server started with --demo at BASE_URL, and the ticker's notice with
// one started without it at PLAIN_URL. CLOSE_ECHO_URL is a WebSocket endpoint
// of the Go test that answers a close with the same code and reason.
// Each page is saved as a PNG in SHOT_DIR.
//
// Usage: node apps_e2e.mjs PLAYWRIGHT_DIR BASE_URL SHOT_DIR PLAIN_URL CLOSE_ECHO_URL
//
// Protocol with the Go test (apps_test.go): this script writes one line per
// scenario on stdout, "PASS name" or "FAIL name: why", and asks the Go side
// for what a page cannot do itself with a line "CMD {json}", to which the Go
// side answers with one line of JSON on stdin. Logs go to stderr. Exit
// status 0 when every scenario passed.
import { createRequire } from "node:module";
import path from "node:path";
import readline from "node:readline";

const [pwDir, base, shotDir, plainBase, closeEchoURL] = process.argv.slice(2);
const { chromium } = createRequire(path.resolve(pwDir, "package.json"))("playwright-core");

const CHROMIUM = "/usr/bin/chromium";
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const WAIT = 15000; // ms for any one thing to show up

const t0 = Date.now();
const log = (line) => process.stderr.write(`apps +${((Date.now() - t0) / 1000).toFixed(1)}s: ${line}\n`);

// ask sends a command to the Go test and resolves with its answer.
const answers = [];
const waiting = [];
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const w = waiting.shift();
  if (w) w(JSON.parse(line));
  else answers.push(JSON.parse(line));
});
function ask(cmd) {
  process.stdout.write(`CMD ${JSON.stringify(cmd)}\n`);
  return new Promise((resolve) => {
    if (answers.length) resolve(answers.shift());
    else waiting.push(resolve);
  }).then((a) => {
    if (a.error) throw new Error(`${cmd.op}: ${a.error}`);
    return a;
  });
}

function fail(msg) {
  throw new Error(msg);
}
function eq(got, want, what) {
  if (JSON.stringify(got) !== JSON.stringify(want)) fail(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

// until polls fn in the page (with arg) until it returns a truthy value.
async function until(page, what, fn, arg) {
  try {
    const h = await page.waitForFunction(fn, arg, { timeout: WAIT, polling: 50 });
    return await h.jsonValue();
  } catch (err) {
    fail(`timed out waiting for ${what} on ${page.url()}`);
  }
}

// texts lists the chat messages a page shows: "who: text".
function texts(page) {
  return page.$$eval("#messages li.msg", (lis) => lis.map((li) => `${li.querySelector(".who").textContent}: ${li.querySelector(".text").textContent}`));
}
function systemLines(page) {
  return page.$$eval("#messages li.system", (lis) => lis.map((li) => li.textContent));
}
function presence(page) {
  return page.$$eval("#presence li", (lis) => lis.map((li) => li.textContent).sort());
}
async function waitMessage(page, line) {
  await until(page, `the message "${line}"`, (want) =>
    [...document.querySelectorAll("#messages li.msg")].some((li) => `${li.querySelector(".who").textContent}: ${li.querySelector(".text").textContent}` === want), line);
}
async function waitPresence(page, users) {
  await until(page, `presence ${users.join(", ")}`, (want) =>
    JSON.stringify([...document.querySelectorAll("#presence li")].map((li) => li.textContent).sort()) === JSON.stringify(want), [...users].sort());
}

// checkPage asserts what every page owes: each form control has a label, and
// nothing is wider than the screen.
async function checkPage(page) {
  const unlabelled = await page.$$eval("input, textarea, select", (els) =>
    els.filter((el) => el.type !== "hidden" && !(el.labels && el.labels.length) && !el.getAttribute("aria-label")).map((el) => el.id || el.name));
  eq(unlabelled, [], `form controls without a label on ${page.url()}`);
  const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  if (scroll > width) fail(`${page.url()} is ${scroll} px wide on a ${width} px screen`);
  const errors = page.errors ?? [];
  if (errors.length) fail(`page errors on ${page.url()}: ${errors.join("; ")}`);
}

async function shot(page, name) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(shotDir, `${name}.png`) });
}

async function newPage(browser, viewport, name) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1, colorScheme: "light", reducedMotion: "reduce" });
  const page = await context.newPage();
  page.errors = [];
  page.on("console", (msg) => log(`${name} console.${msg.type()}: ${msg.text()}`));
  page.on("pageerror", (err) => {
    page.errors.push(err.message);
    log(`${name} page error: ${err.message}`);
  });
  page.on("requestfailed", (req) => log(`${name} request failed: ${req.url()}`));
  // Nothing may come from anywhere but the servers of the test.
  await context.route((url) => ![base, plainBase].some((origin) => url.href.startsWith(`${origin}/`)), (route) => {
    page.errors.push(`request outside the server: ${route.request().url()}`);
    route.abort();
  });
  return page;
}

async function joinChat(page, nick, room) {
  await page.goto(`${base}/chat/`);
  await page.fill("#nick", nick);
  await page.fill("#room", room);
  await page.press("#room", "Enter"); // the keyboard joins
  await until(page, "the room view", () => !document.getElementById("room-view").hidden);
  await until(page, "state open", () => document.getElementById("state").dataset.state === "open");
  await until(page, "the join notice", () => [...document.querySelectorAll("#messages li.system")].some((li) => li.textContent.startsWith("You joined")));
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

// ---- scenarios ----

async function landing(browser) {
  const page = await newPage(browser, DESKTOP, "landing");
  await page.goto(`${base}/`);
  const links = await page.$$eval("main a", (as) => as.map((a) => a.getAttribute("href")));
  for (const href of ["/chat/", "/echo/", "/ticker/", "/duplex.js"]) {
    if (!links.includes(href)) fail(`the landing page has no link to ${href}: ${links.join(" ")}`);
  }
  const body = await page.textContent("main");
  for (const s of ["GET /ws", "POST /api/publish", "GET /chat/{room}", "GET /echo", "ACME"]) {
    if (!body.includes(s)) fail(`the landing page does not mention ${s}`);
  }
  await checkPage(page);
  await shot(page, "landing");
  const phone = await newPage(browser, PHONE, "landing-phone");
  await phone.goto(`${base}/`);
  await checkPage(phone);
  await page.context().close();
  await phone.context().close();
}

async function chatTwoPages(browser, room) {
  const ann = await newPage(browser, DESKTOP, "ann");
  const bob = await newPage(browser, DESKTOP, "bob");
  await joinChat(ann, "ann", room);
  await waitPresence(ann, ["ann"]);
  await say(ann, "hello, anyone here?");
  await waitMessage(ann, "ann: hello, anyone here?");

  // Bob arrives: he gets the history, and both see both in presence.
  await joinChat(bob, "bob", room);
  await waitMessage(bob, "ann: hello, anyone here?");
  await waitPresence(bob, ["ann", "bob"]);
  await waitPresence(ann, ["ann", "bob"]);
  await until(ann, "bob's join", () => [...document.querySelectorAll("#messages li.system")].some((li) => li.textContent === "bob joined."));

  await say(bob, "hi ann ✓");
  await say(ann, "hi bob, <b>not bold</b>");
  for (const page of [ann, bob]) {
    await waitMessage(page, "bob: hi ann ✓");
    await waitMessage(page, "ann: hi bob, <b>not bold</b>");
    eq(await texts(page), ["ann: hello, anyone here?", "bob: hi ann ✓", "ann: hi bob, <b>not bold</b>"], `messages on ${page === ann ? "ann" : "bob"}'s page`);
  }
  eq(await ann.$$eval("#messages b", (bs) => bs.length), 0, "HTML elements made from a message");
  eq(await ann.$$eval("#messages li.msg.mine .who", (els) => els.map((e) => e.textContent)), ["ann", "ann"], "ann's own messages marked");

  // Bob leaves: his page shows the connection closing, then closed, and
  // ann sees him go. The observer records each change of the state badge
  // (attribute and text) as it happens.
  await bob.evaluate(() => {
    window.seenStates = [];
    const el = document.getElementById("state");
    new MutationObserver(() => {
      const now = `${el.dataset.state}: ${el.textContent}`;
      if (window.seenStates.at(-1) !== now) window.seenStates.push(now);
    }).observe(el, { attributes: true, childList: true, characterData: true, subtree: true });
  });
  await bob.click("#leave");
  await until(bob, "the join form again", () => !document.getElementById("join").hidden);
  await until(bob, "state closed", () => window.seenStates.includes("closed: closed"));
  eq(await bob.evaluate(() => window.seenStates), ["closing: closing", "closed: closed"], "the states bob's page showed as he left");
  eq((await systemLines(bob)).at(-1), "Connection closed (code 1000).", "bob's last notice");
  await waitPresence(ann, ["ann"]);
  await until(ann, "bob's leave", () => [...document.querySelectorAll("#messages li.system")].some((li) => li.textContent === "bob left."));
  await checkPage(ann);
  await checkPage(bob);
  await bob.context().close();
  return ann;
}

async function chatRecovery(ann, room) {
  // Record every state the page shows from now on.
  await ann.evaluate(() => {
    window.seenStates = [];
    const el = document.getElementById("state");
    new MutationObserver(() => window.seenStates.push(el.dataset.state)).observe(el, { attributes: true, childList: true, characterData: true, subtree: true });
  });
  const missed = ["sent while you were away 1", "sent while you were away 2 é", "sent while you were away 3"];
  // The Go side cuts the page's /ws connection, holds its reconnection until
  // it has published these over POST /api/publish, then lets it through.
  const { killed } = await ask({ op: "drop-ws-and-publish", channel: `chat:${room}`, texts: missed });
  if (killed < 1) fail(`the server cut ${killed} /ws connections`);
  for (const m of missed) await waitMessage(ann, `backend: ${m}`);
  await until(ann, "the reconnection notice", () => [...document.querySelectorAll("#messages li.system")].some((li) => li.textContent.startsWith("Reconnected")));
  await until(ann, "state open", () => document.getElementById("state").dataset.state === "open");
  const states = await ann.evaluate(() => [...new Set(window.seenStates)]);
  for (const s of ["disconnected", "connecting", "open"]) if (!states.includes(s)) fail(`the page never showed state ${s}: ${states.join(", ")}`);
  const notices = (await systemLines(ann)).filter((l) => l.startsWith("Reconnected") || l.startsWith("Connection lost"));
  if (!notices[0]?.startsWith("Connection lost (close code 1006")) fail(`no "Connection lost (close code 1006" notice: ${JSON.stringify(notices)}`);
  eq(notices[1], "Reconnected: 3 missed messages filled in.", "the reconnection notice");

  // Once each, in order, after what was there; and the room works again.
  await say(ann, "back again");
  await waitMessage(ann, "ann: back again");
  eq(await texts(ann), [
    "ann: hello, anyone here?", "bob: hi ann ✓", "ann: hi bob, <b>not bold</b>",
    ...missed.map((m) => `backend: ${m}`), "ann: back again",
  ], "messages after the reconnection");
  const offsets = await ann.$$eval("#messages li.msg", (lis) => lis.map((li) => Number(li.dataset.offset)));
  eq(offsets, offsets.map((_, i) => i + 1), "offsets shown");
  await checkPage(ann);
  await shot(ann, "chat");

  // The same room on a phone, opened by its URL.
  const phone = await newPage(ann.context().browser(), PHONE, "cleo");
  await phone.goto(`${base}/chat/${room}`);
  eq(await phone.inputValue("#room"), room, "the room taken from the URL");
  await phone.fill("#nick", "cleo");
  await phone.click("button[type=submit]");
  await until(phone, "state open", () => document.getElementById("state").dataset.state === "open");
  await waitMessage(phone, "ann: back again");
  await waitPresence(phone, ["ann", "cleo"]);
  await say(phone, "hello from a phone");
  await waitMessage(ann, "cleo: hello from a phone");
  await waitMessage(phone, "cleo: hello from a phone");
  await checkPage(phone);
  await shot(phone, "chat-phone");
  await phone.context().close();
  await ann.context().close();
}

async function echo(browser) {
  const page = await newPage(browser, DESKTOP, "echo");
  await page.goto(`${base}/echo/`);
  eq(await page.inputValue("#url"), `${base.replace(/^http/, "ws")}/echo`, "the default URL");
  await page.click("#connect");
  await until(page, "state open", () => document.getElementById("state").dataset.state === "open");

  await page.fill("#message", "hello, echo é ✓");
  await page.press("#message", "Control+Enter");
  const text = await until(page, "the text back", () => {
    const li = document.querySelector('#log li[data-kind="received"][data-type="text"]');
    return li && li.dataset.rtt && li.querySelector(".payload").textContent;
  });
  eq(text, "text (18 bytes): hello, echo é ✓", "the text received");

  await page.check('input[name="kind"][value="binary"]');
  await page.fill("#message", "00 ff 10 80 0x7f");
  await page.click("#send");
  const bin = await until(page, "the binary back", () => {
    const li = document.querySelector('#log li[data-kind="received"][data-type="binary"]');
    return li && li.dataset.rtt && li.querySelector(".payload").textContent;
  });
  eq(bin, "binary (5 bytes): 00 ff 10 80 7f", "the binary received");
  const rtts = await page.$$eval('#log li[data-kind="received"]', (lis) => lis.map((li) => Number(li.dataset.rtt)));
  if (rtts.length !== 2 || !rtts.every((r) => r > 0 && r < 5000)) fail(`round-trip times ${rtts}`);

  await page.fill("#message", "0g");
  await page.click("#send");
  eq(await page.textContent("#send-error"), "Not sent: binary messages are written in hex: 0-9 and a-f, spaces allowed.", "the hex error");

  // Close with a chosen code and reason; the echo server answers with the code.
  await page.fill("#close-code", "4000");
  await page.fill("#close-reason", "bye now");
  await page.click("#close");
  const closed = await until(page, "the close", () => {
    const el = document.getElementById("close-info");
    return el.dataset.code && [el.dataset.code, el.dataset.reason, el.textContent];
  });
  eq(closed, ["4000", "", "Closed with code 4000, reason (no reason)"], "the close shown");
  eq(await page.textContent("#state"), "closed", "the state after the close");

  // The Go test's endpoint answers with the code and reason it received
  // (and the Go side checks it received 4000 "bye now").
  await page.fill("#url", closeEchoURL);
  await page.click("#connect");
  await until(page, "state open", () => document.getElementById("state").dataset.state === "open");
  eq([await page.inputValue("#close-code"), await page.inputValue("#close-reason")], ["4000", "bye now"], "the close fields kept");
  await page.click("#close");
  const answered = await until(page, "the answer to the close", () => {
    const el = document.getElementById("close-info");
    return el.dataset.reason === "bye now" && [el.dataset.code, el.dataset.reason, el.textContent];
  });
  eq(answered, ["4000", "bye now", 'Closed with code 4000, reason "bye now"'], "the close answered with the same code and reason");

  // A server that closes with its own code and reason: a plain chat room
  // refuses binary messages with 1003.
  await page.fill("#url", `${base.replace(/^http/, "ws")}/chat/echo-test`);
  await page.click("#connect");
  await until(page, "state open", () => document.getElementById("state").dataset.state === "open");
  await page.fill("#message", "01 02");
  await page.click("#send");
  const refused = await until(page, "the server's close", () => {
    const el = document.getElementById("close-info");
    return el.dataset.code === "1003" && [el.dataset.code, el.dataset.reason, el.textContent];
  });
  eq(refused, ["1003", "chat rooms take text messages", 'Closed with code 1003, reason "chat rooms take text messages"'], "the server's close shown");
  await checkPage(page);
  await shot(page, "echo");
  await checkEchoLayout(page);
  const phone = await newPage(browser, PHONE, "echo-phone");
  await phone.goto(`${base}/echo/`);
  await checkPage(phone);
  await checkEchoLayout(phone);
  await phone.context().close();
  await page.context().close();
}

// checkEchoLayout asserts that each label and hint of the echo tester's
// controls fits on one line, and that on a laptop screen the three control
// panels fit without scrolling, the close notice included.
async function checkEchoLayout(page) {
  const wrapped = await page.$$eval(".controls label, .controls legend, .controls .hint", (labels) => labels.filter((label) => {
    const range = document.createRange();
    range.selectNodeContents(label);
    const tops = [...range.getClientRects()].filter((r) => r.width > 0).map((r) => r.top);
    return Math.max(...tops) - Math.min(...tops) > 8; // a second line (controls inside sit a few px off)
  }).map((label) => label.textContent.trim()));
  eq(wrapped, [], `labels and hints on more than one line at ${page.viewportSize().width} px`);
  if (page.viewportSize().width >= 1024) {
    const [bottom, height] = await page.evaluate(() => [document.querySelector(".controls").getBoundingClientRect().bottom, window.innerHeight]);
    if (bottom > height) fail(`the echo tester's controls end at ${bottom} px, below the ${height} px screen`);
  }
}

async function ticker(browser) {
  const page = await newPage(browser, DESKTOP, "ticker");
  await page.goto(`${base}/ticker/`);
  await until(page, "state open", () => document.getElementById("state").dataset.state === "open");
  const symbols = await page.$$eval("#quotes tr", (trs) => trs.map((tr) => tr.dataset.symbol));
  eq(symbols, ["ACME", "GLOBEX", "INITECH", "UMBRELLA", "WAYNE", "STARK"], "the symbols");
  await until(page, "a price for every symbol", () => [...document.querySelectorAll("#quotes td.price")].every((td) => td.dataset.price));
  const first = await page.$$eval("#quotes td.price", (tds) => tds.map((td) => td.dataset.price));
  // Prices move, in place: at least three symbols change, one row each.
  await until(page, "three prices to change", (before) => {
    const now = [...document.querySelectorAll("#quotes td.price")].map((td) => td.dataset.price);
    return now.filter((p, i) => p !== before[i]).length >= 3;
  }, first);
  eq(await page.$$eval("#quotes tr", (trs) => trs.length), 6, "rows after updates");
  const [rate, latency] = await until(page, "messages per second and latency", () => {
    const rate = Number(document.getElementById("rate").textContent);
    const lat = document.getElementById("latency").textContent;
    return rate > 0 && /^\d+\.\d ms$/.test(lat) && [rate, lat];
  });
  log(`ticker: ${rate} msg/s, latency ${latency}`);
  if (parseFloat(latency) > 2000) fail(`publish-to-screen latency ${latency}`);
  const dirs = await page.$$eval("#quotes td.price", (tds) => tds.map((td) => td.classList.contains("up") || td.classList.contains("down")));
  if (!dirs.some(Boolean)) fail("no price is marked up or down");
  await checkPage(page);
  await shot(page, "ticker");
  const phone = await newPage(browser, PHONE, "ticker-phone");
  await phone.goto(`${base}/ticker/`);
  await until(phone, "a price for every symbol", () => [...document.querySelectorAll("#quotes td.price")].every((td) => td.dataset.price));
  await checkPage(phone);
  await phone.context().close();
  await page.context().close();
}

// tickerWithoutDemo opens the ticker of a server started without --demo: it
// says how to get prices, and shows none.
async function tickerWithoutDemo(browser) {
  const page = await newPage(browser, DESKTOP, "ticker-plain");
  await page.goto(`${plainBase}/ticker/`);
  const notice = await until(page, "the notice", () => {
    const el = document.getElementById("notice");
    return !el.hidden && el.textContent;
  });
  eq(notice, "No prices: this server has no ticker. Start it with duplex serve --demo.", "the notice");
  eq(await page.getAttribute("#notice", "role"), "alert", "the notice's role");
  eq(await page.$$eval("#quotes td.price", (tds) => tds.filter((td) => td.dataset.price).length), 0, "prices shown");
  eq(await page.textContent("#total"), "0", "messages counted");
  await checkPage(page);
  await page.context().close();
}

async function main() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
    timeout: 60000,
  });
  let ok = true;
  const run = async (name, fn) => {
    try {
      const r = await fn();
      process.stdout.write(`PASS ${name}\n`);
      return r;
    } catch (err) {
      ok = false;
      log(`${name}: ${err && err.stack ? err.stack : err}`);
      process.stdout.write(`FAIL ${name}: ${String(err && err.message ? err.message : err).replace(/\n/g, " ")}\n`);
    }
  };
  try {
    await run("landing", () => landing(browser));
    const room = "e2e";
    const ann = await run("chat-two-pages", () => chatTwoPages(browser, room));
    if (ann) await run("chat-recovery", () => chatRecovery(ann, room));
    await run("echo", () => echo(browser));
    await run("ticker", () => ticker(browser));
    await run("ticker-without-demo", () => tickerWithoutDemo(browser));
  } finally {
    await browser.close();
  }
  return ok ? 0 : 1;
}

const watchdog = setTimeout(() => {
  log("timed out");
  process.exit(1);
}, 150000);
main().then((code) => {
  clearTimeout(watchdog);
  process.exit(code);
}, (err) => {
  log(`ERROR: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});

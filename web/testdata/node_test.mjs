// Runs duplex.js in Node with the `ws` package as its WebSocket (the
// `WebSocket` option): a publish round trip, then recovery after the Go test
// cuts the TCP connection and publishes over the HTTP API meanwhile.
//
// Usage: node node_test.mjs DUPLEX_JS_PATH WS_PACKAGE_DIR BASE_URL
// Exit status 0 when every check passed; otherwise the error on stderr.
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [sdkPath, wsDir, base] = process.argv.slice(2);
const { Duplex, ErrorCode } = await import(pathToFileURL(path.resolve(sdkPath)).href);
const WebSocket = createRequire(path.resolve(wsDir, "package.json"))("ws");

const fail = (msg) => { throw new Error(msg); };
const eq = (got, want, what) => {
  if (JSON.stringify(got) !== JSON.stringify(want)) fail(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
};

// waitFor resolves once check() holds; changed() runs the checks again.
let checks = [];
const changed = () => { checks = checks.filter((c) => !c()); };
function waitFor(what, check) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 10000);
    checks.push(() => check() && (clearTimeout(timer), resolve(), true));
    changed();
  });
}

async function harness(pathAndQuery, body) {
  const resp = await fetch(base + pathAndQuery, { method: "POST", body: JSON.stringify(body) });
  const text = await resp.text();
  if (!resp.ok) fail(`POST ${pathAndQuery}: ${resp.status} ${text}`);
  return JSON.parse(text);
}

const d = new Duplex(base.replace(/^http/, "ws") + "/ws?tag=node", { WebSocket, user: "node", minBackoff: 300, maxBackoff: 600 });
try {
  const got = [], subscribed = [], states = [];
  d.on("state", (s) => states.push(s));
  const sub = d.subscribe("node-news", (data, m) => { got.push([m.offset, data]); changed(); }, {
    onSubscribed: (i) => { subscribed.push(i); changed(); },
  });
  const first = await sub.ready;
  eq(first.recovered, false, "first recovered");
  const res = await d.publish("node-news", { text: "from node ✓" });
  eq(res, { offset: first.offset + 1, epoch: first.epoch }, "publish result");
  await waitFor("the message", () => got.length === 1);
  eq(got, [[first.offset + 1, { text: "from node ✓" }]], "messages");
  eq((await d.presence("node-news")).map((c) => c.user), ["node"], "presence");
  await d.history("no-such:x").then(() => fail("history of no-such:x resolved"), (e) => eq(e.code, ErrorCode.UNKNOWN_NAMESPACE, "history error code"));

  const killed = await harness("/test/kill?tag=node", { channel: "node-news", from: 2, to: 4 });
  eq(killed.killed, 1, "connections cut");
  await waitFor("the resubscription and 3 more messages", () => subscribed.length === 2 && got.length === 4);
  eq(subscribed[1], { recovered: true, offset: first.offset + 4, epoch: first.epoch }, "onSubscribed after the cut");
  await d.ping();
  eq(got.map(([o, data]) => [o, data.n ?? null]), [[first.offset + 1, null], [first.offset + 2, 2], [first.offset + 3, 3], [first.offset + 4, 4]], "messages after recovery");
  eq(states, ["connecting", "open", "disconnected", "connecting", "open"], "states");
  eq(await d.close(), { code: 1000, reason: "" }, "close");

  // Several URLs: one where nothing listens, then the server: the client
  // fails over to the second, and subscribes there.
  const live = base.replace(/^http/, "ws") + "/ws?tag=failover";
  const f = new Duplex(["ws://127.0.0.1:1/ws", live, live], { WebSocket, minBackoff: 20, maxBackoff: 40 });
  const fstates = [];
  f.on("state", (s) => { fstates.push(s); changed(); });
  eq(f.url, "ws://127.0.0.1:1/ws", "first URL");
  const fsub = f.subscribe("node-news", () => {});
  await fsub.ready;
  eq(f.url, live, "URL after failing over");
  eq(fstates, ["connecting", "disconnected", "connecting", "open"], "failover states");
  eq(await f.close(), { code: 1000, reason: "" }, "close after failover");
  console.log("node: ok");
} catch (err) {
  console.error(`node: ${err && err.stack ? err.stack : err}`);
  await d.close();
  process.exitCode = 1;
}

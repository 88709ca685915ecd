// The ticker: one duplex.js subscription per symbol (ticker:SYMBOL), each
// quote {symbol, price, open, seq, ts} painted in place once per frame;
// messages per second and publish-to-screen latency (ts to the frame that
// shows it).
import { Duplex, ErrorCode } from "/duplex.js";

const $ = (id) => document.getElementById(id);
// The demo publisher's symbols (server.TickerSymbols); ?symbols=A,B picks others.
const DEFAULT_SYMBOLS = ["ACME", "GLOBEX", "INITECH", "UMBRELLA", "WAYNE", "STARK"];
const symbols = (new URLSearchParams(location.search).get("symbols") || DEFAULT_SYMBOLS.join(","))
  .split(",")
  .map((s) => s.trim())
  .filter((s) => /^[A-Za-z0-9_.-]{1,32}$/.test(s));

const ui = {
  state: $("state"),
  notice: $("notice"),
  rate: $("rate"),
  latency: $("latency"),
  latency95: $("latency95"),
  total: $("total"),
  quotes: $("quotes"),
};

const rows = new Map(); // symbol -> {price, change, count, arrow, last}
for (const symbol of symbols) {
  const tr = document.createElement("tr");
  tr.dataset.symbol = symbol;
  const th = document.createElement("th");
  th.scope = "row";
  th.textContent = symbol;
  const price = document.createElement("td");
  price.className = "num price";
  price.textContent = "–";
  const change = document.createElement("td");
  change.className = "num change";
  const count = document.createElement("td");
  count.className = "num wide count";
  count.textContent = "0";
  tr.append(th, price, change, count);
  ui.quotes.append(tr);
  rows.set(symbol, { tr, price, change, count, last: undefined, n: 0 });
}

const now = () => performance.timeOrigin + performance.now();
const arrivals = []; // times of the messages of the last second
const latencies = []; // [time, ms] of the last second
let total = 0;
let pending = new Map(); // symbol -> latest quote not painted yet
let frame = 0;

function paint() {
  frame = 0;
  const shown = now();
  for (const [symbol, q] of pending) {
    const row = rows.get(symbol);
    if (!row) continue;
    const dir = row.last === undefined || q.price === row.last ? "" : q.price > row.last ? "up" : "down";
    row.last = q.price;
    row.price.textContent = "";
    const arrow = document.createElement("span");
    arrow.className = "arrow";
    arrow.setAttribute("aria-hidden", "true");
    arrow.textContent = dir === "up" ? "▲" : dir === "down" ? "▼" : "";
    row.price.append(arrow, q.price.toFixed(2));
    row.price.className = `num price ${dir}`;
    row.price.dataset.price = q.price.toFixed(2);
    if (dir) {
      row.tr.classList.remove("flash-up", "flash-down");
      void row.tr.offsetWidth; // restart the animation
      row.tr.classList.add(`flash-${dir}`);
    }
    if (typeof q.open === "number" && q.open > 0) {
      const d = q.price - q.open;
      const pct = (d / q.open) * 100;
      const sign = d > 0 ? "+" : d < 0 ? "−" : "";
      row.change.textContent = `${sign}${Math.abs(d).toFixed(2)} (${sign}${Math.abs(pct).toFixed(2)}%)`;
      row.change.className = `num change ${d > 0 ? "up" : d < 0 ? "down" : ""}`;
    }
    row.count.textContent = String(row.n);
    if (q.live && typeof q.ts === "number") latencies.push([shown, shown - q.ts]);
  }
  pending = new Map();
}

function onQuote(q, live) {
  if (!q || typeof q.price !== "number") return;
  const row = rows.get(q.symbol);
  if (!row) return;
  if (live) {
    row.n++;
    total++;
    arrivals.push(now());
  }
  pending.set(q.symbol, { ...q, live });
  // Paint on the next frame; a hidden page gets no frames, so paint at once.
  if (document.hidden) paint();
  else if (!frame) frame = requestAnimationFrame(paint);
}

function showStats() {
  const t = now();
  while (arrivals.length && arrivals[0] < t - 1000) arrivals.shift();
  while (latencies.length && latencies[0][0] < t - 1000) latencies.shift();
  ui.rate.textContent = String(arrivals.length);
  ui.total.textContent = String(total);
  if (latencies.length) {
    const sorted = latencies.map(([, ms]) => ms).sort((a, b) => a - b);
    const at = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
    ui.latency.textContent = `${at(0.5).toFixed(1)} ms`;
    ui.latency95.textContent = `${at(0.95).toFixed(1)} ms`;
  } else {
    ui.latency.textContent = "–";
    ui.latency95.textContent = "–";
  }
}
setInterval(showStats, 500);

function notice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = !text;
}

const client = new Duplex("/ws");
function showState(state) {
  ui.state.dataset.state = state;
  ui.state.textContent = state === "disconnected" ? "disconnected, reconnecting" : state;
}
showState(client.state ?? "connecting");
client.on("state", showState);

async function follow(symbol) {
  const channel = `ticker:${symbol}`;
  let since;
  try {
    // The latest quote at once (the namespace keeps one), then live ones after it.
    const h = await client.history(channel, { limit: 1 });
    for (const m of h.messages) onQuote(m.data, false);
    since = { offset: h.offset, epoch: h.epoch };
  } catch (err) {
    if (err.code === ErrorCode.UNKNOWN_NAMESPACE) {
      notice("No prices: this server has no ticker. Start it with duplex serve --demo.");
      return;
    }
  }
  client.subscribe(channel, (q) => onQuote(q, true), {
    since,
    onError: (err) => notice(`ticker:${symbol}: ${err.message}`),
  });
}

for (const symbol of symbols) follow(symbol);

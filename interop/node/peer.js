#!/usr/bin/env node
// Interop peer built on the Node.js `ws` library.
//
// Usage:
//   node peer.js client URL    connect to URL (ws://host:port/interop?closer=go|peer)
//   node peer.js server PORT   listen on 127.0.0.1:PORT (0 = any free port), print
//                              "listening PORT" on stdout when ready, serve exactly
//                              one connection, then exit.
//
// Both modes run the scenario shared by every interop peer (see interop/README.md):
//   phase 1: the server sends the sequence, the client checks it;
//   phase 2: the client sends the sequence, the server checks it;
//   phase 3: the closer (query parameter `closer`: "go" = the other side,
//            "peer" = this program) closes with its code and reason, the
//            other side checks the code and reason it received.
//
// Exit status 0 on success; on any mismatch a message on stderr and status 1.
//
// With --as-go (first argument) the program plays the Go side instead: it
// closes with the Go code and reason when closer=go and expects the peer's
// when closer=peer. That lets two peers check each other without the Go package.
'use strict';

const WebSocket = require('ws');

const MAX_PAYLOAD = 64 << 20; // well above the 16 MiB messages of the scenario
const TIMEOUT_MS = 280 * 1000; // the whole run, as a safety net (below the Go test's 5 min)

const SIZES = [0, 125, 126, 65536, 16 << 20];
const CLOSES = {
  go: { code: 4001, reason: 'go closes ✓' },
  peer: { code: 4002, reason: 'peer closes ✓' },
};
let SELF = 'peer'; // 'go' with --as-go

class Mismatch extends Error {}

// 'é' (C3 A9) repeated n/2 times, plus 'x' if n is odd: n UTF-8 bytes.
function textPayload(n) {
  return Buffer.from('é'.repeat(Math.floor(n / 2)) + (n % 2 ? 'x' : ''), 'utf8');
}

// Bytes (i*31+7) mod 256 for i in 0..n-1.
function binaryPayload(n) {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

// The 20 messages, in order.
function* sequence() {
  let i = 0;
  for (const kind of ['text', 'binary']) {
    for (const n of SIZES) {
      const data = kind === 'text' ? textPayload(n) : binaryPayload(n);
      for (const frag of [false, true]) {
        yield { i: i++, kind, n, frag, data };
      }
    }
  }
}

function describe(m) {
  return `message #${m.i} (${m.kind}, ${m.n} bytes, ${m.frag ? 'fragmented' : 'whole'})`;
}

function firstDiff(got, want) {
  const l = Math.min(got.length, want.length);
  for (let j = 0; j < l; j++) {
    if (got[j] !== want[j]) {
      return `first difference at byte ${j}: got 0x${got[j].toString(16)}, want 0x${want[j].toString(16)}`;
    }
  }
  return `length ${got.length}, want ${want.length}`;
}

// Wraps a ws connection: a queue of received messages and the close event.
function wrap(ws) {
  const messages = [];
  const waiters = [];
  let closed = null; // {code, reason}
  let failure = null;
  const closeWaiters = [];

  const wake = () => {
    while (waiters.length && (messages.length || closed || failure)) {
      const w = waiters.shift();
      if (messages.length) w.resolve(messages.shift());
      else if (failure) w.reject(failure);
      else w.resolve(null); // closed
    }
  };
  ws.on('message', (data, isBinary) => {
    messages.push({ isBinary, data });
    wake();
  });
  ws.on('error', (err) => {
    failure = failure || err;
    wake();
  });
  ws.on('close', (code, reason) => {
    closed = { code, reason: reason.toString('utf8') };
    wake();
    for (const w of closeWaiters.splice(0)) w(closed);
  });

  return {
    ws,
    // Resolves to the next message, or null once the connection is closed.
    next() {
      return new Promise((resolve, reject) => {
        waiters.push({ resolve, reject });
        wake();
      });
    },
    closed() {
      return new Promise((resolve) => {
        if (closed) resolve(closed);
        else closeWaiters.push(resolve);
      });
    },
    failure: () => failure,
  };
}

function sendAsync(ws, data, opts) {
  return new Promise((resolve, reject) => {
    ws.send(data, opts, (err) => (err ? reject(err) : resolve()));
  });
}

async function sendAll(conn) {
  const ws = conn.ws;
  for (const m of sequence()) {
    const binary = m.kind === 'binary';
    if (!m.frag) {
      await sendAsync(ws, m.data, { binary, fin: true });
      continue;
    }
    // Exactly 3 frames, split at n/3 and 2n/3 (byte offsets: text fragments
    // may end in the middle of a UTF-8 sequence).
    const a = Math.floor(m.n / 3);
    const b = Math.floor((2 * m.n) / 3);
    await sendAsync(ws, m.data.subarray(0, a), { binary, fin: false });
    await sendAsync(ws, m.data.subarray(a, b), { binary, fin: false });
    await sendAsync(ws, m.data.subarray(b), { binary, fin: true });
  }
}

async function recvAll(conn) {
  for (const m of sequence()) {
    const what = describe(m);
    const msg = await conn.next();
    if (msg === null) {
      const c = await conn.closed();
      throw new Mismatch(`${what}: connection closed instead (code ${c.code} reason ${JSON.stringify(c.reason)})`);
    }
    const kind = msg.isBinary ? 'binary' : 'text';
    const got = Buffer.isBuffer(msg.data) ? msg.data : Buffer.concat(msg.data);
    if (kind !== m.kind) {
      throw new Mismatch(`${what}: got a ${kind} message of ${got.length} bytes`);
    }
    if (!got.equals(m.data)) {
      throw new Mismatch(`${what}: payload differs: ${firstDiff(got, m.data)}`);
    }
  }
}

async function closePhase(conn, closer) {
  if (closer === SELF) {
    const { code, reason } = CLOSES[SELF];
    conn.ws.close(code, reason);
    const c = await conn.closed();
    // The other side must echo our code; echoing the reason is optional.
    if (c.code !== code) {
      throw new Mismatch(`after closing with ${code}: other side answered code ${c.code} reason ${JSON.stringify(c.reason)}, want code ${code}`);
    }
    if (c.reason !== '' && c.reason !== reason) {
      throw new Mismatch(`after closing with ${code} ${JSON.stringify(reason)}: other side echoed reason ${JSON.stringify(c.reason)}, want ${JSON.stringify(reason)} or empty`);
    }
    return;
  }
  const { code, reason } = CLOSES[closer];
  const msg = await conn.next();
  if (msg !== null) {
    throw new Mismatch(`expected a close frame, got a ${msg.isBinary ? 'binary' : 'text'} message`);
  }
  const c = await conn.closed();
  if (c.code !== code || c.reason !== reason) {
    throw new Mismatch(`close frame: got code ${c.code} reason ${JSON.stringify(c.reason)}, want code ${code} reason ${JSON.stringify(reason)}`);
  }
}

async function scenario(conn, role, closer) {
  try {
    if (closer !== 'go' && closer !== 'peer') {
      throw new Mismatch(`bad closer ${JSON.stringify(closer)}: want go or peer`);
    }
    if (role === 'server') {
      await sendAll(conn);
      await recvAll(conn);
    } else {
      await recvAll(conn);
      await sendAll(conn);
    }
    await closePhase(conn, closer);
  } catch (err) {
    if (err instanceof Mismatch && conn.ws.readyState === WebSocket.OPEN) {
      // Tell the other side, so that its error points here.
      conn.ws.close(1011, 'interop peer: mismatch, see its stderr');
      await Promise.race([conn.closed(), new Promise((r) => setTimeout(r, 5000))]);
    }
    throw err;
  }
  const f = conn.failure();
  if (f) throw f;
}

function closerOf(pathOrUrl) {
  return new URL(pathOrUrl, 'ws://placeholder').searchParams.get('closer') || '';
}

const OPTS = { perMessageDeflate: false, maxPayload: MAX_PAYLOAD };

function runClient(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, OPTS);
    const conn = wrap(ws);
    ws.once('error', reject); // before open: handshake failure
    ws.once('open', () => {
      ws.off('error', reject);
      scenario(conn, 'client', closerOf(url)).then(resolve, reject);
    });
  });
}

function runServer(port) {
  return new Promise((resolve, reject) => {
    const wss = new WebSocket.WebSocketServer({ host: '127.0.0.1', port, clientTracking: false, ...OPTS });
    wss.on('error', reject);
    wss.on('listening', () => {
      process.stdout.write(`listening ${wss.address().port}\n`);
    });
    let served = false;
    wss.on('connection', (ws, req) => {
      if (served) {
        ws.close(1013, 'one connection only');
        return;
      }
      served = true;
      wss.close(); // accept no other connection
      scenario(wrap(ws), 'server', closerOf(req.url)).then(resolve, reject);
    });
  });
}

function main(argv) {
  if (argv[0] === '--as-go') {
    SELF = 'go';
    argv = argv.slice(1);
  }
  const [mode, arg] = argv;
  if (argv.length !== 2 || (mode !== 'client' && mode !== 'server')) {
    process.stderr.write('usage: node peer.js [--as-go] client URL | node peer.js [--as-go] server PORT\n');
    process.exit(2);
  }
  const timer = setTimeout(() => {
    process.stderr.write(`node peer (${mode}): timed out after ${TIMEOUT_MS / 1000}s\n`);
    process.exit(1);
  }, TIMEOUT_MS);
  const run = mode === 'client' ? runClient(arg) : runServer(Number(arg));
  run.then(
    () => {
      clearTimeout(timer);
      process.stderr.write(`node peer (${mode}, ws ${require('ws/package.json').version}): ok\n`);
      process.exit(0);
    },
    (err) => {
      clearTimeout(timer);
      const kind = err instanceof Mismatch ? 'MISMATCH' : 'ERROR';
      const text = err instanceof Mismatch ? err.message : err && err.stack ? err.stack : String(err);
      process.stderr.write(`node peer (${mode}): ${kind}: ${text}\n`);
      process.exit(1);
    },
  );
}

main(process.argv.slice(2));

#!/usr/bin/env node
// Interop peer built on the Node.js `ws` library.
//
// Usage:
//   node peer.js [--as-go] [--compress[=PARAMS]] client URL
//                              connect to URL (ws://host:port/interop?closer=go|peer)
//   node peer.js [--as-go] [--compress[=PARAMS]] server PORT
//                              listen on 127.0.0.1:PORT (0 = any free port), print
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
//
// With --compress the program negotiates permessage-deflate (and fails when
// the other side does not) and runs the compression scenario instead of the
// plain one. It compresses every message (threshold 0). Bare, the offer or
// the acceptance is ws's default; --compress=PARAMS, a comma-separated list
// of RFC 7692 parameters such as server_max_window_bits=10,client_no_context_takeover,
// sets the matching perMessageDeflate options (a client offers them, a
// server imposes them). Without --compress, compression is disabled.
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
let COMPRESS = null; // with --compress: the perMessageDeflate options

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

// The 20 messages of the plain scenario, in order.
function* plainSequence() {
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

// The records {"id":I,"user":"userI","tags":["alpha","beta","gamma"],"score":S},
// I = 0, 1, 2, ..., S = I*37 mod 1000, concatenated and cut to n bytes.
function jsonPayload(n) {
  const parts = [];
  let size = 0;
  for (let i = 0; size < n; i++) {
    const r = `{"id":${i},"user":"user${i}","tags":["alpha","beta","gamma"],"score":${(i * 37) % 1000}},`;
    parts.push(r);
    size += r.length;
  }
  return Buffer.from(parts.join('').slice(0, n), 'latin1');
}

// The 60-byte message number k.
function smallPayload(k) {
  return Buffer.from(`{"seq":${String(k).padStart(4, '0')},"event":"tick","payload":"abcdefghijklmnopqrst"}`, 'latin1');
}

// n bytes of xorshift32 seeded with n, 4 bytes little-endian per step.
function randomPayload(n) {
  const b = Buffer.alloc(Math.ceil(n / 4) * 4);
  let x = n >>> 0;
  for (let i = 0; i < b.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b.writeUInt32LE(x, i);
  }
  return b.subarray(0, n);
}

// randomPayload(p) repeated and cut to n bytes.
function periodicPayload(n, p) {
  const r = randomPayload(p);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += p) r.copy(b, i);
  return b;
}

const SMALL_MESSAGES = 50;

// The messages of the compression scenario (see interop/README.md).
function compressMessages() {
  const out = [];
  const add = (kind, label, frag, data) => out.push({ i: out.length, kind, n: data.length, label, frag, data });
  for (const [n, frag] of [[0, false], [10 << 10, false], [10 << 10, true], [1 << 20, false], [1 << 20, true], [16 << 20, false]]) {
    add('text', `json(${n})`, frag, jsonPayload(n));
  }
  for (let k = 0; k < SMALL_MESSAGES; k++) add('text', `small(${k})`, false, smallPayload(k));
  for (const [n, frag] of [[0, false], [100, false], [64 << 10, false], [64 << 10, true], [1 << 20, false]]) {
    add('binary', `random(${n})`, frag, randomPayload(n));
  }
  for (const [n, p] of [[64 << 10, 200], [64 << 10, 3000], [256 << 10, 30000]]) {
    add('binary', `periodic(${n},${p})`, false, periodicPayload(n, p));
  }
  add('text', `json(${10 << 10})`, false, jsonPayload(10 << 10));
  return out;
}

let compressCache = null;

// The messages of the scenario, in order.
function sequence() {
  if (COMPRESS === null) return plainSequence();
  if (!compressCache) compressCache = compressMessages(); // about 20 MB, built once
  return compressCache;
}

function describe(m) {
  const name = m.label ? `${m.kind} ${m.label}` : m.kind;
  return `message #${m.i} (${name}, ${m.n} bytes, ${m.frag ? 'fragmented' : 'whole'})`;
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

// With --compress: fails unless permessage-deflate was negotiated.
function checkCompression(ws) {
  if (COMPRESS === null) return;
  const pmd = ws._extensions['permessage-deflate']; // ws.extensions only has the names
  if (ws.extensions !== 'permessage-deflate' || !pmd) {
    throw new Mismatch(`permessage-deflate was not negotiated (extensions: ${JSON.stringify(ws.extensions)})`);
  }
  process.stderr.write(`node peer: negotiated permessage-deflate ${JSON.stringify(pmd.params)}\n`);
}

async function scenario(conn, role, closer) {
  try {
    if (closer !== 'go' && closer !== 'peer') {
      throw new Mismatch(`bad closer ${JSON.stringify(closer)}: want go or peer`);
    }
    checkCompression(conn.ws);
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

// The option names of ws for the RFC 7692 parameters.
const DEFLATE_OPTIONS = {
  server_no_context_takeover: 'serverNoContextTakeover',
  client_no_context_takeover: 'clientNoContextTakeover',
  server_max_window_bits: 'serverMaxWindowBits',
  client_max_window_bits: 'clientMaxWindowBits',
};

// --compress=PARAMS: "a,b=N" -> perMessageDeflate options.
function parseCompress(spec) {
  const opts = { threshold: 0 }; // compress every message, the empty one too
  for (const item of spec.split(',').filter((s) => s !== '')) {
    const [name, value] = item.split('=');
    const key = DEFLATE_OPTIONS[name];
    if (!key || key in opts) throw new Error(`--compress: unknown or repeated parameter ${JSON.stringify(name)}`);
    if (value === undefined) {
      if (name === 'server_max_window_bits') throw new Error(`--compress: ${name} needs a value`);
      opts[key] = true;
    } else {
      if (name.endsWith('_no_context_takeover')) throw new Error(`--compress: ${name} takes no value`);
      opts[key] = Number(value);
    }
  }
  return opts;
}

function connOptions() {
  return COMPRESS === null ? OPTS : { ...OPTS, perMessageDeflate: COMPRESS };
}

function runClient(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, connOptions());
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
    const wss = new WebSocket.WebSocketServer({ host: '127.0.0.1', port, clientTracking: false, ...connOptions() });
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
  const usage = 'usage: node peer.js [--as-go] [--compress[=PARAMS]] client URL | server PORT\n';
  if (argv[0] === '--as-go') {
    SELF = 'go';
    argv = argv.slice(1);
  }
  if (argv[0] === '--compress' || (argv[0] || '').startsWith('--compress=')) {
    try {
      COMPRESS = parseCompress(argv[0].slice('--compress='.length));
    } catch (err) {
      process.stderr.write(`${err.message}\n${usage}`);
      process.exit(2);
    }
    argv = argv.slice(1);
  }
  const [mode, arg] = argv;
  if (argv.length !== 2 || (mode !== 'client' && mode !== 'server')) {
    process.stderr.write(usage);
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

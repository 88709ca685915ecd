#!/usr/bin/env node
// An MQTT client over WebSocket (the npm package mqtt, MQTT 3.1.1) that
// publishes and subscribes through Duplex's TCP bridge to a real broker.
//
// Usage: node mqtt_client.js WS_URL TOPIC
//
//   1. "sub" connects and subscribes to TOPIC/# with QoS 2, then prints
//      "subscribed" on stdout: the Go test then publishes TOPIC/tcp
//      ("from a TCP client", QoS 0) straight to the broker over TCP.
//   2. "pub" connects and publishes TOPIC/a (QoS 0), TOPIC/b (QoS 1, UTF-8),
//      TOPIC/c (100 KiB of bytes (i*31+7) mod 256, QoS 2) and TOPIC/retained
//      ("kept", QoS 1, retained).
//   3. "sub" must receive all five with the exact payloads and QoS.
//   4. "late" connects afterwards and subscribes to TOPIC/retained: the
//      broker must hand it the retained message, flagged retained.
//
// Prints "ok" and exits 0 on success; otherwise the mismatch on stderr and
// status 1.
'use strict';

const mqtt = require('mqtt');

const TIMEOUT_MS = 60 * 1000;

function pattern(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 255;
  return b;
}

function connect(url, clientId) {
  return mqtt.connectAsync(url, {
    clientId,
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 20 * 1000,
  });
}

async function main(argv) {
  if (argv.length !== 2) {
    process.stderr.write('usage: node mqtt_client.js WS_URL TOPIC\n');
    return 2;
  }
  const [url, topic] = argv;
  const want = new Map([
    [topic + '/tcp', { payload: Buffer.from('from a TCP client'), qos: 0 }],
    [topic + '/a', { payload: Buffer.from('hello'), qos: 0 }],
    [topic + '/b', { payload: Buffer.from('h\u00e9llo w\u00f6rld \u2603'), qos: 1 }],
    [topic + '/c', { payload: pattern(100 << 10), qos: 2 }],
    [topic + '/retained', { payload: Buffer.from('kept'), qos: 1 }],
  ]);

  const sub = await connect(url, 'duplex-sub');
  const got = new Map();
  let allIn;
  const allReceived = new Promise((resolve) => { allIn = resolve; });
  sub.on('message', (t, payload, packet) => {
    got.set(t, { payload: Buffer.from(payload), qos: packet.qos, retain: packet.retain });
    if (got.size === want.size) allIn();
  });
  const granted = await sub.subscribeAsync(topic + '/#', { qos: 2 });
  if (granted.length !== 1 || granted[0].qos !== 2) {
    throw new Error('subscription granted ' + JSON.stringify(granted) + ', want QoS 2');
  }
  process.stdout.write('subscribed\n');

  const pub = await connect(url, 'duplex-pub');
  await pub.publishAsync(topic + '/a', want.get(topic + '/a').payload, { qos: 0 });
  await pub.publishAsync(topic + '/b', want.get(topic + '/b').payload, { qos: 1 });
  await pub.publishAsync(topic + '/c', want.get(topic + '/c').payload, { qos: 2 });
  await pub.publishAsync(topic + '/retained', want.get(topic + '/retained').payload, { qos: 1, retain: true });

  await allReceived;
  for (const [t, w] of want) {
    const g = got.get(t);
    if (!g) throw new Error('no message on ' + t);
    if (!g.payload.equals(w.payload)) {
      throw new Error(t + ': payload of ' + g.payload.length + ' bytes differs from the ' + w.payload.length + ' published');
    }
    if (g.qos !== w.qos) throw new Error(t + ': QoS ' + g.qos + ', want ' + w.qos);
  }

  const late = await connect(url, 'duplex-late');
  const retained = new Promise((resolve) => {
    late.on('message', (t, payload, packet) => resolve({ t, payload: Buffer.from(payload), retain: packet.retain }));
  });
  await late.subscribeAsync(topic + '/retained', { qos: 1 });
  const r = await retained;
  if (r.t !== topic + '/retained' || r.payload.toString() !== 'kept' || r.retain !== true) {
    throw new Error('late subscriber got ' + JSON.stringify({ t: r.t, payload: r.payload.toString(), retain: r.retain }));
  }
  // Leave the broker as it was.
  await pub.publishAsync(topic + '/retained', Buffer.alloc(0), { qos: 1, retain: true });
  await Promise.all([sub.endAsync(), pub.endAsync(), late.endAsync()]);
  process.stdout.write('ok\n');
  return 0;
}

const watchdog = setTimeout(() => {
  process.stderr.write('mqtt_client.js: timed out after ' + TIMEOUT_MS / 1000 + 's\n');
  process.exit(1);
}, TIMEOUT_MS);

main(process.argv.slice(2)).then(
  (code) => { clearTimeout(watchdog); process.exit(code); },
  (err) => {
    process.stderr.write('mqtt_client.js: ' + (err && err.stack ? err.stack : err) + '\n');
    process.exit(1);
  },
);

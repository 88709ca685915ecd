package interop

// browserPage is the page node/browser.js opens in headless Chromium. Its
// script runs the client side of the scenario with the browser's WebSocket
// against /interop on the same host, with the closer given in the page's
// query (?closer=go or ?closer=peer), and sets window.interopResult to
// {ok: true} or {ok: false, error: "..."}. With mode=compress in the query
// it runs the compression scenario and checks that permessage-deflate was
// negotiated (Chromium always offers it); otherwise it checks that no
// extension was.
//
// A browser cannot fragment: the fragmented entries are sent whole.
const browserPage = `<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>duplex interop</title>
</head>
<body>
<p id="status">running</p>
<script>
"use strict";
(function () {
  var SIZES = [0, 125, 126, 65536, 16 << 20];
  var CLOSES = {
    go: { code: 4001, reason: "go closes ✓" },
    peer: { code: 4002, reason: "peer closes ✓" }
  };
  var encoder = new TextEncoder();

  // "é" (C3 A9) repeated n/2 times, plus "x" if n is odd.
  function textPayload(n) {
    return "é".repeat(Math.floor(n / 2)) + (n % 2 ? "x" : "");
  }
  // Bytes (i*31+7) mod 256 for i in 0..n-1.
  function binaryPayload(n) {
    var b = new Uint8Array(n);
    for (var i = 0; i < n; i++) b[i] = (i * 31 + 7) & 255;
    return b;
  }
  function plainSequence() {
    var out = [];
    ["text", "binary"].forEach(function (kind) {
      SIZES.forEach(function (n) {
        var text = kind === "text" ? textPayload(n) : null;
        var bytes = kind === "text" ? encoder.encode(text) : binaryPayload(n);
        [false, true].forEach(function (frag) {
          out.push({ i: out.length, kind: kind, n: n, frag: frag, text: text, bytes: bytes });
        });
      });
    });
    return out;
  }

  // The compression scenario's payloads (interop/README.md).
  // Records {"id":I,"user":"userI","tags":["alpha","beta","gamma"],"score":S},
  // I = 0, 1, 2, ..., S = I*37 mod 1000, concatenated and cut to n bytes.
  function jsonPayload(n) {
    var parts = [], size = 0;
    for (var i = 0; size < n; i++) {
      var r = '{"id":' + i + ',"user":"user' + i + '","tags":["alpha","beta","gamma"],"score":' + ((i * 37) % 1000) + '},';
      parts.push(r);
      size += r.length;
    }
    return parts.join("").slice(0, n);
  }
  // The 60-byte message number k.
  function smallPayload(k) {
    return '{"seq":' + String(k).padStart(4, "0") + ',"event":"tick","payload":"abcdefghijklmnopqrst"}';
  }
  // n bytes of xorshift32 seeded with n, 4 bytes little-endian per step.
  function randomPayload(n) {
    var words = Math.ceil(n / 4), view = new DataView(new ArrayBuffer(words * 4));
    var x = n >>> 0;
    for (var i = 0; i < words; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      view.setUint32(i * 4, x, true);
    }
    return new Uint8Array(view.buffer, 0, n);
  }
  // randomPayload(p) repeated and cut to n bytes.
  function periodicPayload(n, p) {
    var r = randomPayload(p), b = new Uint8Array(n);
    for (var i = 0; i < n; i += p) b.set(r.subarray(0, Math.min(p, n - i)), i);
    return b;
  }
  function compressSequence() {
    var out = [];
    function text(label, frag, t) {
      out.push({ i: out.length, kind: "text", label: label, n: t.length, frag: frag, text: t, bytes: encoder.encode(t) });
    }
    function binary(label, frag, b) {
      out.push({ i: out.length, kind: "binary", label: label, n: b.length, frag: frag, text: null, bytes: b });
    }
    [[0, false], [10 << 10, false], [10 << 10, true], [1 << 20, false], [1 << 20, true], [16 << 20, false]].forEach(function (e) {
      text("json(" + e[0] + ")", e[1], jsonPayload(e[0]));
    });
    for (var k = 0; k < 50; k++) text("small(" + k + ")", false, smallPayload(k));
    [[0, false], [100, false], [64 << 10, false], [64 << 10, true], [1 << 20, false]].forEach(function (e) {
      binary("random(" + e[0] + ")", e[1], randomPayload(e[0]));
    });
    [[64 << 10, 200], [64 << 10, 3000], [256 << 10, 30000]].forEach(function (e) {
      binary("periodic(" + e[0] + "," + e[1] + ")", false, periodicPayload(e[0], e[1]));
    });
    text("json(" + (10 << 10) + ")", false, jsonPayload(10 << 10));
    return out;
  }
  function describe(m) {
    var name = m.label ? m.kind + " " + m.label : m.kind;
    return "message #" + m.i + " (" + name + ", " + m.n + " bytes, " + (m.frag ? "fragmented" : "whole") + ")";
  }
  function firstDiff(got, want) {
    var l = Math.min(got.length, want.length);
    for (var j = 0; j < l; j++) {
      if (got[j] !== want[j]) {
        return "first difference at byte " + j + ": got 0x" + got[j].toString(16) + ", want 0x" + want[j].toString(16);
      }
    }
    return "length " + got.length + ", want " + want.length;
  }

  var query = new URLSearchParams(location.search);
  var closer = query.get("closer") || "";
  var compress = query.get("mode") === "compress";
  var messages = [], waiters = [], closed = null, closeWaiters = [];
  var wsURL = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
    "/interop?closer=" + encodeURIComponent(closer);
  var ws = new WebSocket(wsURL);
  ws.binaryType = "arraybuffer";

  function wake() {
    while (waiters.length && (messages.length || closed)) {
      waiters.shift()(messages.length ? messages.shift() : null);
    }
  }
  ws.onmessage = function (e) { messages.push(e.data); wake(); };
  ws.onerror = function () { console.log("WebSocket error event"); };
  ws.onclose = function (e) {
    closed = { code: e.code, reason: e.reason, wasClean: e.wasClean };
    wake();
    closeWaiters.splice(0).forEach(function (w) { w(closed); });
  };
  function next() { return new Promise(function (r) { waiters.push(r); wake(); }); }
  function whenClosed() {
    return new Promise(function (r) { if (closed) r(closed); else closeWaiters.push(r); });
  }
  var opened = new Promise(function (resolve, reject) {
    ws.onopen = resolve;
    whenClosed().then(function (c) {
      reject(new Error("connection closed before open: code " + c.code));
    });
  });

  async function recvAll(seq) {
    for (var k = 0; k < seq.length; k++) {
      var m = seq[k], what = describe(m);
      var data = await next();
      if (data === null) {
        throw new Error(what + ": connection closed instead (code " + closed.code + " reason " + JSON.stringify(closed.reason) + ")");
      }
      var kind = typeof data === "string" ? "text" : "binary";
      var got = kind === "text" ? encoder.encode(data) : new Uint8Array(data);
      if (kind !== m.kind) throw new Error(what + ": got a " + kind + " message of " + got.length + " bytes");
      if (got.length !== m.bytes.length) throw new Error(what + ": payload differs: " + firstDiff(got, m.bytes));
      for (var j = 0; j < got.length; j++) {
        if (got[j] !== m.bytes[j]) throw new Error(what + ": payload differs: " + firstDiff(got, m.bytes));
      }
    }
  }
  function sendAll(seq) {
    seq.forEach(function (m) {
      ws.send(m.kind === "text" ? m.text : m.bytes); // whole, even when m.frag
    });
  }
  async function closePhase() {
    var c;
    if (closer === "peer") {
      var mine = CLOSES.peer;
      ws.close(mine.code, mine.reason);
      c = await whenClosed();
      if (!c.wasClean) throw new Error("closing with " + mine.code + ": the close was not clean (code " + c.code + ")");
      // The other side must echo our code; echoing the reason is optional.
      if (c.code !== mine.code) {
        throw new Error("after closing with " + mine.code + ": other side answered code " + c.code + " reason " + JSON.stringify(c.reason) + ", want code " + mine.code);
      }
      if (c.reason !== "" && c.reason !== mine.reason) {
        throw new Error("after closing with " + mine.code + ": other side echoed reason " + JSON.stringify(c.reason) + ", want " + JSON.stringify(mine.reason) + " or empty");
      }
      return;
    }
    var want = CLOSES.go;
    var data = await next();
    if (data !== null) throw new Error("expected a close frame, got a message");
    c = await whenClosed();
    if (c.code !== want.code || c.reason !== want.reason) {
      throw new Error("close frame: got code " + c.code + " reason " + JSON.stringify(c.reason) + ", want code " + want.code + " reason " + JSON.stringify(want.reason));
    }
    if (!c.wasClean) throw new Error("the close by the other side was not clean");
  }

  async function run() {
    if (closer !== "go" && closer !== "peer") throw new Error("bad closer " + JSON.stringify(closer));
    var seq = compress ? compressSequence() : plainSequence();
    await opened;
    console.log("open; extensions: " + JSON.stringify(ws.extensions));
    if (compress ? ws.extensions.split(";")[0].trim() !== "permessage-deflate" : ws.extensions !== "") {
      throw new Error("negotiated extensions " + JSON.stringify(ws.extensions) +
        (compress ? ", want permessage-deflate" : ", want none"));
    }
    console.log("phase 1: receiving");
    await recvAll(seq);
    console.log("phase 2: sending");
    sendAll(seq);
    console.log("phase 3: close (closer=" + closer + ")");
    await closePhase();
  }
  run().then(function () {
    document.getElementById("status").textContent = "ok";
    window.interopResult = { ok: true };
  }, function (err) {
    document.getElementById("status").textContent = "failed: " + err.message;
    window.interopResult = { ok: false, error: String(err && err.message ? err.message : err) };
  });
})();
</script>
</body>
</html>
`

// duplex.js: the browser SDK for the duplex.v1 channel protocol (docs/protocol.md).
// An ES module with no dependencies and no build step; `duplex serve` serves it
// at /duplex.js and its TypeScript declarations at /duplex.d.ts.
//
//   import { Duplex } from "/duplex.js";
//   const duplex = new Duplex("/ws", { user: "alice" });
//   duplex.subscribe("news", (data, msg) => show(msg.offset, data), {
//     onSubscribed: ({ recovered }) => { if (!recovered) reload(); },
//   });
//   const { offset } = await duplex.publish("news", { text: "hello" });
//
// The client reconnects by itself (jittered exponential backoff), subscribes
// again to every channel with `since` set to the last offset it delivered,
// and never hands the same offset of a channel to the application twice.
//
// On a server that authenticates, give it a token, and a function that
// fetches a fresh one: it is called before the token expires, and before
// reconnecting when the token was refused or has expired.
//
//   const duplex = new Duplex("/ws", {
//     token: initialToken,
//     getToken: () => fetch("/token").then((r) => r.text()),
//   });

/** The WebSocket subprotocol the SDK speaks. */
export const PROTOCOL = "duplex.v1";

/**
 * Error codes carried by {@link DuplexError}: the server's (100-111, see
 * docs/protocol.md#errors) and two of the SDK's own (1 and 2).
 */
export const ErrorCode = Object.freeze({
  /** The connection dropped before the answer came; the command may or may not have run. */
  DISCONNECTED: 1,
  /** The client was closed (by close(), or for good by the server) before the command was sent. */
  CLOSED: 2,
  INTERNAL: 100,
  BAD_REQUEST: 101,
  UNKNOWN_OP: 102,
  INVALID_CHANNEL: 103,
  UNKNOWN_NAMESPACE: 104,
  PERMISSION_DENIED: 105,
  CONNECT_NOT_ALLOWED: 106,
  ALREADY_SUBSCRIBED: 107,
  NOT_SUBSCRIBED: 108,
  HISTORY_OFF: 109,
  PRESENCE_OFF: 110,
  /** The token was refused (connect, refresh); the message says why. */
  UNAUTHORIZED: 111,
});

/**
 * Close codes of a server that authenticates (docs/protocol.md#close-codes):
 * the token sent with `connect` was refused, or the connection's token
 * expired before a newer one replaced it.
 */
export const CloseCode = Object.freeze({
  UNAUTHORIZED: 4001,
  TOKEN_EXPIRED: 4002,
});

// The longest time before its expiry that a token is replaced (ms); a
// short-lived one is replaced when a fifth of its life is left.
const MAX_REFRESH_LEAD = 10000;
// How long to wait before trying a failed refresh again (ms).
const REFRESH_RETRY = 1000;

// Close codes after which connecting again cannot help: the server ended
// the session on purpose (1000), the client broke the protocol (1002, 1003,
// 1007), sent too many bad commands (1008), or wants an extension (1010).
// After any other ending the client reconnects: a broken connection (1005,
// 1006), the server going away or restarting (1001, 1012), an internal error
// (1011), a slow consumer (1013), a bad gateway (1014), a message too big
// (1009: the next connection will not send it again).
const FINAL_CODES = new Set([1000, 1002, 1003, 1007, 1008, 1010]);

/** DuplexError is how a command fails: `code` says why (see {@link ErrorCode}). */
export class DuplexError extends Error {
  /**
   * @param {number} code an {@link ErrorCode}
   * @param {string} message the server's message, or the SDK's
   * @param {number} [closeCode] the WebSocket close code, for DISCONNECTED and CLOSED
   */
  constructor(code, message, closeCode) {
    super(message);
    this.name = "DuplexError";
    /** @type {number} */
    this.code = code;
    if (closeCode !== undefined) /** @type {number} */ this.closeCode = closeCode;
  }
}

// An application handler that throws must not break the client: report the
// error the way the platform reports uncaught ones, and go on.
function report(err) {
  if (typeof globalThis.reportError === "function") globalThis.reportError(err);
  else console.error(err);
}

/** Emitter is the small event API of {@link Duplex} and {@link Subscription}. */
class Emitter {
  #handlers = new Map();

  /**
   * on calls fn on every `event` until the returned function is called.
   * @param {string} event
   * @param {Function} fn
   * @returns {() => void} removes fn
   */
  on(event, fn) {
    if (!this.#handlers.has(event)) this.#handlers.set(event, new Set());
    this.#handlers.get(event).add(fn);
    return () => this.off(event, fn);
  }

  /** off stops calling fn on `event`. */
  off(event, fn) {
    this.#handlers.get(event)?.delete(fn);
  }

  _emit(event, ...args) {
    for (const fn of [...(this.#handlers.get(event) ?? [])]) {
      try {
        fn(...args);
      } catch (err) {
        report(err);
      }
    }
  }
}

/**
 * Subscription is one channel a {@link Duplex} client is subscribed to, made
 * by {@link Duplex#subscribe}. It lives across reconnections until
 * unsubscribe(), or until the server refuses it (the "error" event), and
 * through failures of the server (the "retrying" event).
 *
 * Events: "subscribed" ({recovered, offset, epoch}) after every subscribe
 * answer, the first and each one after a reconnection, and also, with
 * recovered false and lost: {from, to}, when the server reports that
 * messages of the live subscription were lost (its node's link to the
 * cluster's broker was down longer than the channel's history keeps), or
 * lost: {from, to, old: {offset, epoch}} when the channel's history was lost
 * and a new epoch begins (what followed `old` in the old epoch is gone),
 * before the message after the gap: an application that reloads its state
 * when recovered is false handles both; "join" and "leave"
 * (the client: {client, user, info}) when the channel has presence on;
 * "error" (a DuplexError) when the server refuses the subscription, which
 * then ends: the first subscribe whatever the code, and a resubscription
 * after a reconnection with any code but 100; "retrying" ({error, delay}) when
 * the server fails to restore the subscription after a reconnection with
 * error 100 (INTERNAL: its own failure, typically its broker down): the
 * subscription stays, inactive, with its offset and epoch, and the client
 * subscribes again after `delay` ms (the reconnection backoff, growing with
 * each failure) until the server accepts; the "subscribed" that follows says
 * whether what was missed meanwhile follows (recovered).
 */
export class Subscription extends Emitter {
  #onMessage;
  #unsubscribe;
  #settle;

  constructor(channel, onMessage, options, unsubscribe) {
    super();
    /** The channel's name. */
    this.channel = channel;
    /** The offset of the last message delivered (or of the subscribe answer): what recovery resumes from. */
    this.offset = options.since?.offset ?? 0;
    /** The channel's epoch that goes with `offset`; undefined until the first answer unless `since` was given. */
    this.epoch = options.since?.epoch;
    /** True while the server has the subscription on the current connection. */
    this.active = false;
    this.#onMessage = onMessage;
    this.#unsubscribe = unsubscribe;
    if (options.onSubscribed) this.on("subscribed", options.onSubscribed);
    if (options.onJoin) this.on("join", options.onJoin);
    if (options.onLeave) this.on("leave", options.onLeave);
    if (options.onError) this.on("error", options.onError);
    if (options.onRetrying) this.on("retrying", options.onRetrying);
    this._established = false; // answered once: a failure of the server is retried
    this._retries = 0; // consecutive failures of the server to restore it
    this._retryTimer = null; // the next attempt
    /**
     * Settles with the first subscribe answer: {recovered, offset, epoch}, or
     * the DuplexError that refused the subscription.
     * @type {Promise<{recovered: boolean, offset: number, epoch: string}>}
     */
    this.ready = new Promise((resolve, reject) => (this.#settle = { resolve, reject }));
    this.ready.catch(() => {}); // "error" reports it too: no unhandled rejection
  }

  /**
   * unsubscribe ends the subscription: no message reaches the handler after
   * the call. The promise resolves once the server has confirmed it (or at
   * once when not connected).
   * @returns {Promise<void>}
   */
  unsubscribe() {
    this.#settle.reject(new DuplexError(ErrorCode.CLOSED, `duplex: unsubscribed from ${this.channel}`));
    return this.#unsubscribe(this);
  }

  _subscribed(info) {
    this.active = true;
    this._established = true;
    this._retries = 0;
    this.#settle.resolve(info);
    this._emit("subscribed", info);
  }

  _failed(err) {
    this.active = false;
    this.#settle.reject(err);
    this._emit("error", err);
  }

  // _lost handles a lost push (messages that will never come): the
  // subscription goes on from its offset and epoch (a new one when the
  // channel's history was lost: `old` says where the old one was left), so
  // that the next message is not taken for a duplicate and a resumption asks
  // only for what follows the gap, and "subscribed" listeners hear
  // recovered: false, as after a resubscription that could not recover. A
  // report of offsets already passed is ignored.
  _lost(msg) {
    if (!this.active || (msg.epoch === this.epoch && msg.offset <= this.offset)) return false;
    this.offset = msg.offset;
    this.epoch = msg.epoch;
    const lost = { from: msg.from, to: msg.offset };
    if (msg.old && typeof msg.old === "object") lost.old = { offset: msg.old.offset, epoch: msg.old.epoch };
    this._emit("subscribed", { recovered: false, offset: msg.offset, epoch: msg.epoch, lost });
    return true;
  }

  // _deliver hands a message push to the application unless its offset was
  // delivered already (same epoch, offset not above the last one).
  _deliver(msg) {
    if (!this.active) return false;
    if (msg.epoch === this.epoch && msg.offset <= this.offset) return false;
    this.offset = msg.offset;
    this.epoch = msg.epoch;
    try {
      this.#onMessage(msg.data, { channel: msg.channel, offset: msg.offset, epoch: msg.epoch, data: msg.data });
    } catch (err) {
      report(err);
    }
    return true;
  }
}

/**
 * Duplex is a client of a `duplex serve` channel endpoint. It connects at
 * once, and again after a connection breaks, until close() or a close code
 * after which reconnecting cannot help (1000, 1002, 1003, 1007, 1008, 1010;
 * and 4001, 4002, a token refused or expired, unless options.getToken can
 * fetch another).
 *
 * `state` is "connecting", "open", "disconnected" (waiting to reconnect),
 * "closing" or "closed" (for good). Events, with on(event, fn): "state"
 * (state, detail) on every change, and one event per state with its detail:
 * "connecting", "open", "disconnected" ({code, reason, delay}: the close code
 * and reason, and the milliseconds until the next attempt), "closing",
 * "closed" ({code, reason}); "error" (an Error) for what no promise carries:
 * a refused `connect` (a token refused: a DuplexError with code 111), a
 * failed token refresh or getToken, an answer with id 0, a frame that is not
 * JSON, a server that does not speak duplex.v1.
 */
export class Duplex extends Emitter {
  #WebSocket;
  #ws = null; // the current socket
  #ready = false; // connected, `connect` answered: commands go out
  #final = false; // close() called, or closed for good
  #lastId = 0;
  #pending = new Map(); // id -> {onResult, onError} of commands sent on #ws
  #queue = []; // commands waiting for a connection: {cmd, resolve, reject}
  #subs = new Map(); // channel -> Subscription
  #attempt = 0; // consecutive reconnections
  #urls; // the endpoints to try in turn
  #openedAt = 0;
  #timer = null;
  #closed;
  #resolveClosed;
  #token; // the token sent with connect
  #tokenExpires = 0; // when it expires (performance.now() ms); 0: unknown or never
  #tokenLead = 0; // how long before then to replace it (ms)
  #tokenStale = false; // refused or expired: fetch another before connecting
  #refreshTimer = null;

  /**
   * @param {string|string[]} [url] the channel endpoint: ws:, wss:, http:,
   *   https:, or relative to the page ("/ws", the default); or several, the
   *   nodes of one cluster: each reconnection tries the next one in turn
   * @param {object} [options]
   * @param {string} [options.user] sent with `connect`: what presence shows
   * @param {*} [options.info] sent with `connect` (any JSON value, at most 1 KiB)
   * @param {string} [options.token] the token (a JWT) sent with `connect`, on a
   *   server that authenticates; the server then takes the user from it
   * @param {() => (string|Promise<string>)} [options.getToken] fetches a fresh
   *   token: called before connecting when there is none, when the last one was
   *   refused or expired or expires within its refresh lead (a fifth of its
   *   lifetime, at most 10 s), and that lead before the token expires, to send
   *   the new one with `refresh` so that the connection lives on. Without it, a
   *   token refused or expired closes the client for good
   * @param {number} [options.minBackoff] shortest reconnection delay in ms (default 100)
   * @param {number} [options.maxBackoff] longest reconnection delay in ms (default 5000);
   *   the n-th consecutive attempt waits a random time between minBackoff and
   *   min(maxBackoff, minBackoff * 2^n), and n starts over once a connection
   *   has stayed up for maxBackoff
   * @param {Function} [options.WebSocket] the WebSocket constructor (in Node: the `ws` package's)
   * @param {boolean|Function} [options.debug] log to console.debug, or to this function
   */
  constructor(url = "/ws", options = {}) {
    super();
    this.options = { minBackoff: 100, maxBackoff: 5000, ...options };
    this.#urls = [...new Set((Array.isArray(url) ? url : [url]).map(toWebSocketURL))];
    if (this.#urls.length === 0) throw new TypeError("duplex: no URL");
    /** The absolute ws: or wss: URL of the endpoint in use (or to dial next). */
    this.url = this.#urls[0];
    /** The connection state (see the class comment). */
    this.state = "connecting";
    /** This connection's id on the server, from the `connect` answer (when user, info or a token is given). */
    this.client = undefined;
    this.#token = options.token;
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.#WebSocket !== "function") {
      throw new TypeError("duplex: no WebSocket here; pass options.WebSocket");
    }
    this.#closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    queueMicrotask(() => this.#open()); // after the caller's on("connecting", ...)
  }

  /**
   * subscribe starts receiving the channel's messages: onMessage(data,
   * {channel, offset, epoch, data}) for each, in offset order, each offset
   * once, across reconnections. Throws a DuplexError (107) when already
   * subscribed to the channel, or (2) when the client is closed.
   * @param {string} channel
   * @param {(data: *, message: object) => void} onMessage
   * @param {object} [options] onSubscribed, onJoin, onLeave, onError, onRetrying: handlers
   *   of the Subscription's events; since: {offset, epoch} to resume from
   * @returns {Subscription}
   */
  subscribe(channel, onMessage, options = {}) {
    if (this.#final) throw new DuplexError(ErrorCode.CLOSED, "duplex: the client is closed");
    if (this.#subs.has(channel)) {
      throw new DuplexError(ErrorCode.ALREADY_SUBSCRIBED, `duplex: already subscribed to ${channel}`);
    }
    const sub = new Subscription(channel, onMessage, options, (s) => this.#unsubscribe(s));
    this.#subs.set(channel, sub);
    if (this.#ready) this.#subscribe(sub);
    return sub;
  }

  /**
   * publish sends data (any JSON value; null is one) to the channel.
   * @returns {Promise<{offset: number, epoch: string}>} the offset the message got
   */
  publish(channel, data) {
    if (data === undefined) return Promise.reject(new TypeError("duplex: publish needs data (null is a value)"));
    return this.#call({ op: "publish", channel, data }).then((r) => ({ offset: r.offset, epoch: r.epoch }));
  }

  /**
   * presence lists who is subscribed to the channel, sorted by client id.
   * @returns {Promise<Array<{client: string, user: string, info?: *}>>}
   */
  presence(channel) {
    return this.#call({ op: "presence", channel }).then((r) => r.clients ?? []);
  }

  /**
   * history fetches the messages the server keeps for the channel, oldest
   * first: the last `limit` of them (0 or none: all), or those after `since`
   * (with `limit` too: the first `limit` of them).
   * @param {string} channel
   * @param {{limit?: number, since?: {offset: number, epoch: string}}} [options]
   * @returns {Promise<{messages: Array<{offset: number, data: *}>, offset: number, epoch: string, recovered?: boolean}>}
   */
  history(channel, { limit, since } = {}) {
    const cmd = { op: "history", channel };
    if (limit !== undefined) cmd.limit = limit;
    if (since !== undefined) cmd.since = { offset: since.offset, epoch: since.epoch };
    return this.#call(cmd).then((r) => ({ ...r, messages: r.messages ?? [] }));
  }

  /**
   * ping makes a round trip to the server.
   * @returns {Promise<number>} the round trip time in milliseconds
   */
  async ping() {
    const t0 = performance.now();
    await this.#call({ op: "ping" });
    return performance.now() - t0;
  }

  /**
   * close ends the client for good: no reconnection; calls not answered yet
   * reject with DISCONNECTED, those not sent yet with CLOSED.
   * @returns {Promise<{code: number, reason: string}>} resolves once closed
   */
  close() {
    if (this.#final) return this.#closed;
    this.#final = true;
    clearTimeout(this.#refreshTimer);
    if (this.#ws) {
      this.#setState("closing");
      this.#ws.close(1000);
    } else {
      clearTimeout(this.#timer);
      this.#finish(1000, "");
    }
    return this.#closed;
  }

  #log(...args) {
    const debug = this.options.debug;
    if (typeof debug === "function") debug(...args);
    else if (debug) console.debug("duplex:", ...args);
  }

  #setState(state, detail) {
    this.state = state;
    this.#log("state", state, detail ?? "");
    this._emit("state", state, detail);
    this._emit(state, detail);
  }

  #open() {
    if (this.#final) return;
    this.#setState("connecting");
    if (!this.#needToken()) return this.#dial();
    Promise.resolve().then(() => this.options.getToken()).then((token) => {
      if (this.#final) return;
      this.#token = token;
      this.#tokenStale = false;
      this.#tokenExpires = 0;
      this.#dial();
    }, (err) => {
      if (this.#final) return;
      this._emit("error", err);
      this.#onClose(1006, `getToken failed: ${err && err.message}`); // a failed attempt: back off, try again
    });
  }

  // #needToken reports whether getToken must run before connecting.
  #needToken() {
    if (typeof this.options.getToken !== "function") return false;
    if (this.#token === undefined || this.#tokenStale) return true;
    return this.#tokenExpires !== 0 && performance.now() >= this.#tokenExpires - this.#tokenLead;
  }

  // #setTTL records the seconds the server says the token has left.
  #setTTL(ttl) {
    this.#tokenExpires = 0;
    if (typeof ttl !== "number") return;
    this.#tokenExpires = performance.now() + ttl * 1000;
    this.#tokenLead = Math.min(MAX_REFRESH_LEAD, (ttl * 1000) / 5);
  }

  // #scheduleRefresh arranges for getToken to run, and its token to be sent
  // with `refresh` on ws, the token's lead before it expires.
  #scheduleRefresh(ws, delay) {
    clearTimeout(this.#refreshTimer);
    if (typeof this.options.getToken !== "function" || this.#tokenExpires === 0) return;
    if (delay === undefined) delay = this.#tokenExpires - this.#tokenLead - performance.now();
    this.#refreshTimer = setTimeout(() => this.#refresh(ws), Math.max(0, delay));
  }

  #refresh(ws) {
    const retry = (err) => {
      if (ws !== this.#ws || !this.#ready) return;
      this._emit("error", err);
      const left = this.#tokenExpires - performance.now();
      if (left > 0) this.#scheduleRefresh(ws, Math.min(REFRESH_RETRY, left)); // else the server closes with 4002
    };
    Promise.resolve().then(() => this.options.getToken()).then((token) => {
      if (ws !== this.#ws || !this.#ready) return;
      this.#send({ op: "refresh", token }, (r) => {
        this.#token = token;
        this.#setTTL(r.ttl);
        this.#scheduleRefresh(ws);
      }, (err) => {
        if (err.code !== ErrorCode.DISCONNECTED) retry(err);
      });
    }, retry);
  }

  #dial() {
    let ws;
    try {
      ws = new this.#WebSocket(this.url, PROTOCOL);
    } catch (err) {
      this._emit("error", err);
      this.#final = true;
      this.#finish(1006, String(err && err.message));
      return;
    }
    this.#ws = ws;
    ws.onopen = () => ws === this.#ws && this.#onOpen(ws);
    ws.onmessage = (e) => ws === this.#ws && this.#onFrame(e.data);
    ws.onclose = (e) => ws === this.#ws && this.#onClose(e.code, e.reason);
    ws.onerror = () => this.#log("socket error");
  }

  #onOpen(ws) {
    if (ws.protocol !== PROTOCOL) {
      this._emit("error", new Error(`duplex: the server does not speak ${PROTOCOL} (got "${ws.protocol}")`));
      return void this.close();
    }
    const { user, info } = this.options;
    const token = this.#token;
    if (user === undefined && info === undefined && token === undefined) return this.#onReady();
    const cmd = { op: "connect" };
    if (user !== undefined) cmd.user = user;
    if (info !== undefined) cmd.info = info;
    if (token !== undefined) cmd.token = token;
    this.#send(cmd, (r) => {
      this.client = r.client;
      this.#setTTL(r.ttl);
      this.#scheduleRefresh(ws);
      this.#onReady();
    }, (err) => {
      if (err.code === ErrorCode.DISCONNECTED) return;
      this._emit("error", err);
      // A refused token: the server closes with 4001, after which the
      // client tries again with a new token if getToken can fetch one.
      if (err.code === ErrorCode.UNAUTHORIZED) return void (this.#tokenStale = true);
      this.close(); // a bad user or info: trying again would not help
    });
  }

  #onReady() {
    this.#ready = true;
    this.#openedAt = performance.now();
    for (const sub of this.#subs.values()) this.#subscribe(sub);
    for (const { cmd, resolve, reject } of this.#queue.splice(0)) this.#send(cmd, resolve, reject);
    this.#setState("open");
  }

  // #send writes cmd on the current socket; onResult or onError runs
  // synchronously when the answer is read, before any later frame.
  #send(cmd, onResult, onError) {
    const id = ++this.#lastId;
    let text;
    try {
      text = JSON.stringify({ id, ...cmd });
    } catch (err) {
      return onError(err);
    }
    this.#pending.set(id, { onResult, onError });
    this.#ws.send(text);
  }

  #call(cmd) {
    return new Promise((resolve, reject) => {
      if (this.#final) reject(new DuplexError(ErrorCode.CLOSED, "duplex: the client is closed"));
      else if (this.#ready) this.#send(cmd, resolve, reject);
      else this.#queue.push({ cmd, resolve, reject });
    });
  }

  #subscribe(sub) {
    clearTimeout(sub._retryTimer); // this is the attempt it was waiting for
    sub._retryTimer = null;
    const cmd = { op: "subscribe", channel: sub.channel };
    if (sub.epoch !== undefined) cmd.since = { offset: sub.offset, epoch: sub.epoch };
    this.#send(cmd, (r) => {
      if (this.#subs.get(sub.channel) !== sub) return; // unsubscribed meanwhile
      if (!r.recovered) sub.offset = r.offset; // nothing older will come: resume from here
      sub.epoch = r.epoch;
      sub._subscribed({ recovered: r.recovered === true, offset: r.offset, epoch: r.epoch });
    }, (err) => {
      if (err.code === ErrorCode.DISCONNECTED) return; // subscribed again on the next connection
      if (err.code === ErrorCode.INTERNAL && sub._established && this.#subs.get(sub.channel) === sub) {
        return this.#retrySubscribe(sub, err);
      }
      if (this.#subs.get(sub.channel) === sub) this.#subs.delete(sub.channel);
      sub._failed(err);
    });
  }

  // #retrySubscribe handles a failure of the server (error 100) to restore
  // sub after a reconnection: it subscribes again after a backoff, on this
  // connection, or the next one does.
  #retrySubscribe(sub, error) {
    const { minBackoff, maxBackoff } = this.options;
    const delay = backoff(++sub._retries, minBackoff, maxBackoff);
    this.#log("resubscribe failed", sub.channel, error.message, "again in", delay);
    sub._retryTimer = setTimeout(() => {
      sub._retryTimer = null;
      if (this.#ready && this.#subs.get(sub.channel) === sub && !sub.active) this.#subscribe(sub);
    }, delay);
    sub._emit("retrying", { error, delay });
  }

  #unsubscribe(sub) {
    if (this.#subs.get(sub.channel) !== sub) return Promise.resolve();
    this.#subs.delete(sub.channel);
    sub.active = false;
    const retrying = sub._retryTimer !== null; // nothing on the server: the last attempt failed
    clearTimeout(sub._retryTimer);
    sub._retryTimer = null;
    if (!this.#ready || retrying) return Promise.resolve(); // the server forgot it with the connection
    // Whatever the answer (108 if the subscribe failed), it is over.
    return new Promise((resolve) => this.#send({ op: "unsubscribe", channel: sub.channel }, () => resolve(), () => resolve()));
  }

  #onFrame(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      msg = null;
    }
    if (msg === null || typeof msg !== "object") {
      this._emit("error", new Error(`duplex: the server sent a frame that is not a JSON object: ${String(text).slice(0, 100)}`));
      return;
    }
    if (msg.id !== undefined) {
      const err = msg.error && new DuplexError(msg.error.code, msg.error.message);
      const p = this.#pending.get(msg.id);
      if (!p) {
        this._emit("error", err ?? new Error(`duplex: an answer to no command (id ${msg.id})`));
        return;
      }
      this.#pending.delete(msg.id);
      if (err) p.onError(err);
      else p.onResult(msg.result ?? {});
      return;
    }
    const sub = this.#subs.get(msg.channel);
    if (!sub) return;
    if (msg.op === "message") {
      if (!sub._deliver(msg)) this.#log("dropped", msg.channel, msg.offset, msg.epoch);
    } else if (msg.op === "lost") {
      this.#log("lost", msg.channel, msg.from, msg.offset, msg.epoch, msg.old ?? "");
      sub._lost(msg);
    } else if ((msg.op === "join" || msg.op === "leave") && sub.active) {
      sub._emit(msg.op, msg.client);
    }
  }

  #onClose(code, reason) {
    this.#log("closed", code, reason);
    this.#ws = null;
    this.#ready = false;
    clearTimeout(this.#refreshTimer);
    const tokenEnded = code === CloseCode.UNAUTHORIZED || code === CloseCode.TOKEN_EXPIRED;
    if (tokenEnded) this.#tokenStale = true;
    for (const sub of this.#subs.values()) sub.active = false;
    const lost = new DuplexError(ErrorCode.DISCONNECTED, `duplex: the connection closed (${code}) before the answer`, code);
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.onError(lost);
    if (this.#final || FINAL_CODES.has(code) || (tokenEnded && typeof this.options.getToken !== "function")) {
      this.#final = true;
      this.#finish(code, reason);
      return;
    }
    const { minBackoff, maxBackoff } = this.options;
    if (this.#openedAt && performance.now() - this.#openedAt >= maxBackoff) this.#attempt = 0;
    this.#openedAt = 0;
    const n = ++this.#attempt;
    this.url = this.#urls[(this.#urls.indexOf(this.url) + 1) % this.#urls.length]; // fail over
    const delay = backoff(n, minBackoff, maxBackoff);
    this.#timer = setTimeout(() => this.#open(), delay);
    this.#setState("disconnected", { code, reason, delay });
  }

  #finish(code, reason) {
    for (const sub of this.#subs.values()) clearTimeout(sub._retryTimer);
    const err = new DuplexError(ErrorCode.CLOSED, "duplex: the client is closed", code);
    for (const { reject } of this.#queue.splice(0)) reject(err);
    this.#setState("closed", { code, reason });
    this.#resolveClosed({ code, reason });
  }
}

// backoff is the wait before the n-th consecutive attempt (ms): a random
// time between minBackoff and min(maxBackoff, minBackoff * 2^n).
function backoff(n, minBackoff, maxBackoff) {
  const ceil = Math.max(minBackoff, Math.min(maxBackoff, minBackoff * 2 ** Math.min(n, 30)));
  return Math.round(minBackoff + Math.random() * (ceil - minBackoff));
}

function toWebSocketURL(url) {
  const u = new URL(url, globalThis.location?.href);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  return u.href;
}

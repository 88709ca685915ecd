// Type declarations for duplex.js, the browser SDK for the duplex.v1 channel
// protocol (docs/protocol.md).

/** The WebSocket subprotocol the SDK speaks. */
export const PROTOCOL: "duplex.v1";

/**
 * Error codes carried by {@link DuplexError}: the server's (100-111) and two
 * of the SDK's own (1 and 2).
 */
export const ErrorCode: Readonly<{
  /** The connection dropped before the answer came; the command may or may not have run. */
  DISCONNECTED: 1;
  /** The client was closed (by close(), or for good by the server) before the command was sent. */
  CLOSED: 2;
  INTERNAL: 100;
  BAD_REQUEST: 101;
  UNKNOWN_OP: 102;
  INVALID_CHANNEL: 103;
  UNKNOWN_NAMESPACE: 104;
  PERMISSION_DENIED: 105;
  CONNECT_NOT_ALLOWED: 106;
  ALREADY_SUBSCRIBED: 107;
  NOT_SUBSCRIBED: 108;
  HISTORY_OFF: 109;
  PRESENCE_OFF: 110;
  /** The token was refused (connect, refresh); the message says why. */
  UNAUTHORIZED: 111;
}>;

/**
 * Close codes of a server that authenticates: the token sent with `connect`
 * was refused, or the connection's token expired before a newer one replaced it.
 */
export const CloseCode: Readonly<{
  UNAUTHORIZED: 4001;
  TOKEN_EXPIRED: 4002;
}>;

/** DuplexError is how a command fails: `code` says why (see {@link ErrorCode}). */
export class DuplexError extends Error {
  constructor(code: number, message: string, closeCode?: number);
  readonly name: "DuplexError";
  /** An {@link ErrorCode}. */
  readonly code: number;
  /** The WebSocket close code, for DISCONNECTED and CLOSED. */
  readonly closeCode?: number;
}

/** A position in a channel's history. */
export interface Position {
  offset: number;
  epoch: string;
}

/**
 * What a subscribe answer says, or, with `lost`, the server's report that messages of the live
 * subscription were lost.
 */
export interface SubscribedInfo {
  /** True when every message missed since the last one delivered follows; false: reload your state. */
  recovered: boolean;
  /**
   * The offset of the channel's latest message (0 when none was ever published); with `lost`, the
   * last offset lost, which the subscription goes on from.
   */
  offset: number;
  /** The channel's current epoch. */
  epoch: string;
  /**
   * Set (with recovered false) when this is not a subscribe answer but a report that the messages
   * `from` to `to` (both included, none when `from` > `to`) of `epoch` will never come: the server's
   * node lost its link to the cluster's broker for longer than the channel's history keeps. With
   * `old`, the channel's history was lost (the broker restarted without its data) and `epoch` is a
   * new one, whose offsets start at 1: the subscription had reached `old` in the old epoch, and what
   * came after it there is gone. It comes before the message after the gap.
   */
  lost?: { from: number; to: number; old?: Position };
}

/**
 * Detail of a Subscription's "retrying" event: the server failed to restore the subscription after
 * a reconnection (error 100, its own failure, typically its broker down), and the client subscribes
 * again after `delay`.
 */
export interface RetryingDetail {
  /** The server's answer: code 100 (ErrorCode.INTERNAL). */
  error: DuplexError;
  /** Milliseconds until the next attempt (the reconnection backoff, growing with each failure). */
  delay: number;
}

/** A message as the subscription handler receives it. */
export interface Message<T = unknown> {
  channel: string;
  offset: number;
  epoch: string;
  data: T;
}

/** A connection as presence, join and leave show it. */
export interface ClientInfo {
  /** The connection's id on the server. */
  client: string;
  /** The user name given to `connect` ("" when anonymous). */
  user: string;
  /** The info given to `connect`, if any. */
  info?: unknown;
}

/** What history answers. */
export interface HistoryResult {
  /** The messages, oldest first. */
  messages: Array<{ offset: number; data: unknown }>;
  /** The offset of the channel's latest message. */
  offset: number;
  epoch: string;
  /**
   * Only with `since`: true when nothing between `since` and the first message was lost; false
   * (then messages is empty) when the epoch differs, some messages left the history, or
   * `since.offset` is beyond the latest offset.
   */
  recovered?: boolean;
}

export interface DuplexOptions {
  /** Sent with `connect`: what presence shows (at most 128 bytes). */
  user?: string;
  /** Sent with `connect`: any JSON value, at most 1 KiB encoded. */
  info?: unknown;
  /**
   * The token (a JWT) sent with `connect`, on a server that authenticates; the server then
   * takes the user from it.
   */
  token?: string;
  /**
   * Fetches a fresh token: called before connecting when there is none, when the last one was
   * refused or expired or expires within its refresh lead (a fifth of its lifetime, at most
   * 10 s), and that lead before the token expires, to send the new one with `refresh` so that
   * the connection lives on. A failure is an "error" event (and, before connecting, a failed
   * attempt, retried after the backoff). Without it, a token refused or expired closes the
   * client for good (close code 4001 or 4002).
   */
  getToken?: () => string | Promise<string>;
  /**
   * Shortest reconnection delay in milliseconds (default 100). The n-th
   * consecutive attempt waits a random time between minBackoff and
   * min(maxBackoff, minBackoff * 2^n); n starts over once a connection has
   * stayed up for maxBackoff.
   */
  minBackoff?: number;
  /** Longest reconnection delay in milliseconds (default 5000). */
  maxBackoff?: number;
  /** The WebSocket constructor, for Node (the `ws` package's); default: globalThis.WebSocket. */
  WebSocket?: new (url: string, protocols?: string | string[]) => any;
  /** Log to console.debug, or to this function. */
  debug?: boolean | ((...args: unknown[]) => void);
}

export interface SubscribeOptions {
  /**
   * Called after every subscribe answer (the first, and each one after a reconnection) and when the
   * server reports lost messages (`lost` set, `recovered` false).
   */
  onSubscribed?: (info: SubscribedInfo) => void;
  /** Called when a client joins the channel (presence on). */
  onJoin?: (client: ClientInfo) => void;
  /** Called when a client leaves the channel (presence on). */
  onLeave?: (client: ClientInfo) => void;
  /**
   * Called when the server refuses the subscription, which then ends: the first subscribe whatever
   * the code, and a resubscription after a reconnection with any code but 100 (see onRetrying).
   */
  onError?: (err: DuplexError) => void;
  /**
   * Called when the server fails to restore the subscription after a reconnection with error 100
   * (its own failure, typically its broker down): the subscription stays, inactive, with its
   * position, and the client subscribes again after `delay` ms until the server accepts; the
   * "subscribed" event that follows says whether what was missed meanwhile follows.
   */
  onRetrying?: (detail: RetryingDetail) => void;
  /** Resume from this position (for example one kept in storage) instead of the channel's current end. */
  since?: Position;
}

/** The states of a {@link Duplex} client. */
export type State = "connecting" | "open" | "disconnected" | "closing" | "closed";

/** Detail of the "disconnected" event. */
export interface DisconnectedDetail {
  code: number;
  reason: string;
  /** Milliseconds until the next attempt. */
  delay: number;
}

/** Detail of the "closed" event. */
export interface ClosedDetail {
  code: number;
  reason: string;
}

/**
 * Subscription is one channel a {@link Duplex} client is subscribed to, made
 * by {@link Duplex.subscribe}. It lives across reconnections until
 * unsubscribe(), or until the server refuses it ("error"), and through
 * failures of the server ("retrying").
 */
export class Subscription<T = unknown> {
  private constructor();
  /** The channel's name. */
  readonly channel: string;
  /** The offset of the last message delivered (or of the subscribe answer): what recovery resumes from. */
  readonly offset: number;
  /** The epoch that goes with `offset`; undefined until the first answer unless `since` was given. */
  readonly epoch: string | undefined;
  /** True while the server has the subscription on the current connection. */
  readonly active: boolean;
  /** Settles with the first subscribe answer, or the DuplexError that refused the subscription. */
  readonly ready: Promise<SubscribedInfo>;
  /** Ends the subscription; resolves once the server has confirmed it (or at once when not connected). */
  unsubscribe(): Promise<void>;
  on(event: "subscribed", fn: (info: SubscribedInfo) => void): () => void;
  on(event: "join" | "leave", fn: (client: ClientInfo) => void): () => void;
  on(event: "error", fn: (err: DuplexError) => void): () => void;
  on(event: "retrying", fn: (detail: RetryingDetail) => void): () => void;
  off(event: string, fn: (...args: any[]) => void): void;
}

/**
 * Duplex is a client of a `duplex serve` channel endpoint. It connects at
 * once, and again after a connection breaks, until close() or a close code
 * after which reconnecting cannot help: 1000, 1002, 1003, 1007, 1008, 1010,
 * and 4001 and 4002 (a token refused or expired) unless getToken is given.
 */
export class Duplex {
  /**
   * @param url the channel endpoint: ws:, wss:, http:, https:, or relative to the page ("/ws", the default);
   *   or several, the nodes of one cluster: each reconnection tries the next one in turn
   */
  constructor(url?: string | URL | (string | URL)[], options?: DuplexOptions);
  /** The absolute ws: or wss: URL of the endpoint in use (or to dial next). */
  readonly url: string;
  /** The options, with the defaults filled in. */
  readonly options: DuplexOptions & { minBackoff: number; maxBackoff: number };
  /** The connection state. */
  readonly state: State;
  /** This connection's id on the server, from the `connect` answer (when user, info or a token is given). */
  readonly client: string | undefined;

  /**
   * Starts receiving the channel's messages, in offset order, each offset
   * once, across reconnections. Throws a DuplexError (107) when already
   * subscribed to the channel, or (2) when the client is closed.
   */
  subscribe<T = unknown>(
    channel: string,
    onMessage: (data: T, message: Message<T>) => void,
    options?: SubscribeOptions,
  ): Subscription<T>;
  /** Sends data (any JSON value; null is one) to the channel; resolves with the offset it got. */
  publish(channel: string, data: unknown): Promise<Position>;
  /** Lists who is subscribed to the channel, sorted by client id. */
  presence(channel: string): Promise<ClientInfo[]>;
  /**
   * Fetches the messages the server keeps for the channel, oldest first: the last `limit` (0 or
   * none: all), or those after `since` (with `limit` too: the first `limit` of them).
   */
  history(channel: string, options?: { limit?: number; since?: Position }): Promise<HistoryResult>;
  /** Makes a round trip to the server; resolves with its time in milliseconds. */
  ping(): Promise<number>;
  /** Ends the client for good; resolves once closed. */
  close(): Promise<ClosedDetail>;

  on(event: "state", fn: (state: State, detail?: DisconnectedDetail | ClosedDetail) => void): () => void;
  on(event: "connecting" | "open" | "closing", fn: () => void): () => void;
  on(event: "disconnected", fn: (detail: DisconnectedDetail) => void): () => void;
  on(event: "closed", fn: (detail: ClosedDetail) => void): () => void;
  on(event: "error", fn: (err: Error) => void): () => void;
  off(event: string, fn: (...args: any[]) => void): void;
}

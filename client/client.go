package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// Subprotocol is the WebSocket subprotocol of the channel protocol. The
// client always offers it, and only it.
const Subprotocol = "duplex.v1"

// Defaults used when an Options field is zero.
const (
	// DefaultMinBackoff is the shortest wait before a reconnection.
	DefaultMinBackoff = 100 * time.Millisecond
	// DefaultMaxBackoff is the longest wait before a reconnection.
	DefaultMaxBackoff = 5 * time.Second
	// DefaultQueueSize is how many received messages may wait for handlers.
	DefaultQueueSize = 4096
	// DefaultPingInterval is how often an idle connection is checked with a
	// WebSocket ping.
	DefaultPingInterval = 25 * time.Second
	// DefaultDialTimeout bounds the opening handshake and the connect answer.
	DefaultDialTimeout = 10 * time.Second
)

// Options configures a Client. The zero value is safe.
type Options struct {
	// Dial configures the WebSocket connection: headers (such as a Cookie
	// or an Authorization), TLS, proxy, compression, read limit. Its
	// Subprotocols are replaced by duplex.v1. A zero Dial.PingInterval
	// means DefaultPingInterval, so that a connection that died silently
	// (a NAT that forgot it, a peer gone without a FIN) is noticed and
	// replaced; a negative one turns keepalive off.
	Dial websocket.DialOptions

	// User and Info are sent with connect and tell other subscribers who
	// this client is (presence, join, leave). Info is encoded as JSON. On a
	// server that authenticates, the user is the token's instead.
	User string
	Info any

	// Token is the JSON Web Token the client authenticates with on a
	// server that authenticates clients (docs/protocol.md,
	// "Authentication"); it is sent with connect. Empty: anonymous, unless
	// RefreshToken gives one.
	Token string

	// RefreshToken, when set, returns a fresh token. The client calls it
	// before connecting when it has no token yet, when the server refused
	// or expired the last one, or when it expires within its refresh lead
	// (a fifth of its lifetime, at most 10 s); and, while connected, that
	// lead before the token expires, to send the new one with refresh, so
	// the connection never reaches its expiry. A refresh that fails is
	// tried again every second until the token expires; the server then
	// closes the connection with CloseTokenExpired and the client
	// reconnects with a new token. An error from RefreshToken before
	// connecting counts as a failed connection attempt (backoff, then
	// again). Calls are never concurrent. Without RefreshToken, a token
	// that is refused or expires stops the client.
	RefreshToken func(ctx context.Context) (string, error)

	// MinBackoff and MaxBackoff bound the wait before each reconnection
	// (zero: DefaultMinBackoff, DefaultMaxBackoff): the n-th consecutive
	// attempt waits a random time between MinBackoff and
	// min(MaxBackoff, MinBackoff·2^n). The count starts over once a
	// connection has stayed up for MaxBackoff. A handshake refused with
	// 503 or 429 and a Retry-After header (as the server's connection and
	// accept-rate limits answer) makes the client wait at least that long,
	// up to MaxRetryAfter and plus up to a fifth more, before it dials that
	// address again; meanwhile fail-over skips it for the other addresses
	// of URLs that no refusal holds back. The error OnState then receives
	// wraps the refusal: errors.As finds its *websocket.HandshakeError.
	MinBackoff, MaxBackoff time.Duration

	// DialTimeout bounds each opening handshake (zero: DefaultDialTimeout).
	DialTimeout time.Duration

	// URLs are more addresses of the same service, such as the other nodes
	// of a cluster that share channels through a broker, so that the
	// client can fail over when its node dies. The client dials the url
	// given to New first; each time a connection is lost or a dial fails,
	// the next attempt (after the usual backoff) goes to the next address
	// of url, URLs..., coming back to url after the last. Repeated
	// addresses are tried once per round. Every node of a cluster recovers
	// any channel's history, so the subscriptions resume on the new node
	// with nothing lost and nothing delivered twice.
	URLs []string

	// QueueSize is how many received messages may wait for their handlers
	// (zero: DefaultQueueSize). When handlers fall further behind, the
	// client drops the connection rather than let memory grow or stop
	// reading, waits until half the queue has been handled, then
	// reconnects and recovers the rest from the server's history. If a
	// call waits for a connection meanwhile (perhaps from a handler, which
	// would otherwise wait for itself), it reconnects at once instead.
	QueueSize int

	// OnState, when set, is told every change of the connection's state,
	// with the error that caused it (nil for Connecting, Connected, and
	// Closed after Close). It runs on the handler goroutine, in order with
	// the messages.
	OnState func(State, error)

	// Log receives the client's diagnostics; nil discards them.
	Log *slog.Logger
}

// State is where a Client's connection is, as reported to Options.OnState.
type State int

// The states of a client. A client goes from Connecting to Connected, to
// Disconnected when the connection drops, back to Connecting, and ends in
// Closed, which it never leaves.
const (
	StateConnecting   State = iota // dialling or waiting for the connect answer
	StateConnected                 // commands flow; subscriptions are being restored
	StateDisconnected              // the connection dropped; a reconnection is due
	StateClosed                    // stopped for good: Close, or a close code that forbids reconnecting
)

// String names the state.
func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Position names a message in a channel's history: its offset, and the
// epoch of the history the offset belongs to.
type Position struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// Message is a message of a channel, as delivered to a handler or returned
// by History.
type Message struct {
	Channel string
	Offset  uint64
	Epoch   string
	Data    json.RawMessage // the published JSON value, exactly as the server sent it
}

// Decode unmarshals the message's data into v.
func (m Message) Decode(v any) error { return json.Unmarshal(m.Data, v) }

// ClientInfo describes a connection, as presence lists it.
type ClientInfo struct {
	Client string          `json:"client"` // the connection's id, chosen by the server
	User   string          `json:"user"`
	Info   json.RawMessage `json:"info,omitempty"`
}

// Client is a connection to a duplex server that survives network
// failures: it reconnects by itself and restores its subscriptions,
// recovering the messages it missed.
//
// # Reconnecting
//
// After the connection drops, the client waits a jittered backoff (see
// Options.MinBackoff) and dials again (the next address of Options.URLs,
// if there are several), unless it was closed or the server
// closed the connection with one of the codes that say reconnecting cannot
// help: 1000 (the server ended this session on purpose), 1002 (protocol
// error), 1003 (unsupported data), 1007 (invalid data), 1008 (policy: too
// many bad commands) and 1010. Every other ending is retried: a transport
// failure or a close without a code (1005, 1006), 1001 (server going away),
// 1009 (a message too big: the next connection will not send it again),
// 1011, 1012, 1013 (slow consumer, try again later), 1014, failed
// handshakes. A connect answered with an error (an invalid User or Info)
// also stops the client. So do a token the server refuses (an *Error with
// CodeUnauthorized, then CloseUnauthorized) and one that expires
// (CloseTokenExpired), unless Options.RefreshToken is set: the client then
// fetches a new token and reconnects. A client that stopped reports
// StateClosed with the cause, and its calls return ErrClosed wrapping that
// cause.
//
// # Commands
//
// Every blocking call takes a context. A command waits (within ctx) for a
// connection when there is none, then is sent once. If the connection
// drops after the command was sent and before its answer, the call fails
// with ErrDisconnected: the command may or may not have been carried out,
// and it is not sent again (a publish is never doubled behind your back).
// Error answers are returned as *Error.
//
// # Handlers
//
// Message handlers and the hooks (Options.OnState,
// SubscribeOptions.OnSubscribed and OnPresence) run one at a time on one
// goroutine per client, in the order the events arrived, so a handler needs
// no lock against another. The connection is read by another goroutine,
// which never waits for a handler: received messages queue up (see
// Options.QueueSize). A handler may call any method of the client, Close
// included.
type Client struct {
	urls []string // url, then Options.URLs, without repeats
	opts Options
	dial websocket.DialOptions
	log  *slog.Logger
	rnd  func() float64

	q        *queue
	ids      atomic.Uint64
	dropping atomic.Bool // Close was called: queued messages are dropped
	ctx      context.Context
	cancel   context.CancelFunc
	runDone  chan struct{} // closed when run has returned
	stopCh   chan struct{} // closed when the client stops for good

	mu       sync.Mutex
	state    State
	conn     *conn         // the connection commands go to; nil while there is none
	ready    chan struct{} // closed when conn is set; replaced when it is lost
	subs     map[string]*Subscription
	tok      tokenState // the token; its own lock
	stopped  bool
	stopErr  error
	clientID string
	cur      int           // the index in urls of the address in use
	waiting  int           // calls waiting for a connection
	wantConn chan struct{} // closed when a call starts waiting; see catchUp
}

// New returns a client of the duplex server at url (ws://host/ws or
// wss://host/ws) and starts connecting in the background. Calls made before
// the connection is up wait for it. opts may be nil; Options.URLs adds
// addresses to fail over to.
func New(url string, opts *Options) *Client {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	dial := o.Dial
	dial.Subprotocols = []string{Subprotocol}
	if dial.PingInterval == 0 {
		dial.PingInterval = DefaultPingInterval
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	urls := []string{url}
	for _, u := range o.URLs {
		if !slices.Contains(urls, u) {
			urls = append(urls, u)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		urls: urls, opts: o, dial: dial, log: log, rnd: rand.Float64,
		q:   newQueue(o.QueueSize),
		ctx: ctx, cancel: cancel,
		runDone: make(chan struct{}), stopCh: make(chan struct{}),
		ready: make(chan struct{}),
		subs:  map[string]*Subscription{},
	}
	c.tok.token = o.Token
	go c.q.run()
	go c.run()
	return c
}

// State returns the connection's current state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// URL returns the address the client is connected to, or dialling, or
// about to dial after a backoff: the url given to New or one of
// Options.URLs. It changes when the client fails over to another address.
func (c *Client) URL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.urls[c.cur]
}

// ClientID returns the id the server gave the current connection (as
// presence shows it), or "" while there is no connection. It changes at
// every reconnection.
func (c *Client) ClientID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clientID
}

// Close stops the client: it closes the connection (code 1000), stops
// reconnecting, and fails the calls in progress with ErrClosed. Messages
// still waiting for their handlers are dropped; a handler already running
// finishes on its own; OnState then reports StateClosed. Close returns once
// the connection is closed; it may be called from a handler, and more than
// once.
func (c *Client) Close() error {
	c.mu.Lock()
	if !c.stopped {
		c.stopped = true
		c.dropping.Store(true)
		close(c.stopCh)
	}
	c.mu.Unlock()
	c.cancel()
	<-c.runDone
	return nil
}

// setState records st and queues its report.
func (c *Client) setState(st State, err error) {
	c.mu.Lock()
	c.state = st
	if c.opts.OnState != nil {
		f := c.opts.OnState
		c.q.push(func() { f(st, err) }, false)
	}
	c.mu.Unlock()
}

// stopError is the error calls return once the client has stopped.
func (c *Client) stopError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return closedError(c.stopErr)
}

// permanent reports whether err, the end of a connection, forbids
// reconnecting (see Client). A token refused or expired does, unless
// Options.RefreshToken can get another.
func (c *Client) permanent(err error) bool {
	if c.tokenRefused(err) {
		return c.opts.RefreshToken == nil
	}
	var e *Error
	if errors.As(err, &e) {
		return true // connect refused
	}
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusProtocolError, websocket.StatusUnsupportedData,
		websocket.StatusInvalidFramePayloadData, websocket.StatusPolicyViolation, websocket.StatusMandatoryExtension:
		return true
	}
	return false
}

// run connects, and reconnects after each loss, until the client stops.
func (c *Client) run() {
	defer close(c.runDone)
	var err error
	for _, raw := range c.urls {
		if u, perr := url.Parse(raw); perr != nil {
			err = perr
		} else if s := u.Scheme; s != "ws" && s != "wss" && s != "http" && s != "https" {
			err = fmt.Errorf("duplex: URL scheme %q is not ws or wss", s)
		}
		if err != nil {
			break
		}
	}
	notBefore := make([]time.Time, len(c.urls)) // per address: a refusal's Retry-After
	for attempt := 0; err == nil; {
		c.setState(StateConnecting, nil)
		var up time.Duration
		up, err = c.session()
		if c.ctx.Err() != nil {
			err = nil // Close
			break
		}
		if c.permanent(err) {
			break
		}
		if up >= c.opts.MaxBackoff {
			attempt = 0
		}
		attempt++
		c.mu.Lock()
		if ra, ok := retryAfter(err); ok {
			notBefore[c.cur] = time.Now().Add(ra)
		}
		c.cur = nextAddress(c.cur, notBefore, time.Now()) // fail over
		next := notBefore[c.cur]
		c.mu.Unlock()
		c.setState(StateDisconnected, err)
		if errors.Is(err, ErrHandlersBehind) {
			c.catchUp()
		}
		t := time.NewTimer(reconnectDelay(backoff(attempt, c.opts.MinBackoff, c.opts.MaxBackoff, c.rnd), next, time.Now(), c.rnd))
		select {
		case <-t.C:
			err = nil
		case <-c.ctx.Done():
			t.Stop()
			err = nil
		}
		if c.ctx.Err() != nil {
			break
		}
	}
	c.mu.Lock()
	if !c.stopped {
		c.stopped = true
		c.stopErr = err
		close(c.stopCh)
	}
	for _, s := range c.subs {
		if s.retry != nil {
			s.retry.Stop() // no connection will come for it
			s.retry = nil
		}
	}
	c.mu.Unlock()
	c.cancel()
	c.setState(StateClosed, err)
	c.q.close()
}

// catchUp waits, after the handlers fell behind, until half the queue has
// been handled, or a call waits for a connection (it may be a handler's:
// waiting for the queue would then never end), or the client closes.
func (c *Client) catchUp() {
	low := c.q.lowWater()
	c.mu.Lock()
	if c.waiting > 0 {
		c.mu.Unlock()
		return
	}
	want := make(chan struct{})
	c.wantConn = want
	c.mu.Unlock()
	select {
	case <-low:
	case <-want:
	case <-c.ctx.Done():
	}
	c.mu.Lock()
	c.wantConn = nil
	c.mu.Unlock()
}

// waitForConn counts a call waiting for a connection (c.mu is held).
func (c *Client) waitForConn() {
	c.waiting++
	if c.wantConn != nil {
		close(c.wantConn)
		c.wantConn = nil
	}
}

// session runs one connection from the dial to its end, and returns how
// long it was up and why it ended.
func (c *Client) session() (time.Duration, error) {
	hello := &command{Op: "connect", User: c.opts.User}
	if c.opts.Info != nil {
		info, err := json.Marshal(c.opts.Info)
		if err != nil {
			return 0, &Error{Code: CodeConnectNotAllowed, Message: "info: " + err.Error()}
		}
		hello.Info = info
	}
	// The handshake (dial and connect) is bounded by DialTimeout.
	hctx, cancel := context.WithTimeout(c.ctx, c.opts.DialTimeout)
	defer cancel()
	token, err := c.tokenFor(hctx)
	if err != nil {
		return 0, err
	}
	hello.Token = token
	c.mu.Lock()
	addr := c.urls[c.cur]
	c.mu.Unlock()
	ws, resp, err := websocket.Dial(hctx, addr, &c.dial)
	if err != nil {
		return 0, withRetryAfter(err, resp, time.Now())
	}
	if ws.Subprotocol() != Subprotocol {
		ws.CloseNow()
		return 0, fmt.Errorf("duplex: the server did not accept the subprotocol %s", Subprotocol)
	}
	cn := newConn(c, ws)
	go cn.read()
	res, err := cn.call(hctx, hello)
	if err != nil {
		ws.CloseNow()
		<-cn.done
		if errors.Is(err, errNotSent) || errors.Is(err, ErrDisconnected) {
			err = cn.err
		}
		return 0, err
	}
	var hi struct {
		Client string `json:"client"`
	}
	json.Unmarshal(res, &hi)
	c.connected(cn, res)

	// From here on commands go to this connection. Subscriptions are
	// restored under the write lock, so that nothing the application sends
	// meanwhile overtakes them.
	start := time.Now()
	if cn.lockWrite(c.ctx) == nil {
		var resub []*Subscription
		var cmds []*command
		c.mu.Lock()
		if !cn.dead() {
			c.conn = cn
			c.clientID = hi.Client
			close(c.ready)
			c.state = StateConnected
			if f := c.opts.OnState; f != nil {
				c.q.push(func() { f(StateConnected, nil) }, false)
			}
			for _, s := range c.subs {
				if s.sent != cn {
					resub = append(resub, s)
					cmds = append(cmds, s.subscribeCommand(cn))
				}
			}
		}
		c.mu.Unlock()
		for i, s := range resub {
			if c.writeSubscribe(c.ctx, cn, s, cmds[i]) != nil {
				break
			}
		}
		cn.unlockWrite()
	}

	select {
	case <-cn.done:
	case <-c.ctx.Done():
		ws.Close(websocket.StatusNormalClosure, "")
		<-cn.done
	}
	return time.Since(start), cn.err
}

// dropped is called by a connection's reader when it ends.
func (c *Client) dropped(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == cn {
		c.conn = nil
		c.clientID = ""
		c.ready = make(chan struct{})
	}
	for _, s := range c.subs {
		if s.sent == cn {
			s.sent = nil
		}
		if s.live == cn {
			s.live = nil
		}
	}
}

// current waits for a connection to send commands to.
func (c *Client) current(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		if c.stopped {
			err := closedError(c.stopErr)
			c.mu.Unlock()
			return nil, err
		}
		cn, ready := c.conn, c.ready
		if cn != nil {
			c.mu.Unlock()
			return cn, nil
		}
		c.waitForConn()
		c.mu.Unlock()
		var err error
		select {
		case <-ready:
		case <-c.stopCh:
		case <-ctx.Done():
			err = ctx.Err()
		}
		c.mu.Lock()
		c.waiting--
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
}

// call sends cmd once a connection is up and returns its answer. A
// command that could not be written is tried again on the next connection;
// one that was written is never sent twice.
func (c *Client) call(ctx context.Context, cmd *command) (json.RawMessage, error) {
	for {
		cn, err := c.current(ctx)
		if err != nil {
			return nil, err
		}
		res, err := cn.call(ctx, cmd)
		if errors.Is(err, errNotSent) {
			select {
			case <-cn.done: // wait for the client to drop it before trying again
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		}
		if errors.Is(err, ErrDisconnected) && c.ctx.Err() != nil {
			return nil, c.stopError()
		}
		return res, err
	}
}

// Publish publishes data (any value encoding/json accepts; a
// json.RawMessage is sent as it is) to channel and returns the position
// the message got. If the connection drops before the answer, Publish
// returns ErrDisconnected and the message may or may not have been
// published; it is not sent again.
func (c *Client) Publish(ctx context.Context, channel string, data any) (Position, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Position{}, err
	}
	res, err := c.call(ctx, &command{Op: "publish", Channel: channel, Data: raw})
	if err != nil {
		return Position{}, err
	}
	var p Position
	if err := json.Unmarshal(res, &p); err != nil {
		return Position{}, fmt.Errorf("duplex: publish answer: %w", err)
	}
	return p, nil
}

// Presence returns the connections subscribed to channel now, sorted by
// their id. The namespace must have presence on (else *Error 110).
func (c *Client) Presence(ctx context.Context, channel string) ([]ClientInfo, error) {
	res, err := c.call(ctx, &command{Op: "presence", Channel: channel})
	if err != nil {
		return nil, err
	}
	var r struct {
		Clients []ClientInfo `json:"clients"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return nil, fmt.Errorf("duplex: presence answer: %w", err)
	}
	return r.Clients, nil
}

// HistoryOptions chooses which messages History returns. The zero value
// asks for every message the server keeps.
type HistoryOptions struct {
	// Limit, when positive, asks for the last Limit messages only.
	Limit int
	// Since, when set, asks for the messages after Since.Offset, in Since's
	// epoch.
	Since *Position
}

// HistoryResult is what History returns.
type HistoryResult struct {
	// Messages are the messages, oldest first.
	Messages []Message
	// Position is the channel's latest offset and its epoch.
	Position Position
	// Recovered, when HistoryOptions.Since was set, says whether Messages
	// holds every message after it. When false (history lost, or another
	// epoch), Messages is empty and the application should reload its
	// state another way. Without Since it is true.
	Recovered bool
}

// History returns messages the server still holds for channel. The
// namespace must keep history (else *Error 109).
func (c *Client) History(ctx context.Context, channel string, opts *HistoryOptions) (*HistoryResult, error) {
	cmd := &command{Op: "history", Channel: channel}
	if opts != nil {
		cmd.Limit = opts.Limit
		cmd.Since = opts.Since
	}
	res, err := c.call(ctx, cmd)
	if err != nil {
		return nil, err
	}
	var r struct {
		Messages []struct {
			Offset uint64          `json:"offset"`
			Data   json.RawMessage `json:"data"`
		} `json:"messages"`
		Offset    uint64 `json:"offset"`
		Epoch     string `json:"epoch"`
		Recovered *bool  `json:"recovered"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return nil, fmt.Errorf("duplex: history answer: %w", err)
	}
	h := &HistoryResult{Position: Position{Offset: r.Offset, Epoch: r.Epoch}, Recovered: r.Recovered == nil || *r.Recovered}
	h.Messages = make([]Message, len(r.Messages))
	for i, m := range r.Messages {
		h.Messages[i] = Message{Channel: channel, Offset: m.Offset, Epoch: r.Epoch, Data: m.Data}
	}
	return h, nil
}

// Ping makes an application-level round trip to the server, and so checks
// that the connection carries commands.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.call(ctx, &command{Op: "ping"})
	return err
}

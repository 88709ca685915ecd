package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/websocket"
)

// Subprotocol is the WebSocket subprotocol of the channel endpoint: the
// protocol of docs/protocol.md, version 1.
const Subprotocol = "duplex.v1"

// DefaultSendQueue is how many outgoing messages a connection may have
// waiting before it is closed as a slow consumer.
const DefaultSendQueue = 1024

// Limits of the connect command (docs/protocol.md).
const (
	maxUserLen = 128
	maxInfoLen = 1024
)

// The error budget: a connection may earn errorBurst error answers at once,
// and one more per errorRefill; beyond that it is closed with 1008. Only
// the client's mistakes count: an internal error (code 100, the broker
// failed) is the server's, and a client that retries through a broker
// outage must not be closed for it (see answerError).
const (
	errorBurst  = 10
	errorRefill = time.Second
)

// Error codes of the channel protocol (docs/protocol.md, "Errors").
const (
	codeInternal           = 100
	codeBadRequest         = 101
	codeUnknownOp          = 102
	codeInvalidChannel     = 103
	codeUnknownNamespace   = 104
	codePermissionDenied   = 105
	codeConnectNotAllowed  = 106
	codeAlreadySubscribed  = 107
	codeNotSubscribed      = 108
	codeHistoryDisabled    = 109
	codePresenceDisabled   = 110
	closeReasonSlow        = "slow consumer: send queue full"
	closeReasonBadCommands = "too many bad commands"
)

// ChannelHandler serves GET /ws, the channel endpoint: one session of the
// duplex.v1 protocol per connection, driving a pubsub.Hub.
type ChannelHandler struct {
	// Hub is the channel engine the sessions drive.
	Hub *pubsub.Hub
	// Accept configures the upgrade (origins, limits, compression); a
	// zero ReadLimit takes Limits.MaxMessageSize.
	Accept websocket.AcceptOptions
	// SendQueue is each connection's bound on waiting outgoing messages;
	// 0 means DefaultSendQueue. What happens when it is full depends on
	// the namespace (pubsub.NamespaceOptions.SlowConsumer).
	SendQueue int
	// Limits bound what each connection may do: MessageRate and
	// MessageBurst, MaxChannels, MaxConnectionsPerUser and IdleTimeout
	// apply here (zero fields: the defaults); the others are a Server's.
	Limits Limits
	// Version is reported in the connect answer.
	Version string
	// Log receives a line per connection that ends abnormally; nil is quiet.
	Log *slog.Logger
	// Auth, when set, authenticates clients by their tokens and checks
	// what they may do (docs/protocol.md, "Authentication"); nil lets
	// every client do what the namespaces allow.
	Auth *Authenticator
	// track, when set, registers live connections for shutdown, with the
	// function that closes one (see session.restart).
	track func(c *websocket.Conn, rec *connRecord, close func(websocket.StatusCode, string)) (untrack func())
	// obs, when set, counts the traffic in its server's metrics.
	obs *observer
	// now, when set, replaces time.Now for the error budget and the
	// message rate, so that tests can refill them without waiting.
	now func() time.Time

	users   userCounts // connections per user id
	encOnce sync.Once
	enc     *pubsub.Encoding // pushes, framed once per event
}

// clock returns the time source of the sessions.
func (h *ChannelHandler) clock() func() time.Time {
	if h.now != nil {
		return h.now
	}
	return time.Now
}

// offersSubprotocol reports whether the request offers the subprotocol p.
func offersSubprotocol(r *http.Request, p string) bool {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, tok := range strings.Split(v, ",") {
			if strings.TrimSpace(tok) == p {
				return true
			}
		}
	}
	return false
}

// ServeHTTP refuses a handshake without the duplex.v1 subprotocol with 400,
// then runs a session until the connection ends.
func (h *ChannelHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !offersSubprotocol(r, Subprotocol) {
		http.Error(w, "Bad Request: the channel endpoint speaks the WebSocket subprotocol "+Subprotocol+"; offer it in Sec-WebSocket-Protocol", http.StatusBadRequest)
		return
	}
	id, ok := h.Auth.handshake(w, r)
	if !ok {
		return // 401 with the reason
	}
	userSlot, ok := h.claimHandshakeUser(w, id)
	if !ok {
		return // 429 with the reason
	}
	opts := h.Limits.accept(h.Accept)
	opts.Subprotocols = []string{Subprotocol}
	c, err := websocket.Accept(w, r, &opts)
	if err != nil {
		if userSlot != nil {
			userSlot()
		}
		return // Accept answered with the status and reason
	}
	defer c.CloseNow()
	rec := recordOf(r)
	s := newSession(h, c)
	s.rec = rec
	s.lim.adoptUser(userSlot)
	if h.track != nil {
		defer h.track(c, rec, s.restart)()
	}
	s.startAuth(id)
	defer s.auth.stop()
	err = s.run()
	rec.end(err)
	if h.Log != nil && !expectedEnd(err) {
		h.Log.Info("channel connection ended", "remote", r.RemoteAddr, "client", s.client.Client, "err", err)
	}
}

// expectedEnd reports whether err is an ordinary end of a connection.
func expectedEnd(err error) bool {
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusServiceRestart:
		return true
	}
	return errors.Is(err, websocket.ErrClosed)
}

// newClientID returns a random connection id, unique in practice across
// nodes.
func newClientID() string {
	var b [9]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// session is one duplex.v1 connection. Its reader goroutine (run) decodes
// commands and answers them; its writer goroutine drains the send queue,
// which holds both answers and pushes, so answers and pushes leave in the
// order they were queued.
type session struct {
	h      *ChannelHandler
	conn   *websocket.Conn
	client pubsub.ClientInfo
	queue  *sendQueue
	lim    *connLimits
	drain  chan struct{} // closed by the reader: write what is queued, then stop
	rec    *connRecord   // metrics and log of the connection; nil outside a Server
	enc    *pubsub.Encoding

	// replaying is the channel whose missed messages a subscribe is
	// replaying, whose latency is not observed: they were published
	// before the client asked for them.
	replaying atomic.Pointer[string]
	inSize    int // bytes of the command being handled

	closeOnce sync.Once
	auth      connAuth    // the token's identity and expiry
	end       *sessionEnd // a close the last command asked for

	// A drain (drain.go) waits for the command being handled (handling is
	// held meanwhile), drops the ones read after it (draining), then asks
	// the writer (restartReq) to close after what is queued; written is
	// closed when the writer has returned.
	handling   sync.Mutex
	draining   bool
	restartReq chan closeRequest
	written    chan struct{}

	connected  bool // connect was accepted
	subscribed bool // a subscribe was accepted (connect is then refused)
	subs       map[string]bool

	now    func() time.Time
	budget errorBudget
}

func newSession(h *ChannelHandler, c *websocket.Conn) *session {
	n := h.SendQueue
	if n <= 0 {
		n = DefaultSendQueue
	}
	now := h.clock()
	return &session{
		h:          h,
		conn:       c,
		client:     pubsub.ClientInfo{Client: newClientID()},
		queue:      newSendQueue(n, true, h.obs),
		lim:        newConnLimits(h.Limits, h.obs),
		enc:        h.encoding(),
		drain:      make(chan struct{}),
		restartReq: make(chan closeRequest, 1),
		written:    make(chan struct{}),
		subs:       make(map[string]bool),
		now:        now,
		budget:     newErrorBudget(now()),
	}
}

// run serves the connection until it ends and returns the error that ended
// it.
func (s *session) run() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	written := s.written
	go func() {
		defer close(written)
		s.writeLoop(ctx)
	}()
	defer s.h.Hub.UnsubscribeAll(context.Background(), s)
	s.lim.idle = startIdleWatch(s.conn, s.lim.lim.IdleTimeout, s.closeIdle)
	defer s.lim.end()
	for {
		typ, data, err := s.conn.Read(ctx)
		if err != nil {
			return err
		}
		s.lim.idle.heard()
		s.rec.read()
		if typ != websocket.MessageText {
			s.closeAfterQueued(written, websocket.StatusUnsupportedData, "duplex.v1 takes JSON text messages")
			return errors.New("client sent a binary message")
		}
		if !s.handleUnlessDraining(ctx, data) {
			reason := s.lim.budgetReason()
			s.closeAfterQueued(written, websocket.StatusPolicyViolation, reason)
			return errors.New(reason)
		}
		if e := s.end; e != nil {
			s.closeAfterQueued(written, e.code, e.reason)
			return e
		}
	}
}

// flushTimeout bounds how long a connection the server closes on its own
// (1003, 1008) may take to send the answers queued before the close.
const flushTimeout = 5 * time.Second

// closeAfterQueued closes the connection from the reader goroutine once
// the writer has sent what is queued, so that the answers to the commands
// before the offending one arrive, then the close frame. It returns after
// the closing handshake (bounded by the connection's close timeout): the
// handler closes the transport right after run returns, which would
// otherwise cut the close frame off.
func (s *session) closeAfterQueued(written <-chan struct{}, code websocket.StatusCode, reason string) {
	close(s.drain)
	select {
	case <-written:
	case <-time.After(flushTimeout):
		// The client does not read: give up on the answers and the
		// closing handshake.
		s.conn.CloseNow()
		<-written
	}
	s.closeOnce.Do(func() {
		s.rec.sent(code, reason)
		s.conn.Close(code, reason)
	})
}

// writeLoop writes queued messages until the connection fails or ctx ends,
// or, once drain is closed, until the queue is empty.
func (s *session) writeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.queue.ready:
			if err := s.queue.flush(s.conn, s.rec); err != nil {
				return
			}
		case req := <-s.restartReq:
			s.closeAfter(req)
			return
		case <-s.drain:
			s.queue.flush(s.conn, s.rec)
			return
		}
	}
}

// closeWith closes the connection once, from its own goroutine, so that a
// caller on a hot path (fan-out) never waits for the closing handshake.
func (s *session) closeWith(code websocket.StatusCode, reason string) {
	s.closeOnce.Do(func() {
		go s.conn.Close(code, reason)
	})
}

// send queues a message; a full queue that the namespace's policy cannot
// make room in closes the connection as a slow consumer (1013) rather than
// blocking anyone.
func (s *session) send(f *outFrame) {
	ok, st := s.queue.push(f)
	s.rec.queued(st)
	if !ok {
		s.rec.slowConsumer()
		s.closeWith(websocket.StatusTryAgainLater, closeReasonSlow)
	}
}

// Deliver implements pubsub.Subscriber: it queues the event, encoded once
// for every duplex.v1 subscriber.
func (s *session) Deliver(e *pubsub.Event) {
	f, _ := e.Encoded(s.enc).(*outFrame)
	if f == nil {
		return
	}
	if f.pub != 0 {
		if ch := s.replaying.Load(); ch != nil && *ch == e.Channel {
			replayed := *f
			replayed.pub = 0
			f = &replayed
		}
	}
	s.send(f)
}

// encoding returns the handler's encoding of duplex.v1 pushes, built
// once per event for every subscriber, with what the send queues and the
// metrics need.
func (h *ChannelHandler) encoding() *pubsub.Encoding {
	h.encOnce.Do(func() { h.enc = newQueueEncoding(h.obs, h.Hub, buildPush) })
	return h.enc
}

// buildPush frames the duplex.v1 push of e, or returns nil.
func buildPush(e *pubsub.Event) *outFrame {
	b := appendPush(make([]byte, 0, 96+pushDataLen(e)), e)
	pm, err := websocket.NewPreparedMessage(websocket.MessageText, b)
	if err != nil {
		return nil
	}
	return &outFrame{pm: pm, size: len(b)}
}

func pushDataLen(e *pubsub.Event) int {
	if e.Message != nil {
		return len(e.Message.Data)
	}
	return len(e.Client.Info)
}

// appendPush appends the JSON push for e. Channel names and epochs need no
// escaping (their characters are validated), but are quoted by strconv to
// stay correct whatever a broker returns.
func appendPush(b []byte, e *pubsub.Event) []byte {
	b = append(b, `{"op":"`...)
	b = append(b, e.Kind.String()...)
	b = append(b, `","channel":`...)
	b = appendJSONString(b, e.Channel)
	switch e.Kind {
	case pubsub.EventMessage:
		b = append(b, `,"offset":`...)
		b = strconv.AppendUint(b, e.Message.Offset, 10)
		b = append(b, `,"epoch":`...)
		b = appendJSONString(b, e.Message.Epoch)
		b = append(b, `,"data":`...)
		b = append(b, e.Message.Data...)
	case pubsub.EventLost:
		b = appendLost(b, e.Lost)
	default:
		ci, _ := json.Marshal(e.Client)
		b = append(b, `,"client":`...)
		b = append(b, ci...)
	}
	return append(b, '}')
}

// appendLost appends the fields of a lost push (docs/protocol.md, "Lost
// messages"): the first offset lost, and the position the client goes on
// from, as after a subscribe answer; and, when the broker lost the
// channel's history (a new epoch), "old": the position reached in the old
// epoch, after which its history is gone.
func appendLost(b []byte, g pubsub.Gap) []byte {
	b = append(b, `,"from":`...)
	b = strconv.AppendUint(b, g.From, 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendUint(b, g.To, 10)
	b = append(b, `,"epoch":`...)
	b = appendJSONString(b, g.Epoch)
	if g.Old.Epoch != "" {
		b = append(b, `,"old":{"offset":`...)
		b = strconv.AppendUint(b, g.Old.Offset, 10)
		b = append(b, `,"epoch":`...)
		b = appendJSONString(b, g.Old.Epoch)
		b = append(b, '}')
	}
	return b
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// command is a client command; fields unused by an op are ignored.
type command struct {
	ID      json.RawMessage  `json:"id"`
	Op      string           `json:"op"`
	Channel string           `json:"channel"`
	Data    json.RawMessage  `json:"data"`
	Since   *pubsub.Position `json:"since"`
	Limit   int              `json:"limit"`
	User    *string          `json:"user"`
	Info    json.RawMessage  `json:"info"`
	Token   string           `json:"token"`
}

// protoError is an error answer.
type protoError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *protoError) Error() string { return e.Message }

func badRequest(format string, a ...any) *protoError {
	return &protoError{Code: codeBadRequest, Message: fmt.Sprintf(format, a...)}
}

// maxCommandID is the largest id: 2^53-1, what JavaScript numbers hold
// exactly.
const maxCommandID = 1<<53 - 1

// parseID reads a command id: a positive integer up to 2^53-1.
func parseID(raw json.RawMessage) (uint64, bool) {
	id, err := strconv.ParseUint(string(raw), 10, 64)
	return id, err == nil && id >= 1 && id <= maxCommandID
}

// handle decodes and executes one command and queues its answer. It
// returns false when the connection has exhausted its error budget.
func (s *session) handle(ctx context.Context, data []byte) bool {
	var head struct {
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return s.answerError(0, badRequest("a command must be a JSON object: %v", err))
	}
	id, ok := parseID(head.ID)
	if !ok {
		return s.answerError(0, badRequest("id must be an integer from 1 to 2^53-1, got %s", orMissing(head.ID)))
	}
	if perr := s.lim.allowMessage(s.now()); perr != nil {
		return s.answerError(id, perr)
	}
	s.inSize = len(data)
	var cmd command
	if err := json.Unmarshal(data, &cmd); err != nil {
		return s.answerError(id, badRequest("malformed command: %v", err))
	}
	result, perr := s.execute(ctx, id, &cmd)
	if perr != nil {
		return s.answerError(id, perr)
	}
	if result != nil {
		s.answer(id, result)
	}
	return true
}

func orMissing(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "none"
	}
	return string(raw)
}

// answer queues {"id":id,"result":result}.
func (s *session) answer(id uint64, result any) {
	r, err := json.Marshal(result)
	if err != nil {
		s.answerError(id, &protoError{Code: codeInternal, Message: "encoding the result: " + err.Error()})
		return
	}
	b := make([]byte, 0, 32+len(r))
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"result":`...)
	b = append(b, r...)
	b = append(b, '}')
	s.sendText(b)
}

// answerError queues an error answer and, unless the error is the
// server's own (codeInternal: a broker that failed, a result that could
// not be encoded), charges the error budget; it returns false once the
// budget is spent.
func (s *session) answerError(id uint64, e *protoError) bool {
	b, _ := json.Marshal(struct {
		ID    uint64      `json:"id"`
		Error *protoError `json:"error"`
	}{id, e})
	s.sendText(b)
	if e.Code == codeInternal {
		return true
	}
	s.lim.lastCode = e.Code
	return s.budget.spend(s.now())
}

func (s *session) sendText(b []byte) {
	pm, err := websocket.NewPreparedMessage(websocket.MessageText, b)
	if err == nil {
		s.send(&outFrame{pm: pm})
	}
}

// execute runs a command. A nil result with a nil error means the answer
// was already queued (subscribe queues it before the recovered messages).
func (s *session) execute(ctx context.Context, id uint64, cmd *command) (any, *protoError) {
	switch cmd.Op {
	case "connect":
		return s.connect(ctx, cmd)
	case "refresh":
		return s.refresh(ctx, cmd)
	case "subscribe":
		return s.subscribe(ctx, id, cmd)
	case "unsubscribe":
		if perr := s.checkChannel(cmd.Channel); perr != nil {
			return nil, perr
		}
		if err := s.h.Hub.Unsubscribe(ctx, cmd.Channel, s); err != nil {
			return nil, hubError(err)
		}
		delete(s.subs, cmd.Channel)
		return struct{}{}, nil
	case "publish":
		if len(cmd.Data) == 0 {
			return nil, badRequest("publish needs data (any JSON value)")
		}
		if err := s.h.Hub.CheckClientPublish(cmd.Channel); err != nil {
			return nil, hubError(err)
		}
		if perr := s.authorize(opPublish, cmd.Channel); perr != nil {
			return nil, perr
		}
		pos, err := s.h.Hub.Publish(ctx, cmd.Channel, cmd.Data)
		if err != nil {
			return nil, hubError(err)
		}
		s.h.obs.namespace(cmd.Channel).published(s.inSize)
		return pos, nil
	case "presence":
		if perr := s.authorize(opRead, cmd.Channel); perr != nil {
			return nil, perr
		}
		clients, err := s.h.Hub.Presence(ctx, cmd.Channel)
		if err != nil {
			return nil, hubError(err)
		}
		return presenceResult{Clients: clients}, nil
	case "history":
		if perr := s.authorize(opRead, cmd.Channel); perr != nil {
			return nil, perr
		}
		return history(ctx, s.h.Hub, cmd.Channel, cmd.Since, cmd.Limit)
	case "ping":
		return struct{}{}, nil
	case "":
		return nil, badRequest("op is missing")
	}
	return nil, &protoError{Code: codeUnknownOp, Message: fmt.Sprintf("unknown op %q", cmd.Op)}
}

// checkChannel validates a channel name and its namespace.
func (s *session) checkChannel(channel string) *protoError {
	if _, err := s.h.Hub.Options(channel); err != nil {
		return hubError(err)
	}
	return nil
}

func (s *session) connect(ctx context.Context, cmd *command) (any, *protoError) {
	switch {
	case s.connected:
		return nil, &protoError{Code: codeConnectNotAllowed, Message: "connect was already sent"}
	case s.subscribed:
		return nil, &protoError{Code: codeConnectNotAllowed, Message: "connect must come before any subscribe"}
	}
	user := ""
	if cmd.User != nil {
		user = *cmd.User
	}
	if len(user) > maxUserLen {
		return nil, &protoError{Code: codeConnectNotAllowed, Message: fmt.Sprintf("user is %d bytes, at most %d", len(user), maxUserLen)}
	}
	if len(cmd.Info) > maxInfoLen {
		return nil, &protoError{Code: codeConnectNotAllowed, Message: fmt.Sprintf("info is %d bytes, at most %d", len(cmd.Info), maxInfoLen)}
	}
	if perr := s.connectAuth(ctx, cmd.Token, &user); perr != nil {
		return nil, perr
	}
	// Only a user a token proved is counted: without authentication the
	// user of connect is the client's own claim, and counting it would let
	// anyone lock a user out by naming it.
	if s.h.Auth != nil {
		if perr := s.lim.claimUser(&s.h.users, user); perr != nil {
			s.end = &sessionEnd{code: websocket.StatusPolicyViolation, reason: closeReasonUser}
			return nil, perr
		}
	}
	s.connected = true
	s.client.User = user
	if len(cmd.Info) > 0 && string(cmd.Info) != "null" {
		s.client.Info = cmd.Info
	}
	return struct {
		Client  string `json:"client"`
		User    string `json:"user"`
		Version string `json:"version"`
		TTL     *int64 `json:"ttl,omitempty"`
	}{s.client.Client, user, s.h.Version, s.auth.ttl()}, nil
}

// subscribeResult is the answer to subscribe.
type subscribeResult struct {
	Recovered bool   `json:"recovered"`
	Offset    uint64 `json:"offset"`
	Epoch     string `json:"epoch"`
}

func (s *session) subscribe(ctx context.Context, id uint64, cmd *command) (any, *protoError) {
	if s.subs[cmd.Channel] {
		return nil, &protoError{Code: codeAlreadySubscribed, Message: fmt.Sprintf("already subscribed to %q", cmd.Channel)}
	}
	if cmd.Since != nil && cmd.Since.Epoch == "" {
		return nil, badRequest("since needs an offset and an epoch")
	}
	if perr := s.authorize(opSubscribe, cmd.Channel); perr != nil {
		return nil, perr
	}
	if s.lim.atChannelLimit(len(s.subs)) {
		if bad := s.checkChannel(cmd.Channel); bad != nil {
			return nil, bad
		}
		return nil, s.lim.refuseChannels()
	}
	if cmd.Since != nil {
		s.replaying.Store(&cmd.Channel)
		defer s.replaying.Store(nil)
	}
	_, err := s.h.Hub.Subscribe(ctx, cmd.Channel, s, pubsub.SubscribeOptions{
		Since:  cmd.Since,
		Client: s.client,
		OnResult: func(r pubsub.SubscribeResult) {
			// Queued before any message of the subscription.
			s.answer(id, subscribeResult{Recovered: r.Recovered, Offset: r.Position.Offset, Epoch: r.Position.Epoch})
		},
	})
	if err != nil {
		return nil, hubError(err)
	}
	s.subs[cmd.Channel] = true
	s.subscribed = true
	return nil, nil
}

// presenceResult is the answer to presence.
type presenceResult struct {
	Clients []pubsub.ClientInfo `json:"clients"`
}

// historyMessage is one message in a history answer.
type historyMessage struct {
	Offset uint64          `json:"offset"`
	Data   json.RawMessage `json:"data"`
}

// historyResult is the answer to history (WebSocket and HTTP).
type historyResult struct {
	Messages  []historyMessage `json:"messages"`
	Offset    uint64           `json:"offset"`
	Epoch     string           `json:"epoch"`
	Recovered *bool            `json:"recovered,omitempty"`
}

// history runs a history query for both the WebSocket command and the
// HTTP API.
func history(ctx context.Context, hub *pubsub.Hub, channel string, since *pubsub.Position, limit int) (*historyResult, *protoError) {
	if limit < 0 {
		return nil, badRequest("limit must not be negative")
	}
	if since != nil && since.Epoch == "" {
		return nil, badRequest("since needs an offset and an epoch")
	}
	res, err := hub.History(ctx, channel, pubsub.HistoryRequest{Since: since, Limit: limit})
	if err != nil {
		return nil, hubError(err)
	}
	out := &historyResult{Messages: make([]historyMessage, 0, len(res.Messages)), Offset: res.Position.Offset, Epoch: res.Position.Epoch}
	if since != nil {
		complete := res.Complete
		out.Recovered = &complete
	}
	for _, m := range res.Messages {
		out.Messages = append(out.Messages, historyMessage{Offset: m.Offset, Data: m.Data})
	}
	return out, nil
}

// hubErrorCodes lists the protocol error code of each pubsub error, in the
// order hubError tries them.
var hubErrorCodes = []struct {
	err  error
	code int
}{
	{pubsub.ErrInvalidChannel, codeInvalidChannel},
	{pubsub.ErrUnknownNamespace, codeUnknownNamespace},
	{pubsub.ErrPermissionDenied, codePermissionDenied},
	{pubsub.ErrAlreadySubscribed, codeAlreadySubscribed},
	{pubsub.ErrNotSubscribed, codeNotSubscribed},
	{pubsub.ErrHistoryDisabled, codeHistoryDisabled},
	{pubsub.ErrPresenceDisabled, codePresenceDisabled},
}

// hubError maps a pubsub error to its protocol error code.
func hubError(err error) *protoError {
	code := codeInternal
	for _, e := range hubErrorCodes {
		if errors.Is(err, e.err) {
			code = e.code
			break
		}
	}
	return &protoError{Code: code, Message: err.Error()}
}

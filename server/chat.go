package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/websocket"
)

// ChatNamespace is the namespace of the plain chat rooms: /chat/{room} is
// the channel "chat:{room}".
const ChatNamespace = "chat"

// ChatHandler serves GET /chat/{room}: a chat room for plain WebSocket
// clients that speak no protocol (a browser's new WebSocket(), wscat).
// Every text message a member sends reaches every member, itself included,
// as the same text. The room is the channel chat:{room}, so duplex.v1
// clients share it (see docs/protocol.md).
type ChatHandler struct {
	// Hub is the channel engine.
	Hub *pubsub.Hub
	// Accept configures the upgrade; a zero ReadLimit takes
	// Limits.MaxMessageSize.
	Accept websocket.AcceptOptions
	// SendQueue bounds each member's waiting messages (0: DefaultSendQueue);
	// when it is full, the chat namespace's SlowConsumer policy applies
	// (a plain client is not told what it lost).
	SendQueue int
	// Limits bound what each member may do: MessageRate, MessageBurst and
	// IdleTimeout apply here (zero fields: the defaults).
	Limits Limits
	// Log receives a line per connection that ends abnormally; nil is quiet.
	Log *slog.Logger
	// Fallback, when set, serves requests that are not WebSocket upgrades
	// (for example the chat page).
	Fallback http.Handler
	// Auth, when set, authenticates members by the token of their upgrade
	// request and checks that they may subscribe to the room (and publish,
	// when they send a text); nil lets everyone in.
	Auth *Authenticator

	track func(*websocket.Conn, *connRecord) (untrack func())
	obs   *observer

	encOnce sync.Once
	enc     *pubsub.Encoding // plain texts, framed once per event
}

// ServeHTTP checks the room name (400 when invalid, page or not), hands a
// request that is not an upgrade to Fallback, and otherwise upgrades and
// relays texts between the room's members until the connection ends.
func (h *ChatHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	channel := ChatNamespace + ":" + r.PathValue("room")
	if _, err := h.Hub.Options(channel); err != nil {
		http.Error(w, "Bad Request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if h.Fallback != nil && !isUpgrade(r) {
		h.Fallback.ServeHTTP(w, r)
		return
	}
	grant, ok := h.Auth.admitChat(w, r, h.Hub, channel)
	if !ok {
		return // 401 or 403 with the reason
	}
	opts := h.Limits.accept(h.Accept)
	c, err := websocket.Accept(w, r, &opts)
	if err != nil {
		return
	}
	defer c.CloseNow()
	rec := recordOf(r)
	if h.track != nil {
		defer h.track(c, rec)()
	}
	n := h.SendQueue
	if n <= 0 {
		n = DefaultSendQueue
	}
	m := &chatMember{conn: c, queue: newSendQueue(n, false, h.obs), lim: newConnLimits(h.Limits, h.obs), budget: newErrorBudget(time.Now()),
		rec: rec, enc: h.encoding(), ns: h.obs.namespace(channel), grant: grant}
	defer m.watchExpiry()()
	err = m.run(h.Hub, channel)
	rec.end(err)
	if h.Log != nil && !expectedEnd(err) {
		h.Log.Info("chat connection ended", "remote", r.RemoteAddr, "room", channel, "err", err)
	}
}

// isUpgrade reports whether r asks for a WebSocket upgrade.
func isUpgrade(r *http.Request) bool {
	for _, v := range r.Header.Values("Upgrade") {
		if equalFoldASCII(v, "websocket") {
			return true
		}
	}
	return false
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// chatMember is one plain connection in a chat room.
type chatMember struct {
	conn      *websocket.Conn
	queue     *sendQueue
	lim       *connLimits
	budget    errorBudget
	closeOnce sync.Once
	rec       *connRecord      // nil outside a Server
	enc       *pubsub.Encoding // the plain texts
	ns        *nsStats         // the chat namespace's counters, nil outside a Server
	grant     chatGrant        // what the member's token allows
}

func (m *chatMember) run(hub *pubsub.Hub, channel string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.writeLoop(ctx)
	if _, err := hub.Subscribe(ctx, channel, m, pubsub.SubscribeOptions{Client: pubsub.ClientInfo{Client: newClientID()}}); err != nil {
		m.closeFromReader(websocket.StatusInternalError, "cannot join the room")
		return err
	}
	defer hub.Unsubscribe(context.Background(), channel, m)
	m.lim.idle = startIdleWatch(m.conn, m.lim.lim.IdleTimeout, m.closeIdle)
	defer m.lim.end()
	for {
		typ, data, err := m.conn.Read(ctx)
		if err != nil {
			return err
		}
		m.lim.idle.heard()
		m.rec.read()
		if typ != websocket.MessageText {
			m.closeFromReader(websocket.StatusUnsupportedData, "chat rooms take text messages")
			return errors.New("client sent a binary message")
		}
		if m.grant.publish != nil {
			m.closeFromReader(websocket.StatusPolicyViolation, closeReasonChatPublish)
			return m.grant.publish
		}
		if now := time.Now(); m.lim.allowMessage(now) != nil {
			// Not relayed; a member that keeps at it is closed.
			if !m.budget.spend(now) {
				m.closeFromReader(websocket.StatusPolicyViolation, closeReasonRate)
				return errors.New(closeReasonRate)
			}
			continue
		}
		js := chatText(data)
		if _, err := hub.Publish(ctx, channel, js); err != nil {
			m.closeFromReader(websocket.StatusInternalError, "publish failed")
			return err
		}
		m.ns.published(len(data))
	}
}

func (m *chatMember) writeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.queue.ready:
			if err := m.queue.flush(m.conn, m.rec); err != nil {
				return
			}
		}
	}
}

func (m *chatMember) closeWith(code websocket.StatusCode, reason string) {
	m.closeOnce.Do(func() { go m.conn.Close(code, reason) })
}

// closeFromReader runs the closing handshake on the reader goroutine and
// returns when it is done (bounded by the close timeout): the handler
// closes the transport right after run returns, which would cut off a close
// frame sent from another goroutine.
func (m *chatMember) closeFromReader(code websocket.StatusCode, reason string) {
	m.closeOnce.Do(func() {
		m.rec.sent(code, reason)
		m.conn.Close(code, reason)
	})
}

// Deliver implements pubsub.Subscriber: messages go out as plain text;
// presence changes and reports of lost messages are not shown to plain
// clients, which have no offsets to resume from nor state to reload, and
// would take any notice for a member's text.
func (m *chatMember) Deliver(e *pubsub.Event) {
	if e.Kind != pubsub.EventMessage {
		return
	}
	f, _ := e.Encoded(m.enc).(*outFrame)
	if f == nil {
		return
	}
	ok, st := m.queue.push(f)
	m.rec.queued(st)
	if !ok {
		m.rec.slowConsumer()
		m.closeWith(websocket.StatusTryAgainLater, closeReasonSlow)
	}
}

// closeIdle closes the member's connection after its idle timeout, with
// 1001 "idle timeout".
func (m *chatMember) closeIdle() {
	m.lim.obs.refused(limitIdleTimeout)
	m.rec.sent(websocket.StatusGoingAway, closeReasonIdle)
	m.closeWith(websocket.StatusGoingAway, closeReasonIdle)
}

// encoding returns the handler's encoding of plain texts, built once per
// event for every member, with what the send queues and the metrics need.
func (h *ChatHandler) encoding() *pubsub.Encoding {
	h.encOnce.Do(func() { h.enc = newQueueEncoding(h.obs, h.Hub, buildPlain) })
	return h.enc
}

// buildPlain frames the text a plain client sees of a message: a JSON
// string's value, or any other JSON value's encoding.
func buildPlain(e *pubsub.Event) *outFrame {
	text := []byte(e.Message.Data)
	// Only a JSON string becomes its value: null also decodes into a
	// string, as "", without an error.
	var s string
	if t := bytes.TrimLeft(text, " \t\r\n"); len(t) > 0 && t[0] == '"' && json.Unmarshal(text, &s) == nil {
		text = []byte(s)
	}
	pm, err := websocket.NewPreparedMessage(websocket.MessageText, text)
	if err != nil {
		return nil
	}
	return &outFrame{pm: pm, size: len(text)}
}

// chatText encodes a plain member's text (valid UTF-8: the connection
// checked it) as the JSON string that duplex.v1 subscribers receive, without
// escaping <, > and &, so the bytes stay what the member sent wherever JSON
// allows it.
func chatText(text []byte) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(string(text))
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

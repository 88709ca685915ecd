package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/duplex-ws/duplex/websocket"
)

// Error codes and close reasons of the per-connection limits
// (docs/protocol.md).
const (
	codeRateLimited     = 120
	codeTooManyChannels = 121
	codeTooManyForUser  = 122

	closeReasonRate = "message rate exceeded"
	closeReasonUser = "too many connections for this user"
	closeReasonIdle = "idle timeout"
)

// connLimits are one connection's limits: its message bucket, its channel
// cap, its idle watch and its user slot. Only the connection's reader
// goroutine uses it, except the idle watch.
type connLimits struct {
	lim      Limits // effective
	messages *rate.Limiter
	idle     *idleWatch
	obs      *observer

	user     func() // releases the user slot; nil when none is held
	lastCode int    // code of the last error answered, for the budget's close reason
}

func newConnLimits(l Limits, obs *observer) *connLimits {
	l = l.Effective()
	cl := &connLimits{lim: l, obs: obs}
	if l.MessageRate > 0 {
		cl.messages = rate.NewLimiter(rate.Limit(l.MessageRate), l.MessageBurst)
	}
	return cl
}

// accept returns the upgrade options of an endpoint that holds messages
// whole (/ws, /chat/{room}): a zero ReadLimit takes MaxMessageSize.
func (l Limits) accept(a websocket.AcceptOptions) websocket.AcceptOptions {
	if a.ReadLimit == 0 {
		a.ReadLimit = l.Effective().MaxMessageSize
	}
	return a
}

// allowMessage takes a token for a message read at now, or returns the
// error that refuses it (counted).
func (cl *connLimits) allowMessage(now time.Time) *protoError {
	if cl.messages == nil || cl.messages.AllowN(now, 1) {
		return nil
	}
	cl.obs.refused(limitMessageRate)
	return &protoError{Code: codeRateLimited, Message: fmt.Sprintf("message rate exceeded: at most %s messages a second, in bursts of %d",
		formatRate(cl.lim.MessageRate), cl.lim.MessageBurst)}
}

// atChannelLimit reports whether a connection with n channels may
// subscribe to no more.
func (cl *connLimits) atChannelLimit(n int) bool {
	return cl.lim.MaxChannels > 0 && n >= cl.lim.MaxChannels
}

// refuseChannels is the error of a subscribe beyond the limit (counted).
func (cl *connLimits) refuseChannels() *protoError {
	cl.obs.refused(limitChannels)
	return &protoError{Code: codeTooManyChannels, Message: fmt.Sprintf("too many channels: this connection is subscribed to %d, the limit", cl.lim.MaxChannels)}
}

// claimUser takes one of user's connection slots in users, or returns the
// error that refuses the connection (the caller then closes it with 1008
// closeReasonUser). An anonymous user ("") is not counted. A connection
// holds one slot at most: once it has one (from connect, or from its
// upgrade request's token, see adoptUser), claimUser does nothing.
func (cl *connLimits) claimUser(users *userCounts, user string) *protoError {
	max := cl.lim.MaxConnectionsPerUser
	if user == "" || max <= 0 || cl.user != nil {
		return nil
	}
	release, ok := users.claim(user, max)
	if !ok {
		cl.obs.refused(limitConnectionsPerUser)
		return &protoError{Code: codeTooManyForUser, Message: tooManyForUser(user, max)}
	}
	cl.user = release
	return nil
}

func tooManyForUser(user string, max int) string {
	return fmt.Sprintf("too many connections for user %q: %d is the limit per user", user, max)
}

// adoptUser makes the connection hold the user slot release frees.
func (cl *connLimits) adoptUser(release func()) {
	if release != nil {
		cl.user = release
	}
}

// claimHandshakeUser takes a slot for the user of an upgrade request's
// token (id nil: none), before the upgrade; a user at the limit is
// refused with 429 Too Many Requests and Retry-After, as the other
// connection limits are, and ok is false. release (nil when nothing was
// taken) frees the slot.
func (h *ChannelHandler) claimHandshakeUser(w http.ResponseWriter, id *identity) (release func(), ok bool) {
	max := h.Limits.Effective().MaxConnectionsPerUser
	if id == nil || id.user == "" || max <= 0 {
		return nil, true
	}
	release, ok = h.users.claim(id.user, max)
	if !ok {
		h.obs.refused(limitConnectionsPerUser)
		w.Header().Set("Retry-After", strconv.Itoa(connLimitRetryAfter))
		http.Error(w, "Too Many Requests: "+tooManyForUser(id.user, max), http.StatusTooManyRequests)
	}
	return release, ok
}

// budgetReason is the reason of the 1008 close when the error budget is
// spent: the kind of the last error.
func (cl *connLimits) budgetReason() string {
	if cl.lastCode == codeRateLimited {
		return closeReasonRate
	}
	return closeReasonBadCommands
}

// end releases what the connection held.
func (cl *connLimits) end() {
	if cl.user != nil {
		cl.user()
		cl.user = nil
	}
	cl.idle.stop()
}

// userCounts counts the connections of each user id of one handler.
type userCounts struct {
	mu sync.Mutex
	n  map[string]int
}

// claim counts a connection of user unless it has max already.
func (u *userCounts) claim(user string, max int) (release func(), ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n[user] >= max {
		return nil, false
	}
	if u.n == nil {
		u.n = make(map[string]int)
	}
	u.n[user]++
	var once sync.Once
	return func() {
		once.Do(func() {
			u.mu.Lock()
			if u.n[user]--; u.n[user] <= 0 {
				delete(u.n, user)
			}
			u.mu.Unlock()
		})
	}, true
}

// idleWatch closes a connection from which nothing was heard for its
// timeout. It runs on a timer, not a goroutine: the timer fires when the
// connection has been quiet for half the timeout, and then a ping goes out
// (on a goroutine that lives until the pong or the deadline); it fires
// again at the deadline, and if nothing was heard meanwhile, onIdle runs.
type idleWatch struct {
	conn    *websocket.Conn
	timeout time.Duration
	onIdle  func()
	start   time.Time
	last    atomic.Int64 // when something was last heard, as time since start
	pinging atomic.Bool

	mu      sync.Mutex
	t       *time.Timer
	stopped bool
}

// startIdleWatch watches c; timeout <= 0 returns nil, which watches
// nothing.
func startIdleWatch(c *websocket.Conn, timeout time.Duration, onIdle func()) *idleWatch {
	if timeout <= 0 {
		return nil
	}
	w := &idleWatch{conn: c, timeout: timeout, onIdle: onIdle, start: time.Now()}
	w.mu.Lock()
	w.t = time.AfterFunc(timeout/2, w.tick)
	w.mu.Unlock()
	return w
}

// heard notes that something came from the client.
func (w *idleWatch) heard() {
	if w != nil {
		w.last.Store(int64(time.Since(w.start)))
	}
}

func (w *idleWatch) tick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	quiet := time.Since(w.start) - time.Duration(w.last.Load())
	if quiet >= w.timeout {
		w.stopped = true
		go w.onIdle()
		return
	}
	if half := w.timeout / 2; quiet < half {
		w.t.Reset(half - quiet)
		return
	}
	left := w.timeout - quiet
	if w.pinging.CompareAndSwap(false, true) {
		go w.ping(left)
	}
	w.t.Reset(left)
}

// ping pings the client and notes the pong, if it comes within d.
func (w *idleWatch) ping(d time.Duration) {
	defer w.pinging.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if w.conn.Ping(ctx) == nil {
		w.heard()
	}
}

// stop ends the watch.
func (w *idleWatch) stop() {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.stopped = true
	w.t.Stop()
	w.mu.Unlock()
}

// errorBudget allows a connection errorBurst errors at once and one more
// per errorRefill elapsed, fractions carried over, never more than
// errorBurst saved up.
type errorBudget struct {
	left       int
	lastRefill time.Time
}

func newErrorBudget(now time.Time) errorBudget {
	return errorBudget{left: errorBurst, lastRefill: now}
}

// spend charges one error at now and reports whether the budget still
// holds.
func (b *errorBudget) spend(now time.Time) bool {
	if refill := int(now.Sub(b.lastRefill) / errorRefill); refill > 0 {
		b.left = min(errorBurst, b.left+refill)
		b.lastRefill = b.lastRefill.Add(time.Duration(refill) * errorRefill)
	}
	b.left--
	return b.left >= 0
}

// closeIdle closes the session's connection after its idle timeout, with
// 1001 "idle timeout".
func (s *session) closeIdle() {
	s.h.obs.refused(limitIdleTimeout)
	s.rec.sent(websocket.StatusGoingAway, closeReasonIdle)
	s.closeWith(websocket.StatusGoingAway, closeReasonIdle)
}

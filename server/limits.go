package server

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Limits are what one client may take of a server: connections, new
// connections per second, messages per second, channels, idle time. Each
// is on by default, with a value meant to stop abuse without getting in
// the way of ordinary use, and each refusal has a documented answer
// (docs/operations.md, "Limits") and is counted in the metric
// duplex_limit_refusals_total. A zero field takes its default (see
// DefaultLimits); a negative number or duration turns that limit off.
type Limits struct {
	// MaxConnections caps the server's WebSocket connections, every
	// endpoint together (default 100 000). A handshake beyond it gets
	// 503 Service Unavailable with Retry-After, before the upgrade.
	MaxConnections int
	// MaxConnectionsPerIP caps the connections of one client address
	// (default 1000; IPv6 addresses count per /64, which one host often
	// holds whole). A handshake beyond it gets 429 Too Many Requests with
	// Retry-After, before the upgrade.
	MaxConnectionsPerIP int
	// MaxConnectionsPerUser caps the channel connections (/ws) of one user
	// id on this node (default 100). Only users a token proved count: with
	// authentication off, the user a client names in connect is its own
	// claim and is not counted (else anyone could lock a user out by
	// naming it), nor are anonymous connections. The connect that would
	// pass it is answered with error 122, then the connection is closed
	// with 1008; a token in the upgrade request that would pass it is
	// refused with 429 before the upgrade.
	MaxConnectionsPerUser int

	// AcceptRate is how many new WebSocket connections a second the server
	// accepts, on average, all clients together (default 1000), with
	// bursts of AcceptBurst (default 2000): a token bucket. A handshake
	// beyond it gets 503 with Retry-After (the seconds until a token is
	// back), so that a crowd reconnecting after a restart comes back in
	// waves rather than all at once.
	AcceptRate float64
	// AcceptBurst is the bucket size of AcceptRate.
	AcceptBurst int
	// AcceptRatePerIP is AcceptRate for one client address (default 50 a
	// second, bursts of AcceptBurstPerIP, default 100); beyond it, 429
	// with Retry-After.
	AcceptRatePerIP float64
	// AcceptBurstPerIP is the bucket size of AcceptRatePerIP.
	AcceptBurstPerIP int

	// TrustedProxies lists the addresses (192.0.2.10) and networks
	// (10.0.0.0/8) of reverse proxies whose X-Forwarded-For header is
	// believed: for a request from one of them, the client address is the
	// last address of X-Forwarded-For that is not itself a trusted proxy.
	// Empty: the client address is always the TCP peer's.
	TrustedProxies []string
	// LimitLoopback applies the per-address limits to loopback clients
	// (127.0.0.0/8, ::1) too. Off by default: a client on the server's own
	// machine is the operator's (a load test, a local proxy), and behind a
	// local proxy not listed in TrustedProxies every client would share
	// one loopback address, turning a per-address limit into a total one.
	LimitLoopback bool

	// IdleTimeout closes a WebSocket connection (/ws, /chat/{room}, /echo,
	// the bridge and exec routes) on which nothing happened for that long
	// (default 60 s): on /ws and /chat nothing was heard from the client,
	// no message and no answer to a ping; on /echo and the gateway routes
	// no message went either way and no ping was answered. The server
	// pings a connection that has been quiet for half of it. The close is
	// 1001 "idle timeout". A quiet client that answers pings (browsers and
	// the SDKs do) stays connected.
	IdleTimeout time.Duration

	// MaxMessageSize is the largest /ws command, /chat/{room} message and
	// HTTP API body accepted, in bytes (default 64 KiB): these are held
	// whole, and kept in channel history. A larger WebSocket message
	// closes the connection with 1009 (message too big); a larger API
	// body is answered with 413. /echo and the gateway routes stream
	// messages through a fixed buffer instead; Config.ReadLimit bounds
	// theirs.
	MaxMessageSize int64

	// MessageRate is how many messages a second one connection may send
	// on /ws, /chat/{room} and /echo, on average (default 100), with
	// bursts of MessageBurst (default 200): a token bucket. On /ws a
	// command beyond it is not run and is answered with error 120; on
	// /chat/{room} the text is not relayed. Each refusal spends the
	// connection's error budget (10 at once, one more per second): a
	// client that keeps exceeding the rate is closed with 1008 "message
	// rate exceeded". /echo has no error answer: a message beyond the
	// bucket is not echoed and closes the connection at once with 1008
	// "message rate exceeded".
	MessageRate float64
	// MessageBurst is the bucket size of MessageRate.
	MessageBurst int

	// MaxChannels caps the channels one /ws connection is subscribed to
	// at once (default 128); a subscribe beyond it is answered with error
	// 121.
	MaxChannels int
}

// DefaultMaxMessageSize is the default of Limits.MaxMessageSize, 64 KiB
// (Centrifugo's too): room for any chat message or JSON update, while 100
// messages of history in each of many channels stay a bounded amount of
// memory.
const DefaultMaxMessageSize = 64 << 10

// DefaultLimits returns the limits a server has when Config.Limits is
// left zero.
func DefaultLimits() Limits {
	return Limits{
		MaxConnections:        100_000,
		MaxConnectionsPerIP:   1000,
		MaxConnectionsPerUser: 100,
		AcceptRate:            1000,
		AcceptBurst:           2000,
		AcceptRatePerIP:       50,
		AcceptBurstPerIP:      100,
		IdleTimeout:           60 * time.Second,
		MaxMessageSize:        DefaultMaxMessageSize,
		MessageRate:           100,
		MessageBurst:          200,
		MaxChannels:           128,
	}
}

// Effective returns l with every zero field replaced by its default; the
// negative ones (limits turned off) stay as they are.
func (l Limits) Effective() Limits {
	d := DefaultLimits()
	orInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	orInt(&l.MaxConnections, d.MaxConnections)
	orInt(&l.MaxConnectionsPerIP, d.MaxConnectionsPerIP)
	orInt(&l.MaxConnectionsPerUser, d.MaxConnectionsPerUser)
	orInt(&l.AcceptBurst, d.AcceptBurst)
	orInt(&l.AcceptBurstPerIP, d.AcceptBurstPerIP)
	orInt(&l.MessageBurst, d.MessageBurst)
	orInt(&l.MaxChannels, d.MaxChannels)
	if l.AcceptRate == 0 {
		l.AcceptRate = d.AcceptRate
	}
	if l.AcceptRatePerIP == 0 {
		l.AcceptRatePerIP = d.AcceptRatePerIP
	}
	if l.MessageRate == 0 {
		l.MessageRate = d.MessageRate
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = d.IdleTimeout
	}
	if l.MaxMessageSize == 0 {
		l.MaxMessageSize = d.MaxMessageSize
	}
	return l
}

// Validate reports the first setting that cannot work, naming it: a
// negative burst (a burst is at least 1 while its rate is on), a rate that
// is not a number, or a TrustedProxies entry that is neither an address
// nor a network.
func (l Limits) Validate() error {
	for _, b := range []struct {
		name  string
		burst int
	}{{"AcceptBurst", l.AcceptBurst}, {"AcceptBurstPerIP", l.AcceptBurstPerIP}, {"MessageBurst", l.MessageBurst}} {
		if b.burst < 0 {
			return fmt.Errorf("limits: %s is %d: want 1 or more (0: the default)", b.name, b.burst)
		}
	}
	for _, r := range []struct {
		name string
		rate float64
	}{{"AcceptRate", l.AcceptRate}, {"AcceptRatePerIP", l.AcceptRatePerIP}, {"MessageRate", l.MessageRate}} {
		if math.IsNaN(r.rate) || math.IsInf(r.rate, 0) {
			return fmt.Errorf("limits: %s is %v: want a number of events a second (negative: off)", r.name, r.rate)
		}
	}
	_, err := parseProxies(l.TrustedProxies)
	return err
}

// parseProxies reads TrustedProxies.
func parseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("limits: TrustedProxies entry %q is neither an IP address nor a network such as 10.0.0.0/8", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// The limit label values of duplex_limit_refusals_total.
const (
	limitConnections        = "connections"
	limitConnectionsPerIP   = "connections_per_ip"
	limitConnectionsPerUser = "connections_per_user"
	limitAcceptRate         = "accept_rate"
	limitAcceptRatePerIP    = "accept_rate_per_ip"
	limitHandshakeTimeout   = "handshake_timeout"
	limitIdleTimeout        = "idle_timeout"
	limitMessageSize        = "message_size"
	limitMessageRate        = "message_rate"
	limitChannels           = "channels"
)

// limitNames are every limit label, each of whose series exists from the
// start.
var limitNames = []string{
	limitConnections, limitConnectionsPerIP, limitConnectionsPerUser, limitAcceptRate, limitAcceptRatePerIP,
	limitHandshakeTimeout, limitIdleTimeout, limitMessageSize, limitMessageRate, limitChannels,
}

// refused counts a refusal by limit in o's metrics (o may be nil).
func (o *observer) refused(limit string) {
	if o != nil {
		o.refusals.WithLabelValues(limit).Inc()
	}
}

// connLimitRetryAfter is the Retry-After of a handshake refused because
// there are too many connections: nobody knows when one will end, and a
// few seconds spread retries without keeping clients away long.
const connLimitRetryAfter = 5

// admission holds a server's connection counts and accept-rate buckets,
// shared by its WebSocket endpoints, and checks each upgrade request
// against them before the handler runs.
type admission struct {
	lim     Limits // effective
	proxies []netip.Prefix
	obs     *observer
	now     func() time.Time // time.Now, or a test's clock

	mu        sync.Mutex
	total     int
	perIP     map[netip.Prefix]*ipState
	accept    *rate.Limiter // nil: off
	lastSweep time.Time
}

// ipState is one client address's connections and accept bucket.
type ipState struct {
	conns  int
	accept *rate.Limiter // nil: off
}

func newAdmission(l Limits, obs *observer) (*admission, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	l = l.Effective()
	proxies, _ := parseProxies(l.TrustedProxies)
	a := &admission{lim: l, proxies: proxies, obs: obs, now: time.Now, perIP: make(map[netip.Prefix]*ipState)}
	if l.AcceptRate > 0 {
		a.accept = rate.NewLimiter(rate.Limit(l.AcceptRate), l.AcceptBurst)
	}
	return a, nil
}

// refusal is an upgrade request's refusal by a limit.
type refusal struct {
	limit      string
	status     int
	retryAfter int // seconds
	message    string
}

// guard wraps a WebSocket endpoint: an upgrade request is checked against
// the connection and accept-rate limits, refused with its status,
// Retry-After and reason, or counted as a connection until the handler
// returns (when the connection has ended). Other requests pass through.
func (a *admission) guard(h http.Handler) http.Handler {
	if a == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isUpgrade(r) {
			h.ServeHTTP(w, r)
			return
		}
		release, ref := a.admit(a.clientAddr(r))
		if ref != nil {
			a.obs.refused(ref.limit)
			w.Header().Set("Retry-After", strconv.Itoa(ref.retryAfter))
			http.Error(w, http.StatusText(ref.status)+": "+ref.message, ref.status)
			return
		}
		defer release()
		h.ServeHTTP(w, r)
	})
}

// admit takes a connection slot and an accept token for a client at addr
// (the zero Prefix: not limited per address), or says which limit refuses
// it.
func (a *admission) admit(addr netip.Prefix) (release func(), ref *refusal) {
	l := &a.lim
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if now.Sub(a.lastSweep) > sweepEvery {
		a.sweep(now)
	}
	if l.MaxConnections > 0 && a.total >= l.MaxConnections {
		return nil, &refusal{limitConnections, http.StatusServiceUnavailable, connLimitRetryAfter,
			fmt.Sprintf("the server has %d connections, its limit; retry later", l.MaxConnections)}
	}
	var st *ipState
	if addr.IsValid() {
		st = a.perIP[addr]
		if st == nil {
			st = &ipState{}
			if l.AcceptRatePerIP > 0 {
				st.accept = rate.NewLimiter(rate.Limit(l.AcceptRatePerIP), l.AcceptBurstPerIP)
			}
			a.perIP[addr] = st
		}
		if l.MaxConnectionsPerIP > 0 && st.conns >= l.MaxConnectionsPerIP {
			return nil, &refusal{limitConnectionsPerIP, http.StatusTooManyRequests, connLimitRetryAfter,
				fmt.Sprintf("%s has %d connections, the limit per client address", addrString(addr), l.MaxConnectionsPerIP)}
		}
	}
	var ipRes *rate.Reservation
	if st != nil && st.accept != nil {
		ipRes = st.accept.ReserveN(now, 1)
		if d := ipRes.DelayFrom(now); d > 0 {
			ipRes.CancelAt(now)
			return nil, &refusal{limitAcceptRatePerIP, http.StatusTooManyRequests, retrySeconds(d),
				fmt.Sprintf("%s opens more than %s connections a second, the limit per client address", addrString(addr), formatRate(l.AcceptRatePerIP))}
		}
	}
	if a.accept != nil {
		res := a.accept.ReserveN(now, 1)
		if d := res.DelayFrom(now); d > 0 {
			res.CancelAt(now)
			if ipRes != nil {
				ipRes.CancelAt(now)
			}
			return nil, &refusal{limitAcceptRate, http.StatusServiceUnavailable, retrySeconds(d),
				fmt.Sprintf("the server accepts at most %s new connections a second; retry later", formatRate(l.AcceptRate))}
		}
	}
	a.total++
	if st != nil {
		st.conns++
	}
	return func() {
		a.mu.Lock()
		a.total--
		if st != nil {
			st.conns--
		}
		a.mu.Unlock()
	}, nil
}

// sweepEvery is how often the per-address table drops addresses that
// have no connection and a full accept bucket: they would behave the same
// if they came back, so the table stays the size of the recent clients.
const sweepEvery = 10 * time.Second

func (a *admission) sweep(now time.Time) {
	a.lastSweep = now
	for addr, st := range a.perIP {
		if st.conns == 0 && (st.accept == nil || st.accept.TokensAt(now) >= float64(st.accept.Burst())) {
			delete(a.perIP, addr)
		}
	}
}

// retrySeconds is a Retry-After for a wait of d: whole seconds, rounded
// up, at least 1.
func retrySeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// formatRate writes a rate without a needless fraction: 50, 0.5.
func formatRate(r float64) string {
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// addrString shows a client address: the address, or the /64 network of
// an IPv6 address.
func addrString(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

// clientAddr returns the address r's client is limited by: the TCP peer,
// or, when the peer is a trusted proxy, the last address of
// X-Forwarded-For that is not one; as a Prefix, a single address, or the
// /64 of an IPv6 address. The zero Prefix means not limited per address:
// a loopback client without LimitLoopback, or an address that cannot be
// read.
func (a *admission) clientAddr(r *http.Request) netip.Prefix {
	addr, ok := peerAddr(r.RemoteAddr)
	if !ok {
		return netip.Prefix{}
	}
	if a.trusted(addr) {
		hops := r.Header.Values("X-Forwarded-For")
	walk:
		for i := len(hops) - 1; i >= 0; i-- {
			list := strings.Split(hops[i], ",")
			for j := len(list) - 1; j >= 0; j-- {
				hop, err := netip.ParseAddr(strings.TrimSpace(list[j]))
				if err != nil {
					break walk // a garbled header: trust no further
				}
				addr = hop.Unmap()
				if !a.trusted(addr) {
					break walk
				}
			}
		}
	}
	if addr.IsLoopback() && !a.lim.LimitLoopback {
		return netip.Prefix{}
	}
	bits := addr.BitLen()
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.Prefix(bits)
	return p
}

// trusted reports whether addr is one of the trusted proxies.
func (a *admission) trusted(addr netip.Addr) bool {
	for _, p := range a.proxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// peerAddr reads the IP of a RemoteAddr ("192.0.2.1:5555", "[::1]:5555").
func peerAddr(remote string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// handshakeWatch counts the TCP connections that the handshake timeout
// (http.Server.ReadHeaderTimeout) cut off: those that lasted at least the
// timeout and ended before any request reached a handler. Its hooks are
// the http.Server's ConnContext and ConnState, and wrap its Handler.
type handshakeWatch struct {
	timeout time.Duration
	obs     *observer

	mu    sync.Mutex
	conns map[net.Conn]*connMark
}

// connMark is what the watch knows of one TCP connection.
type connMark struct {
	start  time.Time
	served atomic.Bool // a request reached the handler
}

type connMarkKey struct{}

func (h *handshakeWatch) connContext(ctx context.Context, c net.Conn) context.Context {
	m := &connMark{start: time.Now()}
	h.mu.Lock()
	if h.conns == nil {
		h.conns = make(map[net.Conn]*connMark)
	}
	h.conns[c] = m
	h.mu.Unlock()
	return context.WithValue(ctx, connMarkKey{}, m)
}

func (h *handshakeWatch) connState(c net.Conn, st http.ConnState) {
	if st != http.StateClosed && st != http.StateHijacked {
		return
	}
	h.mu.Lock()
	m := h.conns[c]
	delete(h.conns, c)
	h.mu.Unlock()
	if st == http.StateClosed && m != nil && !m.served.Load() && time.Since(m.start) >= h.timeout {
		h.obs.refused(limitHandshakeTimeout)
	}
}

// wrap marks the connection of every request that reaches next.
func (h *handshakeWatch) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m, ok := r.Context().Value(connMarkKey{}).(*connMark); ok {
			m.served.Store(true)
		}
		next.ServeHTTP(w, r)
	})
}

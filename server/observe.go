package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/websocket"
)

// ReadyChecker is what a broker implements to take part in GET /readyz:
// Ready returns nil when the broker can serve, or an error saying why not
// (for example natsbroker's and redisbroker's Broker while their server is
// unreachable). A broker without the method is always ready.
type ReadyChecker interface {
	Ready() error
}

// The endpoint label values of the connection metrics.
const (
	endpointWS     = "ws"
	endpointChat   = "chat"
	endpointEcho   = "echo"
	endpointBridge = "bridge"
	endpointExec   = "exec"
)

// latencyBuckets are the bounds, in seconds, of the publish-to-delivery
// latency histogram: 100 µs to 10 s.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// observer holds a server's metrics and its connection log. Everything a
// message touches is resolved beforehand (per namespace at start, per
// endpoint at mount), so the hot path only adds to counters.
type observer struct {
	reg *prometheus.Registry
	log *slog.Logger

	connections *prometheus.GaugeVec
	handshakes  *prometheus.CounterVec
	slowCloses  *prometheus.CounterVec
	queueDrops  *prometheus.CounterVec
	closesSent  *prometheus.CounterVec
	closesRecv  *prometheus.CounterVec
	conflated   *prometheus.CounterVec
	refusals    *prometheus.CounterVec

	ns map[string]*nsStats // by namespace name; read-only after newObserver
}

// The values of the via label of the messages published: over a
// WebSocket connection, or through the HTTP API.
const (
	viaWebSocket = "websocket"
	viaAPI       = "api"
)

// nsStats are one namespace's counters of channel traffic.
type nsStats struct {
	in, inBytes       prometheus.Counter // via WebSocket
	apiIn, apiInBytes prometheus.Counter // via the HTTP API
	out, outBytes     prometheus.Counter
	latency           prometheus.Observer
}

// endpointStats are one endpoint's connection metrics, resolved once.
type endpointStats struct {
	obs          *observer
	name         string
	subprotocols []string // what Accept chooses from (for the open line)
	current      prometheus.Gauge
	accepted     prometheus.Counter
	slow         prometheus.Counter
	drops        prometheus.Counter
	conflated    prometheus.Counter
}

func newObserver(log *slog.Logger, namespaces map[string]pubsub.NamespaceOptions) *observer {
	o := &observer{reg: prometheus.NewRegistry(), log: log, ns: make(map[string]*nsStats)}
	o.connections = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "duplex_connections", Help: "Open WebSocket connections, by endpoint."}, []string{"endpoint"})
	o.handshakes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_handshakes_total", Help: "WebSocket upgrade requests, by endpoint and outcome (accepted with status 101, or refused with the HTTP status answered)."},
		[]string{"endpoint", "outcome", "status"})
	o.slowCloses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_slow_consumer_closes_total", Help: "Connections closed with 1013 because their send queue was full."}, []string{"endpoint"})
	o.queueDrops = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_send_queue_drops_total", Help: "Outgoing messages that did not fit a connection's full send queue and were dropped."}, []string{"endpoint"})
	o.conflated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_send_queue_conflated_total", Help: "Waiting messages of conflating namespaces replaced in a send queue by a newer one with the same key."}, []string{"endpoint"})
	o.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_limit_refusals_total", Help: "Handshakes, messages, commands and connections refused or ended by a limit, by limit (docs/operations.md, Limits)."}, []string{"limit"})
	o.closesSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_close_codes_sent_total", Help: "Close frames the server started, by endpoint and status code."}, []string{"endpoint", "code"})
	o.closesRecv = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_close_codes_received_total", Help: "How clients ended connections, by endpoint and the status code of their close frame (1005: no code, 1006: no close frame)."},
		[]string{"endpoint", "code"})
	in := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_channel_messages_in_total", Help: "Messages published to channels, by namespace and by where they came from (via: websocket or api)."}, []string{"namespace", "via"})
	inBytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_channel_bytes_in_total", Help: "Bytes published to channels (via websocket: the WebSocket messages that published; via api: the data of each message), by namespace."}, []string{"namespace", "via"})
	out := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_channel_messages_out_total", Help: "Channel messages, presence events and reports of lost messages written to WebSocket connections, by namespace."}, []string{"namespace"})
	outBytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "duplex_channel_bytes_out_total", Help: "Bytes of the channel messages written to WebSocket connections, by namespace."}, []string{"namespace"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "duplex_delivery_latency_seconds", Help: "From a message's acceptance by the broker to its handing to a subscriber's connection, by namespace.",
		Buckets: latencyBuckets}, []string{"namespace"})
	o.reg.MustRegister(o.connections, o.handshakes, o.slowCloses, o.queueDrops, o.conflated, o.refusals, o.closesSent, o.closesRecv,
		in, inBytes, out, outBytes, latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for name := range namespaces {
		o.ns[name] = &nsStats{
			in: in.WithLabelValues(name, viaWebSocket), inBytes: inBytes.WithLabelValues(name, viaWebSocket),
			apiIn: in.WithLabelValues(name, viaAPI), apiInBytes: inBytes.WithLabelValues(name, viaAPI),
			out: out.WithLabelValues(name), outBytes: outBytes.WithLabelValues(name),
			latency: latency.WithLabelValues(name),
		}
	}
	for _, l := range limitNames {
		o.refusals.WithLabelValues(l)
	}
	return o
}

// endpoint resolves the metrics of one endpoint.
func (o *observer) endpoint(name string, subprotocols []string) *endpointStats {
	if o == nil {
		return nil
	}
	return &endpointStats{
		obs: o, name: name, subprotocols: subprotocols,
		current:   o.connections.WithLabelValues(name),
		accepted:  o.handshakes.WithLabelValues(name, "accepted", "101"),
		slow:      o.slowCloses.WithLabelValues(name),
		drops:     o.queueDrops.WithLabelValues(name),
		conflated: o.conflated.WithLabelValues(name),
	}
}

// namespace returns the counters of channel's namespace, nil for none.
func (o *observer) namespace(channel string) *nsStats {
	if o == nil {
		return nil
	}
	return o.ns[pubsub.Namespace(channel)]
}

// published counts a message a client published to channel, size bytes.
func (ns *nsStats) published(size int) {
	if ns != nil {
		ns.in.Inc()
		ns.inBytes.Add(float64(size))
	}
}

// publishedAPI counts a message the HTTP API published, size bytes of data.
func (ns *nsStats) publishedAPI(size int) {
	if ns != nil {
		ns.apiIn.Inc()
		ns.apiInBytes.Add(float64(size))
	}
}

// outFrame is one queued outgoing message. Channel traffic carries its
// namespace's counters and the time the broker accepted the message, so
// that the writer counts it and observes its latency once it is written.
type outFrame struct {
	pm   *websocket.PreparedMessage
	ns   *nsStats // nil for answers
	size int      // payload bytes
	pub  int64    // Message.Time in Unix nanoseconds; 0: no latency
	q    queueInfo
	lost *lostRange // set on a send queue's marker of dropped messages (see sendQueue)
}

// frame completes an event's encoding f with what the metrics need.
func (o *observer) frame(e *pubsub.Event, f *outFrame) any {
	if f == nil {
		return nil
	}
	if o != nil {
		f.ns = o.namespace(e.Channel)
	}
	if e.Kind == pubsub.EventMessage && !e.Message.Time.IsZero() {
		f.pub = e.Message.Time.UnixNano()
	}
	return f
}

// written counts a batch the writer handed to the connection at when.
func writtenFrames(batch []*outFrame, when time.Time) {
	var now int64
	for _, f := range batch {
		if f.ns == nil {
			continue
		}
		f.ns.out.Inc()
		f.ns.outBytes.Add(float64(f.size))
		if f.pub != 0 {
			if now == 0 {
				now = when.UnixNano()
			}
			f.ns.latency.Observe(float64(now-f.pub) / 1e9)
		}
	}
}

// connRecord is one WebSocket connection as the metrics and the log see
// it, from the upgrade to the end of its handler.
type connRecord struct {
	ep         *endpointStats
	remote     string
	subproto   string
	start      time.Time
	msgsIn     atomic.Int64
	msgsOut    atomic.Int64
	sentCode   atomic.Int32 // the close code the server sent first, 0 if none
	sentReason atomic.Pointer[string]
	err        error // how the connection ended, set by the handler
}

type connRecordKey struct{}

// recordOf returns the record of the connection r upgrades, nil when the
// handler runs outside a Server.
func recordOf(r *http.Request) *connRecord {
	rec, _ := r.Context().Value(connRecordKey{}).(*connRecord)
	return rec
}

// read counts messages read.
func (rec *connRecord) read() {
	if rec != nil {
		rec.msgsIn.Add(1)
	}
}

// wrote counts n messages written.
func (rec *connRecord) wrote(n int) {
	if rec != nil {
		rec.msgsOut.Add(int64(n))
	}
}

// sent records a close the server starts and reports whether it is the
// first: only that one counts, as only the first close frame goes out.
func (rec *connRecord) sent(code websocket.StatusCode, reason string) bool {
	if rec == nil || !rec.sentCode.CompareAndSwap(0, int32(code)) {
		return false
	}
	rec.sentReason.Store(&reason)
	rec.ep.obs.closesSent.WithLabelValues(rec.ep.name, strconv.Itoa(int(code))).Inc()
	return true
}

// slowConsumer counts a message dropped from a full queue and, the first
// time, the 1013 close it causes.
func (rec *connRecord) slowConsumer() {
	if rec == nil {
		return
	}
	rec.ep.drops.Inc()
	if rec.sent(websocket.StatusTryAgainLater, closeReasonSlow) {
		rec.ep.slow.Inc()
	}
}

// end records the error that ended the connection.
func (rec *connRecord) end(err error) {
	if rec != nil {
		rec.err = err
	}
}

// instrument wraps a WebSocket endpoint: each upgrade request is counted as
// accepted or refused, and each accepted connection is counted while open
// and logged when it opens and closes. Requests that do not ask for an
// upgrade (a page served on the same path) pass through untouched.
func (ep *endpointStats) instrument(h http.Handler) http.Handler {
	if ep == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isUpgrade(r) {
			h.ServeHTTP(w, r)
			return
		}
		rec := &connRecord{ep: ep, remote: r.RemoteAddr, subproto: chooseSubprotocol(r, ep.subprotocols)}
		hw := &hijackWriter{ResponseWriter: w, rec: rec}
		h.ServeHTTP(hw, r.WithContext(context.WithValue(r.Context(), connRecordKey{}, rec)))
		if !hw.hijacked {
			status := hw.status
			if status == 0 {
				status = http.StatusOK
			}
			ep.obs.handshakes.WithLabelValues(ep.name, "refused", strconv.Itoa(status)).Inc()
			return
		}
		ep.closed(rec)
	})
}

// opened counts and logs a connection whose upgrade took over the
// transport.
func (ep *endpointStats) opened(rec *connRecord) {
	rec.start = time.Now()
	ep.accepted.Inc()
	ep.current.Inc()
	ep.obs.log.Info("connection opened", "endpoint", ep.name, "remote", rec.remote, "subprotocol", rec.subproto)
}

// closed counts and logs the end of a connection: the code the server
// sent, or the one the client's close frame carried.
func (ep *endpointStats) closed(rec *connRecord) {
	ep.current.Dec()
	by, code, reason := "", websocket.StatusCode(0), ""
	var pe *websocket.ProtocolError
	switch {
	case rec.sentCode.Load() != 0:
		by, code = "server", websocket.StatusCode(rec.sentCode.Load())
		if p := rec.sentReason.Load(); p != nil {
			reason = *p
		}
	case errors.As(rec.err, &pe):
		by, code, reason = "server", pe.Code, pe.Reason
		ep.obs.closesSent.WithLabelValues(ep.name, strconv.Itoa(int(code))).Inc()
		if code == websocket.StatusMessageTooBig {
			ep.obs.refused(limitMessageSize)
		}
	case websocket.CloseStatus(rec.err) >= 0:
		var ce *websocket.CloseError
		errors.As(rec.err, &ce)
		by, code, reason = "client", ce.Code, ce.Reason
		ep.obs.closesRecv.WithLabelValues(ep.name, strconv.Itoa(int(code))).Inc()
	}
	attrs := []any{"endpoint", ep.name, "remote", rec.remote, "duration", time.Since(rec.start)}
	if by != "" {
		attrs = append(attrs, "by", by, "code", int(code), "reason", reason)
	}
	if ep.name != endpointBridge && ep.name != endpointExec {
		attrs = append(attrs, "messages_in", rec.msgsIn.Load(), "messages_out", rec.msgsOut.Load())
	}
	ep.obs.log.Info("connection closed", attrs...)
}

// closing returns what counts the close a shutdown or drain sends to a
// connection of ep (1001 or 1012).
func (ep *endpointStats) closing(rec *connRecord) func(code websocket.StatusCode, reason string) {
	return func(code websocket.StatusCode, reason string) {
		if rec != nil {
			rec.sent(code, reason)
		} else if ep != nil {
			ep.obs.closesSent.WithLabelValues(ep.name, strconv.Itoa(int(code))).Inc()
		}
	}
}

// chooseSubprotocol returns the subprotocol Accept picks from ours: the
// first one the client offered.
func chooseSubprotocol(r *http.Request, ours []string) string {
	for _, p := range ours {
		if offersSubprotocol(r, p) {
			return p
		}
	}
	return ""
}

// hijackWriter notes the status of a refused upgrade and the takeover of
// an accepted one.
type hijackWriter struct {
	http.ResponseWriter
	rec      *connRecord
	status   int
	hijacked bool
}

func (w *hijackWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *hijackWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Hijack takes the connection over for WebSocket: from here on it is an
// open connection.
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
		w.rec.ep.opened(w.rec)
	}
	return c, brw, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// mountObservability registers /metrics, /healthz, /readyz and, with
// Config.Pprof, /debug/pprof/.
func (s *Server) mountObservability() {
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.obs.reg, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	if s.cfg.Pprof {
		s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		s.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		s.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
}

// readyz answers 200 {"ready":true} when the server takes connections,
// and otherwise 503 with what is not ready: {"ready":false,"not_ready":
// {"server":"shutting down","broker":"..."}}.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	notReady := map[string]string{}
	if s.shuttingDown.Load() {
		notReady["server"] = "shutting down"
	}
	if rc, ok := s.hub.Broker().(ReadyChecker); ok {
		if err := rc.Ready(); err != nil {
			notReady["broker"] = err.Error()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if len(notReady) == 0 {
		w.Write([]byte(`{"ready":true}` + "\n"))
		return
	}
	b, _ := json.Marshal(struct {
		Ready    bool              `json:"ready"`
		NotReady map[string]string `json:"not_ready"`
	}{false, notReady})
	w.WriteHeader(http.StatusServiceUnavailable)
	w.Write(append(b, '\n'))
}

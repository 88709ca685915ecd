package server

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/duplex-ws/duplex/bridge"
	"github.com/duplex-ws/duplex/websocket"
)

// BridgeRoute is a WebSocket-to-TCP route: a WebSocket at Path carries a
// byte stream to Target (see bridge.TCPHandler). The target is fixed here,
// so the server is never an open proxy.
type BridgeRoute struct {
	// Path is the route, e.g. "/mqtt"; one ending in "/" also serves the
	// paths below it.
	Path string
	// Target is where each connection goes.
	Target bridge.Target
	// Subprotocols lists the subprotocols the route accepts, e.g. "mqtt".
	Subprotocols []string
	// RefuseText closes a connection that sends a text message with 1003
	// (see bridge.TCPHandler.RefuseText), for targets whose protocol is
	// binary only, such as MQTT.
	RefuseText bool
}

// ExecRoute is a WebSocket-to-process route: each WebSocket at Path runs
// Command and talks to its stdin and stdout (see bridge.ExecHandler).
type ExecRoute struct {
	// Path is the route, e.g. "/chat-bot"; given to the process as
	// SCRIPT_NAME.
	Path string
	// Command is the program and its arguments.
	Command []string
	// Binary passes raw bytes both ways instead of lines.
	Binary bool
	// MaxProcesses caps this route's processes (0:
	// bridge.DefaultMaxProcesses); beyond it the handshake gets 503.
	MaxProcesses int
}

// ParseBridgeRoute parses the value of duplex serve's --bridge flag,
// PATH=URL, where URL is a target as bridge.ParseTarget reads it plus any
// number of subprotocol=NAME parameters and an optional text=refuse (text
// messages close the connection with 1003) or text=accept (the default:
// their bytes go to the target), e.g.
// "/mqtt=tcp://127.0.0.1:1883?subprotocol=mqtt&text=refuse".
func ParseBridgeRoute(spec string) (BridgeRoute, error) {
	path, raw, err := splitRoute(spec)
	if err != nil {
		return BridgeRoute{}, err
	}
	u, err := url.Parse(raw)
	if err != nil {
		return BridgeRoute{}, fmt.Errorf("%q: %v", spec, err)
	}
	q := u.Query()
	subprotocols := q["subprotocol"]
	for _, p := range subprotocols {
		if p == "" || strings.ContainsAny(p, " ,\t") {
			return BridgeRoute{}, fmt.Errorf("%q: bad subprotocol %q", spec, p)
		}
	}
	q.Del("subprotocol")
	refuseText := false
	if text, ok := q["text"]; ok {
		switch {
		case len(text) == 1 && text[0] == "refuse":
			refuseText = true
		case len(text) == 1 && text[0] == "accept":
		default:
			return BridgeRoute{}, fmt.Errorf("%q: text=%s: want text=refuse or text=accept, once", spec, strings.Join(text, ","))
		}
		q.Del("text")
	}
	u.RawQuery = q.Encode()
	target, err := bridge.ParseTarget(u.String())
	if err != nil {
		return BridgeRoute{}, err
	}
	return BridgeRoute{Path: path, Target: target, Subprotocols: subprotocols, RefuseText: refuseText}, nil
}

// ParseExecRoute parses the value of duplex serve's --exec flag,
// PATH=COMMAND [ARGS...], e.g. "/chat-bot=./bot.sh --room lobby". The
// command is split on spaces (bridge.ParseCommand): no shell, no quoting.
func ParseExecRoute(spec string) (ExecRoute, error) {
	path, cmdline, err := splitRoute(spec)
	if err != nil {
		return ExecRoute{}, err
	}
	argv, err := bridge.ParseCommand(cmdline)
	if err != nil {
		return ExecRoute{}, fmt.Errorf("%q: %v", spec, err)
	}
	return ExecRoute{Path: path, Command: argv}, nil
}

// splitRoute splits PATH=VALUE and checks the path.
func splitRoute(spec string) (path, value string, err error) {
	path, value, ok := strings.Cut(spec, "=")
	if !ok || value == "" {
		return "", "", fmt.Errorf("%q: want PATH=VALUE", spec)
	}
	if err := checkRoutePath(path); err != nil {
		return "", "", fmt.Errorf("%q: %v", spec, err)
	}
	return path, value, nil
}

func checkRoutePath(path string) error {
	if !strings.HasPrefix(path, "/") || path == "/" {
		return fmt.Errorf("path %q must start with / and name a route", path)
	}
	if strings.ContainsAny(path, "{} \t?#%") {
		return fmt.Errorf("path %q may not hold wildcards, spaces, ? # or %%", path)
	}
	return nil
}

// mountGateways registers the bridge and exec routes. A route whose path
// is bad or already taken is not registered; the first such error is kept
// and returned by Serve, so the server does not start half configured.
func (s *Server) mountGateways(accept websocket.AcceptOptions) {
	mount := func(path string, h http.Handler, ep *endpointStats) {
		if s.gatewayErr != nil {
			return
		}
		if err := checkRoutePath(path); err != nil {
			s.gatewayErr = err
			return
		}
		pattern := "GET " + path
		if _, taken := s.mux.Handler(&http.Request{Method: http.MethodGet, URL: &url.URL{Path: path}, Host: "localhost"}); taken == pattern {
			s.gatewayErr = fmt.Errorf("route %s is already taken", path)
			return
		}
		s.mux.Handle(pattern, ep.instrument(s.admission.guard(h)))
	}
	for _, b := range s.cfg.Bridges {
		ep := s.obs.endpoint(endpointBridge, b.Subprotocols)
		gw := s.gatewayTrack(ep)
		mount(b.Path, &bridge.TCPHandler{
			Target:       b.Target,
			Subprotocols: b.Subprotocols,
			RefuseText:   b.RefuseText,
			Accept:       accept,
			OnConn:       gw.onConn,
			OnActivity:   gw.onActivity,
			Log:          s.cfg.Log,
		}, ep)
	}
	for _, e := range s.cfg.Execs {
		if len(e.Command) == 0 {
			if s.gatewayErr == nil {
				s.gatewayErr = fmt.Errorf("exec route %s has no command", e.Path)
			}
			continue
		}
		ep := s.obs.endpoint(endpointExec, nil)
		gw := s.gatewayTrack(ep)
		mount(e.Path, &bridge.ExecHandler{
			Command:      e.Command,
			ScriptName:   strings.TrimSuffix(e.Path, "/"),
			Binary:       e.Binary,
			MaxProcesses: e.MaxProcesses,
			Accept:       accept,
			OnConn:       gw.onConn,
			OnActivity:   gw.onActivity,
			Log:          s.cfg.Log,
		}, ep)
	}
}

// gatewayConns tracks the connections of one bridge or exec route for
// shutdown and drain, counts the codes sent to them, and closes those
// idle for Limits.IdleTimeout with 1001 "idle timeout": a message's bytes
// passing either way, or an answered ping, is activity.
type gatewayConns struct {
	s     *Server
	ep    *endpointStats
	idle  time.Duration // <= 0: no idle timeout
	watch sync.Map      // *websocket.Conn -> *idleWatch
}

// gatewayTrack returns the connection hooks of a bridge or exec route.
func (s *Server) gatewayTrack(ep *endpointStats) *gatewayConns {
	return &gatewayConns{s: s, ep: ep, idle: s.cfg.Limits.Effective().IdleTimeout}
}

// onConn is the route's OnConn.
func (g *gatewayConns) onConn(c *websocket.Conn) func() {
	sent := g.ep.closing(nil)
	closeWith := func(code websocket.StatusCode, reason string) {
		sent(code, reason)
		c.Close(code, reason)
	}
	untrack := g.s.conns.trackWith(c, closeWith)
	w := startIdleWatch(c, g.idle, func() {
		g.s.obs.refused(limitIdleTimeout)
		closeWith(websocket.StatusGoingAway, closeReasonIdle)
	})
	if w == nil {
		return untrack
	}
	g.watch.Store(c, w)
	return func() {
		g.watch.Delete(c)
		w.stop()
		untrack()
	}
}

// onActivity is the route's OnActivity.
func (g *gatewayConns) onActivity(c *websocket.Conn) {
	if w, ok := g.watch.Load(c); ok {
		w.(*idleWatch).heard()
	}
}

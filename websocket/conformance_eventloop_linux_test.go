package websocket_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
	"github.com/duplex-ws/duplex/websocket/eventloop"
)

// On Linux every server conformance group that runs over echoModes, and
// the handshake cases, also run against the event-loop server: the same
// parser and handshake checks driven from epoll must give the same bytes,
// statuses and close codes.
func init() {
	echoModes = append(echoModes, echoEventLoop)
	newEventLoopServer = newEventLoopConfServer
}

// newEventLoopConfServer starts an eventloop.Server echoing every message
// from OnMessage, and records how each connection ended as confServer does
// for Accept: OnClose's error, or OnHandshakeError's for a refusal.
func newEventLoopConfServer(t *testing.T, opts *websocket.AcceptOptions) *confServer {
	t.Helper()
	s := &confServer{}
	var addrs sync.Map // *eventloop.Conn -> remote address
	srv := &eventloop.Server{
		Options: opts,
		Loops:   2,
		OnOpen: func(c *eventloop.Conn) {
			addrs.Store(c, c.RemoteAddr().String())
		},
		OnMessage: func(c *eventloop.Conn, typ websocket.MessageType, p []byte) {
			c.Write(typ, p)
		},
		OnClose: func(c *eventloop.Conn, err error) {
			if a, ok := addrs.LoadAndDelete(c); ok {
				s.ended(a.(string), err)
			}
		},
		OnHandshakeError: func(remote net.Addr, err error) {
			if remote != nil {
				s.ended(remote.String(), err)
			}
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Close()
		select {
		case err := <-served:
			if !errors.Is(err, eventloop.ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-ctx.Done():
			t.Errorf("Serve did not return after Close")
		}
	})
	return s
}

//go:build !linux

package eventloop

import (
	"context"
	"net"

	"github.com/duplex-ws/duplex/websocket"
)

type loop struct{}

type serverImpl struct{}

// Serve returns ErrUnsupported: the event loop needs epoll.
func (s *Server) Serve(ln net.Listener) error { return ErrUnsupported }

// Shutdown does nothing: Serve never ran.
func (s *Server) Shutdown(ctx context.Context) error { return nil }

// Close does nothing: Serve never ran.
func (s *Server) Close() error { return nil }

// Broadcast returns ErrUnsupported.
func (s *Server) Broadcast(typ websocket.MessageType, p []byte, conns []*Conn) error {
	return ErrUnsupported
}

// Write returns ErrUnsupported.
func (c *Conn) Write(typ websocket.MessageType, p []byte) error { return ErrUnsupported }

// Close returns ErrUnsupported.
func (c *Conn) Close(code websocket.StatusCode, reason string) error { return ErrUnsupported }

// RemoteAddr returns nil.
func (c *Conn) RemoteAddr() net.Addr { return nil }

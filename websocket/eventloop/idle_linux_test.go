package eventloop

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"

	"github.com/duplex-ws/duplex/websocket"
)

// TestIdleConnsHoldNothing: once their traffic is done, connections hold
// no buffer and no goroutine, whatever the traffic was: a handshake and
// frames that came a byte per write (the handshake and message buffers
// that span reads), a message larger than the loop's read buffer echoed
// to a peer that reads it as it comes (a message buffer and a write queue),
// and a hundred plain connections. The loop is held while the test looks
// at its connections.
func TestIdleConnsHoldNothing(t *testing.T) {
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableIOURing=%v", disable), func(t *testing.T) {
			s := &Server{DisableIOURing: disable}
			addr, g := gatedServer(t, s, func(c *Conn, typ websocket.MessageType, p []byte) { c.Write(typ, p) })
			goroutines := runtime.NumGoroutine()

			slow := dialPeer(t, addr, nil)
			slow.c.(*net.TCPConn).SetNoDelay(true)
			stream := append([]byte(requestFor(addr)), frame(false, 0x1, []byte("one byte "))...)
			stream = append(stream, frame(true, 0x0, []byte("at a time"))...)
			for i := range stream {
				slow.write(stream[i : i+1])
			}
			slow.expectSwitch()
			slow.expectMessage(0x1, []byte("one byte at a time"))

			big := open(t, addr)
			m := payload(3*uringReadBufSize/2, 7) // more than one read takes, with io_uring or without
			go big.c.Write(frame(true, 0x2, m))   // the echo starts before the message is all written
			big.expectMessage(0x2, m)

			for range 100 {
				open(t, addr)
			}
			if n := runtime.NumGoroutine() - goroutines; n > 10 {
				t.Errorf("%d more goroutines with 102 connections open, want none per connection", n)
			}

			g.hold()
			conns := 0
			loopsOf(s)[0].srv.table.each(func(c *Conn) {
				conns++
				c.mu.Lock()
				out := c.out
				c.mu.Unlock()
				if c.hs != nil || c.msg != nil || out != nil {
					t.Errorf("an idle connection holds a handshake buffer (%v), a message buffer (%v) or a write queue (%v)", c.hs != nil, c.msg != nil, out != nil)
				}
			})
			if conns != 103 { // with the gate's
				t.Fatalf("%d connections in the table, want 103", conns)
			}
		})
	}
}

// TestStalledHandshake: a peer that sent half its request and stopped
// holds nobody up. Connections opened after it on the same loop are
// answered and echoed while it waits, and it gets its 101 once the rest
// of its request comes.
func TestStalledHandshake(t *testing.T) {
	addr := startServer(t, &Server{Loops: 1})
	stalled := dialPeer(t, addr, nil)
	req := requestFor(addr)
	stalled.write([]byte(req[:len(req)/2]))
	for i := range 3 {
		p := open(t, addr)
		msg := []byte(fmt.Sprintf("while the other waits %d", i))
		p.write(frame(true, 0x1, msg))
		p.expectMessage(0x1, msg)
	}
	stalled.write([]byte(req[len(req)/2:]))
	stalled.expectSwitch()
	stalled.write(frame(true, 0x1, []byte(strings.Repeat("late ", 3))))
	stalled.expectMessage(0x1, []byte("late late late "))
}

package websocket_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestAcceptFramesWithHandshake: frames a client sends in the same write as
// its handshake, already buffered by net/http when Accept hijacks the
// connection, are read in order and whole, and so are the frames after
// them (which Accept then reads through the same buffer). Without them in
// the request's write, the connection reads the socket directly; both ways
// must echo the same bytes.
func TestAcceptFramesWithHandshake(t *testing.T) {
	for _, pipelined := range []bool{true, false} {
		t.Run(fmt.Sprintf("pipelined=%v", pipelined), func(t *testing.T) {
			s := newConfServer(t, echoWhole, nil)
			p := dialRaw(t, s.addr)
			var req strings.Builder
			fmt.Fprintf(&req, "GET / HTTP/1.1\r\nHost: %s\r\n", s.addr)
			for _, l := range baseHandshake() {
				req.WriteString(l + "\r\n")
			}
			req.WriteString("\r\n")
			first := []outFrame{frame(opText, []byte("hello")), frame(opBinary, payloadOf(3000))}
			if pipelined {
				p.write(append([]byte(req.String()), encodeFrames(first...)...))
			} else {
				p.write([]byte(req.String()))
			}
			checkSwitching(t, p.readResponse())
			if !pipelined {
				p.writeFrames(first...)
			}
			p.writeFrames(frame(opBinary, payloadOf(70000)))
			for i, want := range []struct {
				op      byte
				payload []byte
			}{{opText, []byte("hello")}, {opBinary, payloadOf(3000)}, {opBinary, payloadOf(70000)}} {
				op, payload, _ := p.readMessage(5 * time.Second)
				if op != want.op || !bytes.Equal(payload, want.payload) {
					t.Fatalf("echo %d: op %#x, %d bytes; want op %#x, %d bytes", i, op, len(payload), want.op, len(want.payload))
				}
			}
		})
	}
}

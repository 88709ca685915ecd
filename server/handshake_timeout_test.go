package server

import (
	"io"
	"net"
	"testing"
	"time"
)

// A client that trickles its upgrade request in, a byte at a time, is cut
// off once the handshake timeout passes, however steadily it trickles.
func TestTricklingHandshakeIsCutOff(t *testing.T) {
	s := New(Config{Listen: "127.0.0.1:0", HandshakeTimeout: 300 * time.Millisecond})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	defer s.http.Close()

	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	req := "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nX-Padding: " +
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	cut := false
	for i := 0; i < len(req); i++ {
		if _, err := conn.Write([]byte{req[i]}); err != nil {
			cut = true
			break
		}
		time.Sleep(20 * time.Millisecond)
		if time.Since(start) > 5*time.Second {
			break
		}
	}
	// Whether or not a write failed, the server must have closed its side.
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(conn)
	elapsed := time.Since(start)
	if err != nil && !cut {
		t.Fatalf("connection not closed by the server: %v (after %v)", err, elapsed)
	}
	if elapsed > 4*time.Second {
		t.Fatalf("trickling handshake lasted %v; want it cut near 300ms", elapsed)
	}
	// net/http closes a timed-out header read without an answer, except
	// when the timeout cuts a line in the middle (here the request line,
	// at 20 ms a byte): it reads the piece as a whole line, finds it
	// malformed and answers exactly this 400 (docs/operations.md,
	// "Limits"). After a failed write the read may end in a reset.
	const badRequest = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"
	if len(b) != 0 && string(b) != badRequest {
		t.Fatalf("trickling handshake was answered %q, want nothing or %q", b, badRequest)
	}
}

package eventloop

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/duplex-ws/duplex/websocket"
)

const testRequest = "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

// feedPieces feeds b to gatherHead in pieces of the given sizes (the rest
// in one last piece) and returns the head, the bytes after it and the
// refusal, as the loop would see them.
func feedPieces(b []byte, sizes []int, max int) (head, rest []byte, he *websocket.HandshakeError) {
	var hs *handshake
	for len(b) > 0 {
		n := len(b)
		if len(sizes) > 0 {
			n = min(max1(sizes[0]), len(b))
			sizes = sizes[1:]
		}
		piece := append([]byte(nil), b[:n]...) // the loop reuses its buffer
		b = b[n:]
		var h []byte
		hs, h, rest, he = gatherHead(hs, piece, max)
		if he != nil {
			return nil, nil, he
		}
		if h != nil {
			return h, append(rest, b...), nil
		}
	}
	return nil, nil, nil
}

func max1(n int) int { return max(n, 1) }

func TestGatherHeadAnySplit(t *testing.T) {
	frames := []byte{0x81, 0x85, 1, 2, 3, 4, 'h' ^ 1, 'e' ^ 2, 'l' ^ 3, 'l' ^ 4, 'o' ^ 1}
	stream := append([]byte(testRequest), frames...)
	ones := make([]int, len(stream))
	for i := range ones {
		ones[i] = 1
	}
	check := func(name string, sizes []int) {
		head, rest, he := feedPieces(stream, sizes, DefaultMaxHeaderBytes)
		if he != nil || string(head) != testRequest || !bytes.Equal(rest, frames) {
			t.Fatalf("%s: head %q, rest % x, refusal %v; want the request head and the frame bytes after it", name, head, rest, he)
		}
	}
	check("byte by byte", ones)
	for k := 1; k < len(stream); k++ {
		check("split at "+string(rune('0'+k%10)), []int{k})
	}

	// Bare LF line ends, as net/http accepts them.
	lf := strings.ReplaceAll(testRequest, "\r\n", "\n")
	head, _, he := feedPieces([]byte(lf), ones, DefaultMaxHeaderBytes)
	if he != nil || string(head) != lf {
		t.Fatalf("LF-only request: head %q, refusal %v", head, he)
	}
	// No end yet: nothing is returned, and the state is kept.
	head, _, he = feedPieces([]byte(testRequest[:len(testRequest)-2]), ones, DefaultMaxHeaderBytes)
	if head != nil || he != nil {
		t.Fatalf("incomplete head: got head %q, refusal %v", head, he)
	}
}

func TestGatherHeadLimit(t *testing.T) {
	n := len(testRequest)
	for _, sizes := range [][]int{nil, {1, 1, 1}, {n - 1}} {
		if head, _, he := feedPieces([]byte(testRequest), sizes, n); he != nil || string(head) != testRequest {
			t.Fatalf("limit %d for a %d-byte head (pieces %v): head %q, refusal %v", n, n, sizes, head, he)
		}
		head, _, he := feedPieces([]byte(testRequest), sizes, n-1)
		if he == nil || he.Status != http.StatusRequestHeaderFieldsTooLarge || head != nil {
			t.Fatalf("limit %d for a %d-byte head (pieces %v): head %q, refusal %v; want 431", n-1, n, sizes, head, he)
		}
	}
	// A head that never ends is refused as soon as it reaches the limit.
	endless := bytes.Repeat([]byte("X-Filler: 0123456789\r\n"), 1000)
	if _, _, he := feedPieces(endless, []int{100, 100, 100}, 1000); he == nil || he.Status != 431 {
		t.Fatalf("endless head: refusal %v, want 431", he)
	}
}

// acceptStatus is what websocket.Accept answers to the request in head, on
// an httptest.ResponseRecorder (which cannot be hijacked: a request that
// passes every check gets 500 with CheckHijack).
func acceptStatus(t testing.TB, head []byte) (int, *websocket.HandshakeError) {
	req, err := http.ReadRequest(bufioReader(head))
	if err != nil {
		t.Fatalf("ReadRequest: %v", err)
	}
	rec := httptest.NewRecorder()
	_, err = websocket.Accept(rec, req, nil)
	var he *websocket.HandshakeError
	errors.As(err, &he)
	return rec.Code, he
}

func TestAnswerHead(t *testing.T) {
	resp, sub, err := answerHead([]byte(testRequest), nil)
	want := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
	if err != nil || sub != (websocket.Agreement{}) || string(resp) != want {
		t.Fatalf("answer %q, %+v, %v; want %q", resp, sub, err, want)
	}
	resp, _, err = answerHead([]byte("GARBAGE\r\n\r\n"), nil)
	var he *websocket.HandshakeError
	if !errors.As(err, &he) || he.Status != 400 || !bytes.HasPrefix(resp, []byte("HTTP/1.1 400 Bad Request\r\n")) {
		t.Fatalf("malformed request: %q, %v; want 400", resp, err)
	}
	resp, _, err = answerHead([]byte(strings.Replace(testRequest, "GET", "POST", 1)), nil)
	if !errors.As(err, &he) || he.Status != 405 || he.Check != websocket.CheckMethod ||
		!bytes.Contains(resp, []byte("\r\nAllow: GET\r\n")) || !bytes.HasSuffix(resp, []byte("\r\n\r\nWebSocket handshake must use GET, not POST\n")) {
		t.Fatalf("POST: %q, %v; want 405 with Allow: GET and the one-line reason", resp, err)
	}
}

// FuzzHandshake feeds a request in pieces to gatherHead and answerHead: the
// pieces must not matter, nothing may panic, and the status must be the one
// websocket.Accept gives the same request.
func FuzzHandshake(f *testing.F) {
	f.Add([]byte(testRequest), []byte{1, 2, 3})
	f.Add([]byte(strings.Replace(testRequest, "13", "8", 1)), []byte{50})
	f.Add([]byte(strings.Replace(testRequest, "GET", "POST", 1)), []byte{})
	f.Add([]byte(strings.Replace(testRequest, "Upgrade: websocket\r\n", "", 1)), []byte{7, 7})
	f.Add([]byte(testRequest[:40]+"\r\n\r\n"), []byte{1})
	f.Add([]byte("GET / HTTP/1.0\r\n\r\n"), []byte{0})
	f.Add([]byte("\r\n\r\n"), []byte{1})
	f.Add([]byte(strings.Replace(testRequest, "Host: example.com", "Host: example.com\r\nOrigin: http://evil.example", 1)), []byte{9})
	f.Fuzz(func(t *testing.T, req []byte, splits []byte) {
		const limit = 4096
		sizes := make([]int, len(splits))
		for i, s := range splits {
			sizes[i] = int(s)
		}
		head, rest, he := feedPieces(req, sizes, limit)
		wholeHead, wholeRest, wholeHe := feedPieces(req, nil, limit)
		if !bytes.Equal(head, wholeHead) || !bytes.Equal(rest, wholeRest) || (he == nil) != (wholeHe == nil) {
			t.Fatalf("pieces %v changed the result: head %q rest %q refusal %v; whole: %q %q %v", sizes, head, rest, he, wholeHead, wholeRest, wholeHe)
		}
		if he != nil {
			if he.Status != 431 || len(req) < limit {
				t.Fatalf("refusal %v for %d bytes, want 431 only at %d bytes", he, len(req), limit)
			}
			return
		}
		if head == nil {
			return
		}
		resp, _, err := answerHead(head, nil)
		if !bytes.HasPrefix(resp, []byte("HTTP/1.1 ")) || !bytes.HasSuffix(resp, []byte("\n")) {
			t.Fatalf("response %q is not an HTTP response", resp)
		}
		if err == nil {
			if !bytes.HasPrefix(resp, []byte("HTTP/1.1 101 ")) {
				t.Fatalf("accepted with %q", resp)
			}
			if code, ahe := acceptStatus(t, head); code != 500 || ahe == nil || ahe.Check != websocket.CheckHijack {
				t.Fatalf("the event loop accepted %q, Accept answered %d (%v)", head, code, ahe)
			}
			return
		}
		var ours *websocket.HandshakeError
		if !errors.As(err, &ours) {
			t.Fatalf("refusal error %T %v, want *HandshakeError", err, err)
		}
		if ours.Check == 0 {
			return // malformed: net/http itself would answer 400 before any handler
		}
		if code, ahe := acceptStatus(t, head); code != ours.Status || ahe == nil || ahe.Check != ours.Check {
			t.Fatalf("request %q: the event loop answered %d (%v), Accept %d (%v)", head, ours.Status, ours.Check, code, ahe)
		}
	})
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

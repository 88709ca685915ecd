package websocket

// Tests for gaps a review of the RFC 6455 core found: UTF-8 split at every
// byte position on the client, every close code on both sides, a 2^63-1
// frame length, DisableUTF8Check, and regression tests for three fixed bugs
// (a Writer left unfinished, State stuck at Closing, a client's Close that
// took two CloseTimeouts). Helpers here are prefixed "gaps"; the raw server
// helpers (cc...) come from conformance_client_test.go.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// gapsSendable is the rule of RFC 6455 §7.4 and the IANA registry, written
// independently of StatusCode.Sendable: the codes a close frame may carry.
func gapsSendable(code int) bool {
	return code >= 1000 && code <= 1003 || code >= 1007 && code <= 1014 || code >= 3000 && code <= 4999
}

// gapsMasked encodes a masked frame (as a client sends) with first byte b0.
func gapsMasked(b0 byte, payload []byte) []byte {
	key := [4]byte{0x5a, 0x01, 0xc3, 0x7e}
	b := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, key[:]...)
	for i, x := range payload {
		b = append(b, x^key[i%4])
	}
	return b
}

// gapsPipe returns a Conn with role over one end of a net.Pipe and the raw
// other end, which has a deadline that bounds the test. A pipe is
// synchronous: every write waits until the other side reads it.
func gapsPipe(t testing.TB, role Role, opts *Options) (*Conn, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	b.SetDeadline(time.Now().Add(10 * time.Second))
	c := NewConn(a, nil, role, "", opts)
	t.Cleanup(func() { c.CloseNow(); b.Close() })
	return c, b
}

// gapsWrite writes b to the raw end in the background.
func gapsWrite(raw net.Conn, b []byte) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := raw.Write(b)
		ch <- err
	}()
	return ch
}

// gapsReadResult is what one Read returned, with the message copied.
type gapsReadResult struct {
	typ MessageType
	p   []byte
	err error
}

func gapsReadAsync(c *Conn, d time.Duration) <-chan gapsReadResult {
	ch := make(chan gapsReadResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		typ, p, err := c.Read(ctx)
		ch <- gapsReadResult{typ, bytes.Clone(p), err}
	}()
	return ch
}

func gapsAwait[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s did not happen within %v", what, d)
		panic("unreachable")
	}
}

// ---------------------------------------------------------------------------
// 1a. Valid UTF-8 split into two fragments at every byte position.

func TestGapsClientUTF8SplitAtEveryByte(t *testing.T) {
	texts := []string{
		"héllo €𝄞 wörld",
		// The first and last character of each length, and those around
		// the surrogate range, which a validator must not confuse with it.
		"\u007f\u0080\u07ff\u0800\ud7ff\ue000\ufffd\uffff\U00010000\U0010ffff",
		"é", "€", "𝄞",
	}
	c, p := ccOpen(t, nil)
	for _, text := range texts {
		if !utf8.ValidString(text) {
			t.Fatalf("test text %q is not valid UTF-8", text)
		}
		for i := 0; i <= len(text); i++ {
			p.write(t, ccCat(ccFrame(0x01, []byte(text[:i])), ccFrame(0x80, []byte(text[i:]))))
			got := ccRead(t, c)
			if got.err != nil || got.typ != MessageText || string(got.p) != text {
				t.Fatalf("%q split at byte %d: Read = %v %q %v, want text %q", text, i, got.typ, got.p, got.err, text)
			}
		}
		// And one fragment per byte.
		var b []byte
		for i := 0; i < len(text); i++ {
			b = append(b, ccFrame(0x00, []byte{text[i]})...)
		}
		b[0] = 0x01 // the first fragment is the text frame
		b = append(b, ccFrame(0x80, nil)...)
		p.write(t, b)
		if got := ccRead(t, c); got.err != nil || got.typ != MessageText || string(got.p) != text {
			t.Fatalf("%q one byte per fragment: Read = %v %q %v", text, got.typ, got.p, got.err)
		}
	}
	if s := c.State(); s != StateOpen {
		t.Fatalf("state %v after valid texts, want open", s)
	}
}

// ---------------------------------------------------------------------------
// 1b. The client receiving a close frame with each code: every sendable code
// is echoed as is and reported as *CloseError; every other code fails the
// connection with 1002.

// gapsClientCloseExchange runs one close exchange on a client Conn over a
// pipe: the raw server sends a close frame with code and reason "r", and the
// client's answer and Read's result are checked. It returns a description
// of the first mismatch, or "".
func gapsClientCloseExchange(code int) string {
	a, b := net.Pipe()
	defer b.Close()
	b.SetDeadline(time.Now().Add(10 * time.Second))
	c := NewConn(a, nil, RoleClient, "", &Options{CloseTimeout: 5 * time.Second})
	defer c.CloseNow()
	reads := gapsReadAsync(c, 10*time.Second)
	if _, err := b.Write(ccFrame(0x88, ccClosePayload(code, "r"))); err != nil {
		return fmt.Sprintf("writing the close frame: %v", err)
	}
	f, err := ccReadFrame(b)
	if err != nil {
		return fmt.Sprintf("reading the client's answer: %v", err)
	}
	if f.op != 0x8 || !f.fin || !f.masked || f.rsv != 0 {
		return fmt.Sprintf("client answered op %#x fin %v masked %v rsv %#x, want a masked close frame", f.op, f.fin, f.masked, f.rsv)
	}
	var r gapsReadResult
	if gapsSendable(code) {
		if want := ccClosePayload(code, ""); !bytes.Equal(f.payload, want) {
			return fmt.Sprintf("client echoed % x, want % x", f.payload, want)
		}
		b.Close() // the server closes TCP first
		r = <-reads
		var ce *CloseError
		if !errors.As(r.err, &ce) || int(ce.Code) != code || ce.Reason != "r" {
			return fmt.Sprintf("Read = %v, want *CloseError{%d, \"r\"}", r.err, code)
		}
	} else {
		if len(f.payload) < 2 || binary.BigEndian.Uint16(f.payload) != 1002 || !utf8.Valid(f.payload[2:]) {
			return fmt.Sprintf("client answered close payload %q, want code 1002", f.payload)
		}
		r = <-reads
		var pe *ProtocolError
		if !errors.As(r.err, &pe) || pe.Code != StatusProtocolError {
			return fmt.Sprintf("Read = %v, want *ProtocolError{1002}", r.err)
		}
		if _, err := ccReadFrame(b); !errors.Is(err, io.EOF) {
			return fmt.Sprintf("after its close frame the client sent more or did not close: %v", err)
		}
	}
	select {
	case <-c.closed:
	case <-time.After(5 * time.Second):
		return "transport not closed"
	}
	if s := c.State(); s != StateClosed {
		return fmt.Sprintf("state %v, want closed", s)
	}
	return ""
}

// TestGapsClientCloseCodesAll runs the exchange over pipes (the Conn is the
// same as Dial's; only the transport differs) for every code from 0 to 5100,
// which holds every valid range and the invalid codes around them, and for
// every 61st code above (TestGapsCloseCodeTables checks all 65536 codes on
// parseClosePayload itself).
func TestGapsClientCloseCodesAll(t *testing.T) {
	codes := make(chan int)
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for range max(runtime.GOMAXPROCS(0), 4) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for code := range codes {
				if msg := gapsClientCloseExchange(code); msg != "" {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("code %d: %s", code, msg))
					mu.Unlock()
				}
			}
		}()
	}
	for code := 0; code <= 0xFFFF; code++ {
		if code <= 5100 || code%61 == 0 || code == 0xFFFF {
			codes <- code
		}
	}
	close(codes)
	wg.Wait()
	if n := len(failures); n > 0 {
		if n > 20 {
			failures = append(failures[:20], fmt.Sprintf("... and %d more", n-20))
		}
		t.Fatalf("%d codes failed:\n%s", n, strings.Join(failures, "\n"))
	}
}

// TestGapsClientCloseCodesDialed samples the codes end to end, through Dial
// and TCP: the boundaries of each valid range and the codes around them.
func TestGapsClientCloseCodesDialed(t *testing.T) {
	codes := []int{
		1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3001, 3999, 4000, 4998, 4999,
		0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1999, 2000, 2999, 5000, 5001, 0x8000, 0xFFFF,
	}
	for _, code := range codes {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			c, p := ccOpen(t, nil)
			reads := ccReadAsync(c)
			p.write(t, ccFrame(0x88, ccClosePayload(code, "why")))
			f := p.readFrame(t)
			if f.op != 0x8 || !f.fin || !f.masked {
				t.Fatalf("client answered op %#x fin %v masked %v, want a masked close", f.op, f.fin, f.masked)
			}
			if gapsSendable(code) {
				if want := ccClosePayload(code, ""); !bytes.Equal(f.payload, want) {
					t.Fatalf("client echoed % x, want % x", f.payload, want)
				}
				p.conn.Close()
				r := ccAwaitRead(t, reads)
				var ce *CloseError
				if !errors.As(r.err, &ce) || int(ce.Code) != code || ce.Reason != "why" {
					t.Fatalf("Read = %v, want *CloseError{%d, \"why\"}", r.err, code)
				}
			} else {
				if len(f.payload) < 2 || binary.BigEndian.Uint16(f.payload) != 1002 {
					t.Fatalf("client answered close payload %q, want code 1002", f.payload)
				}
				r := ccAwaitRead(t, reads)
				var pe *ProtocolError
				if !errors.As(r.err, &pe) || pe.Code != StatusProtocolError {
					t.Fatalf("Read = %v, want *ProtocolError{1002}", r.err)
				}
				p.expectEOF(t)
				p.conn.Close()
			}
			ccWaitClosed(t, c)
		})
	}
}

// ---------------------------------------------------------------------------
// 1c. A frame announcing 2^63-1 bytes: over any limit, so 1009 at once.

func TestGapsClientMaxLengthFrame(t *testing.T) {
	max64 := binary.BigEndian.AppendUint64(nil, 1<<63-1)
	cases := []struct {
		name  string
		limit int64
		send  []byte
	}{
		{"binary, default limit", 0, ccCat([]byte{0x82, 127}, max64)},
		{"text, default limit", 0, ccCat([]byte{0x81, 127}, max64)},
		{"non-final, default limit", 0, ccCat([]byte{0x02, 127}, max64)},
		{"continuation, default limit", 0, ccCat(ccFrame(0x02, []byte("x")), []byte{0x80, 127}, max64)},
		// With no limit the frame alone fits, but not after one byte.
		{"continuation, no limit", -1, ccCat(ccFrame(0x02, []byte("x")), []byte{0x80, 127}, max64)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, p := ccOpen(t, &DialOptions{Options: Options{ReadLimit: tc.limit}})
			p.write(t, tc.send)
			start := time.Now()
			r := ccRead(t, c)
			var pe *ProtocolError
			if !errors.As(r.err, &pe) || pe.Code != StatusMessageTooBig {
				t.Fatalf("Read = %v %q %v, want *ProtocolError{1009}", r.typ, r.p, r.err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("failing took %v", d)
			}
			f := p.readFrame(t)
			if f.op != 0x8 || !f.fin || !f.masked || len(f.payload) < 2 || binary.BigEndian.Uint16(f.payload) != 1009 {
				t.Fatalf("client sent op %#x masked %v payload %q, want a masked close 1009", f.op, f.masked, f.payload)
			}
			p.expectEOF(t)
			p.conn.Close()
			ccWaitClosed(t, c)
			if _, _, err := c.Read(context.Background()); err != r.err {
				t.Errorf("second Read = %v, want the same sticky error %v", err, r.err)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 2. Close codes: send side and receive side agree with the registry for
// every 16-bit code.

func TestGapsCloseCodeTables(t *testing.T) {
	for i := 0; i <= 0xFFFF; i++ {
		code := StatusCode(i)
		want := gapsSendable(i)
		if got := code.Sendable(); got != want {
			t.Errorf("StatusCode(%d).Sendable() = %v, want %v", i, got, want)
		}
		be := binary.BigEndian.AppendUint16(nil, uint16(i))

		// Send side, without and with a reason.
		p, err := closePayload(code, "")
		switch {
		case i == int(StatusNoStatusRcvd):
			if err != nil || len(p) != 0 {
				t.Errorf("closePayload(1005, \"\") = % x, %v; want an empty payload", p, err)
			}
		case want:
			if err != nil || !bytes.Equal(p, be) {
				t.Errorf("closePayload(%d, \"\") = % x, %v; want % x", i, p, err, be)
			}
		default:
			if err == nil || p != nil {
				t.Errorf("closePayload(%d, \"\") = % x, %v; want an error", i, p, err)
			}
		}
		p, err = closePayload(code, "bye")
		if want {
			if wantP := append(bytes.Clone(be), "bye"...); err != nil || !bytes.Equal(p, wantP) {
				t.Errorf("closePayload(%d, \"bye\") = % x, %v; want % x", i, p, err, wantP)
			}
		} else if err == nil || p != nil {
			t.Errorf("closePayload(%d, \"bye\") = % x, %v; want an error", i, p, err)
		}

		// Receive side, without and with a reason.
		for _, reason := range []string{"", "ok ✓"} {
			ce, err := parseClosePayload(append(bytes.Clone(be), reason...))
			if want {
				if err != nil || ce == nil || ce.Code != code || ce.Reason != reason {
					t.Errorf("parseClosePayload(%d, %q) = %v, %v; want *CloseError{%d, %q}", i, reason, ce, err, i, reason)
				}
				continue
			}
			var pe *ProtocolError
			if ce != nil || !errors.As(err, &pe) || pe.Code != StatusProtocolError {
				t.Errorf("parseClosePayload(%d, %q) = %v, %v; want *ProtocolError{1002}", i, reason, ce, err)
			}
		}
	}
	// Codes outside 16 bits are never sendable, and never sent truncated.
	for _, code := range []StatusCode{-1, -1000, 1 << 16, 1<<16 + 1000, 1<<16 + 3000, 1<<31 - 1} {
		if code.Sendable() {
			t.Errorf("StatusCode(%d).Sendable() = true", int(code))
		}
		if p, err := closePayload(code, ""); err == nil {
			t.Errorf("closePayload(%d) = % x, want an error", int(code), p)
		}
	}
	// The special payloads of the receive side.
	if ce, err := parseClosePayload(nil); err != nil || ce.Code != StatusNoStatusRcvd || ce.Reason != "" {
		t.Errorf("parseClosePayload(empty) = %v, %v; want *CloseError{1005}", ce, err)
	}
	var pe *ProtocolError
	if _, err := parseClosePayload([]byte{0x03}); !errors.As(err, &pe) || pe.Code != StatusProtocolError {
		t.Errorf("parseClosePayload(1 byte) = %v, want *ProtocolError{1002}", err)
	}
	if _, err := parseClosePayload([]byte{0x03, 0xE8, 0xFF}); !errors.As(err, &pe) || pe.Code != StatusInvalidFramePayloadData {
		t.Errorf("parseClosePayload(1000, invalid UTF-8) = %v, want *ProtocolError{1007}", err)
	}
}

// ---------------------------------------------------------------------------
// 8. Options.DisableUTF8Check.

func TestGapsDisableUTF8Check(t *testing.T) {
	invalid := []byte("a\xffb\xc0\xafc\xed\xa0\x80d\xe2\x82") // bad byte, overlong, surrogate, truncated
	for _, role := range []Role{RoleServer, RoleClient} {
		enc := ccFrame // a client receives unmasked frames
		if role == RoleServer {
			enc = gapsMasked
		}
		name := map[Role]string{RoleServer: "server", RoleClient: "client"}[role]
		t.Run(name+"/disabled", func(t *testing.T) {
			c, raw := gapsPipe(t, role, &Options{DisableUTF8Check: true})
			// One whole frame, then the same bytes over three fragments.
			gapsWrite(raw, ccCat(enc(0x81, invalid), enc(0x01, invalid[:2]), enc(0x00, invalid[2:9]), enc(0x80, invalid[9:])))
			for i := range 2 {
				r := gapsAwait(t, gapsReadAsync(c, 5*time.Second), 10*time.Second, "Read")
				if r.err != nil || r.typ != MessageText || !bytes.Equal(r.p, invalid) {
					t.Fatalf("message %d: Read = %v %q %v, want text %q delivered as is", i, r.typ, r.p, r.err, invalid)
				}
			}
		})
		t.Run(name+"/enabled", func(t *testing.T) {
			c, raw := gapsPipe(t, role, nil)
			gapsWrite(raw, enc(0x81, invalid))
			r := gapsAwait(t, gapsReadAsync(c, 5*time.Second), 10*time.Second, "Read")
			var pe *ProtocolError
			if !errors.As(r.err, &pe) || pe.Code != StatusInvalidFramePayloadData {
				t.Fatalf("Read = %v %q %v, want *ProtocolError{1007}", r.typ, r.p, r.err)
			}
			f, err := ccReadFrame(raw)
			if err != nil || f.op != 0x8 || len(f.payload) < 2 || binary.BigEndian.Uint16(f.payload) != 1007 {
				t.Fatalf("peer got %+v, %v; want close 1007", f, err)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 9a. Regression: a Writer that sent a fragment and then cannot get the
// frame lock before its ctx ends must fail the connection. Before the fix
// the connection stayed usable and the next Write started a new message
// inside the unfinished one (RFC 6455 §5.4 forbids it).

func TestGapsWriterUnfinishedMessageFails(t *testing.T) {
	for _, mode := range []string{"Flush", "large Write"} {
		t.Run(mode, func(t *testing.T) {
			c, raw := gapsPipe(t, RoleServer, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w, err := c.Writer(ctx, MessageBinary)
			if err != nil {
				t.Fatal(err)
			}
			first := make(chan ccWireFrame, 1)
			go func() {
				f, _ := ccReadFrame(raw)
				first <- f
			}()
			w.Write([]byte("first"))
			if err := w.(interface{ Flush() error }).Flush(); err != nil {
				t.Fatalf("first Flush: %v", err)
			}
			if f := gapsAwait(t, first, 5*time.Second, "first fragment"); f.op != 0x2 || f.fin || string(f.payload) != "first" {
				t.Fatalf("first fragment op %#x fin %v payload %q", f.op, f.fin, f.payload)
			}

			// A ping now holds the frame lock: its write waits, since the
			// peer does not read.
			pingCtx, pingCancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer pingCancel()
			go c.Ping(pingCtx)
			deadline := time.Now().Add(5 * time.Second)
			for c.frameLock.state.Load() == 0 {
				if time.Now().After(deadline) {
					t.Fatal("the ping never took the frame lock")
				}
				time.Sleep(time.Millisecond)
			}

			// The writer's ctx ends while it waits for the frame lock.
			time.AfterFunc(50*time.Millisecond, cancel)
			if mode == "Flush" {
				w.Write([]byte("second"))
				err = w.(interface{ Flush() error }).Flush()
			} else {
				_, err = w.Write(make([]byte, 3*writeBufSize))
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("%s = %v, want an error wrapping context.Canceled", mode, err)
			}
			if s := c.State(); s != StateClosed {
				t.Errorf("state %v after the unfinished message, want closed", s)
			}
			if cerr := w.Close(); cerr != err {
				t.Errorf("Writer.Close = %v, want the sticky error %v", cerr, err)
			}

			// From now on the peer reads everything; it must never see a
			// new data frame after the unfinished message.
			var later []ccWireFrame
			collected := make(chan struct{})
			go func() {
				defer close(collected)
				raw.SetReadDeadline(time.Now().Add(time.Second))
				for {
					f, err := ccReadFrame(raw)
					if err != nil {
						return
					}
					later = append(later, f)
				}
			}()
			wctx, wcancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer wcancel()
			if werr := c.Write(wctx, MessageText, []byte("new message")); werr != err {
				t.Errorf("Write after the unfinished message = %v, want the sticky error %v", werr, err)
			}
			if _, _, rerr := c.Read(wctx); rerr != err {
				t.Errorf("Read after the unfinished message = %v, want the sticky error %v", rerr, err)
			}
			gapsAwait(t, collected, 5*time.Second, "peer's read to end")
			for _, f := range later {
				if f.op == 0x1 || f.op == 0x2 {
					t.Errorf("peer got a new data frame (op %#x, %q) inside the unfinished message", f.op, f.payload)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 9b. Regression: State ends Closed, never stuck at Closing, when the peer's
// close frame races CloseNow.

func TestGapsStateClosedWhenPeerCloseRacesCloseNow(t *testing.T) {
	closeFrame := gapsMasked(0x88, ccClosePayload(1000, "bye"))

	// The worst order, made deterministic: CloseNow runs (from the ping
	// hook) after the close frame is already in the read buffer and
	// before it is handled.
	t.Run("CloseNow before the buffered close is handled", func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		b.SetDeadline(time.Now().Add(10 * time.Second))
		var c *Conn
		c = NewConn(a, nil, RoleServer, "", &Options{OnPing: func([]byte) { c.CloseNow() }})
		defer c.CloseNow()
		gapsWrite(b, ccCat(gapsMasked(0x89, nil), closeFrame))
		r := gapsAwait(t, gapsReadAsync(c, 5*time.Second), 10*time.Second, "Read")
		if r.err == nil {
			t.Fatalf("Read returned a message %q", r.p)
		}
		if s := c.State(); s != StateClosed {
			t.Fatalf("state %v after CloseNow and the peer's close, want closed", s)
		}
	})

	t.Run("race", func(t *testing.T) {
		n := 2000
		if testing.Short() {
			n = 200
		}
		for i := range n {
			a, b := net.Pipe()
			b.SetDeadline(time.Now().Add(10 * time.Second))
			c := NewConn(a, nil, RoleServer, "", nil)
			go func() {
				b.Write(closeFrame)
				io.Copy(io.Discard, b) // take the echo, if any
			}()
			reads := gapsReadAsync(c, 5*time.Second)
			for range i % 7 { // vary the timing
				runtime.Gosched()
			}
			c.CloseNow()
			gapsAwait(t, reads, 10*time.Second, "Read")
			s := c.State()
			b.Close()
			if s != StateClosed {
				t.Fatalf("iteration %d: state %v after CloseNow and Read returned, want closed", i, s)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// 9c. Regression: a client's Close against a server that answers the close
// late and then keeps TCP open returns within one CloseTimeout (plus
// scheduling), not a second CloseTimeout counted from the answer.

func TestGapsClientCloseWithinOneCloseTimeout(t *testing.T) {
	const closeTimeout = 500 * time.Millisecond
	c, p := ccOpen(t, &DialOptions{Options: Options{CloseTimeout: closeTimeout}})
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- c.Close(StatusNormalClosure, "bye") }()
	f := p.readFrame(t)
	if f.op != 0x8 || !bytes.Equal(f.payload, ccClosePayload(1000, "bye")) {
		t.Fatalf("client sent op %#x payload %q, want close 1000 \"bye\"", f.op, f.payload)
	}
	// Answer late in the CloseTimeout, then keep TCP open.
	time.Sleep(time.Until(start.Add(closeTimeout * 8 / 10)))
	p.write(t, ccFrame(0x88, ccClosePayload(1000, "")))
	err := gapsAwait(t, closed, 5*time.Second, "Close")
	d := time.Since(start)
	if err != nil {
		t.Errorf("Close = %v, want nil: the server answered", err)
	}
	if d > closeTimeout+300*time.Millisecond {
		t.Errorf("Close took %v, want at most CloseTimeout (%v) + 300ms", d, closeTimeout)
	}
	// The client gave up waiting and closed TCP itself.
	p.expectEOF(t)
	ccWaitClosed(t, c)
}

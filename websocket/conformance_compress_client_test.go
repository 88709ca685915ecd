package websocket

// Conformance tests for permessage-deflate (RFC 7692) on OUR CLIENT: Dial
// with compression enabled, against a raw TCP server on 127.0.0.1 (ccListen,
// from conformance_client_test.go) that accepts the extension and then sends
// exact frames, or reads exactly what the client sends. Compressed payloads
// come from the helpers of conformance_compress_test.go.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"
	"unicode/utf8"
)

// pccOpen dials a raw server that accepts permessage-deflate without
// parameters, and returns our client Conn and the server side.
func pccOpen(t *testing.T, comp CompressionOptions, limit int64) (*Conn, *ccPeer) {
	t.Helper()
	comp.Enabled = true
	r, p := ccHandshake(t, &DialOptions{Options: Options{Compression: comp, ReadLimit: limit}}, func(req *http.Request) string {
		return ccResponse101(req, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
	})
	if r.err != nil {
		t.Fatalf("Dial: %v", r.err)
	}
	if got := r.resp.Header.Get("Sec-WebSocket-Extensions"); got != "permessage-deflate" {
		t.Fatalf("response extensions %q", got)
	}
	if !r.c.send.on {
		t.Fatal("compression is not on after the server accepted it")
	}
	return r.c, p
}

// pccExpectFailed checks that our client failed the connection with code:
// err (what Read returned) is a *ProtocolError with that code, the client
// sent exactly one masked close frame with that code, then ended the TCP
// stream, and the error stays.
func pccExpectFailed(t *testing.T, c *Conn, p *ccPeer, err error, code StatusCode) {
	t.Helper()
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("Read error %v, want a *ProtocolError with code %d", err, code)
	}
	if pe.Code != code {
		t.Fatalf("ProtocolError code %d (%s), want %d", pe.Code, pe.Reason, code)
	}
	f := p.readFrame(t)
	if f.op != 0x8 || !f.fin || !f.masked || f.rsv != 0 {
		t.Fatalf("client sent op %#x fin %v masked %v rsv %#x, want a masked close frame", f.op, f.fin, f.masked, f.rsv)
	}
	if len(f.payload) < 2 {
		t.Fatalf("close frame payload %q has no code", f.payload)
	}
	if got := StatusCode(binary.BigEndian.Uint16(f.payload)); got != code {
		t.Fatalf("client sent close code %d (reason %q), want %d", got, f.payload[2:], code)
	}
	if !utf8.Valid(f.payload[2:]) {
		t.Errorf("close reason %q is not UTF-8", f.payload[2:])
	}
	p.expectEOF(t)
	p.conn.Close()
	ccWaitClosed(t, c)
	if got := ccRead(t, c); !errors.As(got.err, &pe) || pe.Code != code {
		t.Errorf("second Read = %v, want the same *ProtocolError", got.err)
	}
}

// pccASCII returns n bytes of printable, compressible ASCII text.
func pccASCII(n int) []byte {
	return bytes.Repeat([]byte("permessage-deflate "), n/19+1)[:n]
}

// RSV1 is allowed on the first frame of a data message only (RFC 7692
// §6.1): on a continuation frame or a control frame our client fails the
// connection with 1002. A valid compressed message goes first, so the
// extension is shown to be in effect.
func TestCompressClientConformanceRSV1(t *testing.T) {
	msg := pccASCII(300)
	comp := pmdDeflate(t, msg, nil, 6)
	half := len(comp) / 2
	cases := []struct {
		name string
		send []byte
	}{
		{"RSV1 on the continuation of a compressed message",
			ccCat(ccFrame(pmdRSV1|1, comp[:half]), ccFrame(pmdFin|pmdRSV1, comp[half:]))},
		{"RSV1 on the continuation of a plain message",
			ccCat(ccFrame(1, []byte("a")), ccFrame(pmdFin|pmdRSV1, []byte("b")))},
		{"RSV1 on an unfinished continuation",
			ccCat(ccFrame(pmdRSV1|2, comp[:half]), ccFrame(pmdRSV1, comp[half:]))},
		{"RSV1 on a ping", ccFrame(pmdFin|pmdRSV1|9, []byte("p"))},
		{"RSV1 on an empty ping", ccFrame(pmdFin|pmdRSV1|9, nil)},
		{"RSV1 on a ping inside a compressed message",
			ccCat(ccFrame(pmdRSV1|1, comp[:half]), ccFrame(pmdFin|pmdRSV1|9, []byte("p")), ccFrame(pmdFin, comp[half:]))},
		{"RSV1 on a pong", ccFrame(pmdFin|pmdRSV1|0xA, []byte("p"))},
		{"RSV1 on a close", ccFrame(pmdFin|pmdRSV1|8, ccClosePayload(1000, ""))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, p := pccOpen(t, CompressionOptions{}, 0)
			werr := p.writeAsync(ccCat(ccFrame(pmdFin|pmdRSV1|1, comp), tc.send))
			if got := ccRead(t, c); got.err != nil || got.typ != MessageText || !bytes.Equal(got.p, msg) {
				t.Fatalf("first Read = %v %q %v, want the compressed text message", got.typ, got.p, got.err)
			}
			got := ccRead(t, c)
			pccExpectFailed(t, c, p, got.err, StatusProtocolError)
			<-werr
		})
	}
	// A ping inside a compressed message, without RSV1, is answered and
	// the message is read whole: the control is not part of the stream.
	t.Run("plain ping inside a compressed message", func(t *testing.T) {
		c, p := pccOpen(t, CompressionOptions{}, 0)
		p.write(t, ccCat(ccFrame(pmdRSV1|1, comp[:half]), ccFrame(pmdFin|9, []byte("p")), ccFrame(pmdFin, comp[half:])))
		if got := ccRead(t, c); got.err != nil || !bytes.Equal(got.p, msg) {
			t.Fatalf("Read = %q %v, want the compressed text message", got.p, got.err)
		}
		f := p.readFrame(t)
		if f.op != 0xA || !f.fin || !f.masked || f.rsv != 0 || string(f.payload) != "p" {
			t.Fatalf("answer to ping: op %#x fin %v masked %v rsv %#x payload %q", f.op, f.fin, f.masked, f.rsv, f.payload)
		}
	})
}

// A compressed message that is not valid DEFLATE data fails the
// connection with 1007 (invalid frame payload data), for text and binary.
func TestCompressClientConformanceCorrupt(t *testing.T) {
	cases := []struct {
		name    string
		payload []byte
	}{
		{"block type 3, final", []byte{0x07}},
		{"block type 3, not final", []byte{0x06, 0x00}},
		{"block type 3 after a valid block", append(pmdDeflate(t, []byte("valid start"), nil, 6), 0x07)},
		{"stored block with LEN != ^NLEN", []byte{0x00, 0x05, 0x00, 0x00, 0x00, 'h', 'e', 'l', 'l', 'o'}},
		{"back-reference before the start of the stream", pmdFixed([]pmdToken{pmdMatch(3, 1)})},
		{"back-reference further than the output so far", pmdFixed(append(pmdLit("abc"), pmdMatch(5, 4)))},
	}
	for _, tc := range cases {
		for _, op := range []byte{1, 2} {
			name := tc.name + "/text"
			if op == 2 {
				name = tc.name + "/binary"
			}
			t.Run(name, func(t *testing.T) {
				c, p := pccOpen(t, CompressionOptions{}, 0)
				werr := p.writeAsync(ccFrame(pmdFin|pmdRSV1|op, tc.payload))
				got := ccRead(t, c)
				pccExpectFailed(t, c, p, got.err, StatusInvalidFramePayloadData)
				<-werr
			})
		}
	}
}

// With a ReadLimit of 1 MiB, a small compressed message that inflates to
// 64 MiB of zeros is stopped at the limit: Read (or the Reader) returns
// *ProtocolError 1009, the client sends close 1009, and the heap in use
// grows by less than 3 times the limit meanwhile. A message that inflates
// to exactly the limit is still read.
func TestCompressClientConformanceBomb(t *testing.T) {
	const limit = 1 << 20
	const matches = (64 << 20) / 258
	bomb := pmdBomb(matches)
	t.Logf("bomb: %d bytes inflate to %d", len(bomb), 1+258*matches)

	t.Run("exactly the limit", func(t *testing.T) {
		c, p := pccOpen(t, CompressionOptions{}, limit)
		werr := p.writeAsync(ccFrame(pmdFin|pmdRSV1|2, pmdDeflate(t, make([]byte, limit), nil, 6)))
		got := ccRead(t, c)
		if got.err != nil || len(got.p) != limit || !bytes.Equal(got.p, make([]byte, limit)) {
			t.Fatalf("Read = %d bytes, %v; want %d zero bytes", len(got.p), got.err, limit)
		}
		if err := <-werr; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("one byte over the limit", func(t *testing.T) {
		c, p := pccOpen(t, CompressionOptions{}, limit)
		werr := p.writeAsync(ccFrame(pmdFin|pmdRSV1|2, pmdDeflate(t, make([]byte, limit+1), nil, 6)))
		got := ccRead(t, c)
		pccExpectFailed(t, c, p, got.err, StatusMessageTooBig)
		<-werr
	})

	for _, tc := range []struct {
		name   string
		stream bool // read with Reader into io.Discard instead of Read
		split  int  // bytes per frame; 0 for one frame
	}{
		{"Read/one frame", false, 0},
		{"Read/1000-byte frames", false, 1000},
		{"Reader/one frame", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wire []byte
			if tc.split == 0 {
				wire = ccFrame(pmdFin|pmdRSV1|2, bomb)
			} else {
				for i := 0; i < len(bomb); i += tc.split {
					b0 := byte(0)
					if i == 0 {
						b0 = pmdRSV1 | 2
					}
					if i+tc.split >= len(bomb) {
						b0 |= pmdFin
					}
					wire = append(wire, ccFrame(b0, bomb[i:min(i+tc.split, len(bomb))])...)
				}
			}
			c, p := pccOpen(t, CompressionOptions{}, limit)
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			peak := pmdHeapPeak()
			start := time.Now()
			werr := p.writeAsync(wire)
			var err error
			ctx, cancel := context.WithTimeout(context.Background(), 2*ccTimeout)
			defer cancel()
			if tc.stream {
				var r io.Reader
				if _, r, err = c.Reader(ctx); err == nil {
					var n int64
					n, err = io.Copy(io.Discard, r)
					if n > limit {
						t.Errorf("Reader gave %d bytes, more than the limit %d", n, limit)
					}
				}
			} else {
				var got []byte
				_, got, err = c.Read(ctx)
				if got != nil {
					t.Errorf("Read returned %d bytes with the error", len(got))
				}
			}
			took := time.Since(start)
			peakInuse := peak()
			grew := int64(peakInuse) - int64(before.HeapInuse)
			t.Logf("stopped after %v; heap in use grew by at most %.2f MiB", took, float64(grew)/(1<<20))
			if grew >= 3*limit {
				t.Errorf("heap in use grew by %d bytes, want less than %d (3 times the limit)", grew, 3*limit)
			}
			pccExpectFailed(t, c, p, err, StatusMessageTooBig)
			<-werr
		})
	}
}

// With Threshold 100, our client sends a message of 99 bytes plain (RSV1
// clear, the payload itself after unmasking) and one of 100 bytes
// compressed (RSV1 set, the payload inflates to the message). A streamed
// message (Writer) that ends below the threshold goes out plain; one that
// is flushed past it is compressed, with RSV1 on its first frame only.
func TestCompressClientConformanceThreshold(t *testing.T) {
	type wantFrame struct {
		op   byte
		fin  bool
		rsv1 bool
	}
	cases := []struct {
		name       string
		typ        MessageType
		send       func(ctx context.Context, c *Conn) error
		msg        []byte
		compressed bool
		frames     []wantFrame
	}{
		{name: "Write 99 bytes", typ: MessageText, msg: pccASCII(99), compressed: false,
			frames: []wantFrame{{1, true, false}}},
		{name: "Write 100 bytes", typ: MessageText, msg: pccASCII(100), compressed: true,
			frames: []wantFrame{{1, true, true}}},
		{name: "Write 99 binary bytes", typ: MessageBinary, msg: pccASCII(99), compressed: false,
			frames: []wantFrame{{2, true, false}}},
		{name: "Write 100 binary bytes", typ: MessageBinary, msg: pccASCII(100), compressed: true,
			frames: []wantFrame{{2, true, true}}},
		{name: "Writer ending at 99 bytes", typ: MessageText, msg: pccASCII(99), compressed: false,
			send: func(ctx context.Context, c *Conn) error {
				w, err := c.Writer(ctx, MessageText)
				if err != nil {
					return err
				}
				m := pccASCII(99)
				if _, err := w.Write(m[:60]); err != nil {
					return err
				}
				if _, err := w.Write(m[60:]); err != nil {
					return err
				}
				return w.Close()
			},
			frames: []wantFrame{{1, true, false}}},
		{name: "Writer ending at 100 bytes", typ: MessageText, msg: pccASCII(100), compressed: true,
			send: func(ctx context.Context, c *Conn) error {
				w, err := c.Writer(ctx, MessageText)
				if err != nil {
					return err
				}
				m := pccASCII(100)
				if _, err := w.Write(m[:60]); err != nil {
					return err
				}
				if _, err := w.Write(m[60:]); err != nil {
					return err
				}
				return w.Close()
			},
			frames: []wantFrame{{1, true, true}}},
		{name: "Writer flushed past the threshold", typ: MessageText, msg: pccASCII(200), compressed: true,
			send: func(ctx context.Context, c *Conn) error {
				w, err := c.Writer(ctx, MessageText)
				if err != nil {
					return err
				}
				m := pccASCII(200)
				if _, err := w.Write(m[:150]); err != nil {
					return err
				}
				if err := w.(interface{ Flush() error }).Flush(); err != nil {
					return err
				}
				if _, err := w.Write(m[150:]); err != nil {
					return err
				}
				return w.Close()
			},
			frames: []wantFrame{{1, false, true}, {0, true, false}}},
		{name: "Writer flushed past the threshold, three frames", typ: MessageBinary, msg: pccASCII(400), compressed: true,
			send: func(ctx context.Context, c *Conn) error {
				w, err := c.Writer(ctx, MessageBinary)
				if err != nil {
					return err
				}
				m := pccASCII(400)
				fl := w.(interface{ Flush() error })
				for _, part := range [][]byte{m[:120], m[120:300]} {
					if _, err := w.Write(part); err != nil {
						return err
					}
					if err := fl.Flush(); err != nil {
						return err
					}
				}
				if _, err := w.Write(m[300:]); err != nil {
					return err
				}
				return w.Close()
			},
			frames: []wantFrame{{2, false, true}, {0, false, false}, {0, true, false}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, p := pccOpen(t, CompressionOptions{Threshold: 100}, 0)
			ctx, cancel := context.WithTimeout(context.Background(), ccTimeout)
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				if tc.send != nil {
					errc <- tc.send(ctx, c)
				} else {
					errc <- c.Write(ctx, tc.typ, tc.msg)
				}
			}()
			var payload []byte
			for i, want := range tc.frames {
				f := p.readFrame(t)
				if !f.masked {
					t.Fatalf("frame %d is not masked", i)
				}
				if f.op != want.op || f.fin != want.fin {
					t.Fatalf("frame %d: op %#x fin %v, want op %#x fin %v", i, f.op, f.fin, want.op, want.fin)
				}
				wantRSV := byte(0)
				if want.rsv1 {
					wantRSV = pmdRSV1
				}
				if f.rsv != wantRSV {
					t.Fatalf("frame %d: RSV bits %#x, want %#x", i, f.rsv, wantRSV)
				}
				payload = append(payload, f.payload...)
			}
			if err := <-errc; err != nil {
				t.Fatalf("sending: %v", err)
			}
			if tc.compressed {
				if bytes.Equal(payload, tc.msg) {
					t.Fatal("compressed message carries the plain bytes")
				}
				got, err := pmdInflate(payload, nil)
				if err != nil {
					t.Fatalf("inflating what the client sent: %v", err)
				}
				if !bytes.Equal(got, tc.msg) {
					t.Fatalf("inflated %q, want %q", got, tc.msg)
				}
			} else if !bytes.Equal(payload, tc.msg) {
				t.Fatalf("plain payload %q, want %q", payload, tc.msg)
			}
			p.expectSilence(t, 50*time.Millisecond)
		})
	}
}

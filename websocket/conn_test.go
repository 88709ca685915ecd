package websocket_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// Behaviour tests of the Conn: concurrency, contexts, state and errors.
// Helpers here are prefixed "ct" to keep clear of other test files.

// ctStep bounds a single step of a test (a read, a close, a handshake).
const ctStep = 5 * time.Second

// ctCtx returns a context that ends the test's waits if something hangs.
func ctCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// ctPair returns a connected server and client Conn, made by Accept and Dial
// over real TCP on 127.0.0.1.
func ctPair(t testing.TB, srvOpts, cliOpts *websocket.Options) (srv, cli *websocket.Conn) {
	t.Helper()
	conns := make(chan *websocket.Conn, 1)
	errc := make(chan error, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ao := &websocket.AcceptOptions{}
		if srvOpts != nil {
			ao.Options = *srvOpts
		}
		c, err := websocket.Accept(w, r, ao)
		if err != nil {
			errc <- err
			return
		}
		conns <- c
	}))
	t.Cleanup(ts.Close)
	do := &websocket.DialOptions{}
	if cliOpts != nil {
		do.Options = *cliOpts
	}
	ctx, cancel := context.WithTimeout(context.Background(), ctStep)
	defer cancel()
	cli, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http"), do)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	select {
	case srv = <-conns:
	case err := <-errc:
		t.Fatalf("Accept: %v", err)
	case <-ctx.Done():
		t.Fatal("Accept did not return")
	}
	t.Cleanup(func() { cli.CloseNow(); srv.CloseNow() })
	return srv, cli
}

// ctPipePair returns a server and client Conn made by NewConn over the two
// ends of a net.Pipe (synchronous, in memory, with deadlines).
func ctPipePair(t testing.TB, srvOpts, cliOpts *websocket.Options) (srv, cli *websocket.Conn) {
	a, b := net.Pipe()
	srv = websocket.NewConn(a, nil, websocket.RoleServer, "", srvOpts)
	cli = websocket.NewConn(b, nil, websocket.RoleClient, "", cliOpts)
	t.Cleanup(func() { cli.CloseNow(); srv.CloseNow() })
	return srv, cli
}

// ctRaw returns a Conn with the given role made by NewConn over one end of
// a TCP connection on 127.0.0.1, and the other end raw, so the test writes
// and reads exact bytes as the peer. The raw end has a deadline that bounds
// the test.
func ctRaw(t testing.TB, role websocket.Role, opts *websocket.Options) (*websocket.Conn, *net.TCPConn) {
	t.Helper()
	return ctRawWrap(t, role, opts, nil)
}

// ctRawWrap is ctRaw with the Conn's end of the transport passed through
// wrap (when not nil) before NewConn, so a test can watch what the Conn
// does with it.
func ctRawWrap(t testing.TB, role websocket.Role, opts *websocket.Options, wrap func(net.Conn) net.Conn) (*websocket.Conn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	raw, err := net.DialTimeout("tcp", ln.Addr().String(), ctStep)
	if err != nil {
		t.Fatal(err)
	}
	var local net.Conn
	select {
	case local = <-accepted:
	case <-time.After(ctStep):
	}
	if local == nil {
		raw.Close()
		t.Fatal("accept failed")
	}
	raw.SetDeadline(time.Now().Add(20 * time.Second))
	if wrap != nil {
		local = wrap(local)
	}
	c := websocket.NewConn(local, nil, role, "", opts)
	t.Cleanup(func() { c.CloseNow(); raw.Close() })
	return c, raw.(*net.TCPConn)
}

// ctCountingConn counts the bytes read through it.
type ctCountingConn struct {
	net.Conn
	n atomic.Int64
}

func (c *ctCountingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// ctMaskKey is the masking key the raw client peer uses.
var ctMaskKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// ctFrame encodes one frame as a peer would send it; masked frames use
// ctMaskKey (a raw client peer must mask, a raw server peer must not).
func ctFrame(fin bool, op byte, payload []byte, masked bool) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var mb byte
	if masked {
		mb = 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, mb|byte(n))
	case n <= 0xFFFF:
		b = append(b, mb|126, byte(n>>8), byte(n))
	default:
		b = append(b, mb|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !masked {
		return append(b, payload...)
	}
	b = append(b, ctMaskKey[:]...)
	for i, x := range payload {
		b = append(b, x^ctMaskKey[i%4])
	}
	return b
}

// ctClosePayload encodes a close frame payload.
func ctClosePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

type ctRawFrame struct {
	fin     bool
	op      byte
	masked  bool
	payload []byte
}

// ctReadFrame reads one frame from the raw end, unmasking its payload.
func ctReadFrame(r io.Reader) (ctRawFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return ctRawFrame{}, err
	}
	f := ctRawFrame{fin: h[0]&0x80 != 0, op: h[0] & 0x0F, masked: h[1]&0x80 != 0}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	var key [4]byte
	if f.masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return f, err
		}
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return f, err
	}
	if f.masked {
		for i := range f.payload {
			f.payload[i] ^= key[i%4]
		}
	}
	return f, nil
}

// ctMustReadFrame reads one frame from the raw end or fails the test.
func ctMustReadFrame(t testing.TB, r io.Reader) ctRawFrame {
	t.Helper()
	f, err := ctReadFrame(r)
	if err != nil {
		t.Fatalf("raw peer: reading a frame: %v", err)
	}
	return f
}

// ctExpectEOF reads the raw end until it ends and fails unless it ends with
// EOF or a reset (the Conn closed the transport) within the raw deadline.
func ctExpectEOF(t testing.TB, raw net.Conn, within time.Duration) {
	t.Helper()
	raw.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, raw)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("raw peer: transport did not end within %v: %v", within, err)
	}
}

type ctReadResult struct {
	typ websocket.MessageType
	p   []byte
	err error
}

// ctReadAsync calls c.Read in a goroutine and delivers a copy of the result.
func ctReadAsync(ctx context.Context, c *websocket.Conn) <-chan ctReadResult {
	ch := make(chan ctReadResult, 1)
	go func() {
		typ, p, err := c.Read(ctx)
		ch <- ctReadResult{typ, bytes.Clone(p), err}
	}()
	return ch
}

// ctRecv waits for a result, bounded.
func ctRecv[T any](t testing.TB, ch <-chan T, within time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(within):
		t.Fatalf("%s did not happen within %v", what, within)
		panic("unreachable")
	}
}

// ctMustRead reads one message and checks its type and payload.
func ctMustRead(t testing.TB, ctx context.Context, c *websocket.Conn, typ websocket.MessageType, want []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, ctStep)
	defer cancel()
	gt, p, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if gt != typ || !bytes.Equal(p, want) {
		t.Fatalf("Read = %v %q, want %v %q", gt, ctShort(p), typ, ctShort(want))
	}
}

func ctShort(p []byte) string {
	if len(p) > 64 {
		return fmt.Sprintf("%s...(%d bytes)", p[:64], len(p))
	}
	return string(p)
}

type ctFlusher interface{ Flush() error }

func ctRoleName(r websocket.Role) string {
	if r == websocket.RoleClient {
		return "client"
	}
	return "server"
}

// TestConnConcurrentWriters has 16 goroutines writing 200 whole messages
// each and 4 goroutines writing fragmented messages with Writer and Flush,
// all at once on one Conn; the peer must receive every message exactly
// once, intact and with its type.
func TestConnConcurrentWriters(t *testing.T) {
	type pairFunc func(testing.TB) (writer, reader *websocket.Conn)
	cases := []struct {
		name string
		pair pairFunc
	}{
		{"tcp/client-writes", func(t testing.TB) (*websocket.Conn, *websocket.Conn) {
			s, c := ctPair(t, nil, nil)
			return c, s
		}},
		{"tcp/server-writes", func(t testing.TB) (*websocket.Conn, *websocket.Conn) {
			s, c := ctPair(t, nil, nil)
			return s, c
		}},
		{"pipe/client-writes", func(t testing.TB) (*websocket.Conn, *websocket.Conn) {
			s, c := ctPipePair(t, nil, nil)
			return c, s
		}},
		{"pipe/server-writes", func(t testing.TB) (*websocket.Conn, *websocket.Conn) {
			s, c := ctPipePair(t, nil, nil)
			return s, c
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctCtx(t)
			w, r := tc.pair(t)
			const writers, perWriter = 16, 200
			const streamers, perStreamer, parts = 4, 25, 4

			// Every message starts with a unique "id:" and its body depends
			// on the id, so a mixed-up or interleaved message cannot pass.
			want := map[string][]byte{}
			wantType := map[string]websocket.MessageType{}
			whole := func(g, i int) []byte {
				id := fmt.Sprintf("w%02d-%03d:", g, i)
				n := (g*131 + i*17) % 700
				if i%50 == 7 {
					n = 6000 + g // larger than the 4 KiB write buffer
				}
				return append([]byte(id), bytes.Repeat([]byte{byte('a' + (g*7+i)%26)}, n)...)
			}
			part := func(g, i, k int) []byte {
				n := 1 + (g*31+i*7+k*13)%300
				if i == 3 && k == 1 {
					n = 5000 // a part larger than the buffer: sent as its own frame
				}
				return bytes.Repeat([]byte{byte('A' + (g*5+i*3+k)%26)}, n)
			}
			for g := 0; g < writers; g++ {
				for i := 0; i < perWriter; i++ {
					m := whole(g, i)
					id := string(m[:bytes.IndexByte(m, ':')])
					want[id], wantType[id] = m, websocket.MessageText
				}
			}
			for g := 0; g < streamers; g++ {
				for i := 0; i < perStreamer; i++ {
					m := []byte(fmt.Sprintf("s%02d-%03d:", g, i))
					for k := 0; k < parts; k++ {
						m = append(m, part(g, i, k)...)
					}
					id := string(m[:bytes.IndexByte(m, ':')])
					want[id], wantType[id] = m, websocket.MessageBinary
				}
			}
			total := len(want)

			// The reader checks as it goes.
			readDone := make(chan error, 1)
			go func() {
				seen := map[string]bool{}
				for n := 0; n < total; n++ {
					typ, p, err := r.Read(ctx)
					if err != nil {
						readDone <- fmt.Errorf("Read after %d messages: %w", n, err)
						return
					}
					i := bytes.IndexByte(p, ':')
					if i < 0 {
						readDone <- fmt.Errorf("message %d has no id: %q", n, ctShort(p))
						return
					}
					id := string(p[:i])
					exp, ok := want[id]
					switch {
					case !ok:
						readDone <- fmt.Errorf("unknown message %q", ctShort(p))
						return
					case seen[id]:
						readDone <- fmt.Errorf("message %s received twice", id)
						return
					case typ != wantType[id] || !bytes.Equal(p, exp):
						readDone <- fmt.Errorf("message %s corrupted: got %v %q, want %v %q", id, typ, ctShort(p), wantType[id], ctShort(exp))
						return
					}
					seen[id] = true
				}
				readDone <- nil
			}()

			var wg sync.WaitGroup
			errs := make(chan error, writers+streamers)
			for g := 0; g < writers; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < perWriter; i++ {
						if err := w.Write(ctx, websocket.MessageText, whole(g, i)); err != nil {
							errs <- fmt.Errorf("writer %d: Write %d: %w", g, i, err)
							return
						}
					}
				}()
			}
			for g := 0; g < streamers; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < perStreamer; i++ {
						mw, err := w.Writer(ctx, websocket.MessageBinary)
						if err != nil {
							errs <- fmt.Errorf("streamer %d: Writer %d: %w", g, i, err)
							return
						}
						if _, err := mw.Write([]byte(fmt.Sprintf("s%02d-%03d:", g, i))); err != nil {
							errs <- err
							return
						}
						for k := 0; k < parts; k++ {
							if _, err := mw.Write(part(g, i, k)); err != nil {
								errs <- fmt.Errorf("streamer %d: part write: %w", g, err)
								return
							}
							if k < parts-1 {
								if err := mw.(ctFlusher).Flush(); err != nil {
									errs <- fmt.Errorf("streamer %d: Flush: %w", g, err)
									return
								}
							}
						}
						if err := mw.Close(); err != nil {
							errs <- fmt.Errorf("streamer %d: Close: %w", g, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if err := ctRecv(t, readDone, 15*time.Second, "reading all messages"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestConnControlBetweenFragments: while a Writer holds a message open with
// one fragment flushed, Ping from another goroutine succeeds, and the peer
// then receives the whole message intact.
func TestConnControlBetweenFragments(t *testing.T) {
	for _, writerIsClient := range []bool{true, false} {
		name := "server-writer"
		if writerIsClient {
			name = "client-writer"
		}
		t.Run(name, func(t *testing.T) {
			ctx := ctCtx(t)
			srv, cli := ctPair(t, nil, nil)
			w, r := srv, cli
			if writerIsClient {
				w, r = cli, srv
			}
			peerGot := ctReadAsync(ctx, r)
			wReadDone := ctReadAsync(ctx, w) // w's reader sees the pong

			mw, err := w.Writer(ctx, websocket.MessageBinary)
			if err != nil {
				t.Fatal(err)
			}
			first := []byte("first fragment;")
			if _, err := mw.Write(first); err != nil {
				t.Fatal(err)
			}
			if err := mw.(ctFlusher).Flush(); err != nil {
				t.Fatal(err)
			}
			pingErr := make(chan error, 1)
			go func() {
				pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				pingErr <- w.Ping(pctx)
			}()
			if err := ctRecv(t, pingErr, ctStep, "Ping"); err != nil {
				t.Fatalf("Ping while a message is open: %v", err)
			}
			select {
			case res := <-peerGot:
				t.Fatalf("peer got a message before its final frame: %q %v", res.p, res.err)
			default:
			}
			second := []byte("second fragment")
			if _, err := mw.Write(second); err != nil {
				t.Fatal(err)
			}
			if err := mw.Close(); err != nil {
				t.Fatal(err)
			}
			res := ctRecv(t, peerGot, ctStep, "peer Read")
			if res.err != nil || res.typ != websocket.MessageBinary || string(res.p) != "first fragment;second fragment" {
				t.Fatalf("peer Read = %v %q %v", res.typ, res.p, res.err)
			}
			select {
			case res := <-wReadDone:
				t.Fatalf("writer's Read returned early: %v", res.err)
			default:
			}
		})
	}
}

// TestConnPongWhileWriterBlocked: the pong to a peer's ping goes out while
// a Writer holds the message lock and another Write waits for it; and when
// a Write is blocked on the transport, the pong follows its frame.
func TestConnPongWhileWriterBlocked(t *testing.T) {
	t.Run("message-lock-held", func(t *testing.T) {
		ctx := ctCtx(t)
		pings := make(chan []byte, 4)
		srv, cli := ctPair(t, &websocket.Options{OnPing: func(p []byte) { pings <- bytes.Clone(p) }}, nil)
		srvRead := make(chan ctReadResult, 1)
		go func() { // the server reads until the end; pings are handled here
			for {
				typ, p, err := srv.Read(ctx)
				if err != nil {
					srvRead <- ctReadResult{err: err}
					return
				}
				t.Errorf("server got unexpected message %v %q", typ, p)
			}
		}()
		cliMsgs := make(chan ctReadResult, 4)
		go func() {
			for {
				typ, p, err := cli.Read(ctx)
				cliMsgs <- ctReadResult{typ, bytes.Clone(p), err}
				if err != nil {
					return
				}
			}
		}()

		mw, err := srv.Writer(ctx, websocket.MessageText)
		if err != nil {
			t.Fatal(err)
		}
		mw.Write([]byte("open "))
		if err := mw.(ctFlusher).Flush(); err != nil {
			t.Fatal(err)
		}
		blockedWrite := make(chan error, 1)
		go func() { blockedWrite <- srv.Write(ctx, websocket.MessageText, []byte("queued")) }()
		time.Sleep(50 * time.Millisecond)
		select {
		case err := <-blockedWrite:
			t.Fatalf("Write did not wait for the open message: %v", err)
		default:
		}

		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := cli.Ping(pctx); err != nil {
			t.Fatalf("client Ping while server's writer holds the message: %v", err)
		}
		got := ctRecv(t, pings, ctStep, "OnPing")
		if len(got) != 8 {
			t.Fatalf("OnPing payload %x, want the 8-byte ping payload", got)
		}
		select {
		case err := <-blockedWrite:
			t.Fatalf("queued Write finished while the message was open: %v", err)
		default:
		}
		mw.Write([]byte("message"))
		if err := mw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := ctRecv(t, blockedWrite, ctStep, "queued Write"); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"open message", "queued"} {
			res := ctRecv(t, cliMsgs, ctStep, "client Read")
			if res.err != nil || res.typ != websocket.MessageText || string(res.p) != want {
				t.Fatalf("client Read = %v %q %v, want %q", res.typ, res.p, res.err, want)
			}
		}
	})

	t.Run("write-blocked-on-transport", func(t *testing.T) {
		ctx := ctCtx(t)
		c, raw := ctRaw(t, websocket.RoleServer, nil)
		readErr := ctReadAsync(ctx, c)
		big := bytes.Repeat([]byte{'z'}, 32<<20) // more than the socket buffers hold
		writeDone := make(chan error, 1)
		go func() { writeDone <- c.Write(ctx, websocket.MessageBinary, big) }()
		time.Sleep(100 * time.Millisecond)
		select {
		case err := <-writeDone:
			t.Fatalf("32 MiB Write did not block on an unread socket: %v", err)
		default:
		}
		if _, err := raw.Write(ctFrame(true, 0x9, []byte("are you there"), true)); err != nil {
			t.Fatal(err)
		}
		f := ctMustReadFrame(t, raw)
		if !f.fin || f.op != 0x2 || f.masked || len(f.payload) != len(big) || !bytes.Equal(f.payload, big) {
			t.Fatalf("first frame: fin=%v op=%#x masked=%v len=%d", f.fin, f.op, f.masked, len(f.payload))
		}
		if err := ctRecv(t, writeDone, ctStep, "big Write"); err != nil {
			t.Fatal(err)
		}
		f = ctMustReadFrame(t, raw)
		if !f.fin || f.op != 0xA || f.masked || string(f.payload) != "are you there" {
			t.Fatalf("after the blocked write: fin=%v op=%#x payload %q, want the pong", f.fin, f.op, f.payload)
		}
		select {
		case res := <-readErr:
			t.Fatalf("Read returned: %v", res.err)
		default:
		}
	})
}

// TestConnCloseDuringRead: Close while another goroutine is blocked in Read
// runs the handshake with a reading peer, returns nil promptly, and the
// blocked Read returns an error wrapping ErrClosed.
func TestConnCloseDuringRead(t *testing.T) {
	for _, closerIsClient := range []bool{false, true} {
		name := "server-closes"
		if closerIsClient {
			name = "client-closes"
		}
		t.Run(name, func(t *testing.T) {
			opts := &websocket.Options{CloseTimeout: 3 * time.Second}
			srv, cli := ctPair(t, opts, opts)
			a, b := srv, cli
			if closerIsClient {
				a, b = cli, srv
			}
			aRead := ctReadAsync(context.Background(), a)
			bRead := ctReadAsync(context.Background(), b)
			time.Sleep(50 * time.Millisecond) // let A block in Read
			start := time.Now()
			if err := a.Close(websocket.StatusNormalClosure, "bye"); err != nil {
				t.Fatalf("Close = %v, want nil", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("Close took %v with an answering peer", d)
			}
			res := ctRecv(t, aRead, ctStep, "blocked Read")
			if !errors.Is(res.err, websocket.ErrClosed) {
				t.Fatalf("blocked Read returned %v, want ErrClosed", res.err)
			}
			if st := a.State(); st != websocket.StateClosed {
				t.Fatalf("State after Close = %v", st)
			}
			res = ctRecv(t, bRead, ctStep, "peer Read")
			var ce *websocket.CloseError
			if !errors.As(res.err, &ce) || ce.Code != websocket.StatusNormalClosure || ce.Reason != "bye" {
				t.Fatalf("peer Read = %v, want CloseError 1000 \"bye\"", res.err)
			}
			if st := b.State(); st != websocket.StateClosed {
				t.Fatalf("peer State = %v", st)
			}
		})
	}
}

// TestConnCloseNeverHangs: Close is bounded by CloseTimeout when the peer
// never answers, and when another goroutine is blocked writing to a peer
// that does not read.
func TestConnCloseNeverHangs(t *testing.T) {
	const timeout = 300 * time.Millisecond
	const slack = 1500 * time.Millisecond
	for _, role := range []websocket.Role{websocket.RoleServer, websocket.RoleClient} {
		for _, drain := range []bool{false, true} {
			name := ctRoleName(role) + "/silent"
			if drain {
				name = ctRoleName(role) + "/reads-no-echo"
			}
			t.Run(name, func(t *testing.T) {
				c, raw := ctRaw(t, role, &websocket.Options{CloseTimeout: timeout})
				drained := make(chan []byte, 1)
				if drain {
					go func() {
						b, _ := io.ReadAll(raw)
						drained <- b
					}()
				}
				start := time.Now()
				err := c.Close(websocket.StatusGoingAway, "later")
				d := time.Since(start)
				if err == nil {
					t.Fatal("Close = nil with a peer that never answered")
				}
				if d < timeout-50*time.Millisecond || d > timeout+slack {
					t.Fatalf("Close took %v, want about %v", d, timeout)
				}
				if st := c.State(); st != websocket.StateClosed {
					t.Fatalf("State = %v", st)
				}
				var got []byte
				if drain {
					got = ctRecv(t, drained, ctStep, "raw peer EOF")
				} else {
					raw.SetReadDeadline(time.Now().Add(ctStep))
					got, _ = io.ReadAll(raw)
				}
				want := ctFrame(true, 0x8, ctClosePayload(1001, "later"), false)
				if role == websocket.RoleClient { // masked with a random key
					f, err := ctReadFrame(bytes.NewReader(got))
					if err != nil || !f.masked || f.op != 0x8 || !bytes.Equal(f.payload, ctClosePayload(1001, "later")) {
						t.Fatalf("peer got %x", got)
					}
				} else if !bytes.Equal(got, want) {
					t.Fatalf("peer got %x, want %x", got, want)
				}
			})
		}
	}

	t.Run("reader-blocked", func(t *testing.T) {
		// Close cannot read the answer itself (a Read holds the read side)
		// and the peer never answers: Close still returns in time.
		for _, role := range []websocket.Role{websocket.RoleServer, websocket.RoleClient} {
			c, raw := ctRaw(t, role, &websocket.Options{CloseTimeout: timeout})
			read := ctReadAsync(context.Background(), c)
			time.Sleep(50 * time.Millisecond)
			start := time.Now()
			closed := make(chan error, 1)
			go func() { closed <- c.Close(websocket.StatusNormalClosure, "") }()
			err := ctRecv(t, closed, timeout+slack, "Close")
			d := time.Since(start)
			if err == nil {
				t.Fatalf("%s: Close = nil with a peer that never answered", ctRoleName(role))
			}
			if d < timeout-50*time.Millisecond || d > timeout+slack {
				t.Fatalf("%s: Close took %v, want about %v", ctRoleName(role), d, timeout)
			}
			res := ctRecv(t, read, ctStep, "blocked Read")
			if !errors.Is(res.err, websocket.ErrClosed) {
				t.Fatalf("%s: blocked Read = %v, want ErrClosed", ctRoleName(role), res.err)
			}
			if st := c.State(); st != websocket.StateClosed {
				t.Fatalf("%s: State = %v", ctRoleName(role), st)
			}
			ctExpectEOF(t, raw, ctStep)
		}
	})

	t.Run("writer-blocked", func(t *testing.T) {
		c, _ := ctRaw(t, websocket.RoleServer, &websocket.Options{CloseTimeout: timeout})
		var written atomic.Int64
		writeErr := make(chan error, 1)
		go func() {
			msg := make([]byte, 256<<10)
			for {
				if err := c.Write(context.Background(), websocket.MessageBinary, msg); err != nil {
					writeErr <- err
					return
				}
				written.Add(1)
			}
		}()
		// Wait until the writer stops making progress: the buffers are full.
		deadline := time.Now().Add(ctStep)
		for last := int64(-1); ; {
			time.Sleep(100 * time.Millisecond)
			n := written.Load()
			if n == last && n > 0 {
				break
			}
			last = n
			if time.Now().After(deadline) {
				t.Fatal("writer never blocked")
			}
		}
		start := time.Now()
		err := c.Close(websocket.StatusNormalClosure, "")
		if d := time.Since(start); d > timeout+slack {
			t.Fatalf("Close took %v while a writer was blocked", d)
		}
		if err == nil {
			t.Fatal("Close = nil, but no close frame could be sent")
		}
		werr := ctRecv(t, writeErr, ctStep, "blocked Write to return")
		if !errors.Is(werr, websocket.ErrClosed) {
			t.Fatalf("blocked Write returned %v, want ErrClosed", werr)
		}
		if st := c.State(); st != websocket.StateClosed {
			t.Fatalf("State = %v", st)
		}
	})
}

// TestConnReadContextExpiry: a read context that ends between frames leaves
// the connection usable; one that ends inside a frame (or a frame header)
// fails it with a sticky error.
func TestConnReadContextExpiry(t *testing.T) {
	t.Run("between-frames", func(t *testing.T) {
		ctx := ctCtx(t)
		srv, cli := ctPair(t, nil, nil)
		for i := 0; i < 20; i++ { // the deadline must not be mistaken for a dead transport
			// start is taken before the context: its deadline is then at
			// least 50 ms after start, however late this goroutine runs
			// on a loaded machine, and Read may not end before it.
			start := time.Now()
			rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			_, _, err := srv.Read(rctx)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("round %d: Read = %v, want context.DeadlineExceeded", i, err)
			}
			if d := time.Since(start); d < 50*time.Millisecond || d > 2*time.Second {
				t.Fatalf("Read returned after %v", d)
			}
			if st := srv.State(); st != websocket.StateOpen {
				t.Fatalf("State after timeout = %v", st)
			}
			msg := []byte(fmt.Sprintf("later %d", i))
			if err := cli.Write(ctx, websocket.MessageText, msg); err != nil {
				t.Fatal(err)
			}
			ctMustRead(t, ctx, srv, websocket.MessageText, msg)
			if err := srv.Write(ctx, websocket.MessageBinary, msg); err != nil {
				t.Fatalf("Write after read timeout: %v", err)
			}
			ctMustRead(t, ctx, cli, websocket.MessageBinary, msg)
		}
	})

	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"mid-payload", ctFrame(true, 0x2, bytes.Repeat([]byte{7}, 100), false)[:2+50]},
		{"mid-header", []byte{0x82, 126, 0x01}}, // extended length cut short
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctCtx(t)
			var local *ctCountingConn
			c, raw := ctRawWrap(t, websocket.RoleClient, nil, func(nc net.Conn) net.Conn {
				local = &ctCountingConn{Conn: nc}
				return local
			})
			if _, err := raw.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			// The context must end after the Conn has read some of the
			// bytes sent. On a loaded machine the deadline may pass before
			// Read even reads the transport: then nothing of the frame was
			// read, the Conn is between frames and must still be open, and
			// Read is called again with a longer deadline.
			var err error
			for timeout := 100 * time.Millisecond; ; timeout *= 2 {
				rctx, cancel := context.WithTimeout(ctx, timeout)
				_, _, err = c.Read(rctx)
				cancel()
				if local.n.Load() > 0 {
					break
				}
				if err != context.DeadlineExceeded || c.State() != websocket.StateOpen {
					t.Fatalf("Read with a %v deadline that passed before anything was read = %v (state %v), want context.DeadlineExceeded and the Conn open", timeout, err, c.State())
				}
				if timeout > ctStep {
					t.Fatalf("the Conn read nothing of the %d bytes sent within %v", len(tc.send), timeout)
				}
			}
			if err == nil {
				t.Fatal("Read succeeded on a truncated frame")
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Read = %v, want an error wrapping context.DeadlineExceeded", err)
			}
			if st := c.State(); st != websocket.StateClosed {
				t.Fatalf("State = %v, want closed", st)
			}
			// Every later call reports the same sticky error.
			if _, _, e := c.Read(ctx); e != err {
				t.Fatalf("second Read = %v, want %v", e, err)
			}
			if _, _, e := c.Reader(ctx); e != err {
				t.Fatalf("Reader = %v, want %v", e, err)
			}
			if e := c.Write(ctx, websocket.MessageText, []byte("x")); e != err {
				t.Fatalf("Write = %v, want %v", e, err)
			}
			if _, e := c.Writer(ctx, websocket.MessageText); e != err {
				t.Fatalf("Writer = %v, want %v", e, err)
			}
			if e := c.Ping(ctx); e != err {
				t.Fatalf("Ping = %v, want %v", e, err)
			}
			if e := c.Close(websocket.StatusNormalClosure, ""); e != err {
				t.Fatalf("Close = %v, want %v", e, err)
			}
			ctExpectEOF(t, raw, ctStep)
		})
	}
}

// TestConnReadResumesFragmentedMessage: a Read that times out between the
// fragments of a message leaves it in progress; the next Read returns the
// whole message, with UTF-8 validation and control frames carried across.
func TestConnReadResumesFragmentedMessage(t *testing.T) {
	ctx := ctCtx(t)
	c, raw := ctRaw(t, websocket.RoleServer, nil)
	// "hé, world": é (C3 A9) is split across the first two fragments.
	frags := [][]byte{ctFrame(false, 0x1, []byte("h\xc3"), true),
		ctFrame(false, 0x0, []byte("\xa9, "), true),
		ctFrame(true, 0x0, []byte("world"), true)}
	for i, f := range frags[:2] {
		if _, err := raw.Write(f); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, _, err := c.Read(rctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Read after fragment %d = %v, want context.DeadlineExceeded", i, err)
		}
		if st := c.State(); st != websocket.StateOpen {
			t.Fatalf("State = %v", st)
		}
	}
	// A ping between fragments is answered, then the message completes.
	if _, err := raw.Write(append(ctFrame(true, 0x9, []byte("mid"), true), frags[2]...)); err != nil {
		t.Fatal(err)
	}
	ctMustRead(t, ctx, c, websocket.MessageText, []byte("hé, world"))
	f := ctMustReadFrame(t, raw)
	if !f.fin || f.op != 0xA || f.masked || string(f.payload) != "mid" {
		t.Fatalf("got frame op=%#x %q, want pong \"mid\"", f.op, f.payload)
	}
	// The next message starts fresh.
	if _, err := raw.Write(ctFrame(true, 0x2, []byte("next"), true)); err != nil {
		t.Fatal(err)
	}
	ctMustRead(t, ctx, c, websocket.MessageBinary, []byte("next"))
}

// TestConnStickyErrors: after the peer closes with 4000 "x", Read returns
// *CloseError{4000, "x"}, and every later call returns that same value.
func TestConnStickyErrors(t *testing.T) {
	for _, peerIsClient := range []bool{true, false} {
		name := "client-closes"
		if !peerIsClient {
			name = "server-closes"
		}
		t.Run(name, func(t *testing.T) {
			ctx := ctCtx(t)
			srv, cli := ctPair(t, nil, nil)
			a, peer := srv, cli
			if !peerIsClient {
				a, peer = cli, srv
			}
			peerClose := make(chan error, 1)
			go func() { peerClose <- peer.Close(4000, "x") }()
			_, _, err := a.Read(ctx)
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != 4000 || ce.Reason != "x" {
				t.Fatalf("Read = %#v, want *CloseError{4000, \"x\"}", err)
			}
			if websocket.CloseStatus(err) != 4000 {
				t.Fatalf("CloseStatus = %v", websocket.CloseStatus(err))
			}
			if e := ctRecv(t, peerClose, ctStep, "peer Close"); e != nil {
				t.Fatalf("peer Close = %v, want nil (we echoed)", e)
			}
			check := func(what string, e error) {
				t.Helper()
				if e != err {
					t.Errorf("%s = %v, want the same %v", what, e, err)
				}
			}
			_, _, e := a.Read(ctx)
			check("Read", e)
			_, r, e := a.Reader(ctx)
			check("Reader", e)
			if r != nil {
				t.Error("Reader returned a reader")
			}
			check("Write", a.Write(ctx, websocket.MessageBinary, []byte("late")))
			w, e := a.Writer(ctx, websocket.MessageText)
			check("Writer", e)
			if w != nil {
				t.Error("Writer returned a writer")
			}
			check("Ping", a.Ping(ctx))
			check("Close", a.Close(websocket.StatusNormalClosure, "again"))
			if e := a.CloseNow(); e != nil {
				t.Errorf("CloseNow = %v", e)
			}
			if e := a.CloseNow(); e != nil {
				t.Errorf("second CloseNow = %v", e)
			}
			_, _, e = a.Read(ctx)
			check("Read after CloseNow", e)
			if st := a.State(); st != websocket.StateClosed {
				t.Errorf("State = %v", st)
			}
			// The closer sees its own goodbye.
			if _, _, e := peer.Read(ctx); !errors.Is(e, websocket.ErrClosed) {
				t.Errorf("closer's Read = %v, want ErrClosed", e)
			}
			if e := peer.Write(ctx, websocket.MessageText, []byte("x")); !errors.Is(e, websocket.ErrClosed) {
				t.Errorf("closer's Write = %v, want ErrClosed", e)
			}
		})
	}
}

// TestConnState: Open after the handshake, Closing while the closing
// handshake waits for the peer, Closed after.
func TestConnState(t *testing.T) {
	t.Run("pair-open", func(t *testing.T) {
		srv, cli := ctPair(t, nil, nil)
		if srv.State() != websocket.StateOpen || cli.State() != websocket.StateOpen {
			t.Fatalf("states after handshake: server %v, client %v", srv.State(), cli.State())
		}
	})
	for _, role := range []websocket.Role{websocket.RoleServer, websocket.RoleClient} {
		isClient := role == websocket.RoleClient
		t.Run("we-close/"+ctRoleName(role), func(t *testing.T) {
			c, raw := ctRaw(t, role, &websocket.Options{CloseTimeout: 3 * time.Second})
			if st := c.State(); st != websocket.StateOpen {
				t.Fatalf("State = %v", st)
			}
			closeErr := make(chan error, 1)
			go func() { closeErr <- c.Close(websocket.StatusNormalClosure, "bye") }()
			f := ctMustReadFrame(t, raw)
			if f.op != 0x8 || !f.fin || f.masked != isClient || string(f.payload) != "\x03\xe8bye" {
				t.Fatalf("peer got op=%#x masked=%v payload %q", f.op, f.masked, f.payload)
			}
			time.Sleep(50 * time.Millisecond) // the peer delays its echo
			if st := c.State(); st != websocket.StateClosing {
				t.Fatalf("State while waiting for the echo = %v, want closing", st)
			}
			if _, err := raw.Write(ctFrame(true, 0x8, ctClosePayload(1000, ""), !isClient)); err != nil {
				t.Fatal(err)
			}
			if isClient {
				// A client waits for the server to close TCP first (§7.1.1).
				time.Sleep(50 * time.Millisecond)
				if st := c.State(); st != websocket.StateClosing {
					t.Fatalf("client State before the server closed TCP = %v, want closing", st)
				}
				raw.Close()
			} else {
				ctExpectEOF(t, raw, ctStep) // the server closes TCP at once
			}
			if err := ctRecv(t, closeErr, ctStep, "Close"); err != nil {
				t.Fatalf("Close = %v", err)
			}
			if st := c.State(); st != websocket.StateClosed {
				t.Fatalf("State after Close = %v", st)
			}
		})
		t.Run("peer-closes/"+ctRoleName(role), func(t *testing.T) {
			ctx := ctCtx(t)
			c, raw := ctRaw(t, role, &websocket.Options{CloseTimeout: 3 * time.Second})
			read := ctReadAsync(ctx, c)
			if _, err := raw.Write(ctFrame(true, 0x8, ctClosePayload(1001, "away"), !isClient)); err != nil {
				t.Fatal(err)
			}
			f := ctMustReadFrame(t, raw)
			if f.op != 0x8 || f.masked != isClient || string(f.payload) != "\x03\xe9" {
				t.Fatalf("echo: op=%#x masked=%v payload %q, want close 1001", f.op, f.masked, f.payload)
			}
			if isClient {
				time.Sleep(50 * time.Millisecond)
				if st := c.State(); st != websocket.StateClosing {
					t.Fatalf("client State before the server closed TCP = %v, want closing", st)
				}
				raw.Close()
			}
			res := ctRecv(t, read, ctStep, "Read")
			if websocket.CloseStatus(res.err) != 1001 {
				t.Fatalf("Read = %v, want close 1001", res.err)
			}
			if st := c.State(); st != websocket.StateClosed {
				t.Fatalf("State = %v", st)
			}
		})
	}
}

// TestConnKeepalive: with a peer that answers pings the connection stays up;
// with a silent peer it fails with ErrKeepaliveTimeout in bounded time.
func TestConnKeepalive(t *testing.T) {
	const interval = 50 * time.Millisecond
	t.Run("peer-answers", func(t *testing.T) {
		ctx := ctCtx(t)
		var pings atomic.Int32
		badPing := make(chan []byte, 1)
		srv, cli := ctPair(t, &websocket.Options{PingInterval: interval, PingTimeout: 200 * time.Millisecond},
			&websocket.Options{OnPing: func(p []byte) {
				pings.Add(1)
				if len(p) != 0 {
					select {
					case badPing <- bytes.Clone(p):
					default:
					}
				}
			}})
		srvRead := ctReadAsync(ctx, srv)
		cliRead := ctReadAsync(ctx, cli)
		time.Sleep(500 * time.Millisecond)
		select {
		case res := <-srvRead:
			t.Fatalf("server Read ended: %v", res.err)
		case res := <-cliRead:
			t.Fatalf("client Read ended: %v", res.err)
		case p := <-badPing:
			t.Fatalf("keepalive ping payload %x, want empty", p)
		default:
		}
		if st := srv.State(); st != websocket.StateOpen {
			t.Fatalf("State = %v", st)
		}
		if n := pings.Load(); n < 5 {
			t.Fatalf("peer saw %d keepalive pings in 500ms at a 50ms interval", n)
		}
		if err := srv.Write(ctx, websocket.MessageText, []byte("still here")); err != nil {
			t.Fatal(err)
		}
		res := ctRecv(t, cliRead, ctStep, "client Read")
		if res.err != nil || string(res.p) != "still here" {
			t.Fatalf("client Read = %q %v", res.p, res.err)
		}
	})
	t.Run("peer-silent", func(t *testing.T) {
		const timeout = 100 * time.Millisecond
		start := time.Now()
		c, raw := ctRaw(t, websocket.RoleServer, &websocket.Options{PingInterval: interval, PingTimeout: timeout})
		read := ctReadAsync(context.Background(), c)
		res := ctRecv(t, read, ctStep, "keepalive failure")
		d := time.Since(start)
		if !errors.Is(res.err, websocket.ErrKeepaliveTimeout) {
			t.Fatalf("Read = %v, want ErrKeepaliveTimeout", res.err)
		}
		if d < interval+timeout-20*time.Millisecond || d > interval+timeout+time.Second {
			t.Fatalf("keepalive failed after %v, want about %v", d, interval+timeout)
		}
		if st := c.State(); st != websocket.StateClosed {
			t.Fatalf("State = %v", st)
		}
		if e := c.Write(context.Background(), websocket.MessageText, nil); !errors.Is(e, websocket.ErrKeepaliveTimeout) {
			t.Fatalf("Write after keepalive failure = %v", e)
		}
		f := ctMustReadFrame(t, raw)
		if f.op != 0x9 || !f.fin || len(f.payload) != 0 {
			t.Fatalf("peer got op=%#x payload %q, want an empty ping", f.op, f.payload)
		}
	})
}

// TestConnHooks: OnPing and OnPong get the payloads, and pings are answered
// with the same payload.
func TestConnHooks(t *testing.T) {
	ctx := ctCtx(t)
	pings, pongs := make(chan []byte, 4), make(chan []byte, 4)
	c, raw := ctRaw(t, websocket.RoleServer, &websocket.Options{
		OnPing: func(p []byte) { pings <- bytes.Clone(p) },
		OnPong: func(p []byte) { pongs <- bytes.Clone(p) },
	})
	read := ctReadAsync(ctx, c)
	raw.Write(ctFrame(true, 0x9, []byte("ping-payload"), true))
	raw.Write(ctFrame(true, 0xA, []byte("unsolicited pong"), true))
	raw.Write(ctFrame(true, 0x9, nil, true))
	if p := ctRecv(t, pings, ctStep, "OnPing"); string(p) != "ping-payload" {
		t.Fatalf("OnPing(%q)", p)
	}
	if p := ctRecv(t, pongs, ctStep, "OnPong"); string(p) != "unsolicited pong" {
		t.Fatalf("OnPong(%q)", p)
	}
	if p := ctRecv(t, pings, ctStep, "OnPing"); len(p) != 0 {
		t.Fatalf("OnPing(%q), want empty", p)
	}
	// Pongs may be coalesced to the latest (§5.5.3), but the last ping's
	// answer must arrive, exactly.
	var got []ctRawFrame
	for len(got) == 0 || len(got[len(got)-1].payload) != 0 {
		f := ctMustReadFrame(t, raw)
		if f.op != 0xA || f.masked || !f.fin {
			t.Fatalf("peer got op=%#x masked=%v, want pongs", f.op, f.masked)
		}
		got = append(got, f)
		if len(got) > 2 {
			t.Fatalf("3 pongs for 2 pings")
		}
	}
	if len(got) == 2 && string(got[0].payload) != "ping-payload" {
		t.Fatalf("first pong %q", got[0].payload)
	}
	// Our own Ping: the hook sees its payload and Ping returns.
	pingErr := make(chan error, 1)
	go func() { pingErr <- c.Ping(ctx) }()
	f := ctMustReadFrame(t, raw)
	if f.op != 0x9 || len(f.payload) != 8 {
		t.Fatalf("Ping sent op=%#x payload %x", f.op, f.payload)
	}
	raw.Write(ctFrame(true, 0xA, f.payload, true))
	if err := ctRecv(t, pingErr, ctStep, "Ping"); err != nil {
		t.Fatal(err)
	}
	if p := ctRecv(t, pongs, ctStep, "OnPong"); !bytes.Equal(p, f.payload) {
		t.Fatalf("OnPong(%x), want %x", p, f.payload)
	}
	select {
	case res := <-read:
		t.Fatalf("Read returned: %v", res.err)
	default:
	}
}

// TestConnPing: Ping returns nil when the peer reads, and the context's
// error when the peer never answers, leaving the connection open.
func TestConnPing(t *testing.T) {
	t.Run("peer-reads", func(t *testing.T) {
		for _, pair := range []struct {
			name string
			fn   func(testing.TB, *websocket.Options, *websocket.Options) (*websocket.Conn, *websocket.Conn)
		}{{"tcp", ctPair}, {"pipe", ctPipePair}} {
			t.Run(pair.name, func(t *testing.T) {
				ctx := ctCtx(t)
				srv, cli := pair.fn(t, nil, nil)
				srvRead := ctReadAsync(ctx, srv)
				cliRead := ctReadAsync(ctx, cli)
				for i := 0; i < 10; i++ {
					for _, c := range []*websocket.Conn{srv, cli} {
						pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
						err := c.Ping(pctx)
						cancel()
						if err != nil {
							t.Fatalf("Ping %d: %v", i, err)
						}
					}
				}
				select {
				case res := <-srvRead:
					t.Fatalf("server Read: %v", res.err)
				case res := <-cliRead:
					t.Fatalf("client Read: %v", res.err)
				default:
				}
			})
		}
	})
	t.Run("peer-silent", func(t *testing.T) {
		ctx := ctCtx(t)
		c, raw := ctRaw(t, websocket.RoleClient, nil)
		read := ctReadAsync(ctx, c)
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := c.Ping(pctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Ping = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d < 90*time.Millisecond || d > time.Second {
			t.Fatalf("Ping returned after %v", d)
		}
		if st := c.State(); st != websocket.StateOpen {
			t.Fatalf("State = %v after an unanswered ping", st)
		}
		f := ctMustReadFrame(t, raw)
		if f.op != 0x9 || !f.masked || len(f.payload) != 8 {
			t.Fatalf("peer got op=%#x masked=%v payload %x", f.op, f.masked, f.payload)
		}
		// A late pong is harmless, and the connection still works.
		raw.Write(ctFrame(true, 0xA, f.payload, false))
		raw.Write(ctFrame(true, 0x1, []byte("ok"), false))
		res := ctRecv(t, read, ctStep, "Read")
		if res.err != nil || string(res.p) != "ok" {
			t.Fatalf("Read = %q %v", res.p, res.err)
		}
	})
}

// TestConnReaderDiscard: a message half read through Reader is discarded
// by the next Read, which returns the following message intact; the old
// reader no longer yields data.
func TestConnReaderDiscard(t *testing.T) {
	for _, pair := range []struct {
		name string
		fn   func(testing.TB, *websocket.Options, *websocket.Options) (*websocket.Conn, *websocket.Conn)
	}{{"tcp", ctPair}, {"pipe", ctPipePair}} {
		t.Run(pair.name, func(t *testing.T) {
			ctx := ctCtx(t)
			srv, cli := pair.fn(t, nil, nil)
			first := make([]byte, 20000)
			for i := range first {
				first[i] = byte(i * 7)
			}
			second := []byte("the second message, intact")
			sent := make(chan error, 1)
			go func() {
				// The first message in three frames, so the discard spans frames.
				mw, err := cli.Writer(ctx, websocket.MessageBinary)
				if err != nil {
					sent <- err
					return
				}
				mw.Write(first[:3000])
				mw.(ctFlusher).Flush()
				mw.Write(first[3000:12000])
				mw.(ctFlusher).Flush()
				mw.Write(first[12000:])
				if err := mw.Close(); err != nil {
					sent <- err
					return
				}
				sent <- cli.Write(ctx, websocket.MessageText, second)
			}()
			typ, r, err := srv.Reader(ctx)
			if err != nil || typ != websocket.MessageBinary {
				t.Fatalf("Reader = %v %v", typ, err)
			}
			half := make([]byte, 5000)
			if _, err := io.ReadFull(r, half); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(half, first[:5000]) {
				t.Fatal("first half corrupted")
			}
			ctMustRead(t, ctx, srv, websocket.MessageText, second)
			if n, err := r.Read(make([]byte, 10)); n != 0 || err == nil {
				t.Fatalf("stale reader Read = %d, %v; want 0 and an error", n, err)
			}
			if err := ctRecv(t, sent, ctStep, "writes"); err != nil {
				t.Fatal(err)
			}
			// Reader then Reader: the second one discards the first's rest.
			go func() {
				cli.Write(ctx, websocket.MessageBinary, first)
				cli.Write(ctx, websocket.MessageBinary, second)
			}()
			_, r1, err := srv.Reader(ctx)
			if err != nil {
				t.Fatal(err)
			}
			io.ReadFull(r1, half[:10])
			_, r2, err := srv.Reader(ctx)
			if err != nil {
				t.Fatal(err)
			}
			all, err := io.ReadAll(r2)
			if err != nil || !bytes.Equal(all, second) {
				t.Fatalf("second Reader = %q %v", all, err)
			}
		})
	}
}

// TestConnSetReadLimit: SetReadLimit applies to the next message; a message
// over it fails the connection with 1009, counted across fragments.
func TestConnSetReadLimit(t *testing.T) {
	for _, fragmented := range []bool{false, true} {
		t.Run(fmt.Sprintf("fragmented=%v", fragmented), func(t *testing.T) {
			ctx := ctCtx(t)
			c, raw := ctRaw(t, websocket.RoleServer, &websocket.Options{ReadLimit: 1000})
			big := bytes.Repeat([]byte{'b'}, 500)
			raw.Write(ctFrame(true, 0x2, big, true))
			ctMustRead(t, ctx, c, websocket.MessageBinary, big)

			c.SetReadLimit(100)
			exact := bytes.Repeat([]byte{'e'}, 100)
			raw.Write(ctFrame(true, 0x2, exact, true))
			ctMustRead(t, ctx, c, websocket.MessageBinary, exact)

			if fragmented {
				raw.Write(ctFrame(false, 0x2, exact[:60], true))
				raw.Write(ctFrame(true, 0x0, exact[:41], true))
			} else {
				raw.Write(ctFrame(true, 0x2, append(exact, 'x'), true))
			}
			_, _, err := c.Read(ctx)
			var pe *websocket.ProtocolError
			if !errors.As(err, &pe) || pe.Code != websocket.StatusMessageTooBig {
				t.Fatalf("Read of 101 bytes with limit 100 = %v, want ProtocolError 1009", err)
			}
			f := ctMustReadFrame(t, raw)
			if f.op != 0x8 || f.masked || len(f.payload) < 2 || binary.BigEndian.Uint16(f.payload) != 1009 {
				t.Fatalf("peer got op=%#x payload %q, want close 1009", f.op, f.payload)
			}
			if _, _, e := c.Read(ctx); e != err {
				t.Fatalf("second Read = %v, want the same %v", e, err)
			}
		})
	}
}

package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// feedPieces feeds c the stream cut into pieces, as reads would return
// it, and returns the frame bytes of each echo completed.
func feedPieces(c *echoCheck, pieces ...[]byte) ([]int, error) {
	var wires []int
	for _, p := range pieces {
		for len(p) > 0 {
			used, done, err := c.feed(p)
			if err != nil {
				return wires, err
			}
			if used == 0 && !done {
				return wires, fmt.Errorf("feed used nothing of %d bytes", len(p))
			}
			p = p[used:]
			if done {
				wires = append(wires, c.wire)
			}
		}
	}
	return wires, nil
}

// TestEchoCheckSplits feeds the echo check a stream of echoes (a
// fragmented one with a 16-bit length, a whole one, an empty first
// fragment, and for the compression scenario compressed and plain ones)
// cut in two at every byte boundary, and byte by byte: each cut gives the
// same echoes with the same frame bytes; a changed byte at any position
// of the payloads fails with the same error whatever the cut.
func TestEchoCheckSplits(t *testing.T) {
	want := echoPayload(300, 3, 1)
	frag := func(rsv, op byte, p []byte, at int) []byte {
		f := []byte{rsv | op, 126, byte(at >> 8), byte(at)}
		f = append(f, p[:at]...)
		return append(f, serverFrame(true, 0, 0, p[at:])...)
	}
	plain := [][]byte{
		frag(0, 2, want, 200),
		append([]byte{0x82, 126, 1, 44}, want...),
		append([]byte{0x02, 0}, frag(0, 0, want, 1)...)[:0], // placeholder, replaced below
	}
	// An empty first frame, then the rest in one continuation.
	plain[2] = append([]byte{0x02, 0x00, 0x80, 126, 1, 44}, want...)
	text := deflatePayload(100)
	comp := deflateMessage(text)
	deflate := [][]byte{
		serverFrame(true, 0x40, 1, comp),
		append(serverFrame(false, 0x40, 1, comp[:7]), serverFrame(true, 0, 0, comp[7:])...),
		serverFrame(true, 0, 1, text),
	}
	for _, mode := range []struct {
		name    string
		deflate bool
		want    []byte
		echoes  [][]byte
		errMsg  string
	}{
		{"plain", false, want, plain, "echo differs from the message sent"},
		{"deflate", true, text, deflate, ""},
	} {
		stream := bytes.Join(mode.echoes, nil)
		var wires []int
		for _, e := range mode.echoes {
			wires = append(wires, len(e))
		}
		check := func(what string, pieces ...[]byte) {
			t.Helper()
			c := &echoCheck{want: mode.want, deflate: mode.deflate}
			got, err := feedPieces(c, pieces...)
			if err != nil || fmt.Sprint(got) != fmt.Sprint(wires) {
				t.Fatalf("%s, %s: echoes of %v frame bytes, %v; want %v", mode.name, what, got, err, wires)
			}
		}
		for at := 0; at <= len(stream); at++ {
			check(fmt.Sprintf("cut at %d", at), stream[:at], stream[at:])
		}
		var bytewise [][]byte
		for i := range stream {
			bytewise = append(bytewise, stream[i:i+1])
		}
		check("byte by byte", bytewise...)

		if mode.errMsg == "" {
			continue
		}
		// A changed payload byte, anywhere in the first echo, with the
		// stream cut anywhere.
		first := mode.echoes[0]
		for pos := 4; pos < len(first); pos += 7 {
			if pos == 204 || pos == 205 { // the second frame's header
				continue
			}
			bad := bytes.Clone(stream)
			bad[pos] ^= 0x20
			for _, at := range []int{0, 1, pos, pos + 1, len(bad)} {
				c := &echoCheck{want: mode.want}
				_, err := feedPieces(c, bad[:at], bad[at:])
				if err == nil || err.Error() != mode.errMsg {
					t.Fatalf("%s: byte %d changed, cut at %d: error %v, want %q", mode.name, pos, at, err, mode.errMsg)
				}
			}
		}
	}
}

// clients are the two ways of driving a closed loop: the epoll loops
// (on Linux; elsewhere the same as the other) and a goroutine per
// connection.
var clients = []struct {
	name       string
	goroutines bool
}{{"epoll", false}, {"goroutines", true}}

// TestClosedLoopFails runs the echo scenario through each client against
// servers that change a byte, truncate an echo, cut one short and close,
// echo the connection's previous message, echo another connection's
// message, or close: each fails the scenario with an error that names
// the connection, the message and what was wrong, and no message is
// counted.
func TestClosedLoopFails(t *testing.T) {
	type mangler = func(conn, k int, p []byte) []byte
	// Servers that keep state get a fresh one per run.
	firstSeen := func() mangler {
		var (
			mu    sync.Mutex
			other []byte
		)
		return func(_, _ int, p []byte) []byte {
			mu.Lock()
			defer mu.Unlock()
			if other == nil {
				other = bytes.Clone(p)
			}
			return other
		}
	}
	previous := func() mangler {
		var (
			mu   sync.Mutex
			prev = map[int][]byte{}
		)
		return func(conn, k int, p []byte) []byte {
			mu.Lock()
			defer mu.Unlock()
			last := prev[conn]
			prev[conn] = p
			if last == nil {
				return p
			}
			return last
		}
	}
	stateless := func(m mangler) func() mangler { return func() mangler { return m } }
	cases := []struct {
		name   string
		conns  int
		mangle func() mangler
		err    string // the whole error, or with conns > 1 a part of it
	}{
		{"changed byte", 1, stateless(func(_, k int, p []byte) []byte {
			if k == 5 {
				p[17] ^= 1
			}
			return p
		}), "connection 0, message 5: echo differs from the message sent"},
		{"truncated", 1, stateless(func(_, k int, p []byte) []byte { return p[:len(p)-1] }), "connection 0, message 0: echo of 31 bytes, sent 32"},
		{"cut short", 1, stateless(func(_, k int, p []byte) []byte {
			if k == 2 {
				return append(p[:10:10], closeNow...)
			}
			return p
		}), "connection 0, message 2: the server closed the connection in the middle of the echo (14 frame bytes of it received)"},
		{"previous message", 1, previous, "connection 0, message 1: echo differs from the message sent"},
		{"other connection's message", 2, firstSeen, "echo differs from the message sent"},
		{"close", 1, stateless(func(_, k int, p []byte) []byte {
			if k == 3 {
				return nil
			}
			return p
		}), "connection 0, message 3: the server closed the connection instead of echoing"},
	}
	for _, cl := range clients {
		for _, c := range cases {
			t.Run(cl.name+"/"+c.name, func(t *testing.T) {
				cfg := &config{duration: 2 * time.Second, warmup: 20 * time.Millisecond, goroutineClient: cl.goroutines}
				s := &server{pid: os.Getpid(), addr: fakeServer(t, fakeOpts{mangle: c.mangle()})}
				start := time.Now()
				r, err := runEcho(cfg, s, echoSpec{c.conns, 32})
				switch {
				case err == nil:
					t.Fatalf("no error; result %+v", r)
				case c.conns == 1 && err.Error() != c.err, c.conns > 1 && !strings.Contains(err.Error(), c.err):
					t.Fatalf("error %q, want %q", err, c.err)
				case r.Messages != 0:
					t.Fatalf("%d messages counted from a failed scenario", r.Messages)
				case time.Since(start) > time.Second:
					t.Fatalf("the failure took %v to end the scenario, want it at once", time.Since(start))
				}
			})
		}
	}
}

// TestClosedLoopSplitEchoes runs the echo and compression scenarios
// through each client against a server that writes each echo in two
// writes, cut one byte further for each message, and fragments every
// other echo: every echo is accepted and counted.
func TestClosedLoopSplitEchoes(t *testing.T) {
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			cfg := &config{duration: 300 * time.Millisecond, warmup: 20 * time.Millisecond, goroutineClient: cl.goroutines}
			s := &server{pid: os.Getpid(), addr: fakeServer(t, fakeOpts{split: true})}
			for _, e := range []echoSpec{{1, 32}, {3, 1000}} {
				r, err := runEcho(cfg, s, e)
				if err != nil || r.Messages < 50 {
					t.Fatalf("echo %v: %v, %d messages (want at least 50)", e, err, r.Messages)
				}
			}
			s = &server{pid: os.Getpid(), addr: fakeServer(t, fakeOpts{ext: true, split: true})}
			r, err := runCompress(cfg, s, echoSpec{2, 1024}, compressionOn)
			if err != nil || r.Messages < 50 || r.CompressedEchoPct != 100 {
				t.Fatalf("compression: %v, %d messages (want at least 50), %.0f %% compressed", err, r.Messages, r.CompressedEchoPct)
			}
		})
	}
}

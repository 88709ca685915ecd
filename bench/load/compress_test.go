package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// TestDeflatePayload checks that the compression scenario's message is
// the same on every call, exactly n bytes of text, compressible, and that
// deflateMessage's output (tail removed) inflates back to it.
func TestDeflatePayload(t *testing.T) {
	for _, n := range []int{1, 32, 1024, 70000} {
		p := deflatePayload(n)
		if len(p) != n || !bytes.Equal(p, deflatePayload(n)) || !utf8.Valid(p) || p[0] != '[' {
			t.Fatalf("deflatePayload(%d): %d bytes, starts %q, valid UTF-8 %v, same twice %v",
				n, len(p), p[:min(len(p), 20)], utf8.Valid(p), bytes.Equal(p, deflatePayload(n)))
		}
		m := deflateMessage(p)
		if bytes.HasSuffix(m, []byte{0, 0, 0xff, 0xff}) {
			t.Fatalf("deflateMessage(%d bytes) keeps the sync-flush tail", n)
		}
		if n >= 1024 && len(m) > n/2 {
			t.Errorf("deflateMessage(%d bytes) is %d bytes, want at most half", n, len(m))
		}
		back, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(m), bytes.NewReader(inflateTail))))
		if err != nil || !bytes.Equal(back, p) {
			t.Fatalf("inflating deflateMessage(%d bytes): %d bytes, %v", n, len(back), err)
		}
	}
}

// TestCheckDeflateAnswer feeds checkDeflateAnswer handshake answers: the
// forms the six libraries send pass; no extension, another extension, two
// extensions, a missing server_no_context_takeover or a parameter that was
// not offered fail, each with its reason.
func TestCheckDeflateAnswer(t *testing.T) {
	head := func(ext ...string) []byte {
		h := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		for _, e := range ext {
			h += "Sec-WebSocket-Extensions: " + e + "\r\n"
		}
		return []byte(h + "\r\n")
	}
	for _, ok := range [][]byte{
		head("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
		head("permessage-deflate; client_no_context_takeover; server_no_context_takeover"),
		head("permessage-deflate;server_no_context_takeover"),
		head("permessage-deflate; server_no_context_takeover; server_max_window_bits=10"),
		[]byte("HTTP/1.1 101 Switching Protocols\r\nsec-websocket-extensions: permessage-deflate; server_no_context_takeover\r\n\r\n"),
	} {
		if err := checkDeflateAnswer(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, c := range []struct {
		head   []byte
		errHas string
	}{
		{head(), "no Sec-WebSocket-Extensions"},
		{head("x-webkit-deflate-frame"), "not permessage-deflate"},
		{head("permessage-deflate; server_no_context_takeover", "permessage-deflate; server_no_context_takeover"), "alone"},
		{head("permessage-deflate; client_no_context_takeover"), "lacks server_no_context_takeover"},
		{head("permessage-deflate; server_no_context_takeover; client_max_window_bits=10"), `parameter "client_max_window_bits=10" not offered or invalid`},
		{head("permessage-deflate; server_no_context_takeover; server_max_window_bits=16"), "server_max_window_bits=16"},
	} {
		err := checkDeflateAnswer(c.head)
		if err == nil || !strings.Contains(err.Error(), c.errHas) {
			t.Errorf("%q: error %v, want one containing %q", c.head, err, c.errHas)
		}
	}
}

// serverFrame is an unmasked server frame: fin, rsv bits (0x40 for RSV1),
// opcode and payload of under 126 bytes.
func serverFrame(fin bool, rsv, op byte, p []byte) []byte {
	b := rsv | op
	if fin {
		b |= 0x80
	}
	return append([]byte{b, byte(len(p))}, p...)
}

// TestDeflateEchoReader feeds the echo reader of the compression scenario
// server frames: a compressed echo (whole or fragmented, RSV1 on the first
// frame only) and an uncompressed one pass and count their frame bytes; a
// corrupted compressed payload, a different text, RSV1 on a continuation,
// a binary echo and an inflated echo longer than the message fail. In
// the run without the extension (plain) only a plain text echo passes:
// RSV1 on any frame fails.
func TestDeflateEchoReader(t *testing.T) {
	want := deflatePayload(100)
	comp := deflateMessage(want)
	corrupt := append([]byte{0x07}, comp[1:]...) // BTYPE 11: reserved
	longer := deflateMessage(append(append([]byte{}, want...), '!'))
	cases := []struct {
		name       string
		frames     []byte
		compressed bool
		errHas     string
	}{
		{"compressed", serverFrame(true, 0x40, 1, comp), true, ""},
		{"fragmented", append(serverFrame(false, 0x40, 1, comp[:10]), serverFrame(true, 0, 0, comp[10:])...), true, ""},
		{"plain", serverFrame(true, 0, 1, want), false, ""},
		{"corrupt", serverFrame(true, 0x40, 1, corrupt), true, "inflating the echo: flate: corrupt input"},
		{"changed", serverFrame(true, 0, 1, bytes.ToUpper(want)), false, "echo differs from the message sent (compressed: false)"},
		{"rsv1 on continuation", append(serverFrame(false, 0x40, 1, comp[:10]), serverFrame(true, 0x40, 0, comp[10:])...), true, "unexpected RSV bits 0x40"},
		{"rsv2", serverFrame(true, 0x20, 1, want), false, "unexpected RSV bits 0x20"},
		{"binary", serverFrame(true, 0x40, 2, comp), false, "unexpected opcode 0x2 (want a text message)"},
		{"longer", serverFrame(true, 0x40, 1, longer), true, "inflated echo longer than the 100 bytes sent"},
		{"short", serverFrame(true, 0, 1, want[:99]), false, "echo of 99 bytes, sent 100"},
	}
	// The run without the extension: a plain text echo passes, whole or
	// fragmented; RSV1 anywhere fails, on an echo that would otherwise
	// pass (compressed) as on one that would not.
	plainCases := []struct {
		name       string
		frames     []byte
		compressed bool
		errHas     string
	}{
		{"plain (off)", serverFrame(true, 0, 1, want), false, ""},
		{"plain fragmented (off)", append(serverFrame(false, 0, 1, want[:60]), serverFrame(true, 0, 0, want[60:])...), false, ""},
		{"compressed (off)", serverFrame(true, 0x40, 1, comp), false, "unexpected RSV bits 0x40 in a frame of the echo (permessage-deflate was not negotiated)"},
		{"rsv1 on plain text (off)", serverFrame(true, 0x40, 1, want), false, "unexpected RSV bits 0x40 in a frame of the echo (permessage-deflate was not negotiated)"},
		{"rsv1 on continuation (off)", append(serverFrame(false, 0, 1, want[:60]), serverFrame(true, 0x40, 0, want[60:])...), false, "unexpected RSV bits 0x40 in a frame of the echo (permessage-deflate was not negotiated)"},
		{"changed (off)", serverFrame(true, 0, 1, bytes.ToUpper(want)), false, "echo differs from the message sent (compressed: false)"},
		{"binary (off)", serverFrame(true, 0, 2, want), false, "unexpected opcode 0x2 (want a text message)"},
	}
	d := &echoCheck{want: want, deflate: true} // one for all: each echo resets it
	off := &echoCheck{want: want, deflate: true, plain: true}
	for _, c := range plainCases {
		err := off.readFrom(bufio.NewReader(bytes.NewReader(c.frames)))
		switch {
		case c.errHas == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.errHas == "" && (off.wire != len(c.frames) || off.compressed):
			t.Errorf("%s: %d frame bytes, compressed %v; want %d, false", c.name, off.wire, off.compressed, len(c.frames))
		case c.errHas != "" && (err == nil || err.Error() != c.errHas):
			t.Errorf("%s: error %v, want %q", c.name, err, c.errHas)
		}
	}
	for _, c := range cases {
		err := d.readFrom(bufio.NewReader(bytes.NewReader(c.frames)))
		wire, compressed := d.wire, d.compressed
		switch {
		case c.errHas == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.errHas == "" && (wire != len(c.frames) || compressed != c.compressed):
			t.Errorf("%s: %d frame bytes, compressed %v; want %d, %v", c.name, wire, compressed, len(c.frames), c.compressed)
		case c.errHas != "" && (err == nil || !strings.Contains(err.Error(), c.errHas)):
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.errHas)
		}
	}
}

var (
	echoserverOnce sync.Once
	echoserverBin  string
	echoserverErr  error
)

// buildEchoserver builds bench/echoserver once for the tests that run it
// as the benchmark does, as a child process.
func buildEchoserver(t *testing.T) string {
	t.Helper()
	echoserverOnce.Do(func() {
		dir, err := os.MkdirTemp("", "echoserver")
		if err != nil {
			echoserverErr = err
			return
		}
		echoserverBin = filepath.Join(dir, "echoserver")
		out, err := exec.Command("go", "build", "-o", echoserverBin, "../echoserver").CombinedOutput()
		if err != nil {
			echoserverErr = errors.New("go build ../echoserver: " + err.Error() + ": " + string(out))
		}
	})
	if echoserverErr != nil {
		t.Fatal(echoserverErr)
	}
	return echoserverBin
}

func TestMain(m *testing.M) {
	// The idle scenario starts its clients by running its own executable,
	// which under go test is this test binary: act as that client.
	if len(os.Args) > 1 && os.Args[1] == "idle-child" {
		idleChild(os.Args[2:])
		os.Exit(0)
	}
	code := m.Run()
	if echoserverBin != "" {
		os.RemoveAll(filepath.Dir(echoserverBin))
	}
	os.Exit(code)
}

// TestCompressScenarios runs the compression scenario (3 connections, 1 KiB
// text) through run against every library's echoserver started with
// -compress, as bench/run.sh does, twice per library, the client offering
// permessage-deflate and then not. With it, each must echo with the
// extension negotiated, compress every echo (100 %), send and receive
// fewer frame bytes than the message has, and report its allocations.
// Without it, each must answer without Sec-WebSocket-Extensions (dialPlain
// fails the run otherwise), echo every message plain, with no RSV1 (the
// check fails the run otherwise): exactly the 1 028 frame bytes of an
// unmasked 1 KiB text frame, none compressed. None is left out; the
// report must show it all, the two runs side by side.
func TestCompressScenarios(t *testing.T) {
	libs := []string{"duplex", "gorilla", "coder", "gobwas", "gws", "nbio", "duplex-eventloop"}
	cfg := &config{server: buildEchoserver(t), libs: libs, rounds: 1, compress: []echoSpec{{3, 1024}},
		duration: 300 * time.Millisecond, warmup: 50 * time.Millisecond}
	res := run(cfg)
	if len(res.Errors) > 0 {
		t.Fatalf("errors: %q", res.Errors)
	}
	if len(res.Compress) != 2*len(libs) {
		t.Fatalf("%d compression results, want %d: %+v", len(res.Compress), 2*len(libs), res.Compress)
	}
	if len(res.CompressLeftOut) != 0 {
		t.Errorf("left out %q, want none", res.CompressLeftOut)
	}
	payload := deflatePayload(1024)
	sent := float64(len(deflateFrame(deflateMessage(payload))))
	sentOff := float64(len(clientFrame(0x1, payload)))
	if sentOff != 1032 {
		t.Fatalf("plain text frame of 1 KiB: %.0f bytes, want 1032", sentOff)
	}
	for i, r := range res.Compress {
		lib, mode := libs[i/2], compressionModes(1)[i%2]
		if r.Lib != lib || r.Conns != 3 || r.Size != 1024 || r.Compression != mode {
			t.Errorf("row %d: %s %dx%d %q, want %s 3x1024 %q", i, r.Lib, r.Conns, r.Size, r.Compression, lib, mode)
		}
		if r.Messages == 0 || r.P50us <= 0 || r.ServerUsMsg <= 0 {
			t.Errorf("%s %s: implausible %+v", r.Lib, mode, r)
		}
		if !r.MemStats || r.AllocsPerMsg < 0 || r.AllocBytesPerMsg < 0 || (r.AllocsPerMsg > 0) != (r.AllocBytesPerMsg > 0) {
			t.Errorf("%s %s: allocations %v, %.2f/msg, %.0f B/msg", r.Lib, mode, r.MemStats, r.AllocsPerMsg, r.AllocBytesPerMsg)
		}
		if mode == compressionOff {
			if r.WireSentPerMsg != sentOff || r.WireEchoPerMsg != 1028 || r.CompressedEchoPct != 0 {
				t.Errorf("%s off: frame bytes %.0f sent (want %.0f), %.1f echoed (want 1028), %.0f %% compressed (want 0)",
					r.Lib, r.WireSentPerMsg, sentOff, r.WireEchoPerMsg, r.CompressedEchoPct)
			}
			continue
		}
		if r.WireSentPerMsg != sent || r.WireEchoPerMsg <= 4 || r.WireEchoPerMsg >= 700 || r.CompressedEchoPct != 100 {
			t.Errorf("%s: frame bytes %.0f sent (want %.0f), %.1f echoed (want 5 to 699), %.0f %% compressed (want 100)",
				r.Lib, r.WireSentPerMsg, sent, r.WireEchoPerMsg, r.CompressedEchoPct)
		}
	}
	md := markdown(res)
	want := []string{
		"#### Echo with permessage-deflate, 3 connections × 1 KiB text",
		"#### Echo without permessage-deflate (not offered), 3 connections × 1 KiB text",
		"#### permessage-deflate on and off, 3 connections × 1 KiB text",
		"| permessage-deflate, 3 connections × 1 KiB: messages/s |",
		"| permessage-deflate, 3 connections × 1 KiB: server µs per message |",
		"| permessage-deflate off (not offered), 3 connections × 1 KiB: messages/s |",
		"| permessage-deflate off (not offered), 3 connections × 1 KiB: server µs per message |",
	}
	for i := 0; i < len(res.Compress); i += 2 {
		on, off := res.Compress[i], res.Compress[i+1]
		want = append(want, fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | 1 032 | %s | 1 028 | %s |\n", on.Lib,
			num(on.MsgsPerSec), num(off.MsgsPerSec), ratio(on.MsgsPerSec, off.MsgsPerSec),
			num(on.ServerUsMsg), num(off.ServerUsMsg), ratio(on.ServerUsMsg, off.ServerUsMsg),
			num(on.WireSentPerMsg), num(on.WireEchoPerMsg), ratio(on.WireSentPerMsg+on.WireEchoPerMsg, 2060)))
	}
	for _, s := range want {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q:\n%s", s, md)
		}
	}
	if strings.Contains(md, "Left out") {
		t.Errorf("report leaves something out:\n%s", md)
	}
	// A run saved when a library had no permessage-deflate still says so.
	if md := markdown(&Results{Compress: res.Compress, CompressLeftOut: []string{"lib: why"}}); !strings.Contains(md, " Left out: lib: why.\n") {
		t.Errorf("report of a run with a library left out lacks the line:\n%s", md)
	}
}

// TestEchoAllocations runs the plain echo scenario against the duplex
// echoserver child and checks that the allocation counts were read at both
// ends of the window and turned into per-message figures: the server's
// answers to SIGUSR2 allocate, so the total is never zero, while a
// steady-state echo allocates less than one object per message.
func TestEchoAllocations(t *testing.T) {
	cfg := &config{server: buildEchoserver(t), duration: 300 * time.Millisecond, warmup: 50 * time.Millisecond}
	s, err := startServer(cfg, "duplex")
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	a, err := serverMem(s)
	if err != nil {
		t.Fatal(err)
	}
	r, err := runEcho(cfg, s, echoSpec{3, 32})
	if err != nil {
		t.Fatal(err)
	}
	b, err := serverMem(s)
	if err != nil {
		t.Fatal(err)
	}
	if !r.MemStats || r.Messages == 0 {
		t.Fatalf("echo result %+v: allocations not measured", r)
	}
	allocs, bytes := r.AllocsPerMsg*float64(r.Messages), r.AllocBytesPerMsg*float64(r.Messages)
	if allocs < 1 || allocs > float64(b.mallocs-a.mallocs) || bytes > float64(b.bytes-a.bytes) {
		t.Errorf("window: %.0f objects, %.0f bytes; around it: %d objects, %d bytes", allocs, bytes, b.mallocs-a.mallocs, b.bytes-a.bytes)
	}
	if r.AllocsPerMsg >= 1 {
		t.Errorf("duplex echo of 32 B: %.2f allocations per message, want under 1", r.AllocsPerMsg)
	}
	if md := markdown(&Results{Echo: []EchoResult{r}}); !strings.Contains(md, allocCells(r)) || strings.Contains(allocCells(r), "–") {
		t.Errorf("report row lacks the allocation cells %q:\n%s", allocCells(r), md)
	}
}

// TestParseMemLine checks the parsing of the server's SIGUSR2 answer.
func TestParseMemLine(t *testing.T) {
	if m, ok := parseMemLine("mem 12 3456"); !ok || m != (memStats{12, 3456}) {
		t.Errorf("mem 12 3456: %v %v", m, ok)
	}
	for _, bad := range []string{"gc", "mem 12", "mem x 1", "mem 1 2 3", "listening on 127.0.0.1:1"} {
		if _, ok := parseMemLine(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// fakeDeflateServer is an echo server of raw frames that misbehaves in
// the compression scenario: with ext false its handshake answer has no
// Sec-WebSocket-Extensions; otherwise it accepts the extension and sends
// back each message's payload through mangle.
func fakeDeflateServer(t *testing.T, ext bool, mangle func([]byte) []byte) string {
	return fakeServer(t, fakeOpts{ext: ext, mangle: func(_, _ int, p []byte) []byte { return mangle(p) }})
}

// fakeOpts shape fakeServer's echoes.
type fakeOpts struct {
	ext bool // accept permessage-deflate
	// mangle, if set, turns message k (from 0) of connection conn (in the
	// order they were accepted, from 0) into what is echoed; a nil result
	// closes the connection instead, and a result ending in closeNow is
	// sent (without closeNow) in a frame whose header announces as many
	// bytes as the message had, then the connection is closed.
	mangle func(conn, k int, p []byte) []byte
	// split writes each echo frame in two writes, cut after byte k mod
	// (frame length + 1) for message k, and sends every odd message as
	// two frames (a fragmented message).
	split bool
	// rsv1 sets RSV1 on every echo (a compressed one, if mangle
	// deflates it), whatever the message had and the handshake agreed.
	rsv1 bool
}

// closeNow, at the end of a mangled payload, makes fakeServer send the
// echo up to there and close: a truncated echo.
var closeNow = []byte("\x00close now\x00")

// fakeServer is an echo server of raw frames, for echoes as opts shape
// them.
func fakeServer(t *testing.T, opts fakeOpts) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for idx := 0; ; idx++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go fakeServe(c, idx, opts)
		}
	}()
	return ln.Addr().String()
}

func fakeServe(c net.Conn, idx int, opts fakeOpts) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if line == "\r\n" {
			break
		}
	}
	answer := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + handshakeAccept + "\r\n"
	if opts.ext {
		answer += "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
	}
	if _, err := io.WriteString(c, answer+"\r\n"); err != nil {
		return
	}
	for k := 0; ; k++ {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			io.ReadFull(br, e[:])
			n = int(e[0])<<8 | int(e[1])
		case 127:
			return // not sent by these tests
		}
		var key [4]byte
		p := make([]byte, n)
		if _, err := io.ReadFull(br, key[:]); err != nil {
			return
		}
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		for i := range p {
			p[i] ^= key[i&3]
		}
		if h[0]&0x0f == 0x8 {
			c.Write([]byte{0x88, 0})
			return
		}
		if opts.mangle != nil {
			m := opts.mangle(idx, k, p)
			if m == nil {
				return
			}
			if bytes.HasSuffix(m, closeNow) {
				f := append([]byte{h[0], 126, byte(n >> 8), byte(n)}, bytes.TrimSuffix(m, closeNow)...)
				c.Write(f)
				return
			}
			p = m
		}
		if opts.rsv1 {
			h[0] |= 0x40
		}
		var f []byte
		if opts.split && k%2 == 1 && len(p) > 1 {
			half := len(p) / 2
			f = append([]byte{h[0] & 0x7f, 126, byte(half >> 8), byte(half)}, p[:half]...)
			f = append(f, 0x80, 126, byte((len(p)-half)>>8), byte(len(p)-half))
			f = append(f, p[half:]...)
		} else {
			f = append([]byte{h[0], 126, byte(len(p) >> 8), byte(len(p))}, p...)
		}
		if opts.split {
			at := k % (len(f) + 1)
			if _, err := c.Write(f[:at]); err != nil {
				return
			}
			f = f[at:]
		}
		if _, err := c.Write(f); err != nil {
			return
		}
	}
}

// TestCompressScenarioFails checks that the compression scenario fails,
// saying why: with the extension offered, against a server that answers
// without it, one that corrupts the compressed echo, and one that echoes
// other text; without it offered, against a server that answers with the
// extension all the same, one that echoes with RSV1 (compressed, and
// otherwise right), and one that echoes other text.
func TestCompressScenarioFails(t *testing.T) {
	cfg := &config{duration: 200 * time.Millisecond, warmup: 20 * time.Millisecond}
	same := func(p []byte) []byte { return p }
	for _, c := range []struct {
		name   string
		mode   string
		opts   fakeOpts
		errHas string
	}{
		{"on/no extension", compressionOn, fakeOpts{}, "connecting: the server did not accept permessage-deflate: no Sec-WebSocket-Extensions in its handshake answer"},
		{"on/corrupt", compressionOn, fakeOpts{ext: true, mangle: func(_, _ int, p []byte) []byte { p[0] = 0x07; return p }}, "inflating the echo: flate: corrupt input"},
		{"on/changed", compressionOn, fakeOpts{ext: true, mangle: func(_, _ int, p []byte) []byte { return deflateMessage(bytes.ToUpper(deflatePayload(1024))) }},
			"echo differs from the message sent (compressed: true)"},
		{"off/extension answered", compressionOff, fakeOpts{ext: true},
			`connecting: the server answered Sec-WebSocket-Extensions "permessage-deflate; server_no_context_takeover; client_no_context_takeover" to a handshake that offered none`},
		{"off/rsv1", compressionOff, fakeOpts{rsv1: true, mangle: func(_, _ int, p []byte) []byte { return deflateMessage(p) }},
			"message 0: unexpected RSV bits 0x40 in a frame of the echo (permessage-deflate was not negotiated)"},
		{"off/changed", compressionOff, fakeOpts{mangle: func(_, _ int, p []byte) []byte { return bytes.ToUpper(p) }}, "echo differs from the message sent (compressed: false)"},
		{"bad mode", "maybe", fakeOpts{ext: true}, `unknown compression mode "maybe" (want "on" or "off")`},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &server{pid: os.Getpid(), addr: fakeServer(t, c.opts)}
			r, err := runCompress(cfg, s, echoSpec{2, 1024}, c.mode)
			if err == nil || !strings.Contains(err.Error(), c.errHas) {
				t.Fatalf("error %v, want one containing %q", err, c.errHas)
			}
			if r.Messages != 0 {
				t.Fatalf("%d messages counted from a failed scenario", r.Messages)
			}
		})
	}
	// The same servers pass when they echo faithfully: compressed with
	// the extension, plain without.
	sentOn := float64(len(deflateFrame(deflateMessage(deflatePayload(1024)))))
	for _, c := range []struct {
		mode                string
		ext                 bool
		sent, echoed, compr float64
	}{
		{compressionOn, true, sentOn, sentOn - 4, 100}, // the fake echoes the frame unmasked: 4 bytes of mask key fewer
		{compressionOff, false, 4 + 4 + 1024, 4 + 1024, 0},
	} {
		s := &server{pid: os.Getpid(), addr: fakeDeflateServer(t, c.ext, same)}
		r, err := runCompress(cfg, s, echoSpec{2, 1024}, c.mode)
		if err != nil || r.Messages == 0 || r.MemStats || r.Compression != c.mode {
			t.Fatalf("faithful server, %s: %v, %+v", c.mode, err, r)
		}
		if r.WireSentPerMsg != c.sent || r.WireEchoPerMsg != c.echoed || r.CompressedEchoPct != c.compr {
			t.Errorf("faithful server, %s: frame bytes %.0f sent, %.1f echoed, %.0f %% compressed; want %.0f, %.0f, %.0f %%",
				c.mode, r.WireSentPerMsg, r.WireEchoPerMsg, r.CompressedEchoPct, c.sent, c.echoed, c.compr)
		}
	}
}

// TestCompressOnOffReport writes the report of a fixed run of two rounds:
// duplex, gorilla and nbio with the extension offered and not, nbio's run
// without it failed in both (a failed run may still carry figures, which
// the report must not use). Each mode's table holds its own medians, the
// table of the two side by side pairs each library's medians with their
// ratios (a failed side leaves its cells "failed" and the ratios "–"),
// and the summary compares Duplex with the best peer in each mode.
func TestCompressOnOffReport(t *testing.T) {
	row := func(lib string, round int, mode string, msgs, us, sent, echoed float64, failed string) EchoResult {
		r := EchoResult{Lib: lib, Round: round, Conns: 2, Size: 1024, Compression: mode, Error: failed,
			Messages: 1000, MsgsPerSec: msgs, ServerUsMsg: us, WireSentPerMsg: sent, WireEchoPerMsg: echoed}
		if mode == compressionOn {
			r.CompressedEchoPct = 100
		}
		return r
	}
	res := &Results{Rounds: 2, Compress: []EchoResult{
		row("duplex", 1, "on", 20000, 40, 324, 342, ""),
		row("duplex", 1, "off", 50000, 15, 1032, 1028, ""),
		row("gorilla", 1, "on", 16000, 41, 324, 350, ""),
		row("gorilla", 1, "off", 60000, 13, 1032, 1028, ""),
		row("nbio", 1, "on", 18000, 55, 324, 350, ""),
		row("nbio", 1, "off", 40000, 20, 1032, 1028, "boom"),
		row("duplex", 2, "off", 54000, 13, 1032, 1028, ""),
		row("duplex", 2, "on", 22000, 38, 324, 342, ""),
		row("gorilla", 2, "off", 64000, 12, 1032, 1028, ""),
		row("gorilla", 2, "on", 18000, 43, 324, 350, ""),
		row("nbio", 2, "off", 40000, 20, 1032, 1028, "boom"),
		row("nbio", 2, "on", 18000, 55, 324, 350, ""),
	}}
	md := markdown(res)
	for _, s := range []string{
		// Each mode's own table, medians of its rounds.
		"#### Echo with permessage-deflate, 2 connections × 1 KiB text\n\n",
		"| duplex | 21 000 | 20 000–22 000 | 0 | 0 | 0 | 39.0 | 0 % | 0 % | 0.0 MiB | – | – | 324 | 342 | 100 % | 0.0 s |\n",
		"\nDuplex (duplex) ÷ best peer: messages/s 1.17 (best: nbio); server CPU per message 0.93 (duplex against gorilla, lower is better).\n\n",
		"#### Echo without permessage-deflate (not offered), 2 connections × 1 KiB text\n\n",
		"| duplex | 52 000 | 50 000–54 000 | 0 | 0 | 0 | 14.0 | 0 % | 0 % | 0.0 MiB | – | – | 1 032 | 1 028 | 0 % | 0.0 s |\n",
		"| nbio | failed: boom | | | | | | | | | | | | | |\n",
		"\nDuplex (duplex) ÷ best peer: messages/s 0.84 (best: gorilla); server CPU per message 1.12 (duplex against gorilla, lower is better).\n\n",
		// The two side by side.
		"#### permessage-deflate on and off, 2 connections × 1 KiB text\n\n",
		" Every figure is the median of the rounds, and the ratios are those of the medians; the ratios of messages/s and of server µs/msg " +
			"are followed by their 95 % interval, the rounds drawn again as for the ratios to the best peer, each drawn round bringing the library's runs on and off of that round " +
			"(with fewer than 3 rounds there is none).\n\n" +
			"| library | messages/s, on | messages/s, off | on ÷ off | server µs/msg, on | server µs/msg, off | on ÷ off | frame B sent, on | frame B sent, off | frame B echoed, on | frame B echoed, off | frame B both ways, on ÷ off |\n" +
			"| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n" +
			"| duplex | 21 000 | 52 000 | 0.40 | 39.0 | 14.0 | 2.79 | 324 | 1 032 | 342 | 1 028 | 0.32 |\n" +
			"| gorilla | 17 000 | 62 000 | 0.27 | 42.0 | 12.5 | 3.36 | 324 | 1 032 | 350 | 1 028 | 0.33 |\n" +
			"| nbio | 18 000 | failed | – | 55.0 | failed | – | 324 | failed | 350 | failed | – |\n\n",
		// Duplex against the best peer, on and off.
		"| permessage-deflate, 2 connections × 1 KiB: messages/s | 21 000 | 18 000 | nbio | 1.17 |\n",
		"| permessage-deflate, 2 connections × 1 KiB: server µs per message | 39.0 | 42.0 | gorilla | 0.93 |\n",
		"| permessage-deflate off (not offered), 2 connections × 1 KiB: messages/s | 52 000 | 62 000 | gorilla | 0.84 |\n",
		"| permessage-deflate off (not offered), 2 connections × 1 KiB: server µs per message | 14.0 | 12.5 | gorilla | 1.12 |\n",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q:\n%s", s, md)
		}
	}
	if n := strings.Count(md, "\n| duplex | "); n != 3 {
		t.Errorf("%d rows of duplex, want 3 (on, off, side by side):\n%s", n, md)
	}
	// The plots have a panel per mode.
	ps := compressPanels(summarize(res), func(r EchoResult) float64 { return r.MsgsPerSec })
	if len(ps) != 2 || ps[0].title != "permessage-deflate, 2 connections × 1 KiB" || ps[1].title != "permessage-deflate off (not offered), 2 connections × 1 KiB" ||
		fmt.Sprint(ps[0].values, ps[1].values, ps[1].failed) != "[21000 17000 18000] [52000 62000 40000] [false false true]" {
		t.Errorf("panels %+v", ps)
	}
}

// TestCompressOldJSON reads results saved before the off run existed,
// whose compression rows have no "compression" field: a literal one and
// every file in bench/results. Their rows are all "on": the report shows
// them as the run with permessage-deflate, with the same summary rows as
// before, and no off run or side-by-side table. A row of the new kind
// keeps its mode through JSON.
func TestCompressOldJSON(t *testing.T) {
	old := `{"rounds": 1, "compress": [
		{"lib": "duplex", "round": 1, "conns": 100, "size": 1024, "messages": 1000, "msgs_per_s": 20000, "server_us_per_msg": 40,
		 "frame_bytes_sent_per_msg": 324, "frame_bytes_echoed_per_msg": 342, "compressed_echo_pct": 100},
		{"lib": "gorilla", "round": 1, "conns": 100, "size": 1024, "messages": 1000, "msgs_per_s": 16000, "server_us_per_msg": 50,
		 "frame_bytes_sent_per_msg": 324, "frame_bytes_echoed_per_msg": 350, "compressed_echo_pct": 100}]}`
	var res Results
	if err := json.Unmarshal([]byte(old), &res); err != nil {
		t.Fatal(err)
	}
	md := markdown(&res)
	for _, s := range []string{
		"#### Echo with permessage-deflate, 100 connections × 1 KiB text\n\n",
		"| duplex | 20 000 | 0 | 0 | 0 | 40.0 | 0 % | 0 % | 0.0 MiB | – | – | 324 | 342 | 100 % | 0.0 s |\n",
		"| permessage-deflate, 100 connections × 1 KiB: messages/s | 20 000 | 16 000 | gorilla | 1.25 |\n",
		"| permessage-deflate, 100 connections × 1 KiB: server µs per message | 40.0 | 50.0 | gorilla | 0.80 |\n",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("report of old JSON lacks %q:\n%s", s, md)
		}
	}
	for _, s := range []string{"without permessage-deflate", "on and off", "off (not offered)", "also runs without"} {
		if strings.Contains(md, s) {
			t.Errorf("report of old JSON has %q:\n%s", s, md)
		}
	}

	files, err := filepath.Glob("../results/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no saved results: %v", err)
	}
	withCompress := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var res Results
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := writePlots(&res, t.TempDir()); err != nil {
			t.Fatalf("%s: plots: %v", f, err)
		}
		md := markdown(&res)
		if len(res.Compress) == 0 || slices.ContainsFunc(res.Compress, func(r EchoResult) bool { return r.Compression != "" }) {
			continue // no compression rows, or written since the field exists: loaded and drawn above
		}
		withCompress++
		for _, r := range res.Compress {
			if r.Compression != "" || compressionOf(r) != compressionOn {
				t.Fatalf("%s: row %+v has mode %q, %q", f, r, r.Compression, compressionOf(r))
			}
		}
		s := res.Compress[0]
		heading := fmt.Sprintf("#### Echo with permessage-deflate, %s text\n\n", echoTitle(s.Conns, s.Size))
		if !strings.Contains(md, heading) || !strings.Contains(md, "| "+deflateTitlePrefix+echoTitle(s.Conns, s.Size)+": messages/s |") ||
			strings.Contains(md, "without permessage-deflate") || strings.Contains(md, "on and off") {
			t.Errorf("%s: report lacks %q or its summary row, or has an off run:\n%s", f, heading, md)
		}
	}
	if withCompress == 0 {
		t.Errorf("none of %q has compression rows", files)
	}

	r := EchoResult{Lib: "duplex", Conns: 1, Size: 1, Compression: compressionOff}
	b, _ := json.Marshal(r)
	var back EchoResult
	if err := json.Unmarshal(b, &back); err != nil || !strings.Contains(string(b), `"compression":"off"`) || back != r {
		t.Errorf("JSON round trip: %s gives %+v, %v", b, back, err)
	}
}

package interop

import (
	"bytes"
	"maps"
	"slices"
	"testing"

	"github.com/duplex-ws/duplex/websocket"
)

// The compression tests run the compression scenario (README.md) with
// permessage-deflate negotiated, in both directions, and check the bytes
// that crossed TCP on the Go side: every message compressed as expected,
// every back-reference within the window and the history its sender
// agreed to, and compressible messages far smaller on the wire than
// inflated.

// compressCase is one compression test.
type compressCase struct {
	name   string
	closer string
	// comp is the Go side's compression options; Enabled and Threshold
	// are set by the test (Threshold -1: every message is compressed).
	comp websocket.CompressionOptions
	// peerCompress is the peer's --compress argument: "--compress" for
	// its library's defaults, "--compress=PARAM,PARAM=N" for an offer (a
	// client) or a configuration (a server) with those RFC 7692 parameters.
	// For the page, it is "" (the browser's offer is its own).
	peerCompress string
	// answer is the Sec-WebSocket-Extensions answer the server must give.
	answer string
}

func compressRun(comp websocket.CompressionOptions) goRun {
	o := connOptions
	comp.Enabled = true
	comp.Threshold = -1
	o.Compression = comp
	return goRun{opts: o, seq: compressSequence(), tap: true}
}

func TestCompressGoServerPythonClient(t *testing.T) {
	cases := []compressCase{
		{name: "default", closer: closerGo, peerCompress: "--compress",
			answer: "permessage-deflate"},
		{name: "server_max_window_bits=9", closer: closerPeer, peerCompress: "--compress",
			comp:   websocket.CompressionOptions{ServerMaxWindowBits: 9},
			answer: "permessage-deflate; server_max_window_bits=9"},
		{name: "server_max_window_bits=12", closer: closerGo, peerCompress: "--compress",
			comp:   websocket.CompressionOptions{ServerMaxWindowBits: 12},
			answer: "permessage-deflate; server_max_window_bits=12"},
		{name: "python_offers_window_bits=10", closer: closerPeer,
			peerCompress: "--compress=server_max_window_bits=10,client_max_window_bits=10",
			answer:       "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"},
		{name: "go_no_context_takeover", closer: closerGo, peerCompress: "--compress",
			comp:   websocket.CompressionOptions{ServerNoContextTakeover: true, ClientNoContextTakeover: true},
			answer: "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{name: "python_offers_no_context_takeover", closer: closerPeer,
			peerCompress: "--compress=server_no_context_takeover,client_no_context_takeover",
			answer:       "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requirePeer(t, "python")
			info := goServerRun(t, tc.closer, "python client", func(base string) []string {
				return []string{systemPython, pythonPeer, tc.peerCompress, "client", wsURL(base, tc.closer)}
			}, compressRun(tc.comp))
			checkCompressedWire(t, info, "server", tc)
		})
	}
}

func TestCompressGoClientPythonServer(t *testing.T) {
	cases := []compressCase{
		// websockets' server defaults: 12-bit windows both ways.
		{name: "default", closer: closerGo, peerCompress: "--compress",
			answer: "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"},
		{name: "go_offers_window_bits", closer: closerPeer, peerCompress: "--compress",
			comp:   websocket.CompressionOptions{ServerMaxWindowBits: 9, ClientMaxWindowBits: 10},
			answer: "permessage-deflate; server_max_window_bits=9; client_max_window_bits=10"},
		{name: "go_offers_no_context_takeover", closer: closerGo, peerCompress: "--compress",
			comp:   websocket.CompressionOptions{ServerNoContextTakeover: true, ClientNoContextTakeover: true},
			answer: "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requirePeer(t, "python")
			info := goClientRun(t, tc.closer, "python server",
				[]string{systemPython, pythonPeer, tc.peerCompress, "server", "0"}, compressRun(tc.comp))
			checkCompressedWire(t, info, "client", tc)
		})
	}
}

func TestCompressGoServerNodeClient(t *testing.T) {
	cases := []compressCase{
		{name: "default", closer: closerGo, peerCompress: "--compress",
			answer: "permessage-deflate"},
		{name: "go_limits", closer: closerPeer, peerCompress: "--compress",
			comp: websocket.CompressionOptions{ServerMaxWindowBits: 10, ClientMaxWindowBits: 11,
				ServerNoContextTakeover: true, ClientNoContextTakeover: true},
			answer: "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requirePeer(t, "node")
			info := goServerRun(t, tc.closer, "node client", func(base string) []string {
				return []string{"node", nodePeer, tc.peerCompress, "client", wsURL(base, tc.closer)}
			}, compressRun(tc.comp))
			checkCompressedWire(t, info, "server", tc)
		})
	}
}

func TestCompressGoClientNodeServer(t *testing.T) {
	cases := []compressCase{
		{name: "default", closer: closerPeer, peerCompress: "--compress",
			answer: "permessage-deflate"},
		{name: "node_limits", closer: closerGo,
			peerCompress: "--compress=server_no_context_takeover,client_no_context_takeover,server_max_window_bits=10,client_max_window_bits=9",
			answer:       "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requirePeer(t, "node")
			info := goClientRun(t, tc.closer, "node server",
				[]string{"node", nodePeer, tc.peerCompress, "server", "0"}, compressRun(tc.comp))
			checkCompressedWire(t, info, "client", tc)
		})
	}
}

// TestCompressGoServerChromium runs the compression scenario with the page
// (mode=compress in its query). Chromium offers
// "permessage-deflate; client_max_window_bits" on every connection.
func TestCompressGoServerChromium(t *testing.T) {
	cases := []compressCase{
		{name: "default", closer: closerGo, answer: "permessage-deflate"},
		// The server's window is 12 bits: Chromium inflates about ten times
		// slower with 10 bits (some 20 s for this scenario's 20 MB).
		{name: "go_limits", closer: closerPeer,
			comp:   websocket.CompressionOptions{ServerMaxWindowBits: 12, ClientMaxWindowBits: 10, ClientNoContextTakeover: true},
			answer: "permessage-deflate; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=10"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requirePeer(t, "chromium")
			info := goServerRun(t, tc.closer, "chromium page", func(base string) []string {
				return []string{"node", browserPeer, base + "/?closer=" + tc.closer + "&mode=compress"}
			}, compressRun(tc.comp))
			checkCompressedWire(t, info, "server", tc)
		})
	}
}

// zlibLookahead is what zlib keeps free at the end of its window
// (MIN_LOOKAHEAD): its farthest reference is 2^bits - 262 back.
const zlibLookahead = 262

// checkCompressedWire checks the recorded bytes of a compression test that
// passed: the answer, then each direction's messages (see checkDirection).
// goRole is the Go side's role, "server" or "client".
func checkCompressedWire(t *testing.T, info *runInfo, goRole string, tc compressCase) {
	t.Helper()
	info.mu.Lock()
	ok, answer, wire, whole := info.ok, info.extensions, info.wire, info.whole
	info.mu.Unlock()
	if !ok {
		return // the failure is reported; the wire would only repeat it
	}
	got, err := parseDeflateAnswer(answer)
	if err != nil {
		t.Fatalf("Sec-WebSocket-Extensions answer: %v", err)
	}
	want, err := parseDeflateAnswer(tc.answer)
	if err != nil {
		t.Fatalf("bad expected answer: %v", err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("Sec-WebSocket-Extensions answer %q, want %q", answer, tc.answer)
	}
	t.Logf("negotiated: %s", answer)
	if wire == nil {
		t.Fatal("no recorded connection")
	}
	read, written := wire.streams()
	peerRole := "client"
	if goRole == "client" {
		peerRole = "server"
	}
	goBits, goTakeover := got.sender(goRole)
	peerBits, peerTakeover := got.sender(peerRole)
	seq := compressSequence()
	t.Logf("TCP bytes: Go read %d, wrote %d; payload bytes of the scenario each way: %d",
		len(read), len(written), payloadTotal(seq))
	checkDirection(t, "Go → peer", written, seq, goBits, goTakeover, true, whole)
	checkDirection(t, "peer → Go", read, seq, peerBits, peerTakeover, false, false)
}

func payloadTotal(seq []message) int {
	n := 0
	for _, m := range seq {
		n += len(m.data)
	}
	return n
}

// checkDirection checks the messages of one direction (stream: the bytes
// the sender wrote, handshake included) against seq, sent with a window of
// windowBits and context takeover or not:
//   - the messages come in order with their types; from the Go side in 1
//     frame, or when fragmented in 3 (4 when the last part went out as a
//     frame of its own before Close; see sendSequence), or always in 1 with
//     goWhole (the event-loop server, which cannot fragment);
//   - a compressed message (RSV1 on its first frame only, which
//     parseFrames checks) inflates, with every back-reference within the
//     window and the history (strictInflater), to the expected bytes; an
//     uncompressed one carries them;
//   - every message is compressed when goSender (Threshold -1 compresses
//     everything), every non-empty text message (json and small families)
//     from a peer (each peer is set to compress everything);
//   - json messages take at most a quarter of their size on the wire, the
//     small ones after the first at most half with context takeover, and
//     from the Go side a periodic(n,p) message with p within zlib's reach
//     of the window (p <= 2^bits - 262) at most a quarter, with a
//     back-reference at least p long somewhere (the window is used, not
//     just respected);
//   - the whole direction, handshake and headers included, takes at most
//     the random and periodic payloads plus a quarter of the others.
func checkDirection(t *testing.T, what string, stream []byte, seq []message, windowBits int, takeover, goSender, goWhole bool) {
	t.Helper()
	frames, err := afterHandshake(stream)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	msgs, err := parseFrames(frames)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(msgs) != len(seq) {
		t.Fatalf("%s: %d data messages on the wire, want %d", what, len(msgs), len(seq))
	}
	inf := newStrictInflater(windowBits, takeover)
	type stat struct{ raw, wire, msgs, compressed int }
	stats := map[string]*stat{}
	smallAfterFirst := stat{}
	longestPeriod := 0 // of the periodic messages that must compress
	for i, m := range seq {
		wm := msgs[i]
		if wm.op != byte(m.typ) {
			t.Fatalf("%s: %v: opcode %d on the wire", what, m, wm.op)
		}
		got := wm.payload
		if wm.rsv1 {
			got, err = inf.inflate(wm.payload, len(m.data))
			if err != nil {
				t.Fatalf("%s: %v (%d bytes on the wire, window %d bits, takeover %v): %v",
					what, m, len(wm.payload), windowBits, takeover, err)
			}
		}
		if !bytes.Equal(got, m.data) {
			t.Fatalf("%s: %v: the wire carries other bytes (compressed %v): %s", what, m, wm.rsv1, firstDiff(got, m.data))
		}
		if goSender && goWhole && wm.frames != 1 {
			t.Errorf("%s: %v: %d frames, want 1", what, m, wm.frames)
		}
		if goSender && !goWhole && (!m.frag && wm.frames != 1 || m.frag && wm.frames != 3 && wm.frames != 4) {
			t.Errorf("%s: %v: %d frames, want %s", what, m, wm.frames, map[bool]string{false: "1", true: "3 or 4"}[m.frag])
		}
		mustCompress := goSender || (m.typ == websocket.MessageText && len(m.data) > 0)
		if mustCompress && !wm.rsv1 {
			t.Errorf("%s: %v went uncompressed", what, m)
		}
		s := stats[m.family]
		if s == nil {
			s = new(stat)
			stats[m.family] = s
		}
		s.raw += len(m.data)
		s.wire += len(wm.payload)
		s.msgs++
		if wm.rsv1 {
			s.compressed++
		}
		if m.family == "small" && i > 0 && seq[i-1].family == "small" {
			smallAfterFirst.raw += len(m.data)
			smallAfterFirst.wire += len(wm.payload)
		}
		if m.family == "periodic" && goSender && m.period+zlibLookahead <= 1<<windowBits {
			longestPeriod = max(longestPeriod, m.period)
			if len(wm.payload) > len(m.data)/4 {
				t.Errorf("%s: %v: %d bytes on the wire, want at most a quarter (the period fits the %d-bit window)",
					what, m, len(wm.payload), windowBits)
			}
		}
	}
	for _, f := range slices.Sorted(maps.Keys(stats)) {
		s := stats[f]
		t.Logf("%s: %s: %d messages (%d compressed): %d bytes, %d on the wire (%.3f)",
			what, f, s.msgs, s.compressed, s.raw, s.wire, float64(s.wire)/float64(max(s.raw, 1)))
	}
	t.Logf("%s: small messages after the first: %d bytes, %d on the wire; window %d bits, takeover %v, longest distance %d",
		what, smallAfterFirst.raw, smallAfterFirst.wire, windowBits, takeover, inf.maxDist)
	if j := stats["json"]; j.wire > j.raw/4 {
		t.Errorf("%s: json messages: %d bytes on the wire for %d, want at most a quarter", what, j.wire, j.raw)
	}
	if takeover && smallAfterFirst.wire > smallAfterFirst.raw/2 {
		t.Errorf("%s: small messages after the first, with context takeover: %d bytes on the wire for %d, want at most half",
			what, smallAfterFirst.wire, smallAfterFirst.raw)
	}
	if longestPeriod > 0 && inf.maxDist < longestPeriod {
		t.Errorf("%s: longest back-reference %d, want at least %d (periodic data of that period, %d-bit window)",
			what, inf.maxDist, longestPeriod, windowBits)
	}
	limit := stats["random"].raw + stats["periodic"].raw + (stats["json"].raw+stats["small"].raw)/4
	if len(stream) > limit {
		t.Errorf("%s: %d bytes crossed TCP, want at most %d (random and periodic payloads, a quarter of the others)",
			what, len(stream), limit)
	}
}

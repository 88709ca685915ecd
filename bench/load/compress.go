package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The compression scenarios (-compress CxS): the echo scenario with
// permessage-deflate (RFC 7692) negotiated, no context takeover either
// way, and the same scenario with compression off, so that each library
// can be compared with itself. Every echoserver runs with -compress, and
// each library runs twice, against a fresh server each time:
//
//   - on: the client, still raw frames, offers the extension, fails the
//     scenario unless the server's answer accepts it with
//     server_no_context_takeover, and sends one message over and over: S
//     bytes of JSON-like text, deflated once with compress/flate, the
//     sync-flush tail removed (§7.2.1), in a masked text frame with RSV1.
//     Each echo may come back compressed (RSV1) or not, both legal; a
//     compressed one is inflated with the tail put back; either way it
//     must equal the S bytes sent.
//   - off: the client offers no extension, so the connection is plain:
//     the server's answer must have no Sec-WebSocket-Extensions, the same
//     S bytes of text go out in a masked text frame without RSV1, and
//     every frame of the echo must come back without it (a server that
//     compressed anyway would be sending what the client cannot read).
//
// The WebSocket frame bytes each way (headers included) are counted in
// both.

// The values of EchoResult.Compression: the client offered
// permessage-deflate (on) or did not (off). Runs saved before the off run
// existed leave it empty, and their compression rows are all "on".
const (
	compressionOn  = "on"
	compressionOff = "off"
)

// compressionOf is the mode of a compression scenario's result, "on" for
// rows saved before the field existed (they were all on).
func compressionOf(r EchoResult) string {
	if r.Compression == "" {
		return compressionOn
	}
	return r.Compression
}

// deflateOffer is the extension the client offers.
const deflateOffer = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"

// deflateTitlePrefix starts a compression scenario's title in the report
// and the plots; offTitlePrefix that of its run without the extension.
const (
	deflateTitlePrefix = "permessage-deflate, "
	offTitlePrefix     = "permessage-deflate off (not offered), "
)

// parseSpecs parses a comma-separated list of CONNSxSIZE for flag name.
func parseSpecs(name, list string) ([]echoSpec, error) {
	var out []echoSpec
	for _, s := range splitList(list) {
		c, sz, ok := strings.Cut(s, "x")
		ci, err1 := strconv.Atoi(c)
		si, err2 := strconv.Atoi(sz)
		if !ok || err1 != nil || err2 != nil || ci <= 0 || si <= 0 {
			return nil, fmt.Errorf("bad %s scenario %q (want CONNSxSIZE, both at least 1)", name, s)
		}
		out = append(out, echoSpec{ci, si})
	}
	return out, nil
}

// deflatePayload returns n bytes of JSON-like text, the same for every run
// and library: records of an event log (ids, user names, event kinds,
// timestamps, prices, tags) from a fixed-seed generator, cut at n bytes.
// Such text deflates to about a third of its size.
func deflatePayload(n int) []byte {
	rng := rand.New(rand.NewPCG(9, 7692))
	events := []string{"click", "view", "purchase", "login", "logout", "scroll", "search", "share"}
	pages := []string{"/", "/products", "/products/item", "/cart", "/checkout", "/account", "/help"}
	tags := []string{"mobile", "desktop", "returning", "new", "promo", "beta"}
	var b bytes.Buffer
	b.WriteByte('[')
	ts := int64(1_764_000_000_000)
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		ts += int64(rng.IntN(5000))
		fmt.Fprintf(&b, `{"id":%d,"user":"user-%05d","event":%q,"page":%q,"ts":%d,"price":%d.%02d,"tags":[%q,%q]}`,
			100000+i, rng.IntN(2000), events[rng.IntN(len(events))], pages[rng.IntN(len(pages))], ts,
			rng.IntN(500), rng.IntN(100), tags[rng.IntN(len(tags))], tags[rng.IntN(len(tags))])
	}
	return b.Bytes()[:n]
}

// deflateMessage compresses p as one permessage-deflate message: DEFLATE
// (compress/flate, default level) ended by a sync flush, whose empty stored
// block's last four bytes 00 00 ff ff are removed (RFC 7692 §7.2.1).
func deflateMessage(p []byte) []byte {
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.DefaultCompression)
	fw.Write(p)
	fw.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// deflateFrame is a final, masked text frame with RSV1 carrying the
// compressed message c.
func deflateFrame(c []byte) []byte {
	f := clientFrame(0x1, c)
	f[0] |= 0x40
	return f
}

// dialDeflate opens a connection offering permessage-deflate and fails
// unless the server accepted it.
func dialDeflate(addr string, timeout time.Duration) (net.Conn, *bufio.Reader, error) {
	req := upgradeRequest(addr, "/", "Sec-WebSocket-Extensions: "+deflateOffer+"\r\n")
	c, br, head, err := dialWSRequest(addr, timeout, req)
	if err != nil {
		return nil, nil, err
	}
	if err := checkDeflateAnswer(head); err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, br, nil
}

// dialPlain opens a connection offering no extension to a server with
// permessage-deflate enabled, and fails unless the server answered
// without one.
func dialPlain(addr string, timeout time.Duration) (net.Conn, *bufio.Reader, error) {
	c, br, head, err := dialWSRequest(addr, timeout, upgradeRequest(addr, "/", ""))
	if err != nil {
		return nil, nil, err
	}
	if vals := extensionsAnswer(head); len(vals) > 0 {
		c.Close()
		return nil, nil, fmt.Errorf("the server answered Sec-WebSocket-Extensions %q to a handshake that offered none", strings.Join(vals, ", "))
	}
	return c, br, nil
}

// extensionsAnswer returns the values of the Sec-WebSocket-Extensions
// lines of a handshake answer, in order.
func extensionsAnswer(head []byte) []string {
	var vals []string
	for line := range bytes.SplitSeq(head, []byte("\r\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("Sec-WebSocket-Extensions")) {
			vals = append(vals, string(bytes.TrimSpace(v)))
		}
	}
	return vals
}

// checkDeflateAnswer checks the Sec-WebSocket-Extensions of a handshake
// answer to deflateOffer: exactly one extension, permessage-deflate, with
// server_no_context_takeover (RFC 7692 §7.1.1.1: a server that accepts an
// offer naming it must name it), optionally client_no_context_takeover
// and server_max_window_bits (the client inflates any window), nothing
// else (client_max_window_bits was not offered, so it may not be answered).
func checkDeflateAnswer(head []byte) error {
	vals := extensionsAnswer(head)
	if len(vals) == 0 {
		return errors.New("the server did not accept permessage-deflate: no Sec-WebSocket-Extensions in its handshake answer")
	}
	answer := strings.Join(vals, ", ")
	exts := strings.Split(answer, ",")
	if len(exts) != 1 {
		return fmt.Errorf("handshake answer Sec-WebSocket-Extensions %q: want permessage-deflate alone", answer)
	}
	params := strings.Split(exts[0], ";")
	if strings.TrimSpace(params[0]) != "permessage-deflate" {
		return fmt.Errorf("handshake answer Sec-WebSocket-Extensions %q: not permessage-deflate", answer)
	}
	serverNoContext := false
	for _, p := range params[1:] {
		k, v, hasValue := strings.Cut(strings.TrimSpace(p), "=")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.Trim(strings.TrimSpace(v), `"`)
		switch {
		case k == "server_no_context_takeover" && !hasValue && !serverNoContext:
			serverNoContext = true
		case k == "client_no_context_takeover" && !hasValue:
		case k == "server_max_window_bits" && hasValue && validWindowBits(v):
		default:
			return fmt.Errorf("handshake answer Sec-WebSocket-Extensions %q: parameter %q not offered or invalid", answer, strings.TrimSpace(p))
		}
	}
	if !serverNoContext {
		return fmt.Errorf("handshake answer Sec-WebSocket-Extensions %q lacks server_no_context_takeover, which was offered", answer)
	}
	return nil
}

// validWindowBits reports whether v is a window size parameter, 8 to 15.
func validWindowBits(v string) bool {
	n, err := strconv.Atoi(v)
	return err == nil && n >= 8 && n <= 15
}

// inflateTail ends a permessage-deflate message for compress/flate: the
// removed 00 00 ff ff, then an empty final stored block, so that the
// decompressor stops with io.EOF at the message's end.
var inflateTail = []byte{0, 0, 0xff, 0xff, 0x01, 0, 0, 0xff, 0xff}

// deflateLimit bounds the frame payload of an echo of a message of n
// bytes: deflate's worst case is far below.
func deflateLimit(n int) int { return n + n/2 + 1024 }

// finishDeflate checks a whole echo of the compression scenario: inflated
// if it came compressed, it must equal want.
func (c *echoCheck) finishDeflate() error {
	got := c.msg
	if c.compressed {
		var err error
		if got, err = c.inflate(len(c.want)); err != nil {
			return err
		}
	}
	if len(got) != len(c.want) {
		return fmt.Errorf("echo of %d bytes, sent %d (compressed: %v)", len(got), len(c.want), c.compressed)
	}
	if !bytes.Equal(got, c.want) {
		return fmt.Errorf("echo differs from the message sent (compressed: %v)", c.compressed)
	}
	return nil
}

// inflate decompresses c.msg, reading at most max+1 bytes.
func (c *echoCheck) inflate(max int) ([]byte, error) {
	c.msg = append(c.msg, inflateTail...)
	c.src.Reset(c.msg)
	if c.fr == nil {
		c.fr = flate.NewReader(&c.src)
	} else if err := c.fr.(flate.Resetter).Reset(&c.src, nil); err != nil {
		return nil, err
	}
	if cap(c.out) < max+1 {
		c.out = make([]byte, max+1)
	}
	out := c.out[:max+1]
	n, err := io.ReadFull(c.fr, out)
	switch {
	case err == nil:
		return nil, fmt.Errorf("inflated echo longer than the %d bytes sent", max)
	case err != io.ErrUnexpectedEOF && err != io.EOF:
		return nil, fmt.Errorf("inflating the echo: %w", err)
	}
	return out[:n], nil
}

// runCompress runs one compression scenario against s (an echoserver
// started with -compress), with the client offering permessage-deflate
// (mode compressionOn) or not (compressionOff).
func runCompress(cfg *config, s *server, e echoSpec, mode string) (EchoResult, error) {
	r := EchoResult{Compression: mode}
	payload := deflatePayload(e.Size)
	dial, frameOf, check := dialDeflate, func() []byte { return deflateFrame(deflateMessage(payload)) }, echoCheck{deflate: true}
	switch mode {
	case compressionOn:
	case compressionOff:
		dial, frameOf, check.plain = dialPlain, func() []byte { return clientFrame(0x1, payload) }, true
	default:
		return r, fmt.Errorf("unknown compression mode %q (want %q or %q)", mode, compressionOn, compressionOff)
	}
	conns, brs, err := dialAllWith(s.addr, e.Conns, dial)
	if err != nil {
		return r, fmt.Errorf("connecting: %w", err)
	}
	ecs := make([]*echoConn, len(conns))
	sent := 0
	for i, c := range conns {
		frame := frameOf()
		sent = len(frame)
		ecs[i] = &echoConn{idx: i, conn: c, br: brs[i], frames: [2][]byte{frame, frame}, wants: [2][]byte{payload, payload}, check: check}
	}
	r, t, err := closedLoop(cfg, s, ecs)
	r.Compression = mode
	if r.Messages > 0 {
		r.MBPerSec = r.MsgsPerSec * float64(e.Size) / 1e6
		r.WireSentPerMsg = float64(sent)
		r.WireEchoPerMsg = float64(t.wire) / float64(r.Messages)
		r.CompressedEchoPct = 100 * float64(t.flagged) / float64(r.Messages)
	}
	return r, err
}

// compressionModes is the order of a library's two runs of a compression
// scenario in round round (from 1): on first in odd rounds, off first in
// even ones, so that neither always runs first.
func compressionModes(round int) []string {
	if round%2 == 0 {
		return []string{compressionOff, compressionOn}
	}
	return []string{compressionOn, compressionOff}
}

// runCompressScenarios runs every -compress scenario against every
// library of order, in round round (from 1): each library with the
// extension offered and without, one run after the other.
func runCompressScenarios(cfg *config, res *Results, round int, order []string, note func(lib, what string, err error) string) {
	for _, e := range cfg.compress {
		for _, lib := range order {
			for _, mode := range compressionModes(round) {
				what := "permessage-deflate echo " + e.String()
				if mode == compressionOff {
					what = "permessage-deflate off (not offered) echo " + e.String()
				}
				logf("round %d: %s %s", round, lib, what)
				var r EchoResult
				s, err := startServer(cfg, lib, "-compress")
				if err == nil {
					r, err = runCompress(cfg, s, e, mode)
					s.stop()
				}
				r.Lib, r.Conns, r.Size, r.Round, r.Compression = lib, e.Conns, e.Size, round, mode
				if err != nil {
					r.Error = note(lib, what, err)
				}
				logf("  %.0f msg/s, p50 %.0f µs, p99 %.0f µs, server %.1f µs/msg, %.2f allocs/msg, frames %.0f B out, %.0f B back (%.0f %% compressed)",
					r.MsgsPerSec, r.P50us, r.P99us, r.ServerUsMsg, r.AllocsPerMsg, r.WireSentPerMsg, r.WireEchoPerMsg, r.CompressedEchoPct)
				res.Compress = append(res.Compress, r)
			}
		}
	}
}

// summaryRow is one line of the report's table of Duplex against the best
// peer: scenario, ours, best peer's figure, best peer, ratio.
type summaryRow struct{ what, us, peer, peerLib, ratio string }

// compressKey is a compression scenario and mode: the rows of one table.
type compressKey struct {
	echoSpec
	mode string
}

// compressKeyOf is the scenario and mode of a compression result.
func compressKeyOf(r EchoResult) compressKey { return compressKey{echoKey(r), compressionOf(r)} }

// compressMarkdown writes the compression scenarios' tables (res already
// summarized, raw its rounds for the ratios' intervals) and returns their
// lines for the table of Duplex against the best peer. Per scenario: the
// run with the extension offered, the run without, and the two side by
// side per library.
func compressMarkdown(w func(format string, args ...any), res, raw *Results) []summaryRow {
	if len(res.Compress) == 0 {
		return nil
	}
	var sum []summaryRow
	for i, s := range distinctKeys(res.Compress, echoKey) {
		on := rowsWithKey(res.Compress, compressKeyOf, compressKey{s, compressionOn})
		off := rowsWithKey(res.Compress, compressKeyOf, compressKey{s, compressionOff})
		rawOn := rowsWithKey(raw.Compress, compressKeyOf, compressKey{s, compressionOn})
		rawOff := rowsWithKey(raw.Compress, compressKeyOf, compressKey{s, compressionOff})
		if len(on) > 0 {
			w("#### Echo with permessage-deflate, %s text\n\n", echoTitle(s.Conns, s.Size))
			if i == 0 {
				compressIntro(w, res)
			}
			compressTable(w, res, on)
			sum = append(sum, compressAgainstPeers(w, deflateTitlePrefix+echoTitle(s.Conns, s.Size), on, rawOn)...)
		}
		if len(off) > 0 {
			w("#### Echo without permessage-deflate (not offered), %s text\n\n", echoTitle(s.Conns, s.Size))
			if i == 0 && len(on) == 0 {
				compressIntro(w, res)
			}
			compressTable(w, res, off)
			sum = append(sum, compressAgainstPeers(w, offTitlePrefix+echoTitle(s.Conns, s.Size), off, rawOff)...)
		}
		if len(on) > 0 && len(off) > 0 {
			compressOnOff(w, res, s, on, off, rawOn, rawOff)
		}
	}
	return sum
}

// compressTable writes the table of one compression scenario's rows of
// one mode.
func compressTable(w func(format string, args ...any), res *Results, rows []EchoResult) {
	rng, rngSep := "", ""
	if res.Rounds > 1 {
		rng, rngSep = " range |", " ---: |"
	}
	w("| library | messages/s |%s p50 µs | p99 µs | p99.9 µs | server µs/msg | server CPU | client CPU | server RSS | allocs/msg | alloc B/msg | frame B sent | frame B echoed | compressed | other CPU |\n", rng)
	w("| --- | ---: |%s ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n", rngSep)
	for _, r := range rows {
		if r.Error != "" {
			w("| %s | failed: %s | | | | | | | | | | | | | |\n", r.Lib, strings.ReplaceAll(r.Error, "|", "/"))
			continue
		}
		if res.Rounds > 1 {
			rng = fmt.Sprintf(" %s–%s |", num(r.MsgsMin), num(r.MsgsMax))
		}
		w("| %s | %s |%s %s | %s | %s | %s | %.0f %% | %.0f %% | %.1f MiB |%s %s | %s | %.0f %% | %.1f s |\n", r.Lib,
			num(r.MsgsPerSec), rng, num(r.P50us), num(r.P99us), num(r.P999us), num(r.ServerUsMsg), r.ServerCPUPct, r.ClientCPUPct,
			r.ServerRSSKiB/1024, allocCells(r), num(r.WireSentPerMsg), num(r.WireEchoPerMsg), r.CompressedEchoPct, r.OtherCPUSec)
	}
}

// compressAgainstPeers writes the line of Duplex against the best peer
// under a compression table (rows summarized, raw their rounds) and
// returns its rows for the summary, titled title.
func compressAgainstPeers(w func(format string, args ...any), title string, rows, raw []EchoResult) []summaryRow {
	var sum []summaryRow
	if us, peer, iv, ok := echoKind.compare(rows, raw, func(r EchoResult) float64 { return r.MsgsPerSec }, true); ok {
		w("\nDuplex (%s) ÷ best peer: messages/s %s%s (best: %s)", us.Lib, ratio(us.MsgsPerSec, peer.MsgsPerSec), iv, peer.Lib)
		sum = append(sum, summaryRow{title + ": messages/s", ourValue(num(us.MsgsPerSec), us.Lib), num(peer.MsgsPerSec), peer.Lib, ratio(us.MsgsPerSec, peer.MsgsPerSec) + iv})
	}
	if us, peer, iv, ok := echoKind.compare(rows, raw, func(r EchoResult) float64 { return r.ServerUsMsg }, false); ok {
		w("; server CPU per message %s%s (%s against %s, lower is better)", ratio(us.ServerUsMsg, peer.ServerUsMsg), iv, us.Lib, peer.Lib)
		sum = append(sum, summaryRow{title + ": server µs per message", ourValue(num(us.ServerUsMsg), us.Lib), num(peer.ServerUsMsg), peer.Lib, ratio(us.ServerUsMsg, peer.ServerUsMsg) + iv})
	}
	w(".\n\n")
	return sum
}

// compressOnOff writes the table that sets each library's two runs of
// compression scenario s side by side: messages/s, server µs per message
// and frame bytes each way with the extension offered (on) and not (off),
// and the ratios of on to off (of the medians on and off, summarized;
// rawOn and rawOff are their rounds, for the intervals of the ratios of
// messages/s and server µs per message).
func compressOnOff(w func(format string, args ...any), res *Results, s echoSpec, on, off, rawOn, rawOff []EchoResult) {
	w("#### permessage-deflate on and off, %s text\n\n", echoTitle(s.Conns, s.Size))
	w("Each library's two runs above side by side: \"on\" with the extension offered, \"off\" without (a fresh server with the same settings, the same text). ")
	w("\"on ÷ off\" above 1 means more messages/s, or more server CPU per message, with compression; ")
	w("the last column is the frame bytes per message both ways together, on against off.")
	if res.Rounds > 1 {
		w(" Every figure is the median of the rounds, and the ratios are those of the medians; the ratios of messages/s and of server µs/msg "+
			"are followed by their 95 %% interval, the rounds drawn again as for the ratios to the best peer, each drawn round bringing the library's runs on and off of that round "+
			"(with fewer than %d rounds there is none).", minIntervalRounds)
	}
	w("\n\n")
	w("| library | messages/s, on | messages/s, off | on ÷ off | server µs/msg, on | server µs/msg, off | on ÷ off | frame B sent, on | frame B sent, off | frame B echoed, on | frame B echoed, off | frame B both ways, on ÷ off |\n")
	w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	find := func(rows []EchoResult, lib string) (EchoResult, string) {
		for _, r := range rows {
			if r.Lib == lib {
				if r.Error != "" {
					return r, "failed"
				}
				return r, ""
			}
		}
		return EchoResult{}, "–"
	}
	libs := distinctKeys(append(slices.Clone(on), off...), func(r EchoResult) string { return r.Lib })
	for _, lib := range libs {
		a, aBad := find(on, lib)
		b, bBad := find(off, lib)
		cell := func(r EchoResult, bad string, f func(EchoResult) float64) string {
			if bad != "" {
				return bad
			}
			return num(f(r))
		}
		rat := func(f func(EchoResult) float64) string {
			if aBad != "" || bBad != "" {
				return "–"
			}
			return ratio(f(a), f(b))
		}
		libRows := func(rows []EchoResult) []EchoResult {
			return rowsWithKey(rows, func(r EchoResult) string { return r.Lib }, lib)
		}
		// ratIv is rat followed by the ratio's interval over the rounds.
		ratIv := func(f func(EchoResult) float64) string {
			s := rat(f)
			if s == "–" {
				return s
			}
			if lo, hi, ok := onOffInterval(libRows(rawOn), libRows(rawOff), f); ok {
				s += intervalText(lo, hi)
			}
			return s
		}
		msgs := func(r EchoResult) float64 { return r.MsgsPerSec }
		us := func(r EchoResult) float64 { return r.ServerUsMsg }
		sent := func(r EchoResult) float64 { return r.WireSentPerMsg }
		echoed := func(r EchoResult) float64 { return r.WireEchoPerMsg }
		both := func(r EchoResult) float64 { return r.WireSentPerMsg + r.WireEchoPerMsg }
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", lib,
			cell(a, aBad, msgs), cell(b, bBad, msgs), ratIv(msgs),
			cell(a, aBad, us), cell(b, bBad, us), ratIv(us),
			cell(a, aBad, sent), cell(b, bBad, sent), cell(a, aBad, echoed), cell(b, bBad, echoed), rat(both))
	}
	w("\n")
}

// compressIntro says how the compression scenarios run, once before their
// first table.
func compressIntro(w func(format string, args ...any), res *Results) {
	w("Every server negotiates permessage-deflate with no context takeover either way and compresses every message it sends at level 1 ")
	w("(size thresholds set to 1 byte); the client sends one JSON-like text message over and over, deflated once, in a frame with RSV1, ")
	w("and inflates and checks every echo. \"frame B sent\" and \"frame B echoed\" are the WebSocket frame bytes per message (headers included) each way; ")
	w("\"compressed\" is the share of echoes that came back with RSV1. Text messages: duplex (both modes) and nbio check them for UTF-8, the others do not.")
	if slices.ContainsFunc(res.Compress, func(r EchoResult) bool { return compressionOf(r) == compressionOff }) {
		w(" Each library also runs without the extension: a fresh server with the same settings, the client offering none, so the server must answer without ")
		w("Sec-WebSocket-Extensions; the same text goes out in a plain text frame and every frame of the echo must come back without RSV1.")
	}
	if len(res.CompressLeftOut) > 0 {
		w(" Left out: %s.", strings.Join(res.CompressLeftOut, "; "))
	}
	w("\n\n")
}

// compressRows returns the compression results of mode, in order.
func compressRows(res *Results, mode string) []EchoResult {
	var out []EchoResult
	for _, r := range res.Compress {
		if compressionOf(r) == mode {
			out = append(out, r)
		}
	}
	return out
}

// compressPanels are the compression scenarios' panels of an echo chart
// of f: per scenario, the run with the extension, then the one without.
func compressPanels(res *Results, f func(EchoResult) float64) []panel {
	var ps []panel
	for _, s := range distinctKeys(res.Compress, echoKey) {
		for _, m := range []struct{ mode, prefix string }{{compressionOn, deflateTitlePrefix}, {compressionOff, offTitlePrefix}} {
			rows := rowsWithKey(res.Compress, compressKeyOf, compressKey{s, m.mode})
			if len(rows) == 0 {
				continue
			}
			p := panel{title: m.prefix + echoTitle(s.Conns, s.Size)}
			for _, r := range rows {
				p.labels = append(p.labels, r.Lib)
				p.values = append(p.values, f(r))
				p.failed = append(p.failed, r.Error != "")
			}
			ps = append(ps, p)
		}
	}
	return ps
}

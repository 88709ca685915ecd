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
	"strconv"
	"strings"
	"time"
)

// The compression scenarios (-compress CxS): the echo scenario with
// permessage-deflate (RFC 7692) negotiated, no context takeover either
// way. Every echoserver runs with -compress. The client is still raw frames: it
// offers the extension, fails the scenario unless the server's answer
// accepts it with server_no_context_takeover, and sends one message over
// and over: S bytes of JSON-like text, deflated once with compress/flate,
// the sync-flush tail removed (§7.2.1), in a masked text frame with RSV1.
// Each echo may come back compressed (RSV1) or not, both legal; a
// compressed one is inflated with the tail put back; either way it must
// equal the S bytes sent. The WebSocket frame bytes each way (headers
// included) are counted.

// deflateOffer is the extension the client offers.
const deflateOffer = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"

// deflateTitlePrefix starts a compression scenario's title in the report
// and the plots.
const deflateTitlePrefix = "permessage-deflate, "

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

// checkDeflateAnswer checks the Sec-WebSocket-Extensions of a handshake
// answer to deflateOffer: exactly one extension, permessage-deflate, with
// server_no_context_takeover (RFC 7692 §7.1.1.1: a server that accepts an
// offer naming it must name it), optionally client_no_context_takeover
// and server_max_window_bits (the client inflates any window), nothing
// else (client_max_window_bits was not offered, so it may not be answered).
func checkDeflateAnswer(head []byte) error {
	var vals []string
	for line := range bytes.SplitSeq(head, []byte("\r\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("Sec-WebSocket-Extensions")) {
			vals = append(vals, string(bytes.TrimSpace(v)))
		}
	}
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
// started with -compress).
func runCompress(cfg *config, s *server, e echoSpec) (EchoResult, error) {
	var r EchoResult
	payload := deflatePayload(e.Size)
	msg := deflateMessage(payload)
	conns, brs, err := dialAllWith(s.addr, e.Conns, dialDeflate)
	if err != nil {
		return r, fmt.Errorf("connecting: %w", err)
	}
	ecs := make([]*echoConn, len(conns))
	sent := 0
	for i, c := range conns {
		frame := deflateFrame(msg)
		sent = len(frame)
		ecs[i] = &echoConn{idx: i, conn: c, br: brs[i], frames: [2][]byte{frame, frame}, wants: [2][]byte{payload, payload},
			check: echoCheck{deflate: true}}
	}
	r, t, err := closedLoop(cfg, s, ecs)
	if r.Messages > 0 {
		r.MBPerSec = r.MsgsPerSec * float64(e.Size) / 1e6
		r.WireSentPerMsg = float64(sent)
		r.WireEchoPerMsg = float64(t.wire) / float64(r.Messages)
		r.CompressedEchoPct = 100 * float64(t.flagged) / float64(r.Messages)
	}
	return r, err
}

// runCompressScenarios runs every -compress scenario against every
// library of order, in round round (from 1).
func runCompressScenarios(cfg *config, res *Results, round int, order []string, note func(lib, what string, err error) string) {
	for _, e := range cfg.compress {
		for _, lib := range order {
			logf("round %d: %s echo %s with permessage-deflate", round, lib, e)
			var r EchoResult
			s, err := startServer(cfg, lib, "-compress")
			if err == nil {
				r, err = runCompress(cfg, s, e)
				s.stop()
			}
			r.Lib, r.Conns, r.Size, r.Round = lib, e.Conns, e.Size, round
			if err != nil {
				r.Error = note(lib, "permessage-deflate echo "+e.String(), err)
			}
			logf("  %.0f msg/s, p50 %.0f µs, p99 %.0f µs, server %.1f µs/msg, %.2f allocs/msg, frames %.0f B out, %.0f B back (%.0f %% compressed)",
				r.MsgsPerSec, r.P50us, r.P99us, r.ServerUsMsg, r.AllocsPerMsg, r.WireSentPerMsg, r.WireEchoPerMsg, r.CompressedEchoPct)
			res.Compress = append(res.Compress, r)
		}
	}
}

// summaryRow is one line of the report's table of Duplex against the best
// peer: scenario, ours, best peer's figure, best peer, ratio.
type summaryRow struct{ what, us, peer, peerLib, ratio string }

// compressMarkdown writes the compression scenarios' tables (res already
// summarized, raw its rounds for the ratios' intervals) and returns their lines for the table of Duplex against the
// best peer.
func compressMarkdown(w func(format string, args ...any), res, raw *Results) []summaryRow {
	if len(res.Compress) == 0 {
		return nil
	}
	var sum []summaryRow
	for i, s := range distinctKeys(res.Compress, echoKey) {
		rows := rowsWithKey(res.Compress, echoKey, s)
		title := deflateTitlePrefix + echoTitle(s.Conns, s.Size)
		w("#### Echo with permessage-deflate, %s text\n\n", echoTitle(s.Conns, s.Size))
		if i == 0 {
			compressIntro(w, res)
		}
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
		rawRows := rowsWithKey(raw.Compress, echoKey, s)
		if us, peer, iv, ok := echoKind.compare(rows, rawRows, func(r EchoResult) float64 { return r.MsgsPerSec }, true); ok {
			w("\nDuplex (%s) ÷ best peer: messages/s %s%s (best: %s)", us.Lib, ratio(us.MsgsPerSec, peer.MsgsPerSec), iv, peer.Lib)
			sum = append(sum, summaryRow{title + ": messages/s", ourValue(num(us.MsgsPerSec), us.Lib), num(peer.MsgsPerSec), peer.Lib, ratio(us.MsgsPerSec, peer.MsgsPerSec) + iv})
		}
		if us, peer, iv, ok := echoKind.compare(rows, rawRows, func(r EchoResult) float64 { return r.ServerUsMsg }, false); ok {
			w("; server CPU per message %s%s (%s against %s, lower is better)", ratio(us.ServerUsMsg, peer.ServerUsMsg), iv, us.Lib, peer.Lib)
			sum = append(sum, summaryRow{title + ": server µs per message", ourValue(num(us.ServerUsMsg), us.Lib), num(peer.ServerUsMsg), peer.Lib, ratio(us.ServerUsMsg, peer.ServerUsMsg) + iv})
		}
		w(".\n\n")
	}
	return sum
}

// compressIntro says how the compression scenarios run, once before their
// first table.
func compressIntro(w func(format string, args ...any), res *Results) {
	w("Every server negotiates permessage-deflate with no context takeover either way and compresses every message it sends at level 1 ")
	w("(size thresholds set to 1 byte); the client sends one JSON-like text message over and over, deflated once, in a frame with RSV1, ")
	w("and inflates and checks every echo. \"frame B sent\" and \"frame B echoed\" are the WebSocket frame bytes per message (headers included) each way; ")
	w("\"compressed\" is the share of echoes that came back with RSV1. Text messages: duplex (both modes) and nbio check them for UTF-8, the others do not.")
	if len(res.CompressLeftOut) > 0 {
		w(" Left out: %s.", strings.Join(res.CompressLeftOut, "; "))
	}
	w("\n\n")
}

// compressPanels are the compression scenarios' panels of an echo chart
// of f.
func compressPanels(res *Results, f func(EchoResult) float64) []panel {
	var ps []panel
	for _, s := range distinctKeys(res.Compress, echoKey) {
		p := panel{title: deflateTitlePrefix + echoTitle(s.Conns, s.Size)}
		for _, r := range rowsWithKey(res.Compress, echoKey, s) {
			p.labels = append(p.labels, r.Lib)
			p.values = append(p.values, f(r))
			p.failed = append(p.failed, r.Error != "")
		}
		ps = append(ps, p)
	}
	return ps
}

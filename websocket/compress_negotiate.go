package websocket

// Negotiation of the permessage-deflate extension (RFC 7692): parsing the
// Sec-WebSocket-Extensions header (RFC 6455 §9.1), choosing the server's
// answer, building the client's offer and checking the server's answer.
// Everything here is a pure function of headers and options; the agreed
// deflateParams is what the compressor and decompressor are set up from.

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Defaults used when a CompressionOptions field is zero.
const (
	// DefaultCompressionLevel is the level used when CompressionOptions.Level
	// is zero: 1, one hash probe per byte. WebSocket messages are mostly
	// small and latency-sensitive; on them the higher levels cost more CPU
	// per message for a few percent of size.
	DefaultCompressionLevel = 1

	// DefaultCompressionThreshold is the size, in bytes, below which a
	// message is sent uncompressed when CompressionOptions.Threshold is zero
	// and this side compresses each message on its own (no context
	// takeover): without earlier messages to refer to, DEFLATE codes a
	// short message in about as many bytes as it has.
	DefaultCompressionThreshold = 64

	// DefaultCompressionThresholdTakeover is that size when this side keeps
	// context between messages: a short message that repeats parts of
	// earlier ones can shrink by half or more, and every message
	// compressed also feeds the history.
	DefaultCompressionThresholdTakeover = 16
)

// CompressionOptions configures permessage-deflate (RFC 7692), which
// compresses each message with DEFLATE. It trades CPU and memory (with
// context takeover, compressor state lives as long as the connection; that
// is about 150 KiB per connection at the full window with context takeover
// both ways; see the package documentation) for bandwidth, so it is off
// unless
// Enabled is set: the zero value offers nothing (client) and accepts
// nothing (server).
//
// The two NoContextTakeover fields and the two MaxWindowBits fields name the
// RFC 7692 parameters after the side whose compressor they restrict. On a
// server they are what the server asks for or imposes; on a client they are
// what the client offers.
type CompressionOptions struct {
	// Enabled turns permessage-deflate on: a client offers it and a server
	// accepts a client's offer. Without it no extension is negotiated.
	Enabled bool

	// ServerNoContextTakeover makes the server compress each message on its
	// own, without referring to earlier ones (server_no_context_takeover).
	// A server sets it to save the compressor's memory between messages; a
	// client sets it to ask for that, so that it need not keep the server's
	// window between messages. It costs compression ratio on small, similar
	// messages.
	ServerNoContextTakeover bool

	// ClientNoContextTakeover makes the client compress each message on its
	// own (client_no_context_takeover). A server sets it to require that,
	// so that it need not keep the client's window between messages; a
	// client sets it to announce that it will do so anyway.
	ClientNoContextTakeover bool

	// ServerMaxWindowBits bounds, as a power of two from 8 (256 bytes) to 15
	// (32 KiB), how far back the server's compressor may refer. A smaller
	// window lets the receiving side allocate less. Zero means 15 (no
	// bound). A server imposes it on itself; a client asks for it, and the
	// server may answer with a smaller window still.
	ServerMaxWindowBits int

	// ClientMaxWindowBits bounds the client's compressor window in the same
	// way. A server can only impose it when the client's offer names
	// client_max_window_bits (browsers' offers do); otherwise the server
	// accepts the offer with the client's full window, which it can always
	// decompress. A client announces with it that it will not use more.
	// Zero means 15.
	ClientMaxWindowBits int

	// Level is the compression level, 1 (fastest: one hash probe per
	// byte) to 9 (smallest: longer hash chains and lazy matching). Zero
	// means DefaultCompressionLevel.
	Level int

	// Threshold is the size, in bytes, below which a message is sent
	// uncompressed: short messages gain little from compression and may
	// grow. Zero means DefaultCompressionThreshold, or
	// DefaultCompressionThresholdTakeover when this side keeps context
	// between messages; a negative value compresses every message.
	Threshold int
}

// RFC 7692 names.
const (
	deflateExtension           = "permessage-deflate"
	paramServerNoContext       = "server_no_context_takeover"
	paramClientNoContext       = "client_no_context_takeover"
	paramServerMaxWindowBits   = "server_max_window_bits"
	paramClientMaxWindowBits   = "client_max_window_bits"
	minWindowBits              = 8
	maxWindowBits              = 15
	extensionsHeader           = "Sec-WebSocket-Extensions"
	maxQuotedExtensionsInError = 120 // characters of a header quoted in an error
)

// enabled reports whether o turns permessage-deflate on; nil is off.
func (o *CompressionOptions) enabled() bool { return o != nil && o.Enabled }

// Validate reports the first field of o outside its documented range.
// Accept, Dial and AnswerUpgrade call it, so that a misconfiguration is
// reported instead of silently replaced by defaults; a server that answers
// handshakes itself calls it before it starts. A nil o is valid. The
// fields are checked even when Enabled is false, on purpose: a setting out
// of range is a mistake today, not only on the day compression is turned on.
func (o *CompressionOptions) Validate() error {
	if o == nil {
		return nil
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"ServerMaxWindowBits", o.ServerMaxWindowBits}, {"ClientMaxWindowBits", o.ClientMaxWindowBits}} {
		if f.v != 0 && (f.v < minWindowBits || f.v > maxWindowBits) {
			return fmt.Errorf("websocket: CompressionOptions.%s is %d, want 0 or %d..%d", f.name, f.v, minWindowBits, maxWindowBits)
		}
	}
	if o.Level < 0 || o.Level > 9 {
		return fmt.Errorf("websocket: CompressionOptions.Level is %d, want 0..9", o.Level)
	}
	return nil
}

// windowBits maps a MaxWindowBits field to 8..15: zero and out-of-range
// values mean 15, the full window, which every peer can handle.
func windowBits(v int) int {
	if v < minWindowBits || v > maxWindowBits {
		return maxWindowBits
	}
	return v
}

func (o *CompressionOptions) serverMaxWindowBits() int { return windowBits(o.ServerMaxWindowBits) }
func (o *CompressionOptions) clientMaxWindowBits() int { return windowBits(o.ClientMaxWindowBits) }

// level returns the compression level, 1..9.
func (o *CompressionOptions) level() int {
	if o.Level < 1 || o.Level > 9 {
		return DefaultCompressionLevel
	}
	return o.Level
}

// threshold returns the size below which a message is sent uncompressed,
// for a sender that keeps context between messages (takeover) or not.
func (o *CompressionOptions) threshold(takeover bool) int {
	switch {
	case o.Threshold == 0 && takeover:
		return DefaultCompressionThresholdTakeover
	case o.Threshold == 0:
		return DefaultCompressionThreshold
	case o.Threshold < 0:
		return 0
	}
	return o.Threshold
}

// deflateParams is what was agreed for one connection. The fields are
// named after RFC 7692's parameters, from the server's and the client's
// compressor's point of view; the methods translate them for one role.
// Window bits are always 8..15 once agreed (15 when the answer left the
// parameter out).
type deflateParams struct {
	serverNoContextTakeover bool
	clientNoContextTakeover bool
	serverMaxWindowBits     int
	clientMaxWindowBits     int
}

// sendWindowBits is the window, as a power of two, that the compressor of
// the endpoint with role r must stay within: no back-reference may reach
// further than 1<<bits bytes; our encoder (internal/deflate) keeps to it
// exactly, which compress/flate, always at 32 KiB, could not.
func (p deflateParams) sendWindowBits(r Role) int {
	if r == RoleServer {
		return p.serverMaxWindowBits
	}
	return p.clientMaxWindowBits
}

// recvWindowBits is the window the peer of the endpoint with role r
// compresses with, so the most history its decompressor needs.
func (p deflateParams) recvWindowBits(r Role) int {
	if r == RoleServer {
		return p.clientMaxWindowBits
	}
	return p.serverMaxWindowBits
}

// sendTakeover reports whether the compressor of the endpoint with role r
// may keep its window from one message to the next (context takeover);
// false means it must be reset after every message.
func (p deflateParams) sendTakeover(r Role) bool {
	if r == RoleServer {
		return !p.serverNoContextTakeover
	}
	return !p.clientNoContextTakeover
}

// recvTakeover reports whether the peer of the endpoint with role r may
// refer to earlier messages, so that the decompressor must keep its window
// between messages; false means it can start afresh with each message.
func (p deflateParams) recvTakeover(r Role) bool {
	if r == RoleServer {
		return !p.clientNoContextTakeover
	}
	return !p.serverNoContextTakeover
}

// extension is one element of a Sec-WebSocket-Extensions list.
type extension struct {
	name   string
	params []extensionParam
}

// extensionParam is one parameter of an extension. A quoted value is
// stored unquoted.
type extensionParam struct {
	name     string
	value    string
	hasValue bool
}

// String formats e as it would appear in a header.
func (e extension) String() string {
	var b strings.Builder
	b.WriteString(e.name)
	for _, p := range e.params {
		b.WriteString("; ")
		b.WriteString(p.name)
		if p.hasValue {
			b.WriteByte('=')
			b.WriteString(p.value)
		}
	}
	return b.String()
}

// parseExtensions parses every Sec-WebSocket-Extensions line of h, in
// order, following RFC 6455 §9.1:
//
//	extension-list = 1#extension
//	extension      = token *( ";" param )
//	param          = token [ "=" ( token | quoted-string ) ]
//
// with optional spaces and tabs around ",", ";" and "=", and empty list
// elements ignored (RFC 9110 §5.6.1). A quoted value must be a token once
// unescaped (RFC 6455 §9.1). Names are case-sensitive, as in RFC 7692 and
// browsers. A syntax error anywhere, or a line with no extension, fails the
// whole header: once the syntax is broken, where one offer ends and the
// next begins is a guess.
func parseExtensions(h http.Header) ([]extension, error) {
	var exts []extension
	for _, line := range h.Values(extensionsHeader) {
		var err error
		if exts, err = appendExtensions(exts, line); err != nil {
			return nil, err
		}
	}
	return exts, nil
}

// appendExtensions appends the extensions of one header line to exts.
func appendExtensions(exts []extension, s string) ([]extension, error) {
	p := extParser{s: s}
	n := 0
	for {
		p.skipSpace()
		if p.done() {
			break
		}
		if p.peek() == ',' { // empty element
			p.i++
			continue
		}
		name, err := p.token("an extension name")
		if err != nil {
			return nil, err
		}
		e := extension{name: name}
		for {
			p.skipSpace()
			if p.done() || p.peek() == ',' {
				break
			}
			if p.peek() != ';' {
				return nil, p.errorf("want ';' or ','")
			}
			p.i++
			p.skipSpace()
			var par extensionParam
			if par.name, err = p.token("a parameter name"); err != nil {
				return nil, err
			}
			p.skipSpace()
			if !p.done() && p.peek() == '=' {
				p.i++
				p.skipSpace()
				if !p.done() && p.peek() == '"' {
					par.value, err = p.quoted()
				} else {
					par.value, err = p.token("a parameter value")
				}
				if err != nil {
					return nil, err
				}
				par.hasValue = true
			}
			e.params = append(e.params, par)
		}
		exts = append(exts, e)
		n++
		if !p.done() {
			p.i++ // the ','
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("malformed %s %.*q: no extension in the list", extensionsHeader, maxQuotedExtensionsInError, s)
	}
	return exts, nil
}

// extParser scans one Sec-WebSocket-Extensions line.
type extParser struct {
	s string
	i int
}

func (p *extParser) done() bool { return p.i >= len(p.s) }
func (p *extParser) peek() byte { return p.s[p.i] }

func (p *extParser) skipSpace() {
	for !p.done() && (p.peek() == ' ' || p.peek() == '\t') {
		p.i++
	}
}

func (p *extParser) errorf(format string, args ...any) error {
	return fmt.Errorf("malformed %s %.*q: %s at byte %d", extensionsHeader, maxQuotedExtensionsInError, p.s, fmt.Sprintf(format, args...), p.i)
}

// token scans a token (RFC 9110 §5.6.2); what names it in errors.
func (p *extParser) token(what string) (string, error) {
	start := p.i
	for !p.done() && isTokenChar(p.peek()) {
		p.i++
	}
	if p.i == start {
		return "", p.errorf("want %s", what)
	}
	return p.s[start:p.i], nil
}

// quoted scans a quoted-string (RFC 9110 §5.6.4) and returns it unescaped;
// the result must be a token (RFC 6455 §9.1).
func (p *extParser) quoted() (string, error) {
	start := p.i
	p.i++ // the opening '"'
	var b strings.Builder
	for {
		if p.done() {
			p.i = start
			return "", p.errorf("unterminated quoted string")
		}
		c := p.peek()
		p.i++
		switch c {
		case '"':
			v := b.String()
			if !isToken(v) {
				p.i = start
				return "", p.errorf("quoted value %q is not a token", v)
			}
			return v, nil
		case '\\':
			if p.done() {
				p.i = start
				return "", p.errorf("unterminated quoted string")
			}
			c = p.peek()
			p.i++
		}
		b.WriteByte(c)
	}
}

// isTokenChar reports whether c is a tchar (RFC 9110 §5.6.2).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// deflateParamSet is the parameters of one permessage-deflate offer or
// response as written: zero window bits mean the parameter is absent (or,
// for client_max_window_bits in an offer, present without a value).
type deflateParamSet struct {
	serverNoContextTakeover bool
	clientNoContextTakeover bool
	serverMaxWindowBits     int
	clientMaxWindowBits     int
	hasClientMaxWindowBits  bool
}

// String formats s as a permessage-deflate extension, parameters in RFC
// 7692 order.
func (s deflateParamSet) String() string {
	var b strings.Builder
	b.WriteString(deflateExtension)
	if s.serverNoContextTakeover {
		b.WriteString("; " + paramServerNoContext)
	}
	if s.clientNoContextTakeover {
		b.WriteString("; " + paramClientNoContext)
	}
	if s.serverMaxWindowBits != 0 {
		b.WriteString("; " + paramServerMaxWindowBits + "=" + strconv.Itoa(s.serverMaxWindowBits))
	}
	if s.hasClientMaxWindowBits {
		b.WriteString("; " + paramClientMaxWindowBits)
		if s.clientMaxWindowBits != 0 {
			b.WriteString("=" + strconv.Itoa(s.clientMaxWindowBits))
		}
	}
	return b.String()
}

// readDeflateParams checks the parameters of a permessage-deflate offer
// (response false) or response (true) against RFC 7692 §7.1: only the four
// known parameters, each at most once, the no_context_takeover ones without
// a value, the window ones with a value 8..15 written without leading
// zeros, except client_max_window_bits in an offer, whose value is
// optional.
func readDeflateParams(e extension, response bool) (deflateParamSet, error) {
	var s deflateParamSet
	var seen [4]bool
	for _, p := range e.params {
		var k int
		switch p.name {
		case paramServerNoContext:
			k = 0
		case paramClientNoContext:
			k = 1
		case paramServerMaxWindowBits:
			k = 2
		case paramClientMaxWindowBits:
			k = 3
		default:
			return deflateParamSet{}, fmt.Errorf("unknown parameter %q", p.name)
		}
		if seen[k] {
			return deflateParamSet{}, fmt.Errorf("duplicate parameter %s", p.name)
		}
		seen[k] = true
		switch k {
		case 0, 1:
			if p.hasValue {
				return deflateParamSet{}, fmt.Errorf("parameter %s takes no value, got %q", p.name, p.value)
			}
			if k == 0 {
				s.serverNoContextTakeover = true
			} else {
				s.clientNoContextTakeover = true
			}
		case 2, 3:
			if k == 3 {
				s.hasClientMaxWindowBits = true
			}
			if !p.hasValue {
				if k == 3 && !response {
					continue
				}
				return deflateParamSet{}, fmt.Errorf("parameter %s needs a value %d..%d", p.name, minWindowBits, maxWindowBits)
			}
			bits, ok := parseWindowBits(p.value)
			if !ok {
				return deflateParamSet{}, fmt.Errorf("parameter %s=%s: want %d..%d without leading zeros", p.name, p.value, minWindowBits, maxWindowBits)
			}
			if k == 2 {
				s.serverMaxWindowBits = bits
			} else {
				s.clientMaxWindowBits = bits
			}
		}
	}
	return s, nil
}

// parseWindowBits parses a window-bits value: 1*DIGIT without leading
// zeros, 8..15 (RFC 7692 §7.1.2.1, §7.1.2.2).
func parseWindowBits(v string) (int, bool) {
	if v == "" || len(v) > 2 || v[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
		n = n*10 + int(v[i]-'0')
	}
	return n, minWindowBits <= n && n <= maxWindowBits
}

// acceptDeflate is the server's side of the negotiation (RFC 7692 §5,
// §7.1). It takes the first permessage-deflate offer, in the client's order
// of preference, whose parameters are valid, and returns what was agreed
// and the Sec-WebSocket-Extensions value to answer with. Other extensions
// are never answered. ok is false when opts does not enable compression or
// no offer is acceptable; the handshake then goes on without compression.
//
// The answer:
//   - server_no_context_takeover when the offer or opts asks for it;
//   - client_no_context_takeover when opts asks for it, and also when the
//     offer announced it, which costs the client nothing and lets the
//     server drop its decompressor's window between messages;
//   - server_max_window_bits=N, N the smaller of the offered value and
//     opts', when the offer named it (the server must then answer it) or
//     when opts wants less than 15;
//   - client_max_window_bits=N, N the smaller of the offered value (if any)
//     and opts', when the offer named the parameter and N is below 15. A
//     server may not answer it to an offer that does not name it
//     (§7.1.2.2); opts' bound is then dropped and the client keeps its
//     32 KiB window, which the decompressor handles anyway.
func acceptDeflate(offers []extension, opts *CompressionOptions) (params deflateParams, responseHeaderValue string, ok bool) {
	if !opts.enabled() {
		return deflateParams{}, "", false
	}
	for _, e := range offers {
		if e.name != deflateExtension {
			continue
		}
		off, err := readDeflateParams(e, false)
		if err != nil {
			continue // declined; try the next offer
		}
		resp := deflateParamSet{
			serverNoContextTakeover: off.serverNoContextTakeover || opts.ServerNoContextTakeover,
			clientNoContextTakeover: off.clientNoContextTakeover || opts.ClientNoContextTakeover,
		}
		sbits := opts.serverMaxWindowBits()
		if off.serverMaxWindowBits != 0 {
			sbits = min(sbits, off.serverMaxWindowBits)
		}
		if off.serverMaxWindowBits != 0 || sbits < maxWindowBits {
			resp.serverMaxWindowBits = sbits
		}
		cbits := maxWindowBits
		if off.hasClientMaxWindowBits {
			cbits = opts.clientMaxWindowBits()
			if off.clientMaxWindowBits != 0 {
				cbits = min(cbits, off.clientMaxWindowBits)
			}
			if cbits < maxWindowBits {
				resp.hasClientMaxWindowBits = true
				resp.clientMaxWindowBits = cbits
			}
		}
		params = deflateParams{
			serverNoContextTakeover: resp.serverNoContextTakeover,
			clientNoContextTakeover: resp.clientNoContextTakeover,
			serverMaxWindowBits:     sbits,
			clientMaxWindowBits:     cbits,
		}
		return params, resp.String(), true
	}
	return deflateParams{}, "", false
}

// offerParams is the client's single offer for opts: the parameters opts
// asks for, and always client_max_window_bits, with opts' value when it
// is below 15 and without one otherwise, which tells the server it may
// bound the client's window (the client can honour any bound).
func (o *CompressionOptions) offerParams() deflateParamSet {
	s := deflateParamSet{
		serverNoContextTakeover: o.ServerNoContextTakeover,
		clientNoContextTakeover: o.ClientNoContextTakeover,
		hasClientMaxWindowBits:  true,
	}
	if b := o.serverMaxWindowBits(); b < maxWindowBits {
		s.serverMaxWindowBits = b
	}
	if b := o.clientMaxWindowBits(); b < maxWindowBits {
		s.clientMaxWindowBits = b
	}
	return s
}

// deflateOffer returns the Sec-WebSocket-Extensions value a client sends
// for opts, or "" when opts does not enable compression. It is a single
// offer, so that the server's answer can only mean one thing.
func deflateOffer(opts *CompressionOptions) string {
	if !opts.enabled() {
		return ""
	}
	return opts.offerParams().String()
}

// checkDeflateResponse is the client's side of the negotiation: it checks
// the server's Sec-WebSocket-Extensions answer to deflateOffer(opts). ok is
// false with a nil error when the server declined (no extension in the
// answer). A malformed answer, or one that does not fit the offer, is an
// error whose text says why, meant for HandshakeError.Reason with
// CheckExtension; the client must then fail the connection (RFC 6455
// §9.1, RFC 7692 §5). Without compression enabled, any extension in the
// answer is such an error.
func checkDeflateResponse(h http.Header, opts *CompressionOptions) (params deflateParams, ok bool, err error) {
	exts, err := parseExtensions(h)
	if err != nil {
		return deflateParams{}, false, err
	}
	if len(exts) == 0 {
		return deflateParams{}, false, nil
	}
	if !opts.enabled() {
		return deflateParams{}, false, fmt.Errorf("server accepted extension %q that was not offered", extensionNames(exts))
	}
	params, err = checkDeflateAnswer(exts, opts.offerParams(), opts.ClientNoContextTakeover)
	if err != nil {
		return deflateParams{}, false, err
	}
	return params, true, nil
}

// checkDeflateAnswer checks a server's answer (at least one extension) to
// one permessage-deflate offer. localNoContextTakeover is the client's own
// choice not to keep its compressor's window, which holds whatever the
// answer says (RFC 7692 §7.1.1.2).
//
// Beyond the syntax of readDeflateParams, the answer must accept the offer
// as made: server_no_context_takeover and server_max_window_bits (at most
// the offered value) when the offer asked for them, since RFC 7692
// §7.1.1.1 and §7.1.2.1 define accepting those as answering them, and
// client_max_window_bits only when the offer named it (§7.1.2.2), at most
// the offered value when it had one. The server may add
// server_no_context_takeover, client_no_context_takeover and
// server_max_window_bits on its own.
func checkDeflateAnswer(exts []extension, offer deflateParamSet, localNoContextTakeover bool) (deflateParams, error) {
	if len(exts) != 1 {
		return deflateParams{}, fmt.Errorf("server accepted %d extensions (%s), but only one, %s, was offered", len(exts), extensionNames(exts), deflateExtension)
	}
	e := exts[0]
	if e.name != deflateExtension {
		return deflateParams{}, fmt.Errorf("server accepted extension %q that was not offered", e.name)
	}
	fail := func(format string, args ...any) (deflateParams, error) {
		return deflateParams{}, fmt.Errorf("server's answer %q does not fit the offer %q: %s", e.String(), offer.String(), fmt.Sprintf(format, args...))
	}
	ans, err := readDeflateParams(e, true)
	if err != nil {
		return deflateParams{}, fmt.Errorf("server's answer %q is invalid: %w", e.String(), err)
	}
	if offer.serverNoContextTakeover && !ans.serverNoContextTakeover {
		return fail("%s is missing", paramServerNoContext)
	}
	if offer.serverMaxWindowBits != 0 {
		if ans.serverMaxWindowBits == 0 {
			return fail("%s is missing", paramServerMaxWindowBits)
		}
		if ans.serverMaxWindowBits > offer.serverMaxWindowBits {
			return fail("%s=%d is more than the %d offered", paramServerMaxWindowBits, ans.serverMaxWindowBits, offer.serverMaxWindowBits)
		}
	}
	if ans.hasClientMaxWindowBits {
		if !offer.hasClientMaxWindowBits {
			return fail("%s was not offered", paramClientMaxWindowBits)
		}
		if offer.clientMaxWindowBits != 0 && ans.clientMaxWindowBits > offer.clientMaxWindowBits {
			return fail("%s=%d is more than the %d offered", paramClientMaxWindowBits, ans.clientMaxWindowBits, offer.clientMaxWindowBits)
		}
	}
	p := deflateParams{
		serverNoContextTakeover: ans.serverNoContextTakeover,
		clientNoContextTakeover: ans.clientNoContextTakeover || localNoContextTakeover,
		serverMaxWindowBits:     windowBits(ans.serverMaxWindowBits),
		clientMaxWindowBits:     windowBits(ans.clientMaxWindowBits),
	}
	if offer.clientMaxWindowBits != 0 {
		// The offered value bounds the client's own window whatever the
		// answer says (RFC 7692 §7.1.2.2).
		p.clientMaxWindowBits = min(p.clientMaxWindowBits, offer.clientMaxWindowBits)
	}
	return p, nil
}

// extensionNames lists the names of exts, for error messages.
func extensionNames(exts []extension) string {
	names := make([]string, len(exts))
	for i, e := range exts {
		names[i] = e.name
	}
	return strings.Join(names, ", ")
}

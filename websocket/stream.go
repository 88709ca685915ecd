package websocket

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
)

// This file is the hook for servers that do their own I/O, such as the
// event loop of package websocket/eventloop: the checks of the opening
// handshake and the frame parser that Accept and Conn use, without the I/O.
// One parser and one set of handshake rules, whatever drives them, so every
// driver answers bad input with the same HTTP statuses and close codes.

// AnswerUpgrade checks an opening handshake request with Accept's rules (RFC
// 6455 §4.2.1, the origin policy of AcceptOptions, the choice of
// subprotocol) and returns the whole HTTP response to send, for servers that
// read requests and write responses themselves. It refuses exactly the
// requests Accept refuses, with the same status, headers and one-line body
// (plus "Connection: close" and a Content-Length), and then returns the
// *HandshakeError as err. On success resp is the 101 response and agreed
// what it settled: the subprotocol chosen and permessage-deflate.
//
// With opts.Compression.Enabled, a client's permessage-deflate offer is
// accepted as Accept would accept it, except that context takeover is
// always off both ways (server_no_context_takeover and
// client_no_context_takeover are always in the answer, which RFC 7692
// §7.1.1 allows the server to impose): such a server keeps no compression
// state between messages (see SetAgreement, Inflate, AppendCompressed).
// CompressionOptions out of range refuse every request with 500, as
// Accept does. opts.Options and opts.HandshakeTimeout are not used; a nil
// opts is the zero AcceptOptions.
func AnswerUpgrade(r *http.Request, opts *AcceptOptions) (resp []byte, agreed Agreement, err error) {
	if opts == nil {
		opts = &AcceptOptions{}
	}
	if err := opts.Compression.Validate(); err != nil {
		// A server misconfiguration, not the client's fault.
		he := &HandshakeError{Check: CheckOptions, Status: http.StatusInternalServerError,
			Reason: "the server's WebSocket options are invalid", Err: err}
		return refusalResponse(he), Agreement{}, he
	}
	key, err := checkRequest(r, opts)
	if err != nil {
		he := err.(*HandshakeError)
		return refusalResponse(he), Agreement{}, he
	}
	agreed.Subprotocol = selectSubprotocol(r, opts.Subprotocols)
	var deflateAnswer string
	if opts.Compression.enabled() {
		// A malformed Sec-WebSocket-Extensions header only costs the
		// client compression, as with Accept.
		if offers, err := parseExtensions(r.Header); err == nil {
			co := opts.Compression
			co.ServerNoContextTakeover, co.ClientNoContextTakeover = true, true
			if params, answer, ok := acceptDeflate(offers, &co); ok {
				deflateAnswer = answer
				agreed.DeflateWindowBits = params.serverMaxWindowBits
			}
		}
	}
	b := make([]byte, 0, 160+len(deflateAnswer))
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = append(b, acceptKey(key)...)
	if agreed.Subprotocol != "" {
		b = append(b, "\r\nSec-WebSocket-Protocol: "...)
		b = append(b, agreed.Subprotocol...)
	}
	if deflateAnswer != "" {
		b = append(b, "\r\nSec-WebSocket-Extensions: "...)
		b = append(b, deflateAnswer...)
	}
	b = append(b, "\r\n\r\n"...)
	return b, agreed, nil
}

// RefusalResponse returns the HTTP response that refuses a handshake with
// he's status and reason, with the headers Accept sends for the same
// refusal, "Connection: close" and a Content-Length. Servers that parse
// requests themselves use it for the failures that come before Accept's
// checks (a malformed request: 400; headers too large: 431).
func RefusalResponse(he *HandshakeError) []byte { return refusalResponse(he) }

func refusalResponse(he *HandshakeError) []byte {
	h := http.Header{}
	setRefusalHeaders(h, he)
	body := he.Reason + "\n"
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Connection", "close")
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "HTTP/1.1 %d %s\r\n", he.Status, http.StatusText(he.Status))
	h.Write(&buf)
	buf.WriteString("\r\n")
	buf.WriteString(body)
	return buf.Bytes()
}

// setRefusalHeaders sets the headers of a refused handshake, for Accept
// (on its ResponseWriter) and AnswerUpgrade alike.
func setRefusalHeaders(h http.Header, he *HandshakeError) {
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	switch he.Check {
	case CheckMethod:
		h.Set("Allow", http.MethodGet)
	case CheckUpgrade:
		h.Set("Upgrade", "websocket")
		h.Set("Connection", "Upgrade")
	case CheckVersion:
		h.Set("Sec-WebSocket-Version", "13")
	}
}

// ServerParser is the incremental parser of the frames a client sends to a
// server, the one Conn reads with, for servers that do their own I/O (an
// event loop). It does no I/O and never blocks: Parse takes whatever bytes
// have arrived, in any pieces, down to one byte at a time, and keeps its
// place between calls. It enforces every rule Conn enforces on a server
// connection: masking, RSV bits (RSV1 only with permessage-deflate: SetAgreement), opcodes, control frames
// (at most 125 bytes, never fragmented), fragmentation, the 64-bit length,
// the read limit (1009, checked from each header before its payload), close
// frame payloads (1002, 1007) and UTF-8 of text as it arrives (1007).
//
// Between frames it holds no buffer: about 120 bytes in all. Only a control
// frame split across calls borrows a 125-byte buffer until it is complete.
type ServerParser struct {
	p     frameParser
	limit int64
	ctl   *partialControl
}

// partialControl is a control frame whose payload has only partly arrived.
type partialControl struct {
	h   frameHeader
	n   int
	buf [maxControlPayload]byte
}

// ParsedKind says what ServerParser.Parse found.
type ParsedKind uint8

// The kinds of Parsed.
const (
	// ParsedNothing: the bytes consumed completed no event (part of a
	// header, of a control frame); more input is needed.
	ParsedNothing ParsedKind = iota
	// ParsedData: Payload holds the next bytes of the current data message
	// (possibly none), unmasked and checked; Final is set on the event that
	// ends the message.
	ParsedData
	// ParsedPing: a ping with its whole Payload; answer it with a pong
	// carrying the same payload (RFC 6455 §5.5.2).
	ParsedPing
	// ParsedPong: a pong with its whole Payload.
	ParsedPong
	// ParsedClose: the peer's close frame, checked; Close holds its code
	// (StatusNoStatusRcvd when it had none) and reason.
	ParsedClose
)

// Parsed is one event of ServerParser.Parse. Payload aliases the input, or
// for a control frame split across calls the parser's buffer, and is valid
// until the next call.
type Parsed struct {
	Kind    ParsedKind
	Type    MessageType // the current message's type (ParsedData)
	Payload []byte
	Final   bool // ParsedData: this event ends the message
	// Compressed (ParsedData) marks the frames of a message sent with
	// permessage-deflate (see SetAgreement): Payload is compressed and
	// unchecked; gather the message's payloads and call Inflate.
	Compressed bool
	// Left (ParsedData) is how many payload bytes of the current frame
	// are still to come after Payload: with len(Payload) it sizes the
	// buffer a caller gathers a split message into, so that buffers can
	// be reused by size instead of grown by appends.
	Left  int64
	Close *CloseError // ParsedClose: the peer's code and reason
}

// Init makes p ready for a new server connection: masked frames expected,
// no extension, the message limit and UTF-8 checking of opts (nil: the
// defaults).
func (s *ServerParser) Init(opts *Options) {
	var o Options
	if opts != nil {
		o = *opts
	}
	*s = ServerParser{limit: o.readLimit()}
	s.p.dec.expectMasked = true
	s.p.checkUTF8 = !o.DisableUTF8Check
}

// Parse consumes bytes from the front of b, unmasking data in place, up to
// the first event, and returns how many bytes it consumed and the event
// (ParsedNothing when it needs more input). Call it again with the rest of
// b until b is used up. A *ProtocolError means the peer broke the protocol
// or the limit: fail the connection with its Code. After an error or a
// ParsedClose the parser must not be used again.
func (s *ServerParser) Parse(b []byte) (n int, ev Parsed, err error) {
	if c := s.ctl; c != nil {
		k := copy(c.buf[c.n:c.h.length], b)
		c.n += k
		if int64(c.n) < c.h.length {
			return k, Parsed{}, nil
		}
		s.ctl = nil
		payload := c.buf[:c.n]
		unmaskControl(c.h, payload)
		ev, err = s.control(c.h.op, payload)
		return k, ev, err
	}
	if !s.p.inFrame {
		hn, h, done, err := s.p.parseHeader(b, s.limit)
		if err != nil || !done {
			return hn, Parsed{}, err
		}
		n = hn
		b = b[hn:]
		if h.op.isControl() {
			if int64(len(b)) < h.length {
				c := &partialControl{h: h}
				c.n = copy(c.buf[:], b)
				s.ctl = c
				return n + len(b), Parsed{}, nil
			}
			payload := b[:h.length]
			unmaskControl(h, payload)
			ev, err = s.control(h.op, payload)
			return n + len(payload), ev, err
		}
		if !s.p.inFrame { // an empty frame, already finished
			return n, Parsed{Kind: ParsedData, Type: s.p.msgType, Payload: b[:0], Final: !s.p.inMessage, Compressed: s.p.compressed}, nil
		}
	}
	k := len(b)
	if left := s.p.payloadLeft(); int64(k) > left {
		k = int(left)
	}
	if k == 0 {
		return n, Parsed{}, nil
	}
	if err := s.p.parsePayload(b[:k]); err != nil {
		return n + k, Parsed{}, err
	}
	return n + k, Parsed{Kind: ParsedData, Type: s.p.msgType, Payload: b[:k], Final: !s.p.inMessage, Left: s.p.payloadLeft(), Compressed: s.p.compressed}, nil
}

// PayloadLeft returns how many payload bytes of the current data frame
// are still to come: 0 between frames and in a control frame. A caller
// that gathers a message split across reads may read up to that many bytes
// straight into the free room of its message buffer and hand them to
// Parse, which unmasks and checks them in place and returns them as the
// event's Payload (they must be passed on their own, not after other
// input). The kernel then copies them once, into their place, instead of
// into a read buffer and from there into the message.
func (s *ServerParser) PayloadLeft() int64 { return s.p.payloadLeft() }

// control turns a complete control frame into its event.
func (s *ServerParser) control(op opcode, payload []byte) (Parsed, error) {
	switch op {
	case opPing:
		return Parsed{Kind: ParsedPing, Payload: payload}, nil
	case opPong:
		return Parsed{Kind: ParsedPong, Payload: payload}, nil
	}
	ce, err := parseClosePayload(payload)
	if err != nil {
		return Parsed{}, err
	}
	return Parsed{Kind: ParsedClose, Payload: payload, Close: ce}, nil
}

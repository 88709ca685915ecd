package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// The client speaks raw frames rather than going through a WebSocket
// library: each connection writes one pre-built, pre-masked frame per
// message (one write system call, no masking work per message) and checks
// every byte of the echo (echoCheck, fed whatever a read returned). On
// Linux the echo connections are driven by a few epoll loops
// (echo_linux.go), elsewhere by a goroutine each (closedloop.go). The load
// generator then spends its CPU on system calls and the check, and its
// share of its core is reported with every result, so that a saturated
// client shows.

// handshakeKey is the Sec-WebSocket-Key every connection sends; its
// expected answer is computed once.
var (
	handshakeKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	handshakeAccept = acceptKey(handshakeKey)
)

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// upgradeRequest is the opening handshake request for path, with the
// header lines extra (each "Name: value\r\n") after the required ones.
func upgradeRequest(addr, path, extra string) []byte {
	return []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + handshakeKey + "\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n")
}

// readUpgradeHead reads the handshake response up to its blank line,
// byte by byte from br so that nothing after it is consumed, checks the
// status and Sec-WebSocket-Accept, and returns the response head.
func readUpgradeHead(br *bufio.Reader) ([]byte, error) {
	var head []byte
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		b, err := br.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("reading handshake response: %w", err)
		}
		head = append(head, b)
		if len(head) > 8192 {
			return nil, errors.New("handshake response too long")
		}
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101")) {
		line, _, _ := bytes.Cut(head, []byte("\r\n"))
		return nil, fmt.Errorf("handshake refused: %q", line)
	}
	for line := range bytes.SplitSeq(head, []byte("\r\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("Sec-WebSocket-Accept")) {
			if string(bytes.TrimSpace(v)) != handshakeAccept {
				return nil, fmt.Errorf("wrong Sec-WebSocket-Accept %q", v)
			}
			return head, nil
		}
	}
	return nil, errors.New("no Sec-WebSocket-Accept in the handshake response")
}

// dialWS opens a TCP connection to addr and runs the opening handshake.
func dialWS(addr string, timeout time.Duration) (net.Conn, *bufio.Reader, error) {
	c, br, _, err := dialWSRequest(addr, timeout, upgradeRequest(addr, "/", ""))
	return c, br, err
}

// dialWSRequest opens a TCP connection to addr, sends the upgrade request
// req and reads the answer, whose head it returns.
func dialWSRequest(addr string, timeout time.Duration, req []byte) (net.Conn, *bufio.Reader, []byte, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, nil, nil, err
	}
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, nil, nil, err
	}
	br := bufio.NewReaderSize(c, 32<<10)
	head, err := readUpgradeHead(br)
	if err != nil {
		c.Close()
		return nil, nil, nil, err
	}
	c.SetDeadline(time.Time{})
	return c, br, head, nil
}

// clientFrame returns a final, masked frame of opcode op carrying p, with
// a random mask key.
func clientFrame(op byte, p []byte) []byte {
	var key [4]byte
	rand.Read(key[:])
	f := []byte{0x80 | op}
	switch n := len(p); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xffff:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	f = append(f, key[:]...)
	for i, b := range p {
		f = append(f, b^key[i&3])
	}
	return f
}

// closeFrame is a masked close frame with code 1000.
var closeFrame = clientFrame(0x8, []byte{0x03, 0xe8})

// echoCheck checks the echoes arriving on one connection, one message at
// a time, from the bytes as they come in pieces of any size: feed takes
// what a read returned, however it cuts frames, so that the blocking and
// the epoll clients share one check. In the plain echo scenario an echo
// is one or more binary frames whose payloads, together, equal want byte
// for byte; in the compression scenario (deflate) it is a text message,
// compressed (RSV1 on its first frame) or not, that inflates to want, and
// in its run without the extension (deflate and plain) a text message
// without RSV1 that equals want.
type echoCheck struct {
	want    []byte // the payload the next echo must equal
	deflate bool   // the compression scenario's echoes (compress.go)
	plain   bool   // with deflate: permessage-deflate was not negotiated, so RSV1 is an error

	hdr    [10]byte // the current frame's header, as far as it came
	nh     int      // bytes of hdr gathered
	left   uint64   // payload bytes of the current frame still to come
	inData bool     // hdr is complete: left bytes of payload follow
	fin    bool     // the current frame ends the echo
	frames int      // frames of the current echo begun
	got    int      // payload bytes of the current echo (plain)
	fresh  bool     // the next byte starts a new echo

	// Of the current (or last completed) echo: frame bytes, headers
	// included, and whether it was compressed.
	wire       int
	compressed bool

	// The compression scenario's buffers and decompressor, reused.
	msg []byte
	out []byte
	src bytes.Reader
	fr  io.ReadCloser
}

// reset starts a new echo.
func (c *echoCheck) reset() {
	c.nh, c.left, c.inData, c.fin, c.frames, c.got = 0, 0, false, false, 0, 0
	c.wire, c.compressed, c.fresh = 0, false, false
	c.msg = c.msg[:0]
}

// started reports whether bytes of an echo arrived that did not complete
// it.
func (c *echoCheck) started() bool { return !c.fresh && (c.nh > 0 || c.frames > 0) }

// feed checks the next bytes of the stream. It returns how many it used
// and done when they completed an echo (wire and compressed then describe
// it; the bytes after it are the next echo's, for the next call). After
// an error or a completed echo the next call starts a new echo.
func (c *echoCheck) feed(b []byte) (used int, done bool, err error) {
	if c.fresh {
		c.reset()
	}
	defer func() {
		if done || err != nil {
			c.fresh = true
		}
	}()
	for used < len(b) {
		if !c.inData {
			need := 2
			if c.nh >= 2 {
				need = headerLen(c.hdr[1])
			}
			k := copy(c.hdr[c.nh:need], b[used:])
			c.nh += k
			used += k
			if c.nh < need {
				return used, false, nil
			}
			if need == 2 {
				if err := c.frameStart(); err != nil {
					return used, false, err
				}
				if headerLen(c.hdr[1]) > 2 {
					continue
				}
			}
			if err := c.header(); err != nil {
				return used, false, err
			}
		} else {
			k := int(min(c.left, uint64(len(b)-used)))
			if err := c.payload(b[used : used+k]); err != nil {
				return used, false, err
			}
			used += k
			c.left -= uint64(k)
		}
		if c.left == 0 {
			c.inData, c.nh = false, 0
			if c.fin {
				return used, true, c.finish()
			}
		}
	}
	return used, false, nil
}

// headerLen is the length of an unmasked frame header whose second byte
// is b1.
func headerLen(b1 byte) int {
	switch b1 & 0x7f {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

// payloadLen is the payload length given by h, a whole unmasked frame
// header (headerLen(h[1]) bytes).
func payloadLen(h []byte) uint64 {
	switch len(h) {
	case 4:
		return uint64(binary.BigEndian.Uint16(h[2:4]))
	case 10:
		return binary.BigEndian.Uint64(h[2:10])
	}
	return uint64(h[1] & 0x7f)
}

// opNote names a close frame in an opcode error.
func opNote(op byte) string {
	if op == 0x8 {
		return " (a close frame)"
	}
	return ""
}

// frameStart checks a frame's first two bytes.
func (c *echoCheck) frameStart() error {
	first, rsv, op := c.frames == 0, c.hdr[0]&0x70, c.hdr[0]&0x0f
	if c.hdr[1]&0x80 != 0 {
		return errors.New("server frame is masked")
	}
	if c.deflate {
		switch {
		case first && op != 0x1:
			return fmt.Errorf("unexpected opcode %#x%s (want a text message)", op, opNote(op))
		case !first && op != 0x0:
			return fmt.Errorf("unexpected opcode %#x%s (want a continuation)", op, opNote(op))
		case c.plain && rsv != 0:
			return fmt.Errorf("unexpected RSV bits %#x in a frame of the echo (permessage-deflate was not negotiated)", rsv)
		case first && rsv&^0x40 != 0, !first && rsv != 0:
			return fmt.Errorf("unexpected RSV bits %#x in a frame of the echo", rsv)
		}
		if first {
			c.compressed = rsv == 0x40
		}
	} else if (first && op != 0x2) || (!first && op != 0x0) {
		return fmt.Errorf("unexpected opcode %#x%s", op, opNote(op))
	}
	return nil
}

// header takes a frame's complete header: its length must fit what is
// left of the echo.
func (c *echoCheck) header() error {
	n := payloadLen(c.hdr[:c.nh])
	c.wire += c.nh
	c.frames++
	c.fin = c.hdr[0]&0x80 != 0
	if c.deflate {
		if limit := deflateLimit(len(c.want)); n > uint64(limit-len(c.msg)) {
			return fmt.Errorf("echo of over %d bytes for a message of %d", limit, len(c.want))
		}
	} else if n > uint64(len(c.want)-c.got) {
		return fmt.Errorf("echo longer than the %d bytes sent", len(c.want))
	}
	c.left, c.inData = n, true
	return nil
}

// payload takes the next payload bytes of the current frame.
func (c *echoCheck) payload(p []byte) error {
	c.wire += len(p)
	if c.deflate {
		c.msg = append(c.msg, p...)
		return nil
	}
	if !bytes.Equal(p, c.want[c.got:c.got+len(p)]) {
		return errors.New("echo differs from the message sent")
	}
	c.got += len(p)
	return nil
}

// finish checks a whole echo.
func (c *echoCheck) finish() error {
	if c.deflate {
		return c.finishDeflate()
	}
	if c.got != len(c.want) {
		return fmt.Errorf("echo of %d bytes, sent %d", c.got, len(c.want))
	}
	return nil
}

// readFrom reads one echo from br and checks it, taking no byte past its
// end.
func (c *echoCheck) readFrom(br *bufio.Reader) error {
	for {
		if _, err := br.Peek(1); err != nil {
			if err == io.EOF && c.started() {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		b, _ := br.Peek(br.Buffered())
		used, done, err := c.feed(b)
		br.Discard(used)
		if err != nil || done {
			return err
		}
	}
}

// closedError describes the server closing the connection while c waited
// for an echo.
func (c *echoCheck) closedError() error {
	if c.started() {
		n := c.wire // whole headers and payload bytes
		if !c.inData {
			n += c.nh // and a header's first bytes
		}
		return fmt.Errorf("the server closed the connection in the middle of the echo (%d frame bytes of it received)", n)
	}
	return errors.New("the server closed the connection instead of echoing")
}

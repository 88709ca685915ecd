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
// message (one write system call, no masking work per message) and reads
// the echo with a buffered reader, checking every byte. The load generator
// then spends its CPU on system calls and the check, and its share of its
// core is reported with every result, so that a saturated client shows.

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

func upgradeRequest(addr string) []byte {
	return []byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + handshakeKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n")
}

// readUpgradeResponse reads the handshake response up to its blank line,
// byte by byte from br so that nothing after it is consumed, and checks
// the status and Sec-WebSocket-Accept.
func readUpgradeResponse(br *bufio.Reader) error {
	_, err := readUpgradeHead(br)
	return err
}

// readUpgradeHead is readUpgradeResponse returning the response head.
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
	c, br, _, err := dialWSRequest(addr, timeout, upgradeRequest(addr))
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

// readEcho reads one message of binary frames from br (a server may
// fragment it) and checks that it is want, byte for byte.
func readEcho(br *bufio.Reader, want []byte, buf []byte) error {
	off := 0
	first := true
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0f
		if h[1]&0x80 != 0 {
			return errors.New("server frame is masked")
		}
		if (first && op != 0x2) || (!first && op != 0x0) {
			return fmt.Errorf("unexpected opcode %#x", op)
		}
		first = false
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(br, e[:]); err != nil {
				return err
			}
			n = uint64(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(br, e[:]); err != nil {
				return err
			}
			n = binary.BigEndian.Uint64(e[:])
		}
		if n > uint64(len(want)-off) {
			return fmt.Errorf("echo longer than the %d bytes sent", len(want))
		}
		for n > 0 {
			k := min(int(n), len(buf))
			if _, err := io.ReadFull(br, buf[:k]); err != nil {
				return err
			}
			if !bytes.Equal(buf[:k], want[off:off+k]) {
				return errors.New("echo differs from the message sent")
			}
			off += k
			n -= uint64(k)
		}
		if fin {
			if off != len(want) {
				return fmt.Errorf("echo of %d bytes, sent %d", off, len(want))
			}
			return nil
		}
	}
}

package eventloop

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"

	"github.com/duplex-ws/duplex/websocket"
)

// gatherHead takes the next bytes of a handshake request and finds the end
// of its head (the empty line after the headers), whatever pieces the bytes
// arrive in, down to one byte at a time. hs holds what earlier pieces left
// (nil for none). When the head is complete it returns it and the bytes
// after it (the first frames, if the client did not wait for the 101);
// otherwise it returns the state to keep, with the piece copied out of b,
// which the caller reuses. A head longer than max bytes is refused with 431
// as soon as its first max bytes hold no end.
func gatherHead(hs *handshake, b []byte, max int) (next *handshake, head, rest []byte, he *websocket.HandshakeError) {
	lineLen := 1 // as if inside a line: a leading empty line ends nothing
	have := 0
	if hs != nil {
		lineLen, have = hs.lineLen, len(hs.buf)
	}
	end := -1
	for i, ch := range b {
		if have+i >= max {
			break
		}
		if ch == '\n' {
			if lineLen == 0 {
				end = i + 1
				break
			}
			lineLen = 0
		} else if ch != '\r' {
			lineLen++
		}
	}
	if end < 0 {
		if have+len(b) >= max {
			return nil, nil, nil, &websocket.HandshakeError{Status: http.StatusRequestHeaderFieldsTooLarge,
				Reason: fmt.Sprintf("request headers are longer than %d bytes", max)}
		}
		if hs == nil {
			hs = &handshake{buf: make([]byte, 0, min(2*len(b)+256, max))}
		}
		hs.buf = append(hs.buf, b...)
		hs.lineLen = lineLen
		return hs, nil, nil, nil
	}
	head, rest = b[:end], b[end:]
	if hs != nil {
		head = append(hs.buf, head...)
	}
	return nil, head, rest, nil
}

// answerHead parses a complete request head with net/http's parser and
// answers it with websocket.AnswerUpgrade: the 101 response and what it
// agreed, or a refusal and its *websocket.HandshakeError (400 for a
// malformed request).
func answerHead(head []byte, opts *websocket.AcceptOptions) (resp []byte, agreed websocket.Agreement, err error) {
	req, err := http.ReadRequest(bufio.NewReaderSize(bytes.NewReader(head), len(head)))
	if err == nil && req.ProtoAtLeast(1, 1) && req.Host == "" {
		err = errors.New("missing required Host header")
	}
	if err != nil {
		he := &websocket.HandshakeError{Status: http.StatusBadRequest, Reason: "malformed HTTP request: " + err.Error()}
		return websocket.RefusalResponse(he), websocket.Agreement{}, he
	}
	return websocket.AnswerUpgrade(req, opts)
}

package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/duplex-ws/duplex/websocket"
)

// pipeChunk is the most --binary sends in one message: what one read of
// standard input returns, up to this size.
const pipeChunk = 64 << 10

// outMessage is a message to send.
type outMessage struct {
	typ websocket.MessageType
	p   []byte
}

// runPipe is pipe mode: stdin to messages, messages to stdout, then a
// closing handshake at the end of input; it returns the exit status.
func runPipe(cfg *connectConfig, c *websocket.Conn, stdin io.Reader, stdout, stderr io.Writer) int {
	defer c.CloseNow()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	out := bufio.NewWriter(stdout)
	readErr := make(chan error, 1)
	received := make(chan struct{}, 1) // a message arrived
	go func() {
		for {
			_, p, err := c.Read(ctx)
			if err != nil {
				out.Flush()
				readErr <- err
				return
			}
			switch {
			case cfg.hex:
				hexLine := make([]byte, hex.EncodedLen(len(p))+1)
				hex.Encode(hexLine, p)
				hexLine[len(hexLine)-1] = '\n'
				out.Write(hexLine)
			case cfg.binary:
				out.Write(p)
			default:
				out.Write(p)
				out.WriteByte('\n')
			}
			select {
			case received <- struct{}{}:
			default:
			}
			if err := out.Flush(); err != nil {
				// Standard output is gone (a closed pipe): nothing more
				// can be shown, so end the connection.
				c.CloseNow()
			}
		}
	}()

	inputs := make(chan outMessage)
	inputDone := make(chan struct{})
	defer close(inputDone)
	go readPipeInput(cfg, stdin, inputs, inputDone, stderr)

	finish := func(err error) int {
		status, msg := ending(err)
		if msg != "" {
			fmt.Fprintln(stderr, connectPrefix+msg)
		}
		return status
	}
	// afterFailure waits (bounded) for the reader to say how the
	// connection ended, which explains a failed write better than the
	// write's own error.
	afterFailure := func(werr error) int {
		select {
		case err := <-readErr:
			return finish(err)
		case <-time.After(cfg.closeTimeout):
			return finish(werr)
		}
	}

input:
	for {
		select {
		case m, ok := <-inputs:
			if !ok {
				break input
			}
			if err := c.Write(ctx, m.typ, m.p); err != nil {
				c.CloseNow()
				return afterFailure(err)
			}
		case err := <-readErr:
			return finish(err)
		case <-sigs:
			break input
		}
	}

	// The end of input. Let the answers in flight arrive before closing,
	// since a server drops what it has not sent once it sees our close:
	// first a ping round trip, whose pong a server that answers in order
	// sends after every earlier answer; then, for servers that answer
	// asynchronously, until --wait passes without a message (bounded by
	// --close-timeout in all).
	limit := time.NewTimer(cfg.closeTimeout)
	defer limit.Stop()
	pctx, pcancel := context.WithTimeout(ctx, cfg.closeTimeout)
	perr := c.Ping(pctx)
	pcancel()
	if perr != nil && !errors.Is(perr, context.DeadlineExceeded) {
		return afterFailure(perr) // the connection ended meanwhile
	}
	if cfg.wait > 0 {
		idle := time.NewTimer(cfg.wait)
		defer idle.Stop()
	linger:
		for {
			select {
			case <-received:
				idle.Reset(cfg.wait)
			case <-idle.C:
				break linger
			case <-limit.C:
				break linger
			case err := <-readErr:
				return finish(err)
			}
		}
	}
	return finish(closeAndWait(c, cfg.closeCode, cfg.closeReason, readErr, cfg.closeTimeout))
}

// readPipeInput turns standard input into messages on inputs, closing it
// at the end of input. done tells it to stop.
func readPipeInput(cfg *connectConfig, stdin io.Reader, inputs chan<- outMessage, done <-chan struct{}, stderr io.Writer) {
	defer close(inputs)
	send := func(m outMessage) bool {
		select {
		case inputs <- m:
			return true
		case <-done:
			return false
		}
	}
	if cfg.binary && !cfg.hex {
		for {
			buf := make([]byte, pipeChunk)
			n, err := stdin.Read(buf)
			if n > 0 && !send(outMessage{websocket.MessageBinary, buf[:n]}) {
				return
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					fmt.Fprintln(stderr, connectPrefix+"reading standard input:", err)
				}
				return
			}
		}
	}
	br := bufio.NewReaderSize(stdin, pipeChunk)
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			m, ok := pipeLineMessage(cfg, line)
			if !ok {
				fmt.Fprintf(stderr, "%sline %d: invalid hex, not sent: %q\n", connectPrefix, lineNo, line)
			} else if !send(m) {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				fmt.Fprintln(stderr, connectPrefix+"reading standard input:", err)
			}
			return
		}
	}
}

// pipeLineMessage makes the message for one input line, with its line end.
func pipeLineMessage(cfg *connectConfig, line []byte) (outMessage, bool) {
	line = trimLineEnd(line)
	if cfg.hex {
		p, err := parseHex(string(line))
		return outMessage{websocket.MessageBinary, p}, err == nil
	}
	if cfg.binary || !utf8.Valid(line) {
		return outMessage{websocket.MessageBinary, line}, true
	}
	return outMessage{websocket.MessageText, line}, true
}

// trimLineEnd removes a trailing "\n" or "\r\n".
func trimLineEnd(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
	}
	return line
}

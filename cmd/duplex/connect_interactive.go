package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/duplex-ws/duplex/websocket"
)

// binaryPreview is how many bytes of a binary message interactive mode
// shows without --hex.
const binaryPreview = 64

const interactiveHelp = `commands:
  /close [code [reason]]  close with code (default %d) and reason
  /ping                   send a ping and print the round-trip time
  /binary HEX             send a binary message, e.g. /binary 68 69 0a
  /text TEXT              send TEXT as it is, even if it starts with /
  /quit                   close and exit (also Ctrl-D on an empty line, Ctrl-C)
  /help                   this list`

// lineResult is one line typed, or the error that ended the input.
type lineResult struct {
	line string
	err  error
}

// runInteractive is interactive mode: a line editor on the terminal, with
// received messages printed above the line being typed.
func runInteractive(cfg *connectConfig, c *websocket.Conn, resp *http.Response, tty *os.File, stderr io.Writer) int {
	defer c.CloseNow()
	fd := int(os.Stdin.Fd())
	old, err := term.MakeRaw(fd)
	if err != nil {
		fmt.Fprintln(stderr, connectPrefix+"cannot set up the terminal:", err)
		return runPipe(cfg, c, os.Stdin, tty, stderr)
	}
	// The line editor writes through a gate that restore shuts, so that a
	// prompt it redraws concurrently cannot land after the erase.
	out := &gatedWriter{w: tty}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			out.shut("\r\x1b[K") // erase the prompt line
			term.Restore(fd, old)
		}
	}
	defer restore()

	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{os.Stdin, out}, "> ")
	if w, h, err := term.GetSize(int(tty.Fd())); err == nil && w > 0 && h > 0 {
		t.SetSize(w, h)
	}
	stopResize := watchResize(tty, t)
	defer stopResize()

	say := func(format string, a ...any) {
		fmt.Fprintf(t, time.Now().Format("15:04:05.000")+" "+format+"\n", a...)
	}
	details := ""
	if p := c.Subprotocol(); p != "" {
		details += ", subprotocol " + p
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		details += ", extensions " + sanitize(ext)
	}
	say("connected to %s%s; /help lists the commands", sanitize(cfg.url), details)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readErr := make(chan error, 1)
	go func() {
		for {
			typ, p, err := c.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			say("< %s", showMessage(typ, p, cfg.hex))
		}
	}()

	// The line editor reads a line only when asked, so that it prints no
	// prompt after the session ended.
	lines := make(chan lineResult)
	next := make(chan struct{}, 1)
	defer close(next)
	go func() {
		for range next {
			line, err := t.ReadLine()
			select {
			case lines <- lineResult{line, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	// finish ends the session with the status of how the connection ended.
	finish := func(err error) int {
		status, msg := ending(err)
		if status == exitClean {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				say("closed by the server: %s", closeText(ce))
			} else {
				say("closed")
			}
			restore()
			return status
		}
		restore()
		fmt.Fprintln(stderr, connectPrefix+msg)
		return status
	}
	closeWith := func(code websocket.StatusCode, reason string) int {
		say("closing with %s", closeText(&websocket.CloseError{Code: code, Reason: reason}))
		return finish(closeAndWait(c, code, reason, readErr, cfg.closeTimeout))
	}
	send := func(typ websocket.MessageType, p []byte) (int, bool) {
		if err := c.Write(ctx, typ, p); err != nil {
			select {
			case rerr := <-readErr:
				return finish(rerr), true
			case <-time.After(cfg.closeTimeout):
				return finish(err), true
			}
		}
		return 0, false
	}

	asked := false
	for {
		if !asked {
			next <- struct{}{}
			asked = true
		}
		select {
		case err := <-readErr:
			return finish(err)
		case <-sigs:
			return closeWith(cfg.closeCode, cfg.closeReason)
		case l := <-lines:
			asked = false
			if l.err != nil {
				return closeWith(cfg.closeCode, cfg.closeReason)
			}
			if l.line == "" {
				continue
			}
			if !strings.HasPrefix(l.line, "/") {
				m, err := typedMessage(cfg, l.line)
				if err != nil {
					say("%v; not sent", err)
					continue
				}
				if status, done := send(m.typ, m.p); done {
					return status
				}
				continue
			}
			cmd, arg, _ := strings.Cut(l.line, " ")
			switch cmd {
			case "/quit", "/exit":
				return closeWith(cfg.closeCode, cfg.closeReason)
			case "/close":
				code, reason, err := parseCloseCommand(arg, cfg.closeCode)
				if err != nil {
					say("/close: %v", err)
					continue
				}
				return closeWith(code, reason)
			case "/ping":
				go func() {
					start := time.Now()
					pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
					defer pcancel()
					if err := c.Ping(pctx); err != nil {
						say("ping: %v", err)
						return
					}
					say("pong after %v", time.Since(start).Round(time.Microsecond))
				}()
			case "/binary":
				p, err := parseHex(arg)
				if err != nil {
					say("/binary: %v; not sent", err)
					continue
				}
				if status, done := send(websocket.MessageBinary, p); done {
					return status
				}
			case "/text":
				if status, done := send(websocket.MessageText, []byte(arg)); done {
					return status
				}
			case "/help":
				for _, line := range strings.Split(fmt.Sprintf(interactiveHelp, int(cfg.closeCode)), "\n") {
					fmt.Fprintln(t, line)
				}
			default:
				say("unknown command %s; /help lists them, /text sends a line that starts with /", sanitize(cmd))
			}
		}
	}
}

// typedMessage makes the message for a line typed in interactive mode.
func typedMessage(cfg *connectConfig, line string) (outMessage, error) {
	switch {
	case cfg.hex:
		p, err := parseHex(line)
		return outMessage{websocket.MessageBinary, p}, err
	case cfg.binary:
		return outMessage{websocket.MessageBinary, []byte(line)}, nil
	}
	return outMessage{websocket.MessageText, []byte(line)}, nil
}

// parseCloseCommand reads the arguments of /close: [code [reason]].
func parseCloseCommand(arg string, def websocket.StatusCode) (websocket.StatusCode, string, error) {
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return def, "", nil
	}
	num, reason, _ := strings.Cut(arg, " ")
	n, err := strconv.Atoi(num)
	if err != nil {
		return 0, "", fmt.Errorf("invalid code %q", num)
	}
	code := websocket.StatusCode(n)
	if err := checkCloseArgs(code, reason); err != nil {
		return 0, "", err
	}
	return code, reason, nil
}

// showMessage renders a received message for interactive mode: text as it
// is (control characters escaped), binary as hex with its size.
func showMessage(typ websocket.MessageType, p []byte, hexAll bool) string {
	if typ == websocket.MessageText && !hexAll && utf8.Valid(p) {
		return sanitize(string(p))
	}
	shown, more := p, ""
	if !hexAll && len(p) > binaryPreview {
		shown, more = p[:binaryPreview], " …"
	}
	s := fmt.Sprintf("[%s %d bytes]", typ, len(p))
	if len(shown) > 0 {
		s += fmt.Sprintf(" % x", shown)
	}
	return s + more
}

// gatedWriter passes writes to w until shut, then drops them.
type gatedWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

// shut writes last and lets nothing through after it.
func (g *gatedWriter) shut(last string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.closed = true
		io.WriteString(g.w, last)
	}
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return len(p), nil
	}
	return g.w.Write(p)
}

package main

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/duplex-ws/duplex/websocket"
)

// The exit statuses of duplex connect, so that a script can tell how the
// connection ended.
const (
	exitClean     = 0 // closed with 1000, 1001 or 1005, or our close was answered
	exitConnect   = 1 // the connection or the handshake failed
	exitUsage     = 2 // bad flags or arguments
	exitPeerCode  = 3 // the server closed with another code
	exitAbnormal  = 4 // dropped without a close frame, protocol error, no answer to our close
	connectPrefix = "duplex connect: "
)

const connectUsage = `Usage: duplex connect [flags] URL

Opens a WebSocket connection to URL (ws://, wss://, http:// or https://),
like wscat and websocat.

Interactive mode (standard input and output are both terminals): type a line
and press Enter to send it as a text message. Lines can be edited, and Up and
Down walk the history. Received messages are printed with the time:
  15:04:05.000 < hello                      a text message
  15:04:05.000 < [binary 3 bytes] 01 02 03  a binary message in hex (the first
                                            64 bytes; --hex shows them all,
                                            and text messages in hex too)
Commands:
  /close [code [reason]]  close with code (default --close-code) and reason
  /ping                   send a ping and print the round-trip time
  /binary HEX             send a binary message, e.g. /binary 68 69 0a
  /text TEXT              send TEXT as it is, even if it starts with /
  /quit                   close with --close-code and --close-reason and
                          exit; so do Ctrl-D on an empty line and Ctrl-C
  /help                   list the commands

Pipe mode (otherwise): each line of standard input (without its "\n" or
"\r\n") is sent as a text message, or as a binary one if it is not valid
UTF-8. Each message received is written to standard output followed by "\n",
as it is, without a timestamp. With --binary, each chunk read from standard
input (up to 64 KiB, as the reads return it) is sent as a binary message, and
messages received are written with nothing between them: a byte stream.
With --hex, each input line is hex (spaces allowed) sent as a binary message,
and each message received is written as one line of hex.
At the end of input, duplex connect waits for the answers still on their way,
since a server drops them once it sees a close: it sends a ping and waits for
its pong (a server that answers in order sends it after its earlier answers),
then waits until no message has come for --wait (100ms), all this for at most
--close-timeout (5s). Then it sends a close (--close-code, 1000 by default)
and waits for the server's close, again for at most --close-timeout.
SIGINT and SIGTERM end the input the same way.

Exit status:
  0  closed cleanly: the server answered our close, or closed with
     1000 (normal), 1001 (going away) or without a status code (1005)
  1  could not connect: network or TLS failure, or the server refused the
     handshake (its HTTP status and reason are printed)
  2  usage error
  3  the server closed with another code; the code and reason are printed:
       duplex connect: closed by the server: 4001 "bye"
  4  the connection ended abnormally: dropped without a close frame
     (1006), protocol error, keepalive timeout, or no answer to our close

Examples:
  echo hello | duplex connect ws://localhost:8080/echo
  duplex connect -H 'Authorization: Bearer T' --subprotocol duplex.v1 wss://example.com/ws

Flags:
`

// connectConfig is what the flags of duplex connect say.
type connectConfig struct {
	url          string
	header       http.Header
	subprotocols []string
	insecure     bool
	binary       bool
	hex          bool
	compress     bool
	pipe         bool
	pingInterval time.Duration
	pingTimeout  time.Duration
	timeout      time.Duration
	closeTimeout time.Duration
	wait         time.Duration
	closeCode    websocket.StatusCode
	closeReason  string
}

// connect runs `duplex connect`.
func connect(args []string, stdout, stderr io.Writer) int {
	cfg, code := parseConnectFlags(args, stderr)
	if cfg == nil {
		return code
	}
	interactive := !cfg.pipe && term.IsTerminal(int(os.Stdin.Fd())) && isTerminalWriter(stdout)
	c, resp, err := dialConnect(cfg)
	if err != nil {
		fmt.Fprintln(stderr, connectPrefix+describeDialError(err, resp))
		return exitConnect
	}
	if interactive {
		return runInteractive(cfg, c, resp, stdout.(*os.File), stderr)
	}
	return runPipe(cfg, c, os.Stdin, stdout, stderr)
}

// isTerminalWriter reports whether w is a file on a terminal.
func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// parseConnectFlags reads the flags and the URL. The URL may come before or
// after the flags. It returns nil and the exit status when the command ends
// here (--help or a usage error).
func parseConnectFlags(args []string, stderr io.Writer) (*connectConfig, int) {
	fs := flag.NewFlagSet("connect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var headers, subprotocols stringList
	fs.Var(&headers, "H", "request header `'Name: value'`; repeatable")
	fs.Var(&subprotocols, "subprotocol", "subprotocol `name` to offer, most preferred first; repeatable")
	origin := fs.String("origin", "", "Origin header `URL`, as a browser page at that origin would send")
	insecure := fs.Bool("insecure", false, "accept any TLS certificate (self-signed, wrong host): for tests only")
	binary := fs.Bool("binary", false, "send binary messages: in pipe mode standard input is sent in chunks as it is read, and messages received are written with no separator; in interactive mode typed lines are sent as binary")
	hexMode := fs.Bool("hex", false, "input and output in hex: each input line is hex sent as a binary message, each message received is shown as hex")
	compress := fs.Bool("compress", false, "offer permessage-deflate compression (RFC 7692)")
	pipe := fs.Bool("pipe", false, "use pipe mode even on a terminal")
	pingInterval := fs.Duration("ping-interval", 0, "send a ping this often, and fail the connection (exit status 4) if no pong comes within --ping-timeout (0: never)")
	pingTimeout := fs.Duration("ping-timeout", websocket.DefaultPingTimeout, "with --ping-interval, how long to wait for each pong")
	timeout := fs.Duration("timeout", 10*time.Second, "time allowed for connecting and the opening handshake")
	closeTimeout := fs.Duration("close-timeout", websocket.DefaultCloseTimeout, "how long to wait for the server's answer to our close")
	wait := fs.Duration("wait", 100*time.Millisecond, "pipe mode: at the end of input, after the ping's pong, close only once no message has come for this long (at most --close-timeout in all)")
	closeCode := fs.Int("close-code", int(websocket.StatusNormalClosure), "status `code` of the close sent at the end of input (1000-1003, 1007-1014, 3000-4999)")
	closeReason := fs.String("close-reason", "", "reason sent with the close at the end of input (UTF-8, at most 123 bytes)")
	fs.Usage = func() {
		fmt.Fprint(stderr, connectUsage)
		fs.PrintDefaults()
	}

	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0
			}
			return nil, exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	usageErr := func(format string, a ...any) (*connectConfig, int) {
		fmt.Fprintf(stderr, connectPrefix+format+"\n", a...)
		fmt.Fprintln(stderr, "Run duplex connect --help for the flags.")
		return nil, exitUsage
	}
	switch len(positional) {
	case 0:
		return usageErr("missing URL")
	case 1:
	default:
		return usageErr("unexpected argument %q after the URL", positional[1])
	}
	cfg := &connectConfig{
		url:          positional[0],
		header:       http.Header{},
		subprotocols: subprotocols,
		insecure:     *insecure,
		binary:       *binary,
		hex:          *hexMode,
		compress:     *compress,
		pipe:         *pipe,
		pingInterval: *pingInterval,
		pingTimeout:  *pingTimeout,
		timeout:      *timeout,
		closeTimeout: *closeTimeout,
		wait:         *wait,
		closeCode:    websocket.StatusCode(*closeCode),
		closeReason:  *closeReason,
	}
	u, err := url.Parse(cfg.url)
	if err != nil {
		return usageErr("invalid URL %q: %v", cfg.url, err)
	}
	switch u.Scheme {
	case "ws", "wss", "http", "https":
	default:
		return usageErr("URL %q: the scheme must be ws, wss, http or https", cfg.url)
	}
	if u.Host == "" {
		return usageErr("URL %q has no host", cfg.url)
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return usageErr("-H %q: want 'Name: value'", h)
		}
		cfg.header.Add(name, strings.TrimSpace(value))
	}
	if *origin != "" {
		cfg.header.Set("Origin", *origin)
	}
	if err := checkCloseArgs(cfg.closeCode, cfg.closeReason); err != nil {
		return usageErr("%v", err)
	}
	if cfg.timeout <= 0 || cfg.closeTimeout <= 0 {
		return usageErr("--timeout and --close-timeout must be positive")
	}
	if cfg.pingInterval < 0 || cfg.pingTimeout < 0 || cfg.wait < 0 {
		return usageErr("--ping-interval, --ping-timeout and --wait cannot be negative")
	}
	return cfg, 0
}

// checkCloseArgs checks a close code and reason before they are needed, so
// a mistake is a usage error rather than a failure at the end.
func checkCloseArgs(code websocket.StatusCode, reason string) error {
	if !code.Sendable() {
		return fmt.Errorf("close code %d cannot be sent (use 1000-1003, 1007-1014 or 3000-4999)", int(code))
	}
	if len(reason) > 123 {
		return fmt.Errorf("close reason of %d bytes is longer than 123", len(reason))
	}
	if !utf8.ValidString(reason) {
		return errors.New("close reason is not valid UTF-8")
	}
	return nil
}

// dialConnect opens the connection the flags describe.
func dialConnect(cfg *connectConfig) (*websocket.Conn, *http.Response, error) {
	opts := &websocket.DialOptions{
		Header:       cfg.header,
		Subprotocols: cfg.subprotocols,
	}
	opts.PingInterval = cfg.pingInterval
	opts.PingTimeout = cfg.pingTimeout
	opts.CloseTimeout = cfg.closeTimeout
	opts.ReadLimit = -1 // a client tool shows whatever the server sends
	opts.Compression.Enabled = cfg.compress
	if cfg.insecure {
		opts.TLSConfig = &tls.Config{InsecureSkipVerify: true}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	return websocket.Dial(ctx, cfg.url, opts)
}

// describeDialError says why the connection could not be opened: for a
// refused handshake, the server's HTTP status and the first line of its
// answer's body, which is where servers put the reason.
func describeDialError(err error, resp *http.Response) string {
	var he *websocket.HandshakeError
	if errors.As(err, &he) && he.Check == websocket.CheckStatus && resp != nil {
		s := "handshake refused: " + resp.Status
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		reason := strings.TrimSpace(string(body))
		if line, _, more := strings.Cut(reason, "\n"); more {
			reason = strings.TrimSpace(line) + " …"
		}
		if reason != "" {
			s += ": " + sanitize(reason)
		}
		return s
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return strings.TrimPrefix(err.Error(), "websocket: ") + " (see --timeout)"
	}
	return strings.TrimPrefix(err.Error(), "websocket: ")
}

// closeAndWait sends our close with code and reason and waits for the
// reader, which gets readErr, to end: at most timeout, after which the
// connection is dropped. It returns nil when our close succeeded;
// otherwise the reader's error when the server closed first or the
// connection dropped, since it says how, and else the error of our close.
func closeAndWait(c *websocket.Conn, code websocket.StatusCode, reason string, readErr <-chan error, timeout time.Duration) error {
	closeErr := c.Close(code, reason)
	var rerr error
	select {
	case rerr = <-readErr:
	case <-time.After(timeout):
		c.CloseNow()
		rerr = <-readErr
	}
	if closeErr == nil {
		return nil
	}
	if websocket.CloseStatus(rerr) >= 0 {
		return rerr // the server closed first, or the connection dropped
	}
	return closeErr
}

// ending describes how a connection ended: the exit status and, for a
// failure, the message for standard error ("" when there is none).
func ending(err error) (status int, msg string) {
	var ce *websocket.CloseError
	var pe *websocket.ProtocolError
	switch {
	case err == nil, errors.Is(err, websocket.ErrClosed):
		return exitClean, ""
	case errors.As(err, &ce):
		switch ce.Code {
		case websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusNoStatusRcvd:
			return exitClean, ""
		case websocket.StatusAbnormalClosure:
			return exitAbnormal, "connection lost: " + ce.Reason
		}
		return exitPeerCode, "closed by the server: " + closeText(ce)
	case errors.As(err, &pe):
		return exitAbnormal, fmt.Sprintf("connection failed: the server broke the protocol: %v: %s", pe.Code, pe.Reason)
	}
	return exitAbnormal, "connection failed: " + strings.TrimPrefix(err.Error(), "websocket: ")
}

// closeText shows a close code and its reason: 4001 "bye".
func closeText(ce *websocket.CloseError) string {
	if ce.Code == websocket.StatusNoStatusRcvd {
		return "no status code"
	}
	if ce.Reason == "" {
		return ce.Code.String()
	}
	return ce.Code.String() + " " + strconv.Quote(ce.Reason)
}

// sanitize replaces control characters with Go escapes, so that text from
// the network cannot drive the terminal.
func sanitize(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool {
	return (r < 0x20 && r != '\n' && r != '\t') || (r >= 0x7f && r < 0xa0)
}

// parseHex decodes hex with optional spaces: "68 69", "6869", "0x68 0x69".
func parseHex(s string) ([]byte, error) {
	var b strings.Builder
	for _, f := range strings.Fields(s) {
		f = strings.TrimPrefix(strings.TrimPrefix(f, "0x"), "0X")
		b.WriteString(f)
	}
	p, err := hex.DecodeString(b.String())
	if err != nil {
		return nil, fmt.Errorf("invalid hex %q: %v", s, err)
	}
	return p, nil
}

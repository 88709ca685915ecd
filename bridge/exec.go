package bridge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/duplex-ws/duplex/websocket"
)

// Defaults used when an ExecHandler's field is zero.
const (
	// DefaultMaxProcesses caps the processes an ExecHandler runs at once.
	// Each connection costs a process, so the cap is what keeps a flood of
	// connections from exhausting the machine.
	DefaultMaxProcesses = 64
	// DefaultKillTimeout is how long a process has to exit after SIGTERM,
	// once its connection ended, before its process group gets SIGKILL.
	DefaultKillTimeout = 2 * time.Second
	// drainTimeout bounds delivering a process's last output after it
	// exited: a grandchild that left the process group may keep stdout
	// open forever.
	drainTimeout = 2 * time.Second
)

// DefaultPassEnv names the server's environment variables a process
// inherits when ExecHandler.PassEnv is nil. Others (credentials, tokens)
// stay out of reach of the scripts a bridge runs.
var DefaultPassEnv = []string{"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"}

// ExecHandler runs Command once per WebSocket connection and bridges the
// connection to the process, as websocketd does.
//
// In text mode (the default), each line the process writes to stdout
// becomes one text message (without its "\n" or "\r\n"; each run of bytes
// that are not UTF-8 is replaced by U+FFFD, since a text message must be
// UTF-8), and
// each message, text or binary, is written to stdin followed by "\n". A
// line of any length is streamed as one fragmented message. In binary mode
// bytes pass through raw both ways: each chunk read from stdout is one
// binary message, and each message's bytes go to stdin as they are.
//
// The process gets CGI-style environment variables describing the request
// (see Environ). Its stderr goes to Log, one entry per line. It runs in a
// process group of its own, so that when the connection ends the whole
// group is signalled, and it is always reaped: no zombie, no orphan left
// behind in the group. When the process exits first, the connection closes
// with 1000 (exit status 0) or 1011 (any other status or a signal; the
// reason says which, e.g. "exit status 3").
//
// An ExecHandler must not be copied after first use.
type ExecHandler struct {
	// Command is the program and its arguments. It is fixed by
	// configuration: nothing in the request changes it.
	Command []string
	// Dir is the process's working directory ("" means the server's).
	Dir string
	// Env lists extra "NAME=value" variables, set after the CGI ones.
	Env []string
	// PassEnv names the server's environment variables the process
	// inherits; nil means DefaultPassEnv.
	PassEnv []string
	// ScriptName is the route's path, given as SCRIPT_NAME; the rest of
	// the request path is PATH_INFO.
	ScriptName string
	// Binary selects binary mode (raw bytes both ways) instead of lines.
	Binary bool
	// MaxProcesses caps the processes running at once (0:
	// DefaultMaxProcesses). Beyond it, the handshake is refused with 503
	// and Retry-After.
	MaxProcesses int
	// KillTimeout is the time between SIGTERM and SIGKILL once the
	// connection ended (0: DefaultKillTimeout).
	KillTimeout time.Duration
	// BufferSize is the size of each direction's copy buffer (0:
	// DefaultBufferSize); in text mode, longer lines are streamed.
	BufferSize int
	// ProbeInterval is how long a write to stdin may stay blocked before
	// the client is pinged to learn whether it is still there, so that a
	// client that left is noticed even while the process reads nothing
	// (0: DefaultProbeInterval).
	ProbeInterval time.Duration
	// Accept configures the upgrade (origins, subprotocols, limits). A zero
	// ReadLimit means no limit: messages are streamed to stdin.
	Accept websocket.AcceptOptions
	// OnConn, when set, is called with each accepted connection, and the
	// function it returns when the connection ends.
	OnConn func(*websocket.Conn) (done func())
	// OnActivity, when set, is called with the connection whenever bytes
	// of a message pass, in either direction (read from the client, or
	// read from the process's stdout to be sent); a server uses it for its
	// idle timeout. It must be quick: it runs on the copying goroutines.
	OnActivity func(*websocket.Conn)
	// Log receives the processes' stderr and the bridge's own lines; nil
	// means slog.Default().
	Log *slog.Logger

	running atomic.Int64
	seq     atomic.Uint64
}

// Running returns the number of processes running now, for metrics and
// tests.
func (h *ExecHandler) Running() int { return int(h.running.Load()) }

func (h *ExecHandler) acquire() bool {
	limit := int64(h.MaxProcesses)
	if limit <= 0 {
		limit = DefaultMaxProcesses
	}
	for {
		n := h.running.Load()
		if n >= limit {
			return false
		}
		if h.running.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// ServeHTTP refuses the handshake with 503 when MaxProcesses processes are
// running; otherwise it upgrades, starts the process and bridges the two
// until one ends.
func (h *ExecHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(h.Command) == 0 {
		http.Error(w, "no command configured", http.StatusInternalServerError)
		return
	}
	if !h.acquire() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many processes running: try again later", http.StatusServiceUnavailable)
		return
	}
	defer h.running.Add(-1)
	env := h.Environ(r)
	ws, end := upgrade(w, r, h.Accept, h.OnConn)
	if ws == nil {
		return // Accept has answered the request
	}
	defer end()
	log := logger(h.Log).With("remote", r.RemoteAddr, "command", h.Command[0])
	p, err := h.start(env, log)
	if err != nil {
		log.Warn("exec: cannot start the process", "err", err)
		ws.Close(websocket.StatusInternalError, "the process could not be started")
		return
	}
	log = log.With("pid", p.cmd.Process.Pid)
	h.session(ws, p, log)
}

// process is a running command and our ends of its pipes.
type process struct {
	cmd    *exec.Cmd
	stdin  *os.File // write end
	stdout *os.File // read end
	exited chan struct{}
	logged chan struct{} // stderr drained
}

// start starts the process in a process group of its own, with pipes we
// own (so that reading stdout never races Wait) and a goroutine that logs
// stderr.
func (h *ExecHandler) start(env []string, log *slog.Logger) (*process, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd := exec.Command(h.Command[0], h.Command[1:]...)
	cmd.Env = env
	cmd.Dir = h.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = ownGroup()
	err = cmd.Start()
	// The child has its copies; ours would keep the pipes open.
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, err
	}
	p := &process{cmd: cmd, stdin: inW, stdout: outR, exited: make(chan struct{}), logged: make(chan struct{})}
	go func() {
		cmd.Wait() // reaps; our pipes are *os.File, so Wait closes none of them
		close(p.exited)
	}()
	go func() {
		defer close(p.logged)
		defer errR.Close()
		sc := bufio.NewScanner(errR)
		sc.Buffer(make([]byte, 4096), 64<<10)
		for sc.Scan() {
			log.Info("exec: stderr", "line", sc.Text())
		}
		io.Copy(io.Discard, errR) // past an overlong line, keep the pipe drained
	}()
	return p, nil
}

// session bridges ws and p until one ends, then ends the other and reaps.
func (h *ExecHandler) session(ws *websocket.Conn, p *process, log *slog.Logger) {
	ctx := context.Background()
	size := bufferSize(h.BufferSize)
	outDone := make(chan error, 1)
	inDone := make(chan error, 1)
	go func() {
		if h.Binary {
			outDone <- chunksToClient(ctx, watchReads(p.stdout, ws, h.OnActivity), ws, size, nil)
		} else {
			outDone <- linesToClient(ctx, watchReads(p.stdout, ws, h.OnActivity), ws, size)
		}
	}()
	guard := newStallGuard(ws, h.ProbeInterval, func() { p.stdin.Close() })
	defer guard.stop()
	go func() { inDone <- h.clientToStdin(ctx, ws, p.stdin, guard, size) }()

	outFinished, inFinished := false, false
	outCh := outDone
	clientEnded := false
wait:
	for {
		select {
		case <-p.exited:
			break wait
		case <-inDone:
			inFinished = true
			clientEnded = true
			break wait
		case err := <-outCh:
			outCh = nil
			outFinished = true
			if err != nil { // the WebSocket failed under a write
				clientEnded = true
				break wait
			}
			// stdout closed; the process may still read stdin.
		}
	}

	if clientEnded {
		// The connection is over: EOF on stdin, SIGTERM, then SIGKILL.
		p.stdin.Close()
		p.terminateGroup()
		kt := h.KillTimeout
		if kt <= 0 {
			kt = DefaultKillTimeout
		}
		t := time.NewTimer(kt)
		select {
		case <-p.exited:
			t.Stop()
		case <-t.C:
			log.Info("exec: process did not exit after SIGTERM; killing its group", "after", kt)
		}
		p.killGroup() // what is left of the group
		<-p.exited
		ws.CloseNow()
	} else {
		// The process exited: kill what it left in its group (they would
		// hold the pipes open), deliver its last output, then close.
		p.killGroup()
		if !outFinished {
			t := time.NewTimer(drainTimeout)
			select {
			case <-outDone:
				outFinished = true
			case <-t.C:
				log.Info("exec: stdout still open after the process exited; closing it")
			}
			t.Stop()
		}
		p.stdin.Close()
		code, reason := exitClose(p.cmd.ProcessState)
		ws.Close(code, reason)
	}
	p.stdout.Close() // unblocks a pump still reading
	if !outFinished {
		<-outDone
	}
	if !inFinished {
		ws.CloseNow()
		<-inDone
	}
	t := time.NewTimer(drainTimeout)
	select {
	case <-p.logged:
	case <-t.C: // a grandchild outside the group holds stderr; leave it
	}
	t.Stop()
}

// exitClose maps a process's end to a close code and reason.
func exitClose(ps *os.ProcessState) (websocket.StatusCode, string) {
	if ps == nil {
		return websocket.StatusInternalError, "process state unknown"
	}
	if ps.Success() {
		return websocket.StatusNormalClosure, "exit status 0"
	}
	return websocket.StatusInternalError, ps.String() // "exit status 3", "signal: killed"
}

// clientToStdin writes each message to w, followed by "\n" in text mode,
// streaming it through one buffer. When the process stops reading (its
// stdin is closed), later messages are read and dropped, so that the
// connection's close is still seen. It returns the WebSocket's error.
func (h *ExecHandler) clientToStdin(ctx context.Context, ws *websocket.Conn, w io.Writer, g *stallGuard, size int) error {
	buf := make([]byte, size+1)
	broken := false
	write := func(p []byte) {
		if !broken && len(p) > 0 {
			if _, err := g.write(w, p); err != nil {
				broken = true
			}
		}
	}
	for {
		_, rd, err := ws.Reader(ctx)
		if err != nil {
			return err
		}
		rd = watchReads(rd, ws, h.OnActivity)
		n := 0
		for {
			k, rerr := rd.Read(buf[n:size])
			n += k
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				return rerr
			}
			if n == size {
				write(buf[:n])
				n = 0
			}
		}
		if !h.Binary {
			buf[n] = '\n'
			n++
		}
		write(buf[:n])
	}
}

// chunksToClient sends each chunk read from r as a binary message, until
// a read or the WebSocket fails. It returns the WebSocket's error, or
// what readErr makes of the read's (io.EOF at r's end); with a nil
// readErr, nil.
func chunksToClient(ctx context.Context, r io.Reader, ws *websocket.Conn, size int, readErr func(error) error) error {
	buf := make([]byte, size)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if err := ws.Write(ctx, websocket.MessageBinary, buf[:n]); err != nil {
				return err
			}
		}
		if rerr != nil {
			if readErr == nil {
				return nil
			}
			return readErr(rerr)
		}
	}
}

// linesToClient sends each line read from r as a text message, without its
// "\n" or "\r\n". A line longer than the buffer is streamed as one
// fragmented message; invalid UTF-8 becomes U+FFFD. A last line without
// "\n" is sent at EOF. It returns nil at EOF, or the WebSocket's error.
func linesToClient(ctx context.Context, r io.Reader, ws *websocket.Conn, size int) error {
	br := bufio.NewReaderSize(r, size)
	var (
		mw      io.WriteCloser // open message of a long line
		carry   []byte         // bytes held back from the last piece
		scratch []byte
	)
	for {
		chunk, rerr := br.ReadSlice('\n')
		if rerr == bufio.ErrBufferFull {
			// Part of a long line: stream it, holding back a trailing
			// "\r" and a rune cut in two for the next piece.
			piece := chunk
			if len(carry) > 0 {
				scratch = append(append(scratch[:0], carry...), chunk...)
				piece = scratch
			}
			k := len(piece) - heldBack(piece)
			if mw == nil {
				var err error
				if mw, err = ws.Writer(ctx, websocket.MessageText); err != nil {
					return err
				}
			}
			if _, err := mw.Write(validUTF8(piece[:k])); err != nil {
				mw.Close()
				return err
			}
			carry = append(carry[:0], piece[k:]...)
			continue
		}
		// A whole line (rerr == nil), or what is left at EOF.
		if rerr == nil || len(chunk) > 0 || len(carry) > 0 || mw != nil {
			line := chunk
			if len(carry) > 0 {
				scratch = append(append(scratch[:0], carry...), chunk...)
				line, carry = scratch, carry[:0]
			}
			line = bytes.TrimSuffix(line, []byte{'\n'})
			line = bytes.TrimSuffix(line, []byte{'\r'})
			line = validUTF8(line)
			var err error
			if mw != nil {
				_, err = mw.Write(line)
				if cerr := mw.Close(); err == nil {
					err = cerr
				}
				mw = nil
			} else {
				err = ws.Write(ctx, websocket.MessageText, line)
			}
			if err != nil {
				return err
			}
		}
		if rerr != nil {
			return nil
		}
	}
}

// heldBack returns how many bytes at the end of b must wait for the next
// piece: a "\r" that may start "\r\n", and an incomplete UTF-8 sequence.
func heldBack(b []byte) int {
	n := 0
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return 1
	}
	for i := 1; i <= utf8.UTFMax-1 && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if !utf8.FullRune(b[len(b)-i:]) {
				n = i
			}
			break
		}
	}
	return n
}

// validUTF8 returns b, or a copy with each run of invalid bytes replaced
// by one U+FFFD.
func validUTF8(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	return bytes.ToValidUTF8(b, []byte("\uFFFD"))
}

// Environ returns the environment of the process for request r, in the
// manner of CGI (RFC 3875) and websocketd: the variables named by PassEnv
// from the server's environment, then
//
//	SERVER_SOFTWARE     duplex
//	GATEWAY_INTERFACE   CGI/1.1
//	SERVER_PROTOCOL     the request's protocol, e.g. HTTP/1.1
//	SERVER_NAME         the host of the request's Host header
//	SERVER_PORT         the port the connection came in on
//	REQUEST_METHOD      GET
//	REQUEST_URI         the path and query, as sent
//	SCRIPT_NAME         ScriptName
//	PATH_INFO           the request path after ScriptName
//	QUERY_STRING        the raw query, without "?"
//	REMOTE_ADDR         the client's IP address
//	REMOTE_HOST         the same address (names are not resolved)
//	REMOTE_PORT         the client's port
//	UNIQUE_ID           an id for this connection, unique in this server
//	HTTPS               "on" when the request came over TLS
//	HTTP_<NAME>         each request header, upper case, "-" as "_", values
//	                    joined with ", " (the Proxy header is left out: as
//	                    HTTP_PROXY it would redirect the process's own HTTP
//	                    clients — "httpoxy")
//
// and last the entries of Env.
func (h *ExecHandler) Environ(r *http.Request) []string {
	pass := h.PassEnv
	if pass == nil {
		pass = DefaultPassEnv
	}
	env := make([]string, 0, len(pass)+16+len(r.Header)+len(h.Env))
	for _, name := range pass {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	add := func(k, v string) { env = append(env, k+"="+v) }
	add("SERVER_SOFTWARE", "duplex")
	add("GATEWAY_INTERFACE", "CGI/1.1")
	add("SERVER_PROTOCOL", r.Proto)
	serverName, hostPort := r.Host, ""
	if h, p, err := net.SplitHostPort(r.Host); err == nil {
		serverName, hostPort = h, p
	}
	add("SERVER_NAME", strings.Trim(serverName, "[]"))
	serverPort := hostPort
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, p, err := net.SplitHostPort(la.String()); err == nil {
			serverPort = p
		}
	}
	add("SERVER_PORT", serverPort)
	add("REQUEST_METHOD", r.Method)
	add("REQUEST_URI", r.RequestURI)
	add("SCRIPT_NAME", h.ScriptName)
	pathInfo := r.URL.Path
	if h.ScriptName != "" {
		pathInfo = strings.TrimPrefix(pathInfo, strings.TrimSuffix(h.ScriptName, "/"))
	}
	add("PATH_INFO", pathInfo)
	add("QUERY_STRING", r.URL.RawQuery)
	remoteAddr, remotePort := r.RemoteAddr, ""
	if a, p, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		remoteAddr, remotePort = a, p
	}
	add("REMOTE_ADDR", remoteAddr)
	// Names are not resolved (a DNS lookup per connection, and a name the
	// client's DNS controls); REMOTE_HOST is the address, as websocketd
	// sets it without --reverselookup and as RFC 3875 allows.
	add("REMOTE_HOST", remoteAddr)
	add("REMOTE_PORT", remotePort)
	add("UNIQUE_ID", fmt.Sprintf("%d-%d", os.Getpid(), h.seq.Add(1)))
	if r.TLS != nil {
		add("HTTPS", "on")
	}
	for name, values := range r.Header {
		if strings.EqualFold(name, "Proxy") || !isEnvName(name) {
			continue
		}
		vs := make([]string, len(values))
		for i, v := range values {
			vs[i] = strings.TrimSpace(strings.NewReplacer("\r", " ", "\n", " ", "\x00", " ").Replace(v))
		}
		add("HTTP_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_")), strings.Join(vs, ", "))
	}
	return append(env, h.Env...)
}

// isEnvName reports whether a header name maps to a plain variable name.
func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// errNoCommand is ParseCommand's answer to an empty command.
var errNoCommand = errors.New("empty command")

// ParseCommand splits a command line such as "./bot.sh --room lobby" into
// its words on spaces and tabs. There is no quoting and no shell
// expansion, so a configuration line cannot smuggle shell syntax in: a
// command that needs either belongs in a script.
func ParseCommand(s string) ([]string, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil, errNoCommand
	}
	return f, nil
}

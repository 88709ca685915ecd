package bridge

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExecConversation: lines out become text messages, messages become
// lines in; the client's close ends the process.
func TestExecConversation(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	sh := script(t, `echo ready
while IFS= read -r line; do
  echo "got: $line"
done
`)
	h := &ExecHandler{Command: []string{sh}, Log: quietLog()}
	s := serve(t, h)
	c := dial(ctx, t, s.url, nil)
	if got := readText(ctx, t, c); got != "ready" {
		t.Fatalf("got %q, want ready", got)
	}
	for _, m := range []string{"hello", "été ☃", "", "two words"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
		if got := readText(ctx, t, c); got != "got: "+m {
			t.Fatalf("got %q, want %q", got, "got: "+m)
		}
	}
	// A binary message is written as it is, then "\n".
	c.Write(ctx, websocket.MessageBinary, []byte("bin"))
	if got := readText(ctx, t, c); got != "got: bin" {
		t.Fatalf("got %q", got)
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close: %v", err)
	}
	s.waitDone(ctx, t)
	if n := h.Running(); n != 0 {
		t.Fatalf("Running() = %d after the connection ended", n)
	}
}

// TestExecExitCodes: the process's end decides the close code.
func TestExecExitCodes(t *testing.T) {
	for _, tc := range []struct {
		body   string
		code   websocket.StatusCode
		reason string
	}{
		{"echo bye\nexit 0\n", websocket.StatusNormalClosure, "exit status 0"},
		{"echo bye\nexit 3\n", websocket.StatusInternalError, "exit status 3"},
		{"echo bye\nkill -9 $$\n", websocket.StatusInternalError, "signal: killed"},
		{"printf bye\n", websocket.StatusNormalClosure, "exit status 0"}, // last line without "\n"
	} {
		ctx := testCtx(t, 20*time.Second)
		s := serve(t, &ExecHandler{Command: []string{script(t, tc.body)}, Log: quietLog()})
		c := dial(ctx, t, s.url, nil)
		if got := readText(ctx, t, c); got != "bye" {
			t.Fatalf("%q: got %q, want bye", tc.body, got)
		}
		expectClose(ctx, t, c, tc.code, tc.reason)
		s.waitDone(ctx, t)
	}
}

// TestExecStartFailure: a command that cannot start: 1011.
func TestExecStartFailure(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	var logs logBuffer
	h := &ExecHandler{Command: []string{filepath.Join(t.TempDir(), "missing")}, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	s := serve(t, h)
	c := dial(ctx, t, s.url, nil)
	expectClose(ctx, t, c, websocket.StatusInternalError, "the process could not be started")
	s.waitDone(ctx, t)
	if !strings.Contains(logs.String(), "no such file") || h.Running() != 0 {
		t.Fatalf("running %d, log: %s", h.Running(), logs.String())
	}
}

// gone reports whether pid is no longer a live process: it does not exist,
// or it is a zombie (reaped by whoever adopted it, not by us).
func gone(pid int) (bool, string) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true, "no such process"
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false, s
	}
	state := s[i+2]
	return state == 'Z' || state == 'X', "state " + string(state)
}

// TestExecKilledOnDisconnect: when the client goes away, the process and
// what it started in its group are killed, and the process is reaped (its
// pid no longer exists at all), whether the client closes or drops, and
// even when the process ignores SIGTERM.
func TestExecKilledOnDisconnect(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		drop bool
	}{
		{"close", "echo $$\nsleep 300 &\necho $!\nwhile read l; do :; done\nwait\n", false},
		{"drop", "echo $$\nsleep 300 &\necho $!\nwait\n", true},
		{"ignores TERM", "trap '' TERM\necho $$\nsleep 300 &\necho $!\nwhile :; do wait; done\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t, 30*time.Second)
			h := &ExecHandler{Command: []string{script(t, tc.body)}, KillTimeout: 300 * time.Millisecond, Log: quietLog()}
			s := serve(t, h)
			c := dial(ctx, t, s.url, nil)
			pid, _ := strconv.Atoi(readText(ctx, t, c))
			child, _ := strconv.Atoi(readText(ctx, t, c))
			if pid <= 0 || child <= 0 {
				t.Fatalf("bad pids %d %d", pid, child)
			}
			if g, why := gone(pid); g {
				t.Fatalf("process %d not running before the disconnect: %s", pid, why)
			}
			if tc.drop {
				c.CloseNow()
			} else {
				c.Close(websocket.StatusNormalClosure, "")
			}
			s.waitDone(ctx, t)
			// The handler has returned: the process must be reaped by now.
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				_, why := gone(pid)
				t.Fatalf("process %d still exists after the handler returned (kill: %v, %s)", pid, err, why)
			}
			// Its child was killed with the group (it may linger as a
			// zombie until the process that adopted it reaps it).
			// SIGKILL is delivered at once, but dying takes a moment and
			// the child is not ours to wait for: look until it is gone.
			for {
				g, why := gone(child)
				if g {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("child %d of the process survived: %s", child, why)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if h.Running() != 0 {
				t.Fatalf("Running() = %d", h.Running())
			}
		})
	}
}

// TestExecNoZombies: after many connections ended both ways, this test
// process has no zombie children.
func TestExecNoZombies(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	s1 := serve(t, &ExecHandler{Command: []string{script(t, "echo hi\n")}, Log: quietLog()})
	s2 := serve(t, &ExecHandler{Command: []string{script(t, "echo hi\ncat\n")}, KillTimeout: 200 * time.Millisecond, Log: quietLog()})
	for i := 0; i < 10; i++ {
		c := dial(ctx, t, s1.url, nil)
		readText(ctx, t, c)
		expectClose(ctx, t, c, websocket.StatusNormalClosure, "exit status 0")
		s1.waitDone(ctx, t)
		c = dial(ctx, t, s2.url, nil)
		readText(ctx, t, c)
		c.CloseNow()
		s2.waitDone(ctx, t)
	}
	me := os.Getpid()
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) > 1 && f[1] == strconv.Itoa(me) {
			t.Errorf("child %d of the test still exists (state %s)", pid, f[0])
		}
	}
}

// TestExecMaxProcesses: beyond the cap the handshake gets 503; a slot
// frees when a connection ends.
func TestExecMaxProcesses(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	h := &ExecHandler{Command: []string{script(t, "echo up\ncat\n")}, MaxProcesses: 2, KillTimeout: 200 * time.Millisecond, Log: quietLog()}
	s := serve(t, h)
	a := dial(ctx, t, s.url, nil)
	b := dial(ctx, t, s.url, nil)
	readText(ctx, t, a)
	readText(ctx, t, b)
	_, resp, err := websocket.Dial(ctx, s.url, nil)
	var he *websocket.HandshakeError
	if !errors.As(err, &he) || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("third connection: err %v, resp %v; want 503 with Retry-After", err, resp)
	}
	s.waitDone(ctx, t) // the refused request
	a.Close(websocket.StatusNormalClosure, "")
	s.waitDone(ctx, t)
	c := dial(ctx, t, s.url, nil)
	if got := readText(ctx, t, c); got != "up" {
		t.Fatalf("got %q", got)
	}
}

// TestExecEnviron: CGI variables as websocketd sets them; the server's
// other variables and the Proxy header stay out.
func TestExecEnviron(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	t.Setenv("DUPLEX_TEST_SECRET", "s3cret")
	sh := script(t, `for v in REMOTE_ADDR REMOTE_HOST REMOTE_PORT SERVER_NAME SERVER_PORT SERVER_PROTOCOL SERVER_SOFTWARE GATEWAY_INTERFACE \
  REQUEST_METHOD REQUEST_URI SCRIPT_NAME PATH_INFO QUERY_STRING HTTP_X_TEAM HTTP_USER_AGENT HTTP_PROXY HTTPS \
  DUPLEX_TEST_SECRET EXTRA; do
  eval "printf '%s=%s\n' $v \"\${$v-unset}\""
done
printf 'PATH set=%s\n' "${PATH:+yes}"
`)
	h := &ExecHandler{Command: []string{sh}, ScriptName: "/bot", Env: []string{"EXTRA=1"}, Log: quietLog()}
	srv := serve(t, h)
	var local string
	hdr := http.Header{}
	hdr.Add("X-Team", "blue")
	hdr.Add("X-Team", "green")
	hdr.Set("User-Agent", "duplex-test")
	hdr.Set("Proxy", "http://evil.example:3128")
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.url, "ws://"))
	c := dial(ctx, t, srv.url+"/bot/room/7?user=ann&x=%20", &websocket.DialOptions{
		Header: hdr,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, network, addr)
			if err == nil {
				local = nc.LocalAddr().String()
			}
			return nc, err
		},
	})
	_, localPort, _ := net.SplitHostPort(local)
	want := []string{
		"REMOTE_ADDR=127.0.0.1",
		"REMOTE_HOST=127.0.0.1",
		"REMOTE_PORT=" + localPort,
		"SERVER_NAME=127.0.0.1",
		"SERVER_PORT=" + port,
		"SERVER_PROTOCOL=HTTP/1.1",
		"SERVER_SOFTWARE=duplex",
		"GATEWAY_INTERFACE=CGI/1.1",
		"REQUEST_METHOD=GET",
		"REQUEST_URI=/bot/room/7?user=ann&x=%20",
		"SCRIPT_NAME=/bot",
		"PATH_INFO=/room/7",
		"QUERY_STRING=user=ann&x=%20",
		"HTTP_X_TEAM=blue, green",
		"HTTP_USER_AGENT=duplex-test",
		"HTTP_PROXY=unset",
		"HTTPS=unset",
		"DUPLEX_TEST_SECRET=unset",
		"EXTRA=1",
		"PATH set=yes",
	}
	for _, w := range want {
		if got := readText(ctx, t, c); got != w {
			t.Errorf("got %q, want %q", got, w)
		}
	}
}

// TestExecBinaryMode: raw bytes both ways, no newline added.
func TestExecBinaryMode(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	s := serve(t, &ExecHandler{Command: []string{"cat"}, Binary: true, KillTimeout: 200 * time.Millisecond, Log: quietLog()})
	c := dial(ctx, t, s.url, nil)
	in := []byte{0, '\n', 0xff, 0xfe, 'a', '\r'}
	big := bytes.Repeat([]byte{1, 2, 3, 4, 5}, 40000)
	c.Write(ctx, websocket.MessageBinary, in)
	c.Write(ctx, websocket.MessageText, []byte("text é"))
	c.Write(ctx, websocket.MessageBinary, big)
	want := append(append(append([]byte{}, in...), "text é"...), big...)
	if got := readBytes(ctx, t, c, len(want)); !bytes.Equal(got, want) {
		t.Fatalf("got %d different bytes", len(got))
	}
}

// TestExecLongLinesAndUTF8: lines longer than the buffer arrive whole, a
// "\r\n" and a rune cut at a buffer boundary survive, invalid UTF-8 is
// replaced.
func TestExecLongLinesAndUTF8(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	// 15 bytes, then "é" (C3 A9) straddling the 16-byte buffer boundary.
	long := strings.Repeat("x", 15) + "é" + strings.Repeat("ab", 40) + "☃"
	crAtEdge := strings.Repeat("y", 15) // with "\r\n", the "\r" ends a 16-byte piece
	body := "printf '%s\\r\\n' '" + long + "'\n" +
		"printf '%s\\r\\n' '" + crAtEdge + "'\n" +
		"printf 'bad \\377\\376 end\\n'\n" +
		"printf 'cr\\rinside\\n'\n"
	s := serve(t, &ExecHandler{Command: []string{script(t, body)}, BufferSize: 16, Log: quietLog()})
	c := dial(ctx, t, s.url, nil)
	for _, want := range []string{long, crAtEdge, "bad \uFFFD end", "cr\rinside"} {
		if got := readText(ctx, t, c); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	expectClose(ctx, t, c, websocket.StatusNormalClosure, "exit status 0")
}

// TestExecStderrLogged: stderr goes to the log, line by line, not to the
// client.
func TestExecStderrLogged(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	var logs logBuffer
	s := serve(t, &ExecHandler{Command: []string{script(t, "echo oops >&2\necho out\n")}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	c := dial(ctx, t, s.url, nil)
	if got := readText(ctx, t, c); got != "out" {
		t.Fatalf("got %q", got)
	}
	expectClose(ctx, t, c, websocket.StatusNormalClosure, "exit status 0")
	s.waitDone(ctx, t)
	if !strings.Contains(logs.String(), "line=oops") {
		t.Fatalf("stderr not in the log: %s", logs.String())
	}
}

// TestExecBackpressure: a client that does not read stops the process's
// writes (the pipe fills), and a process that does not read stops the
// client's.
func TestExecBackpressure(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	// "yes" writes as fast as it can; the bridge must not queue its output.
	// The script prints its pid first ("exec" keeps it for yes).
	h := &ExecHandler{Command: []string{script(t, "echo $$\nexec yes "+strings.Repeat("z", 1000)+"\n")}, KillTimeout: 200 * time.Millisecond, Log: quietLog()}
	s := serve(t, h)
	before := heapAfterGC()
	c := dial(ctx, t, s.url, nil)
	pid, err := strconv.Atoi(readText(ctx, t, c))
	if err != nil {
		t.Fatal(err)
	}
	// The client reads nothing more. Wait until yes sleeps (it only ever
	// sleeps in a write that does not fit) with its stdout pipe mostly full
	// (the kernel leaves the tail of pages unused and the bridge may have
	// read part of the first), and the pipe stays untouched across a
	// garbage collection and heap measurement: then the bridge has stopped
	// reading, as everything on the way (its buffer, the sockets to the
	// client) is full. On a busy machine the pipe can fill while the bridge
	// is merely slow; it then reads again, and the wait goes on.
	var queued, capacity int
	var grew int64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		q, c, state, err := pipeState(pid, 1)
		if err != nil {
			if runtime.GOOS != "linux" {
				t.Skipf("cannot see the pipe: %v", err)
			}
			t.Fatal(err)
		}
		if state == 'S' && q > c/2 && sleepsInPipeWrite(pid) {
			grew = int64(heapAfterGC()) - int64(before)
			if grew > 8<<20 {
				t.Fatalf("heap grew by %d bytes while the client did not read", grew)
			}
			q2, _, state2, err := pipeState(pid, 1)
			if err != nil {
				t.Fatal(err)
			}
			if q2 == q && state2 == 'S' {
				queued, capacity = q, c
				break
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("yes never stayed blocked on a full pipe: %d of %d bytes queued, state %c", q, c, state)
		}
	}
	t.Logf("yes blocked with %d of %d bytes in its pipe; heap grew by %d bytes", queued, capacity, grew)
	c.CloseNow()
	s.waitDone(ctx, t)

	// A process that never reads stdin: the client's writes block.
	s2 := serve(t, &ExecHandler{Command: []string{script(t, "echo up\nexec sleep 300\n")}, KillTimeout: 200 * time.Millisecond,
		ProbeInterval: 100 * time.Millisecond, Log: quietLog()})
	before = heapAfterGC()
	c2 := dial(ctx, t, s2.url, nil)
	readText(ctx, t, c2)
	msg := bytes.Repeat([]byte("w"), 64<<10)
	sent := 0
	for sent < 512<<20 {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c2.Write(wctx, websocket.MessageText, msg)
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("write: %v", err)
			}
			// Blocked: what was sent sits in the pipe and the sockets, not
			// in the bridge's heap.
			grew := int64(heapAfterGC()) - int64(before)
			t.Logf("client blocked after %d bytes; heap grew by %d bytes", sent, grew)
			if grew > 8<<20 {
				t.Fatalf("heap grew by %d bytes while the process read nothing (%d bytes sent)", grew, sent)
			}
			// The client leaves while the process still reads nothing:
			// the bridge notices (probe) and ends the process.
			c2.CloseNow()
			s2.waitDone(ctx, t)
			return
		}
		sent += len(msg)
	}
	t.Fatalf("wrote %d bytes to a process that reads nothing without blocking", sent)
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/client"
	"github.com/duplex-ws/duplex/websocket"
)

// benchProcess is `duplex bench` running in a child process (see
// TestMain), so that it can be sent real signals.
type benchProcess struct {
	cmd        *exec.Cmd
	stdout     bytes.Buffer
	lines      chan string   // standard error, line by line
	stderrDone chan struct{} // closed when standard error is closed
	mu         sync.Mutex
	stderr     strings.Builder
	waited     bool
}

// startBench starts `duplex bench args...` in a child process.
func startBench(t *testing.T, args ...string) *benchProcess {
	t.Helper()
	p := &benchProcess{lines: make(chan string, 100), stderrDone: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], append([]string{"bench"}, args...)...)
	p.cmd.Env = append(os.Environ(), "DUPLEX_RUN_MAIN=1")
	p.cmd.Stdout = &p.stdout
	errPipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.stderrDone)
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		if !p.waited {
			p.cmd.Process.Kill()
			<-p.stderrDone
			p.cmd.Wait()
		}
	})
	return p
}

// signal sends sig to the process.
func (p *benchProcess) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// waitLine waits, within limit, for a line of standard error.
func (p *benchProcess) waitLine(t *testing.T, within time.Duration) string {
	t.Helper()
	select {
	case l := <-p.lines:
		return l
	case <-time.After(within):
		p.mu.Lock()
		defer p.mu.Unlock()
		t.Fatalf("no line on standard error within %v; so far:\n%s", within, p.stderr.String())
		return ""
	}
}

// wait waits, within limit, for the process to exit and returns its exit
// status and output; a process still running then is killed and the test
// fails.
func (p *benchProcess) wait(t *testing.T, within time.Duration) (status int, stdout, stderr string) {
	t.Helper()
	select {
	case <-p.stderrDone:
	case <-time.After(within):
		p.cmd.Process.Kill()
		<-p.stderrDone
		p.cmd.Wait()
		p.waited = true
		t.Fatalf("duplex bench did not exit within %v\nstdout:\n%s\nstderr:\n%s", within, p.stdout.String(), p.stderr.String())
	}
	err := p.cmd.Wait()
	p.waited = true
	status = 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		status = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return status, p.stdout.String(), p.stderr.String()
}

// slowAnswerServers returns an echo server and a duplex.v1 relay (to the
// duplex server) that answer each message, one after another, delay
// after it arrived; holdFrom > 0 never answers that message nor the ones
// after it. answered is told of each answer sent.
func slowAnswerServers(t *testing.T, delay time.Duration, holdFrom int, answered chan<- int) (echo, relay string) {
	t.Helper()
	tell := func(n int) {
		select {
		case answered <- n:
		default:
		}
	}
	echoSrv := wsServer(t, nil, func(c *websocket.Conn, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for n := 1; ; n++ {
			typ, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			if holdFrom > 0 && n >= holdFrom {
				continue
			}
			time.Sleep(delay)
			if c.Write(ctx, typ, p) != nil {
				return
			}
			tell(n)
		}
	})
	relaySrv := alteringRelay(t, wsURL(echoServer(t), "/ws"), func(n int, p []byte) [][]byte {
		if holdFrom > 0 && n >= holdFrom {
			return nil
		}
		time.Sleep(delay)
		defer tell(n) // as it is forwarded: the relay writes it on return
		return [][]byte{p}
	})
	return wsURL(echoSrv, "/"), wsURL(relaySrv, "/ws")
}

// TestBenchInterrupt interrupts a 30-second run after 4 s, against servers
// that answer each message 3 s after it arrived: two messages went out (at
// 0 and 3 s), one answer came while sending (at 3 s), the other is on its
// way at the interrupt and comes during the drain (at 6 s). Sending stops
// at the signal; the run waits for the answer on its way, prints its
// table, writes --out and --plot with what it measured in those 4 s (not
// 30), counts the throughput over them, and exits with 128 + the signal's
// number. The child has 2 s to handle the signal before the second answer
// would come while sending, so that a loaded machine does not fail it.
func TestBenchInterrupt(t *testing.T) {
	const delay = 3 * time.Second
	cases := []struct {
		name       string
		sig        syscall.Signal
		subscribe  bool
		unit, verb string
		rows       [2]string
		args       []string
	}{
		{"echo closed loop", syscall.SIGINT, false, "echoes", "echoed", [2]string{"sent", "echoed"}, nil},
		{"echo open loop", syscall.SIGINT, false, "echoes", "echoed", [2]string{"sent", "echoed"}, []string{"--rate", "0.333"}}, // every 3.003 s
		{"subscribe", syscall.SIGINT, true, "deliveries", "delivered", [2]string{"published", "delivered"}, []string{"--mode", "subscribe", "--rate", "0.333"}},
		{"echo SIGTERM", syscall.SIGTERM, false, "echoes", "echoed", [2]string{"sent", "echoed"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			answered := make(chan int, 10)
			url, relay := slowAnswerServers(t, delay, 0, answered)
			if tc.subscribe {
				url = relay
			}
			dir := t.TempDir()
			out, plot := filepath.Join(dir, "r.json"), filepath.Join(dir, "l.svg")
			args := append([]string{"--conns", "1", "--duration", "30s", "--drain", "20s", "--progress", "0", "--out", out, "--plot", plot}, tc.args...)
			p := startBench(t, append(args, url)...)
			select {
			case <-answered:
			case <-time.After(15 * time.Second):
				t.Fatal("no answer within 15 s")
			}
			time.Sleep(time.Second)
			p.signal(t, tc.sig)
			signalled := time.Now()
			status, stdout, stderr := p.wait(t, 15*time.Second)
			// The drain ends when the answer on its way arrives (at 6 s,
			// 2 s after the signal), not after --drain.
			if took := time.Since(signalled); took > 6*time.Second {
				t.Errorf("exited %v after the signal", took)
			}
			if want := 128 + int(tc.sig); status != want {
				t.Fatalf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", status, want, stdout, stderr)
			}
			if want := "duplex bench: " + tc.sig.String() + ": sending stopped; waiting up to 20s (--drain) for the answers on their way; interrupt again not to wait\n"; stderr != want {
				t.Fatalf("stderr %q, want %q", stderr, want)
			}
			r := readBenchJSON(t, out)
			if !r.Interrupted {
				t.Fatal("the results do not say the run was interrupted")
			}
			if r.Sent != 2 || r.Received != 2 || r.Expected != 2 || r.Lost != 0 || r.Errors != 0 || len(r.Notes) != 0 {
				t.Fatalf("sent %d, received %d of %d, lost %d, errors %d, notes %q; want 2, 2 of 2, 0, 0, none", r.Sent, r.Received, r.Expected, r.Lost, r.Errors, r.Notes)
			}
			// About 4 s of sending: at least, as the interrupt came 1 s
			// after the first answer, which came 3 s after the first
			// message; less than 6 s, as the second answer, due at 6 s,
			// did not count as while sending.
			if r.Duration < 4 || r.Duration >= 6 {
				t.Fatalf("duration_s %g, want the 4 s until the interrupt", r.Duration)
			}
			if r.ReceivedWhileSending != 1 {
				t.Fatalf("received_while_sending %d, want 1", r.ReceivedWhileSending)
			}
			if want := 1 / r.Duration; r.PerSec != want {
				t.Fatalf("per_sec %g, want %g", r.PerSec, want)
			}
			// The table says the same.
			checkRows := map[string]string{
				"duration":   fmt.Sprintf("%.2f s (interrupted)", r.Duration),
				tc.rows[0]:   "2",
				tc.rows[1]:   "2 of 2",
				"throughput": "0 " + tc.unit + "/s, 0.00 MB/s (counting the 1 " + tc.verb + " while sending)", // 1 in 4 s, rounded
				"lost":       "0",
				"errors":     "0",
			}
			for row, want := range checkRows {
				if got := tableValue(t, stdout, row); got != want {
					t.Errorf("%s row %q, want %q", row, got, want)
				}
			}
			checkPlot(t, plot)
		})
	}
}

// TestBenchInterruptTwice: a second interrupt stops the wait for answers
// that are not coming (the server answers only the first message, and
// --drain is 30 s): the run ends at once, counts them as lost, says so,
// and still writes its results.
func TestBenchInterruptTwice(t *testing.T) {
	cases := []struct {
		name      string
		subscribe bool
		args      []string
	}{
		{"echo closed loop", false, nil},
		{"echo open loop", false, []string{"--rate", "5"}},
		{"subscribe", true, []string{"--mode", "subscribe", "--rate", "5"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, out := interruptAfterFirstAnswer(t, tc.subscribe, "30s", tc.args)
			if got, want := p.waitLine(t, 5*time.Second), "duplex bench: interrupt: sending stopped; waiting up to 30s (--drain) for the answers on their way; interrupt again not to wait"; got != want {
				t.Fatalf("stderr line %q, want %q", got, want)
			}
			p.signal(t, os.Interrupt)
			status, stdout, stderr := p.wait(t, 5*time.Second)
			if status != 130 {
				t.Fatalf("exit status %d, want 130\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
			}
			if want := "duplex bench: interrupt: sending stopped; waiting up to 30s (--drain) for the answers on their way; interrupt again not to wait\n" +
				"duplex bench: interrupt: stopped waiting; what is still on its way counts as lost\n"; stderr != want {
				t.Fatalf("stderr %q, want %q", stderr, want)
			}
			r := readBenchJSON(t, out)
			if !r.Interrupted || r.Sent < 2 || r.Received != 1 || r.Expected != r.Sent || r.Lost != r.Sent-1 || r.Errors != 0 {
				t.Fatalf("interrupted %v, sent %d, received %d of %d, lost %d, errors %d; want all but the first lost, no error", r.Interrupted, r.Sent, r.Received, r.Expected, r.Lost, r.Errors)
			}
			// The notes say why the answers count as lost (subscribe
			// mode also says how many each subscriber got).
			var want []string
			if tc.subscribe {
				want = append(want, fmt.Sprintf("subscriber 1 got 1 of %d messages", r.Sent))
			}
			want = append(want, "interrupted again while waiting for the answers: what was still on its way counts as lost")
			if fmt.Sprintf("%q", r.Notes) != fmt.Sprintf("%q", want) {
				t.Fatalf("notes %q, want %q", r.Notes, want)
			}
			if got, want := tableValue(t, stdout, "lost"), group(r.Lost); got != want {
				t.Fatalf("lost row %q, want %q", got, want)
			}
		})
	}
}

// TestBenchInterruptBeforeSending interrupts the run while it waits for
// its connections (the server holds the handshakes): it stops at once,
// with nothing measured, so no table and no --out file.
func TestBenchInterruptBeforeSending(t *testing.T) {
	for _, mode := range []string{"echo", "subscribe"} {
		t.Run(mode, func(t *testing.T) {
			arrived := make(chan struct{}, 10)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				arrived <- struct{}{}
				select {
				case <-r.Context().Done():
				case <-time.After(20 * time.Second):
				}
			}))
			t.Cleanup(srv.Close)
			out := filepath.Join(t.TempDir(), "r.json")
			p := startBench(t, "--mode", mode, "--conns", "2", "--progress", "0", "--out", out, wsURL(srv, "/"))
			select {
			case <-arrived:
			case <-time.After(15 * time.Second):
				t.Fatal("no handshake within 15 s")
			}
			p.signal(t, os.Interrupt)
			status, stdout, stderr := p.wait(t, 5*time.Second)
			checkRun(t, stdout, stderr, status, "", "duplex bench: interrupted before sending started\n", 130)
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("--out written: %v", err)
			}
		})
	}
}

// TestBenchInterruptDrain: after an interrupt, the answers on their way
// are awaited for --drain from the interrupt (not from the end of the
// --duration it cut short); those that do not come (the server answers
// only the first message) are lost, and named as with a run that was not
// interrupted.
func TestBenchInterruptDrain(t *testing.T) {
	cases := []struct {
		name      string
		subscribe bool
		args      []string
		errors    int64
		note      func(sent int64) string
	}{
		{"echo closed loop", false, nil, 1, func(int64) string {
			return "connection 1: echo of message 2 not received within --drain 300ms"
		}},
		{"echo open loop", false, []string{"--rate", "5"}, 1, func(sent int64) string {
			return fmt.Sprintf("connection 1: %d echoes not received within --drain 300ms", sent-1)
		}},
		{"subscribe", true, []string{"--mode", "subscribe", "--rate", "5"}, 0, func(sent int64) string {
			return fmt.Sprintf("subscriber 1 got 1 of %d messages", sent)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, out := interruptAfterFirstAnswer(t, tc.subscribe, "300ms", tc.args)
			signalled := time.Now()
			status, stdout, stderr := p.wait(t, 10*time.Second)
			if took := time.Since(signalled); took < 300*time.Millisecond || took > 3*time.Second {
				t.Errorf("exited %v after the signal, want --drain 300ms after it", took)
			}
			if want := "duplex bench: interrupt: sending stopped; waiting up to 300ms (--drain) for the answers on their way; interrupt again not to wait\n"; status != 130 || stderr != want {
				t.Fatalf("exit status %d, stderr %q; want 130, %q\nstdout:\n%s", status, stderr, want, stdout)
			}
			r := readBenchJSON(t, out)
			if !r.Interrupted || r.Sent < 2 || r.Received != 1 || r.Expected != r.Sent || r.Lost != r.Sent-1 || r.Errors != tc.errors {
				t.Fatalf("interrupted %v, sent %d, received %d of %d, lost %d, errors %d; want all but the first lost, %d errors", r.Interrupted, r.Sent, r.Received, r.Expected, r.Lost, r.Errors, tc.errors)
			}
			if want := []string{tc.note(r.Sent)}; fmt.Sprintf("%q", r.Notes) != fmt.Sprintf("%q", want) {
				t.Fatalf("notes %q, want %q", r.Notes, want)
			}
		})
	}
}

// interruptAfterFirstAnswer starts a 30 s run on one connection against a
// server that answers the first message only (through the relay when
// subscribe), with --drain drain and --out in a temporary file, and
// interrupts it half a second after that answer. It returns the process
// and the --out path.
func interruptAfterFirstAnswer(t *testing.T, subscribe bool, drain string, extra []string) (*benchProcess, string) {
	t.Helper()
	answered := make(chan int, 10)
	url, relay := slowAnswerServers(t, 0, 2, answered)
	if subscribe {
		url = relay
	}
	out := filepath.Join(t.TempDir(), "r.json")
	args := append([]string{"--conns", "1", "--duration", "30s", "--drain", drain, "--progress", "0", "--out", out}, extra...)
	p := startBench(t, append(args, url)...)
	select {
	case <-answered:
	case <-time.After(15 * time.Second):
		t.Fatal("no answer within 15 s")
	}
	time.Sleep(500 * time.Millisecond)
	p.signal(t, os.Interrupt)
	return p, out
}

// TestBenchInterruptTwiceStalledServer: a second interrupt ends the run at
// once even when the server completed the handshake and then stopped
// reading, so that writes block on a full send buffer and a closing
// handshake would wait for an answer that never comes: the run neither
// waits out its writes nor a CloseTimeout per connection. It still writes
// its table and exits 130.
func TestBenchInterruptTwiceStalledServer(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		// Waiting for echoes: only the closing handshakes could hold it.
		{"echo closed loop, reading", nil},
		// Blocked in writes that the server never reads.
		{"echo closed loop, writing", []string{"--size", "16000000"}},
		{"echo open loop, writing", []string{"--rate", "50", "--size", "1000000"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			accepted := make(chan struct{}, 10)
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			srv := wsServer(t, nil, func(c *websocket.Conn, r *http.Request) {
				accepted <- struct{}{}
				<-release // never reads
			})
			args := append([]string{"--conns", "3", "--duration", "30s", "--drain", "30s", "--progress", "0"}, tc.args...)
			p := startBench(t, append(args, wsURL(srv, "/"))...)
			for range 3 {
				select {
				case <-accepted:
				case <-time.After(15 * time.Second):
					t.Fatal("no handshake within 15 s")
				}
			}
			time.Sleep(500 * time.Millisecond) // sending runs
			p.signal(t, os.Interrupt)
			if got, want := p.waitLine(t, 5*time.Second), "duplex bench: interrupt: sending stopped; waiting up to 30s (--drain) for the answers on their way; interrupt again not to wait"; got != want {
				t.Fatalf("stderr line %q, want %q", got, want)
			}
			p.signal(t, os.Interrupt)
			signalled := time.Now()
			status, stdout, stderr := p.wait(t, 10*time.Second)
			// At once: well under 4 s on a loaded machine, and under the
			// CloseTimeout (5 s) that even one closing handshake would
			// wait.
			if took := time.Since(signalled); took > 4*time.Second {
				t.Errorf("exited %v after the second signal, want at once", took)
			}
			if status != 130 {
				t.Fatalf("exit status %d, want 130\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
			}
			if got := tableValue(t, stdout, "duration"); !strings.HasSuffix(got, " s (interrupted)") {
				t.Fatalf("duration row %q, want an interrupted run's", got)
			}
		})
	}
}

// TestBenchCloseStalledServer: at the end of a run that no signal cut
// short, the connections' closing handshakes run at the same time, so
// that a server that stopped reading holds the run one CloseTimeout (5 s)
// in all, not one per connection.
func TestBenchCloseStalledServer(t *testing.T) {
	accepted := make(chan struct{}, 10)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := wsServer(t, nil, func(c *websocket.Conn, r *http.Request) {
		accepted <- struct{}{}
		<-release // never reads
	})
	p := startBench(t, "--conns", "4", "--duration", "200ms", "--drain", "200ms", "--progress", "0", wsURL(srv, "/"))
	for range 4 {
		select {
		case <-accepted:
		case <-time.After(15 * time.Second):
			t.Fatal("no handshake within 15 s")
		}
	}
	started := time.Now()
	status, stdout, stderr := p.wait(t, 30*time.Second)
	// 0.4 s of run and one CloseTimeout: well under the 20 s of four
	// in turn.
	if took := time.Since(started); took > 10*time.Second {
		t.Errorf("exited %v after the connections opened, want about 5.4 s", took)
	}
	if status != 1 || tableValue(t, stdout, "lost") != "4" {
		t.Fatalf("exit status %d, want 1 with the 4 echoes lost\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
}

// TestBenchInterruptDrainPublishes: after an interrupt in subscribe mode,
// the publishes still awaiting their acknowledgement are awaited within
// --drain from the interrupt too, not for their own 10 s each and the
// drain after them: the relay passes on the first publish only, so the
// others are never acknowledged. They count as one fault, and not as
// published.
func TestBenchInterruptDrainPublishes(t *testing.T) {
	opts := &websocket.AcceptOptions{Subprotocols: []string{client.Subprotocol}}
	backend := wsURL(echoServer(t), "/ws")
	published := make(chan struct{}, 10)
	relay := wsServer(t, opts, func(c *websocket.Conn, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		up, _, err := websocket.Dial(ctx, backend, &websocket.DialOptions{Subprotocols: []string{client.Subprotocol}})
		if err != nil {
			t.Errorf("relay: %v", err)
			return
		}
		defer up.CloseNow()
		go func() { // server to client, unchanged
			for {
				typ, p, err := up.Read(ctx)
				if err != nil || c.Write(ctx, typ, p) != nil {
					cancel()
					return
				}
			}
		}()
		for n := 0; ; {
			typ, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			if bytes.Contains(p, []byte(`"op":"publish"`)) {
				if n++; n > 1 {
					continue // held: never acknowledged
				}
				published <- struct{}{}
			}
			if up.Write(ctx, typ, p) != nil {
				return
			}
		}
	})
	out := filepath.Join(t.TempDir(), "r.json")
	p := startBench(t, "--mode", "subscribe", "--rate", "5", "--conns", "1", "--duration", "30s", "--drain", "300ms", "--progress", "0", "--out", out, wsURL(relay, "/ws"))
	select {
	case <-published:
	case <-time.After(15 * time.Second):
		t.Fatal("no publish within 15 s")
	}
	time.Sleep(time.Second) // publishes 2 to 6 wait for their answers
	p.signal(t, os.Interrupt)
	signalled := time.Now()
	status, stdout, stderr := p.wait(t, 20*time.Second)
	if took := time.Since(signalled); took > 3*time.Second {
		t.Errorf("exited %v after the signal, want --drain 300ms after it", took)
	}
	if want := "duplex bench: interrupt: sending stopped; waiting up to 300ms (--drain) for the answers on their way; interrupt again not to wait\n"; status != 130 || stderr != want {
		t.Fatalf("exit status %d, stderr %q; want 130, %q\nstdout:\n%s", status, stderr, want, stdout)
	}
	r := readBenchJSON(t, out)
	if !r.Interrupted || r.Sent != 1 || r.Received != 1 || r.Expected != 1 || r.Lost != 0 || r.Errors != 1 {
		t.Fatalf("interrupted %v, sent %d, received %d of %d, lost %d, errors %d; want 1 published and delivered, 1 error", r.Interrupted, r.Sent, r.Received, r.Expected, r.Lost, r.Errors)
	}
	if len(r.Notes) != 1 || !regexp.MustCompile(`^[1-9][0-9]* publishes not acknowledged within --drain 300ms$`).MatchString(r.Notes[0]) {
		t.Fatalf("notes %q, want the publishes not acknowledged within --drain", r.Notes)
	}
}

// TestBenchInterruptInDrain: a signal during the drain after --duration
// does not cut the run short: the server answers the one message 3 s
// after it came, the run sends for 300 ms, and the signal comes 1 s in.
// The answer is still awaited; the run is complete, so its results do not
// say interrupted and it exits 0, not 130.
func TestBenchInterruptInDrain(t *testing.T) {
	arrived := make(chan struct{}, 1)
	srv := wsServer(t, nil, func(c *websocket.Conn, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		typ, p, err := c.Read(ctx)
		if err != nil {
			return
		}
		arrived <- struct{}{}
		time.Sleep(3 * time.Second)
		c.Write(ctx, typ, p)
		c.Read(ctx) // the close
	})
	out := filepath.Join(t.TempDir(), "r.json")
	p := startBench(t, "--conns", "1", "--duration", "300ms", "--drain", "20s", "--progress", "0", "--out", out, wsURL(srv, "/"))
	select {
	case <-arrived:
	case <-time.After(15 * time.Second):
		t.Fatal("no message within 15 s")
	}
	time.Sleep(time.Second)
	p.signal(t, os.Interrupt)
	status, stdout, stderr := p.wait(t, 15*time.Second)
	if want := "duplex bench: interrupt: sending had already ended (--duration); waiting for the rest of --drain; interrupt again not to wait\n"; status != 0 || stderr != want {
		t.Fatalf("exit status %d, stderr %q; want 0, %q\nstdout:\n%s", status, stderr, want, stdout)
	}
	r := readBenchJSON(t, out)
	if r.Interrupted || r.Sent != 1 || r.Received != 1 || r.Lost != 0 || r.Errors != 0 || r.Duration != 0.3 {
		t.Fatalf("interrupted %v, sent %d, received %d, lost %d, errors %d, duration_s %g; want false, 1, 1, 0, 0, 0.3", r.Interrupted, r.Sent, r.Received, r.Lost, r.Errors, r.Duration)
	}
	if got := tableValue(t, stdout, "duration"); got != "0.30 s" {
		t.Fatalf("duration row %q, want %q", got, "0.30 s")
	}
}

// TestBenchInterruptSetupError: a handshake the server refused is the
// run's error even when a signal came while another connection's
// handshake was still held; the signal still sets the exit status.
func TestBenchInterruptSetupError(t *testing.T) {
	var mu sync.Mutex
	n := 0
	arrived := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			http.Error(w, "no", http.StatusForbidden)
		} else {
			select {
			case <-r.Context().Done():
			case <-time.After(20 * time.Second):
			}
		}
		arrived <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	p := startBench(t, "--conns", "2", "--progress", "0", wsURL(srv, "/"))
	select {
	case <-arrived: // the refusal
	case <-time.After(15 * time.Second):
		t.Fatal("no handshake within 15 s")
	}
	time.Sleep(200 * time.Millisecond)
	p.signal(t, os.Interrupt)
	status, stdout, stderr := p.wait(t, 5*time.Second)
	if status != 130 || stdout != "" || !regexp.MustCompile(`^duplex bench: connection [12]: .*403.*\n$`).MatchString(stderr) {
		t.Fatalf("exit status %d, stdout %q, stderr %q; want 130, nothing, the refusal", status, stdout, stderr)
	}
}

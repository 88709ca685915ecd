package interop

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The peers' programs, relative to this package's directory (go test runs
// the tests there).
const (
	// systemPython is Debian's interpreter: Debian's python3-websockets is
	// importable by it only, and another python3 may come first on PATH.
	systemPython = "/usr/bin/python3"
	pythonPeer   = "python/peer.py"
	nodePeer     = "node/peer.js"
	browserPeer  = "node/browser.js"
	chromiumPath = "/usr/bin/chromium"

	installHint = "bash scripts/install-test-deps.sh (from the repository root)"
)

var (
	peerChecksMu sync.Mutex
	peerChecks   = map[string]string{} // what -> "" when present, else why not
)

// requirePeer skips the test when a peer dependency is missing ("python",
// "node" or "chromium"), naming the command that installs it; under CI=true
// it fails instead.
func requirePeer(t *testing.T, what string) {
	t.Helper()
	peerChecksMu.Lock()
	missing, done := peerChecks[what]
	if !done {
		missing = checkPeer(what)
		peerChecks[what] = missing
	}
	peerChecksMu.Unlock()
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("interop peer %q is not installed (%s); with CI=true this fails instead of skipping; install it with: %s", what, missing, installHint)
	}
	t.Skipf("interop peer %q is not installed (%s); install it with: %s", what, missing, installHint)
}

// checkPeer returns "" when what is usable, else what is missing.
func checkPeer(what string) string {
	switch what {
	case "python":
		if _, err := os.Stat(systemPython); err != nil {
			return systemPython + " not found"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, systemPython, "-c", "import websockets").CombinedOutput()
		if err != nil {
			return fmt.Sprintf("%s cannot import websockets (Debian package python3-websockets): %v: %s",
				systemPython, err, strings.TrimSpace(string(out)))
		}
		return ""
	case "node":
		if _, err := exec.LookPath("node"); err != nil {
			return "node not found on PATH (Debian package nodejs)"
		}
		if _, err := os.Stat("node/node_modules/ws/package.json"); err != nil {
			return "interop/node/node_modules/ws not found (npm ci in interop/node)"
		}
		return ""
	case "chromium":
		if _, err := os.Stat(chromiumPath); err != nil {
			return chromiumPath + " not found (Debian package chromium)"
		}
		if m := checkPeer("node"); m != "" {
			return m
		}
		if _, err := os.Stat("node/node_modules/playwright-core/package.json"); err != nil {
			return "interop/node/node_modules/playwright-core not found (npm ci in interop/node)"
		}
		return ""
	}
	return "unknown peer " + what
}

// syncBuffer is a bytes.Buffer safe for a process's writes and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// peerProc is a running peer program.
type peerProc struct {
	name   string
	cmd    *exec.Cmd
	stderr *syncBuffer
	lines  chan string   // stdout lines
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, set before done is closed
}

// startPeer starts a peer program bounded by ctx (killed when ctx ends, and
// at the end of the test). Its stderr goes to the test log.
func startPeer(ctx context.Context, t *testing.T, name string, argv ...string) *peerProc {
	t.Helper()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 5 * time.Second
	p := &peerProc{
		name:   name,
		cmd:    cmd,
		stderr: new(syncBuffer),
		lines:  make(chan string, 16),
		done:   make(chan struct{}),
	}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s (%s): %v", name, strings.Join(argv, " "), err)
	}
	t.Logf("started %s: %s", name, strings.Join(argv, " "))
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody listens for more
			}
		}
		close(p.lines)
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if s := p.stderr.String(); s != "" {
			t.Logf("%s stderr:\n%s", name, strings.TrimRight(s, "\n"))
		}
	})
	return p
}

// waitListening waits for the "listening PORT" line of a peer in server mode.
func (p *peerProc) waitListening(ctx context.Context) (int, error) {
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				<-p.done
				return 0, fmt.Errorf("%s exited before listening: %v", p.name, p.err)
			}
			if port, found := strings.CutPrefix(line, "listening "); found {
				n, err := strconv.Atoi(strings.TrimSpace(port))
				if err != nil || n <= 0 || n > 65535 {
					return 0, fmt.Errorf("%s printed a bad port line %q", p.name, line)
				}
				return n, nil
			}
		case <-ctx.Done():
			return 0, fmt.Errorf("%s: no \"listening PORT\" line: %w", p.name, ctx.Err())
		}
	}
}

// wait waits for the peer to exit and returns an error unless it exited 0.
func (p *peerProc) wait(ctx context.Context) error {
	select {
	case <-p.done:
	case <-ctx.Done():
		return fmt.Errorf("%s still running: %w", p.name, ctx.Err())
	}
	if p.err != nil {
		return fmt.Errorf("%s failed: %v (its stderr is in the log)", p.name, p.err)
	}
	return nil
}

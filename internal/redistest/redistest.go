//go:build unix

// Package redistest starts redis-server processes for tests: one per test,
// on a free port of 127.0.0.1, in a temporary directory, stopped when the
// test ends. By default the server keeps nothing on disk, so a Restart
// comes back empty; with Persistent it keeps every acknowledged write
// across a Stop, a Kill and a Restart, as a production Redis with AOF and
// appendfsync always does. CopyData and RestoreData bring a server back
// with older data, as a crash of a Redis persisted less strictly does.
//
// Unix only: Pause and Resume are SIGSTOP and SIGCONT.
package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ServerPath is where the Debian package redis-server installs the server.
const ServerPath = "/usr/bin/redis-server"

// installHint says how to install the test dependencies.
const installHint = "bash scripts/install-test-deps.sh (from the repository root)"

// Require skips the test when redis-server is not installed, and fails it
// instead under CI=true, where a skipped broker test would hide a missing
// install step.
func Require(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(ServerPath); err == nil {
		return
	}
	msg := fmt.Sprintf("redis-server is not installed (%s not found, Debian package redis-server); install it with: %s", ServerPath, installHint)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; with CI=true this fails instead of skipping")
	}
	t.Skip(msg)
}

// Option changes how Start runs the server.
type Option func(*Server)

// Persistent runs the server with an append-only file (appendonly yes)
// fsynced before every answer (appendfsync always) in the server's own
// temporary directory, so that Restart, even after Kill, comes back with
// every write Redis acknowledged: the tests of what survives a Redis
// restart need it, and the default (no persistence) cannot give it.
func Persistent() Option { return func(s *Server) { s.persistent = true } }

// Server is a redis-server process started by Start.
type Server struct {
	t          testing.TB
	Port       int
	dir        string
	persistent bool

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *bytes.Buffer
}

// Start runs a redis-server on a free port of 127.0.0.1 until the test
// ends, without persistence unless an option says otherwise; it returns
// once the server accepts connections.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	Require(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{t: t, Port: port, dir: t.TempDir()}
	for _, o := range opts {
		o(s)
	}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL returns the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Restart starts the server again on the same port after Stop or Kill:
// without persistence, it comes back empty; with Persistent, it comes back
// with its data.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("redistest: Restart of a running server")
	}
	out := new(bytes.Buffer)
	args := []string{"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--save", "",
		"--dir", s.dir, "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning"}
	if s.persistent {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	cmd := exec.Command(ServerPath, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("redistest: start %s: %v", ServerPath, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd, s.exited, s.out = cmd, exited, out
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if err := ping(ctx, s.Addr()); err == nil {
			return
		}
		select {
		case <-exited:
			s.cmd = nil
			s.t.Fatalf("redistest: redis-server on port %d exited: %s", s.Port, strings.TrimSpace(out.String()))
		case <-ctx.Done():
			s.t.Fatalf("redistest: redis-server on port %d not ready in 10s: %s", s.Port, strings.TrimSpace(out.String()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ping sends PING and expects +PONG.
func ping(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 7)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "+PONG\r\n" {
		return errors.New("redistest: unexpected answer " + strconv.Quote(string(buf[:n])))
	}
	return nil
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 s) and waits until
// it has exited; stopping a stopped server does nothing.
func (s *Server) Stop() { s.halt(syscall.SIGTERM) }

// Kill stops the server with SIGKILL, as a crash would, and waits until it
// has exited: it writes nothing more to disk. Killing a stopped server
// does nothing.
func (s *Server) Kill() { s.halt(syscall.SIGKILL) }

// Pause freezes the server (SIGSTOP) until Resume: it keeps its
// connections and its port, the kernel still accepts connections and
// data for it, but it answers nothing, like a Redis that hangs or a
// network that drops packets without resetting connections.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume lets a paused server run again (SIGCONT); it answers what it
// received meanwhile.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

// signal sends sig to the running server; the test fails if it is not
// running.
func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("redistest: %v to a stopped server", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: %v: %v", sig, err)
	}
}

// CopyData copies the server's data files (its append-only files, and an
// RDB snapshot if one was saved) to a new temporary directory, removed
// when the test ends, and returns it for RestoreData: a backup of this
// point, or the state a Redis whose later writes never reached the disk
// comes back with after a crash. A running server is paused (SIGSTOP)
// while its files are copied, so the copy holds every write acknowledged
// before the call and no half-written one.
func (s *Server) CopyData() string {
	s.t.Helper()
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		s.Pause()
		defer s.Resume()
	}
	dst := filepath.Join(s.t.TempDir(), "data")
	if err := os.CopyFS(dst, os.DirFS(s.dir)); err != nil {
		s.t.Fatalf("redistest: copy data: %v", err)
	}
	return dst
}

// RestoreData replaces the data files of the stopped server by a copy
// that CopyData made: the next Restart comes back with the data of that
// point, as a Redis persisted with RDB snapshots or appendfsync everysec
// does after a crash that lost its last writes.
func (s *Server) RestoreData(copied string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("redistest: RestoreData of a running server")
	}
	if err := os.RemoveAll(s.dir); err != nil {
		s.t.Fatalf("redistest: restore data: %v", err)
	}
	if err := os.CopyFS(s.dir, os.DirFS(copied)); err != nil {
		s.t.Fatalf("redistest: restore data: %v", err)
	}
}

// halt sends sig to the running server, SIGKILL after 5 s, and waits
// until it has exited.
func (s *Server) halt(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(sig)
	s.cmd.Process.Signal(syscall.SIGCONT) // a paused server handles sig now
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/duplex-ws/duplex/websocket"
)

// openPTY opens a pseudo-terminal pair of 100 columns by 30 rows. Without
// pseudo-terminals the test is skipped, or fails under CI=true so that CI
// cannot pass without the interactive tests.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no pseudo-terminals here: %v; with CI=true this fails instead of skipping", err)
		}
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	ioctl := func(f *os.File, req uintptr, arg unsafe.Pointer) error {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), req, uintptr(arg)); e != 0 {
			return e
		}
		return nil
	}
	var unlock int32
	if err := ioctl(m, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		t.Fatal("unlockpt:", err)
	}
	var n uint32
	if err := ioctl(m, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		t.Fatal("ptsname:", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ws := struct{ rows, cols, x, y uint16 }{30, 100, 0, 0}
	if err := ioctl(s, syscall.TIOCSWINSZ, unsafe.Pointer(&ws)); err != nil {
		t.Fatal("set window size:", err)
	}
	return m, s
}

// ptySession is duplex connect running on a pseudo-terminal.
type ptySession struct {
	t      *testing.T
	master *os.File
	chunks chan []byte
	screen []byte // everything written to the terminal so far
	seen   int    // how much of screen earlier expectations consumed
	exited chan error
}

// startPTY runs `duplex connect args...` with a pseudo-terminal as its
// standard input, output and error, and as its controlling terminal.
func startPTY(t *testing.T, args ...string) *ptySession {
	t.Helper()
	master, slave := openPTY(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	cmd := connectCmd(ctx, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	s := &ptySession{t: t, master: master, chunks: make(chan []byte, 64), exited: make(chan error, 1)}
	go func() {
		for {
			buf := make([]byte, 4096)
			n, err := master.Read(buf)
			if n > 0 {
				s.chunks <- buf[:n]
			}
			if err != nil { // EIO once the child and its terminal are gone
				close(s.chunks)
				return
			}
		}
	}()
	go func() { s.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		master.Close()
	})
	return s
}

// expect waits until the terminal shows text matching re after what the
// previous expectations matched, and returns the match.
func (s *ptySession) expect(re string) string {
	s.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(15 * time.Second)
	for {
		if loc := rx.FindIndex(s.screen[s.seen:]); loc != nil {
			m := string(s.screen[s.seen+loc[0] : s.seen+loc[1]])
			s.seen += loc[1]
			return m
		}
		select {
		case b, ok := <-s.chunks:
			if !ok {
				s.t.Fatalf("the terminal closed without showing %q; it showed %q", re, s.screen[s.seen:])
			}
			s.screen = append(s.screen, b...)
		case <-deadline:
			s.t.Fatalf("the terminal did not show %q; it showed %q", re, s.screen[s.seen:])
		}
	}
}

// typeKeys sends keystrokes to the terminal.
func (s *ptySession) typeKeys(keys string) {
	s.t.Helper()
	if _, err := s.master.WriteString(keys); err != nil {
		s.t.Fatal(err)
	}
}

// exitStatus waits for duplex connect to exit and returns its status.
func (s *ptySession) exitStatus() int {
	s.t.Helper()
	select {
	case err := <-s.exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			s.t.Fatal(err)
		}
		return 0
	case <-time.After(15 * time.Second):
		s.t.Fatal("duplex connect did not exit")
	}
	return -1
}

// stamp matches the time printed before each message.
const stamp = `\d\d:\d\d:\d\d\.\d\d\d `

func TestConnectInteractiveEcho(t *testing.T) {
	srv := echoServer(t)
	url := wsURL(srv, "/echo")
	s := startPTY(t, url)
	s.expect(stamp + regexp.QuoteMeta("connected to "+url+"; /help lists the commands") + `\r\n> $`)

	s.typeKeys("hello\r")
	// The erase comes only if the prompt was drawn again before the echo
	// arrived; either order is right.
	s.expect(`(?:\x1b\[K)?` + stamp + `< hello\r\n> `)

	// Line editing: a letter inserted after moving left, then End and a
	// typo erased with Backspace.
	s.typeKeys("wrld\x1b[D\x1b[D\x1b[Do\x1b[F!!\x7f\r")
	s.expect(stamp + `< world!\r\n> `)

	// History: Up twice brings back "hello".
	s.typeKeys("\x1b[A\x1b[A\r")
	s.expect(stamp + `< hello\r\n> `)

	// Binary messages are shown in hex with their size.
	s.typeKeys("/binary 00 ff 41\r")
	s.expect(stamp + `< \[binary 3 bytes\] 00 ff 41\r\n> `)

	s.typeKeys("/ping\r")
	s.expect(stamp + `pong after [0-9.]+[µm]?s\r\n> `)

	s.typeKeys("/text /not a command\r")
	s.expect(stamp + `< /not a command\r\n> `)

	s.typeKeys("/nope\r")
	s.expect(stamp + `unknown command /nope; /help lists them`)

	s.typeKeys("/close 1000 done\r")
	s.expect(stamp + `closing with 1000 \(normal closure\) "done"\r\n`)
	s.expect(stamp + `closed\r\n`)
	if st := s.exitStatus(); st != 0 {
		t.Fatalf("exit status %d after /close 1000, want 0", st)
	}
}

// TestConnectInteractiveKeepsTheTypedLine checks that a message arriving
// while a line is being typed is printed above it, and the line is redrawn
// intact and still sent whole.
func TestConnectInteractiveKeepsTheTypedLine(t *testing.T) {
	push := make(chan string)
	got := make(chan string, 4)
	srv := wsServer(t, nil, func(c *websocket.Conn, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		go func() {
			for {
				_, p, err := c.Read(ctx)
				if err != nil {
					got <- fmt.Sprint("end ", int(websocket.CloseStatus(err)))
					return
				}
				got <- string(p)
			}
		}()
		for {
			select {
			case m := <-push:
				c.Write(ctx, websocket.MessageText, []byte(m))
			case <-ctx.Done():
				return
			}
		}
	})
	s := startPTY(t, wsURL(srv, "/"))
	s.expect(`/help lists the commands\r\n> $`)
	s.typeKeys("half a li")
	s.expect(`half a li$`)
	push <- "news\x1b[2Jflash" // an escape sequence must not reach the terminal raw
	s.expect(`\x1b\[K` + stamp + `< news\\x1b\[2Jflash\r\n> half a li$`)
	s.typeKeys("ne\r")
	if m := <-got; m != "half a line" {
		t.Fatalf("server got %q, want %q", m, "half a line")
	}
	s.typeKeys("\x04") // Ctrl-D: close with the default code
	s.expect(stamp + `closing with 1000 \(normal closure\)\r\n`)
	if st := s.exitStatus(); st != 0 {
		t.Fatalf("exit status %d after Ctrl-D, want 0", st)
	}
	if m := <-got; m != "end 1000" {
		t.Fatalf("server saw %q, want end 1000", m)
	}
}

// TestConnectInteractiveServerCloses checks the exit status and message
// when the server closes with its own code during an interactive session.
func TestConnectInteractiveServerCloses(t *testing.T) {
	srv := wsServer(t, nil, func(c *websocket.Conn, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c.Read(ctx)
		c.Close(4001, "bye")
	})
	s := startPTY(t, wsURL(srv, "/"))
	s.expect(`> $`)
	s.typeKeys("go\r")
	s.expect(`\r\x1b\[K` + regexp.QuoteMeta(`duplex connect: closed by the server: 4001 "bye"`) + `\r\n$`)
	if st := s.exitStatus(); st != 3 {
		t.Fatalf("exit status %d, want 3", st)
	}
}

func TestConnectInteractiveAgainstPythonWebsockets(t *testing.T) {
	addr := startPythonServer(t)
	s := startPTY(t, "--hex", "ws://"+addr+"/echo")
	s.expect(`/help lists the commands\r\n> $`)
	s.typeKeys("68 69\r")
	s.expect(stamp + `< \[binary 2 bytes\] 68 69\r\n> `)
	s.typeKeys("/text hi\r")
	s.expect(stamp + `< \[text 2 bytes\] 68 69\r\n> `)
	s.typeKeys("/quit\r")
	s.expect(stamp + `closed\r\n`)
	if st := s.exitStatus(); st != 0 {
		t.Fatalf("exit status %d after /quit, want 0", st)
	}
}

// TestConnectInteractiveBinary: with --binary, each typed line is sent as
// a binary message of its bytes and the echo is shown in hex with its
// size; /text still sends text, shown as it is.
func TestConnectInteractiveBinary(t *testing.T) {
	got := make(chan string, 8)
	srv := wsServer(t, nil, func(c *websocket.Conn, r *http.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for {
			typ, p, err := c.Read(ctx)
			if err != nil {
				got <- fmt.Sprint("end ", int(websocket.CloseStatus(err)))
				return
			}
			got <- fmt.Sprintf("%s %q", typ, p)
			c.Write(ctx, typ, p)
		}
	})
	s := startPTY(t, "--binary", wsURL(srv, "/"))
	s.expect(`/help lists the commands\r\n> $`)
	want := func(w string) {
		t.Helper()
		select {
		case m := <-got:
			if m != w {
				t.Fatalf("server got %s, want %s", m, w)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("server got nothing, want %s", w)
		}
	}

	s.typeKeys("hi\r")
	want(`binary "hi"`)
	s.expect(stamp + `< \[binary 2 bytes\] 68 69\r\n> `)

	s.typeKeys("h\u00e9!\r")
	want("binary \"h\u00e9!\"")
	s.expect(stamp + `< \[binary 4 bytes\] 68 c3 a9 21\r\n> `)

	s.typeKeys("/text plain\r")
	want(`text "plain"`)
	s.expect(stamp + `< plain\r\n> `)

	s.typeKeys("/quit\r")
	s.expect(stamp + `closed\r\n`)
	want("end 1000")
	if st := s.exitStatus(); st != 0 {
		t.Fatalf("exit status %d after /quit, want 0", st)
	}
}

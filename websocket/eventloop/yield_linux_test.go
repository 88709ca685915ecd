package eventloop

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// floodEnv names the variable that makes TestFloodChild, run as a child
// process, flood the server at that address with echoes.
const floodEnv = "EVENTLOOP_TEST_FLOOD_ADDR"

// floodConns connections keep the loop busy: it always finds one ready.
const floodConns = 100

// TestFloodChild is not a test of its own: TestBusyLoopYields runs this
// test binary again with floodEnv set, and then it sends 32-byte messages
// on floodConns connections, 64 per write, as fast as the server takes
// them, for 4 s, from another process, so that the server's loop never runs
// out of work whatever the server process's scheduler does.
func TestFloodChild(t *testing.T) {
	addr := os.Getenv(floodEnv)
	if addr == "" {
		return
	}
	one := frame(true, 0x2, make([]byte, 32))
	var out []byte
	for range 64 {
		out = append(out, one...)
	}
	stop := time.Now().Add(4 * time.Second)
	done := make(chan struct{})
	for range floodConns {
		go func() {
			defer func() { done <- struct{}{} }()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(stop)
			br := bufio.NewReader(c)
			c.Write([]byte(requestFor(addr)))
			if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
				return
			}
			go io.Copy(io.Discard, br) // the echoes
			for {
				if _, err := c.Write(out); err != nil {
					return
				}
			}
		}()
	}
	for range floodConns {
		<-done
	}
}

// TestBusyLoopYields checks that a loop kept busy by another process does
// not starve the server process's other goroutines on one processor: its
// system calls are raw and it only waits when idle, so without yielding it
// would never enter the scheduler, and a goroutine woken from outside the
// scheduler, as os/signal's is, could wait for as long as the load lasted.
// That is what bench/echoserver's answer to SIGUSR2 did in a side-by-side
// run at 10 000 connections before the loop yielded (4 scenarios of 4);
// this test did not reproduce it without the yield on the machine where
// it was written (signals came within 25 to 42 ms, as with it), so it
// checks the property, not that particular failure.
func TestBusyLoopYields(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var echoes atomic.Int64
	s := &Server{
		Loops: 1,
		OnMessage: func(c *Conn, typ websocket.MessageType, p []byte) {
			echoes.Add(1)
			c.Write(typ, p)
		},
	}
	addr := startServer(t, s)
	cmd := exec.Command(os.Args[0], "-test.run=^TestFloodChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), floodEnv+"="+addr)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()

	// Wait (in steps a sleeping goroutine can only take when scheduled)
	// until the flood is on.
	deadline := time.Now().Add(waitFor)
	for echoes.Load() < 1000 {
		if time.Now().After(deadline) {
			t.Fatalf("the child sent %d messages in %v", echoes.Load(), waitFor)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A signal reaches its channel through os/signal's goroutine, which
	// needs the processor: five signals, each within a second.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR2)
	defer signal.Stop(sig)
	from := echoes.Load()
	var slowest time.Duration
	for i := range 5 {
		sent := time.Now()
		syscall.Kill(os.Getpid(), syscall.SIGUSR2)
		select {
		case <-sig:
		case <-time.After(time.Second):
			t.Fatalf("signal %d not delivered within 1 s while the loop was busy (%d echoes meanwhile): the loop starves other goroutines", i+1, echoes.Load()-from)
		}
		slowest = max(slowest, time.Since(sent))
		time.Sleep(20 * time.Millisecond)
	}
	busy := echoes.Load() - from
	t.Logf("five signals delivered, the slowest in %v, while the loop echoed %d messages", slowest.Round(time.Microsecond), busy)
	if busy < 1000 {
		t.Fatalf("the loop echoed only %d messages meanwhile: the test did not keep it busy", busy)
	}
}

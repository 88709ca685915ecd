package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// systemPython is Debian's interpreter: Debian's python3-websockets is
// importable by it only, and another python3 may come first on PATH.
const systemPython = "/usr/bin/python3"

// requirePythonWebsockets skips the test when Python's websockets library
// is missing, naming the package; under CI=true it fails instead, so that
// CI cannot pass without the interop test.
func requirePythonWebsockets(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, systemPython, "-c", "import websockets").CombinedOutput()
	if err == nil {
		return
	}
	msg := systemPython + " cannot import websockets (Debian package python3-websockets; bash scripts/install-test-deps.sh installs it): " +
		err.Error() + ": " + strings.TrimSpace(string(out))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; with CI=true this fails instead of skipping")
	}
	t.Skip(msg)
}

// startPythonServer starts testdata/websockets_server.py and returns its
// address.
func startPythonServer(t *testing.T) string {
	t.Helper()
	requirePythonWebsockets(t)
	cmd := exec.Command(systemPython, "testdata/websockets_server.py")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	port := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		port <- strings.TrimSpace(line)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case p := <-port:
		if p == "" {
			t.Fatalf("the Python server did not start: %s", stderr.String())
		}
		return "127.0.0.1:" + p
	case <-time.After(20 * time.Second):
		t.Fatal("the Python server did not print its port")
	}
	return ""
}

// runConnectAnswered runs `duplex connect args...` in pipe mode, writes
// stdin, and ends its input only once stdout holds want's length: every
// answer has arrived before the end of input, so the result does not
// depend on how long duplex connect lingers for answers (--wait) on a busy
// machine. It returns what duplex connect wrote and its exit status.
func runConnectAnswered(t *testing.T, stdin, want string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := connectCmd(ctx, args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		io.WriteString(in, stdin)
	}()
	var out bytes.Buffer
	buf := make([]byte, 4096)
	closed := false
	for {
		if !closed && out.Len() >= len(want) {
			in.Close()
			closed = true
		}
		n, err := outp.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break // EOF once duplex connect exits, or killed at the deadline
		}
	}
	if !closed {
		in.Close()
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		status = ee.ExitCode()
	default:
		t.Fatalf("duplex connect %v: %v (stdout %q, stderr %q)", args, err, out.String(), errb.String())
	}
	return out.String(), errb.String(), status
}

func TestConnectPipeAgainstPythonWebsockets(t *testing.T) {
	addr := startPythonServer(t)
	url := "ws://" + addr + "/echo"
	// websockets answers pings before the messages read ahead of them, so
	// the ping at the end of input does not prove every answer arrived:
	// each run ends its input only after the last answer.
	check := func(stdin, want string, args ...string) {
		t.Helper()
		out, errOut, status := runConnectAnswered(t, stdin, want, append(args, url)...)
		checkRun(t, out, errOut, status, want, "", 0)
	}
	check("hello\nwörld\r\n\nlast\n", "hello\nwörld\n\nlast\n")
	// A last line without "\n" can only be sent at the end of input, so
	// its answer depends on lingering: a wait far above an echo's round
	// trip, bounded by the default --close-timeout.
	out, errOut, status := runConnect(t, "one\nlast", "--wait", "3s", url)
	checkRun(t, out, errOut, status, "one\nlast\n", "", 0)
	check("00ff10\n68 69\n", "00ff10\n6869\n", "--hex")

	all := make([]byte, 256*16)
	for i := range all {
		all[i] = byte(i)
	}
	check(string(all), string(all), "--binary")
	check("x\n", "x\n", "--compress")

	// The server closes with 4001 "bye" while standard input is still open.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := connectCmd(ctx, "ws://"+addr+"/close4001")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var outb, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outb, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "hi\n")
	err = cmd.Wait()
	status = 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		status = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	checkRun(t, outb.String(), errb.String(), status, "ho\n", `duplex connect: closed by the server: 4001 "bye"`+"\n", 3)
}

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

func TestConnectPipeAgainstPythonWebsockets(t *testing.T) {
	addr := startPythonServer(t)
	url := "ws://" + addr + "/echo"
	// websockets answers pings before the messages read ahead of them, so
	// the end of input relies on --wait here: a generous one, as the
	// machine may be busy.
	wait := []string{"--wait", "1s"}

	out, errOut, status := runConnect(t, "hello\nwörld\r\n\nlast", append(wait, url)...)
	checkRun(t, out, errOut, status, "hello\nwörld\n\nlast\n", "", 0)

	out, errOut, status = runConnect(t, "00ff10\n68 69\n", append(wait, "--hex", url)...)
	checkRun(t, out, errOut, status, "00ff10\n6869\n", "", 0)

	all := make([]byte, 256*16)
	for i := range all {
		all[i] = byte(i)
	}
	out, errOut, status = runConnect(t, string(all), append(wait, "--binary", url)...)
	checkRun(t, out, errOut, status, string(all), "", 0)

	out, errOut, status = runConnect(t, "x\n", append(wait, "--compress", url)...)
	checkRun(t, out, errOut, status, "x\n", "", 0)

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

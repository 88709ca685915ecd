package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/duplex-ws/duplex/bridge"
	"github.com/duplex-ws/duplex/websocket"
)

// execMain runs `duplex exec`: a WebSocket server that runs a command for
// each connection and bridges the connection to its stdin and stdout.
func execMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":8082", "TCP `address` to listen on, host:port")
	binary := fs.Bool("binary", false, "pass raw bytes both ways in binary messages, instead of one text message per line")
	maxProcs := fs.Int("max-processes", bridge.DefaultMaxProcesses, "processes running at once; beyond, the handshake is refused with 503")
	killTimeout := fs.Duration("kill-timeout", bridge.DefaultKillTimeout, "after a client leaves, time between SIGTERM and SIGKILL to the process group")
	dir := fs.String("dir", "", "working `directory` of the processes (default: this one)")
	path := fs.String("path", "/", "URL `path` of the route; a path ending in / also serves the paths below it (the rest is PATH_INFO)")
	var env, passEnv stringList
	fs.Var(&env, "env", "an extra `NAME=value` variable for the processes; repeatable")
	fs.Var(&passEnv, "passenv", "the `NAME` of a variable of this environment the processes inherit; repeatable (default: PATH, HOME, LANG, LC_ALL, LC_CTYPE, TZ, TMPDIR)")
	var origins stringList
	fs.Var(&origins, "origin", "host `pattern` whose pages may connect across origins; repeatable. By default only same-origin pages may")
	if status, ok := parseFlags(fs, args, "Usage: duplex exec --listen ADDR [flags] -- COMMAND [ARGS...]\n\nRuns COMMAND once per WebSocket connection: each line it writes to stdout becomes a text message, each message a line on its stdin. Request details are in CGI variables (REMOTE_ADDR, QUERY_STRING, HTTP_*...). When it exits the connection closes with 1000 (status 0) or 1011; when the client leaves it gets SIGTERM, then SIGKILL (docs/gateways.md).\n\nFlags:\n"); !ok {
		return status
	}
	argv := fs.Args()
	if len(argv) == 0 {
		fmt.Fprintln(stderr, "duplex exec: no command: duplex exec [flags] -- COMMAND [ARGS...]")
		return 2
	}
	if *maxProcs < 1 {
		fmt.Fprintf(stderr, "duplex exec: --max-processes %d: want 1 or more\n", *maxProcs)
		return 2
	}
	if *killTimeout <= 0 {
		*killTimeout = time.Nanosecond
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	g := newGatewayServer(log)
	scriptName := ""
	if *path != "/" {
		scriptName = *path
		if scriptName[len(scriptName)-1] == '/' {
			scriptName = scriptName[:len(scriptName)-1]
		}
	}
	h := &bridge.ExecHandler{
		Command:      argv,
		Dir:          *dir,
		Env:          env,
		PassEnv:      passEnv,
		ScriptName:   scriptName,
		Binary:       *binary,
		MaxProcesses: *maxProcs,
		KillTimeout:  *killTimeout,
		Accept:       websocket.AcceptOptions{OriginPatterns: origins},
		OnConn:       g.track,
		Log:          log,
	}
	return g.run("duplex exec", *listen, *path, h, "command", argv[0], stderr)
}

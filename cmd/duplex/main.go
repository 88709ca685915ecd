// Command duplex is the Duplex binary, one command for the server, the
// client and the gateways:
//
//   - duplex serve runs the WebSocket server (channels, HTTP API, chat,
//     echo, and --bridge and --exec routes).
//   - duplex connect URL opens a WebSocket connection, interactive on a
//     terminal or line by line in a pipe.
//   - duplex bridge bridges WebSocket clients to one TCP or TLS service.
//   - duplex exec runs a command for each WebSocket connection, on its
//     stdin and stdout.
//   - duplex version prints the version.
//   - duplex help shows the usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/server"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `duplex: a WebSocket toolkit and real-time server.

Usage:
  duplex serve [flags]    run the server (see duplex serve --help)
  duplex connect URL      open a WebSocket connection, interactive or in a pipe (see duplex connect --help)
  duplex bridge [flags]   bridge WebSocket clients to a TCP service (see duplex bridge --help)
  duplex exec [flags] -- COMMAND [ARGS]
                          run COMMAND for each WebSocket connection, on its stdin and stdout (see duplex exec --help)
  duplex version          print the version
  duplex help             show this help
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "connect":
		return connect(args[1:], stdout, stderr)
	case "bridge":
		return bridgeMain(args[1:], stdout, stderr)
	case "exec":
		return execMain(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "duplex", versionString())
		return 0
	case "help", "--help", "-help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "duplex: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":8080", "TCP `address` to listen on, host:port (\":8080\" means every interface)")
	readLimit := fs.Int64("read-limit", 32<<20, "largest WebSocket message accepted, in `bytes`; a larger one is refused with close code 1009 (-1: no limit)")
	handshakeTimeout := fs.Duration("handshake-timeout", 10*time.Second, "time allowed for a client to send the upgrade request's headers")
	shutdownTimeout := fs.Duration("shutdown-timeout", 10*time.Second, "on SIGINT or SIGTERM, how long to wait for requests in flight")
	var origins stringList
	fs.Var(&origins, "origin", "host `pattern` (path.Match syntax, e.g. *.example.com) whose pages may connect across origins; repeatable. By default only same-origin pages may")
	apiKey := fs.String("api-key", "", "`key` the HTTP API requires as \"Authorization: apikey <key>\"; without one, the API answers loopback clients only")
	compression := fs.String("compression", "off", "permessage-deflate: `mode` off; on (no context takeover: each push compressed once for all subscribers, no per-connection state); takeover (best ratio for small similar messages, about 147 KiB per connection)")
	sendQueue := fs.Int("send-queue", server.DefaultSendQueue, "outgoing `messages` a connection may have waiting; a client that lets more pile up is closed with 1013 (slow consumer)")
	var namespaces stringList
	fs.Var(&namespaces, "namespace", "channel namespace `NAME:key=value,...` with keys history (messages kept), ttl (e.g. 10m), presence (on|off), publish (clients|api); NAME \"default\" is the default namespace; repeatable. Without any, the default namespace (history=100,ttl=5m,presence=on,publish=clients) and chat (history=50,ttl=10m) exist")
	gateways := gatewayServeFlags(fs)
	brokerURL := fs.String("broker", "memory", "where channels live: `URL` memory (this process only), nats://host:port (NATS JetStream, shared by every node pointed at it; comma-separate the URLs of a NATS cluster) or redis://host:port[/db] (Redis, shared by every node pointed at the same database)")
	logFormat := fs.String("log-format", "text", "log `format`: text (key=value lines) or json (one JSON object a line); a line per connection opened and closed, none per message")
	logLevel := fs.String("log-level", "info", "least `level` logged: debug, info, warn or error")
	pprofOn := fs.Bool("pprof", false, "serve the runtime profiles of net/http/pprof under /debug/pprof/ on the --listen address (keep that path away from the public)")
	demo := fs.Bool("demo", false, "run a demo publisher of stock quotes on channels ticker:SYMBOL (namespace ticker: history=1,presence=off,publish=api) for the page /ticker/")
	if status, ok := parseFlags(fs, args, "Usage: duplex serve [flags]\n\nRuns the Duplex server: GET /ws is the channel endpoint (docs/protocol.md), POST /api/publish pushes to channels, GET /chat/{room} is a plain chat room, GET /echo echoes every WebSocket message, GET / describes the server, GET /metrics, /healthz and /readyz are for operators (docs/operations.md).\n\nFlags:\n"); !ok {
		return status
	}
	if !noArgs(fs, "duplex serve") {
		return 2
	}
	var nsConfig map[string]pubsub.NamespaceOptions
	if len(namespaces) > 0 {
		nsConfig = server.DefaultNamespaces()
		for _, spec := range namespaces {
			name, opts, err := server.ParseNamespace(spec)
			if err != nil {
				fmt.Fprintln(stderr, "duplex serve: --namespace:", err)
				return 2
			}
			nsConfig[name] = opts
		}
	}
	comp, err := server.CompressionMode(*compression)
	if err != nil {
		fmt.Fprintln(stderr, "duplex serve: --compression:", err)
		return 2
	}
	if *sendQueue < 1 {
		fmt.Fprintf(stderr, "duplex serve: --send-queue %d: want 1 or more\n", *sendQueue)
		return 2
	}
	bridges, execs, err := gateways()
	if err != nil {
		fmt.Fprintln(stderr, "duplex serve:", err)
		return 2
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "duplex serve:", err)
		return 2
	}
	broker, err := server.OpenBroker(*brokerURL)
	if err != nil {
		fmt.Fprintln(stderr, "duplex serve: --broker:", err)
		return 1
	}
	defer broker.Close()
	s := server.New(server.Config{
		Listen:           *listen,
		ReadLimit:        *readLimit,
		HandshakeTimeout: *handshakeTimeout,
		OriginPatterns:   origins,
		Namespaces:       nsConfig,
		APIKey:           *apiKey,
		SendQueue:        *sendQueue,
		Bridges:          bridges,
		Execs:            execs,
		Compression:      comp,
		Version:          versionString(),
		Log:              log,
		Demo:             *demo,
		Broker:           broker,
		Pprof:            *pprofOn,
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe() }()
	select {
	case err := <-errc:
		if err != nil {
			fmt.Fprintln(stderr, "duplex serve:", err)
			return 1
		}
		return 0
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		fmt.Fprintln(stderr, "duplex serve: shutdown:", err)
		return 1
	}
	return 0
}

// parseFlags parses a command's args into fs, whose help (-h, --help, or
// after a bad flag) is usage followed by the flags. ok is false when the
// command must stop and exit with status: 0 after the help was asked for,
// 2 for a bad flag.
func parseFlags(fs *flag.FlagSet, args []string, usage string) (status int, ok bool) {
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// noArgs reports whether no argument is left after fs's flags, for a
// command that takes none; otherwise it tells the first one to fs's output.
func noArgs(fs *flag.FlagSet, name string) bool {
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", name, fs.Arg(0))
		return false
	}
	return true
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

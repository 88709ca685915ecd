package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/duplex-ws/duplex/server"
)

const serveUsage = `Usage: duplex serve [flags]

Runs the Duplex server: GET /ws is the channel endpoint (docs/protocol.md), POST /api/publish pushes to channels, GET /chat/{room} is a plain chat room, GET /echo echoes every WebSocket message, GET / describes the server, GET /metrics, /healthz and /readyz are for operators (docs/operations.md).

Signals: SIGTERM drains (connections closed with 1012 in batches, see --drain-batch; a second SIGTERM or SIGINT ends the drain at once), SIGINT closes every connection at once with 1001, SIGHUP rereads the TLS certificate files.

Every setting --NAME is also the environment variable DUPLEX_NAME (upper case, - as _) and the key NAME (- as _) of the YAML file --config names; a flag wins over the environment, the environment over the file (docs/configuration.md).

Flags:
`

// serve runs `duplex serve` with the process's environment.
func serve(args []string, stdout, stderr io.Writer) int {
	return serveEnv(args, os.Environ(), stdout, stderr)
}

// serveEnv runs `duplex serve` with args and the environment env ("K=V").
// Status 2 means a bad flag or setting, 1 a failure to serve.
func serveEnv(args, env []string, stdout, stderr io.Writer) int {
	cfg, print, status, ok := serveConfigFrom(args, env, stdout, stderr)
	if !ok {
		return status
	}
	if print != nil {
		if err := printConfig(stdout, print); err != nil {
			fmt.Fprintln(stderr, "duplex serve: --print-config:", err)
			return 1
		}
		return 0
	}
	log, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil { // checked with the settings
		fmt.Fprintln(stderr, "duplex serve:", err)
		return 2
	}
	broker, err := server.OpenBroker(cfg.Broker)
	if err != nil {
		fmt.Fprintln(stderr, "duplex serve: --broker:", err)
		return 1
	}
	defer broker.Close()
	cfg.Server.Log = log
	cfg.Server.Broker = broker
	cfg.Server.Version = versionString()
	s := server.New(cfg.Server)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe() }()
	for {
		select {
		case err := <-errc:
			if err != nil {
				fmt.Fprintln(stderr, "duplex serve:", err)
				return 1
			}
			return 0
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				s.ReloadTLS() // logs what happened; the old certificate stays on failure
				continue
			case syscall.SIGTERM:
				log.Info("draining", "batch", cfg.Server.DrainBatch, "interval", cfg.Server.DrainInterval, "timeout", cfg.Server.DrainTimeout)
				return drain(s, sigs, log, stderr)
			}
			log.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			if err := s.Shutdown(sctx); err != nil {
				fmt.Fprintln(stderr, "duplex serve: shutdown:", err)
				return 1
			}
			return 0
		}
	}
}

// serveConfigFrom parses serve's flags, resolves its settings and checks
// them. print is the configuration to print, for --print-config, instead
// of serving (checked as well). ok
// is false when the command must exit with status (help, or an error
// already written to stderr).
func serveConfigFrom(args, env []string, stdout, stderr io.Writer) (cfg *serveConfig, print []resolved, status int, ok bool) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := &configInput{settings: serveSettings, flags: map[*setting][]string{}, env: env}
	for _, s := range serveSettings {
		fs.Var(&flagValue{s: s, texts: in.flags}, s.name, s.help)
	}
	fs.StringVar(&in.configFlag, "config", "", "read settings from this YAML `file` (also "+configEnv+"); flags and environment variables override it")
	printCfg := fs.Bool("print-config", false, "print the configuration in effect as a config file, each value's source in a comment and secrets redacted, and exit")
	if status, ok := parseFlags(fs, args, serveUsage); !ok {
		return nil, nil, status, false
	}
	if !noArgs(fs, "duplex serve") {
		return nil, nil, 2, false
	}
	values, err := in.load()
	if err != nil {
		fmt.Fprintln(stderr, "duplex serve:", err)
		var ce *configError
		if errors.As(err, &ce) {
			return nil, nil, 2, false
		}
		return nil, nil, 1, false
	}
	cfg = &serveConfig{}
	for _, r := range values {
		r.s.apply(cfg, r.v)
	}
	if err := cfg.check(values); err != nil {
		fmt.Fprintln(stderr, "duplex serve:", err)
		return nil, nil, 2, false
	}
	if *printCfg { // a configuration that would not start is not printed
		return nil, values, 0, true
	}
	cfg.finish()
	return cfg, nil, 0, true
}

// flagValue records a setting's flag texts for configInput.load, which
// checks them with the other sources.
type flagValue struct {
	s     *setting
	texts map[*setting][]string
}

// String is the default shown by --help ("" shows none).
func (f *flagValue) String() string {
	if f == nil || f.s == nil || f.s.list {
		return ""
	}
	n := f.s.toNode(f.s.def)
	if f.s.isBool && n.Value == "false" {
		return ""
	}
	return n.Value
}

func (f *flagValue) Set(v string) error {
	f.texts[f.s] = append(f.texts[f.s], v)
	return nil
}

// IsBoolFlag lets a bool setting's flag go without a value.
func (f *flagValue) IsBoolFlag() bool { return f != nil && f.s != nil && f.s.isBool }

// drain drains s until it is done, or until a second SIGTERM or SIGINT
// ends it at once: the connections still open are then closed without a
// closing handshake, and the status is 1 as when the drain's deadline
// cuts it. SIGHUP still rereads the TLS files meanwhile.
func drain(s *server.Server, sigs <-chan os.Signal, log *slog.Logger, stderr io.Writer) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Drain(ctx) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				fmt.Fprintln(stderr, "duplex serve:", err)
				return 1
			}
			return 0
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				s.ReloadTLS()
				continue
			}
			log.Warn("second signal during the drain: closing the connections still open now", "signal", sig.String())
			cancel()
		}
	}
}

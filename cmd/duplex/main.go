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
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
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
  duplex bench URL        measure a WebSocket server: echo or duplex.v1 subscribe load (see duplex bench --help)
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
	case "bench":
		return bench(args[1:], stdout, stderr)
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

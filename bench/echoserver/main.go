// Command echoserver is a WebSocket echo server built on one of six Go
// WebSocket libraries, so that the load generator (bench/load) can compare
// them side by side, each server in its own process: its CPU time and RSS
// are then read from /proc for that library alone.
//
//	echoserver -lib duplex|gorilla|coder|gobwas|gws|nbio -addr 127.0.0.1:0
//
// It prints "listening on ADDR" on standard output once it accepts
// connections, and runs until it is killed. SIGUSR1 makes it run a full
// garbage collection and return freed memory to the OS, then print "gc";
// the idle-connection scenario sends it before reading RSS, so that every
// library is measured without the garbage its handshakes left behind.
//
// Each server echoes every text and binary message with its type, on the
// path the library documents as its fastest (see the comment on each
// serve function), with compression off and no timeouts. Beside echo,
// every server has a broadcast endpoint: connections to /sub subscribe,
// and each message a connection to /pub sends goes to every current
// subscriber through the library's own fan-out path (broadcast.go).
//
// -cpuprofile FILE, or the environment variable ECHOSERVER_CPUPROFILE when
// the server is started by bench/load, writes a CPU profile of the whole
// run (until SIGINT or SIGTERM) for go tool pprof.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
)

func main() {
	lib := flag.String("lib", "duplex", "library: "+libList())
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	cpuprofile := flag.String("cpuprofile", os.Getenv("ECHOSERVER_CPUPROFILE"), "write a CPU profile of the run to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "echoserver:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "echoserver:", err)
			os.Exit(1)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}

	serve, ok := servers[*lib]
	if !ok {
		fmt.Fprintf(os.Stderr, "echoserver: unknown -lib %q (want one of %s)\n", *lib, libList())
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echoserver:", err)
		os.Exit(1)
	}
	stop, err := serve(ln)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echoserver:", err)
		os.Exit(1)
	}
	defer stop()
	fmt.Printf("listening on %s\n", ln.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGINT, syscall.SIGTERM)
	for s := range sig {
		if s != syscall.SIGUSR1 {
			return
		}
		runtime.GC()
		debug.FreeOSMemory()
		fmt.Println("gc")
	}
}

// Command echoserver is a WebSocket echo server built on one of six Go
// WebSocket libraries (duplex in two modes: net/http and its event loop),
// so that the load generator (bench/load) can compare
// them side by side, each server in its own process: its CPU time and RSS
// are then read from /proc for that library alone.
//
//	echoserver -lib duplex|duplex-eventloop|gorilla|coder|gobwas|gws|nbio -addr 127.0.0.1:0
//
// It prints "listening on ADDR" on standard output once it accepts
// connections, and runs until it is killed. SIGUSR1 makes it run a full
// garbage collection and return freed memory to the OS, then print "gc";
// the idle-connection scenario sends it before reading RSS, so that every
// library is measured without the garbage its handshakes left behind.
// SIGUSR2 makes it print "mem MALLOCS TOTALALLOC" (runtime.MemStats: heap
// objects and bytes allocated since it started), which the echo scenarios
// read at both ends of their measured window to report allocations per
// message.
//
// Each server echoes every text and binary message with its type, on the
// path the library documents as its fastest (see the comment on each
// serve function), with compression off and no timeouts. With -compress it
// negotiates permessage-deflate instead (compress.go). Beside echo,
// every server has a broadcast endpoint: connections to /sub subscribe,
// and each message a connection to /pub sends goes to every current
// subscriber through the library's own fan-out path (broadcast.go).
//
// -cpuprofile FILE, or the environment variable ECHOSERVER_CPUPROFILE when
// the server is started by bench/load, writes a CPU profile of the whole
// run (until SIGINT or SIGTERM) for go tool pprof.
//
// ECHOSERVER_PING_INTERVAL (a duration, such as 10m) turns keepalive on in
// duplex-eventloop (Options.PingInterval), to measure what its bookkeeping
// costs an idle connection; the other servers ignore it.
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
	compress := flag.Bool("compress", false, "negotiate permessage-deflate (no context takeover) and compress every message")
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
	if *compress {
		if serve, ok = compressServers[*lib]; !ok {
			fmt.Fprintf(os.Stderr, "echoserver: -lib %s does not support -compress (permessage-deflate)\n", *lib)
			os.Exit(2)
		}
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
	// Handle the signals before saying where it listens: an unhandled
	// SIGUSR2 would end the process.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGINT, syscall.SIGTERM)
	fmt.Printf("listening on %s\n", ln.Addr())

	for s := range sig {
		switch s {
		case syscall.SIGUSR1:
			runtime.GC()
			debug.FreeOSMemory()
			fmt.Println("gc")
		case syscall.SIGUSR2:
			fmt.Println(memLine())
		default:
			return
		}
	}
}

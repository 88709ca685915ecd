package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// TestDeflateEchoServers checks that every library has a -compress
// server, that it negotiates permessage-deflate with no
// context takeover both ways with a client that offers it, and that it
// echoes text and binary messages (compressed both ways) byte for byte.
func TestDeflateEchoServers(t *testing.T) {
	for _, lib := range Libs {
		if _, ok := compressServers[lib]; !ok {
			t.Errorf("compressServers lacks %s", lib)
		}
	}
	if len(compressServers) != len(Libs) {
		t.Errorf("compressServers has %d libraries, want %d", len(compressServers), len(Libs))
	}
	var js strings.Builder
	for i := 0; js.Len() < 70000; i++ {
		fmt.Fprintf(&js, `{"id":%d,"user":"user-%04d","event":"click","ok":true},`, i, i%97)
	}
	msgs := []echoMsg{
		{websocket.MessageText, []byte("héllo, wörld")},
		{websocket.MessageText, []byte(js.String()[:1024])},
		{websocket.MessageBinary, bytes.Repeat([]byte{0, 1, 2, 3, 0xfe}, 300)},
		{websocket.MessageText, []byte(js.String())},
		{websocket.MessageText, []byte("after")},
	}
	for lib, serve := range compressServers {
		t.Run(lib, func(t *testing.T) {
			t.Parallel()
			addr := startServer(t, serve)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, "ws://"+addr+"/", &websocket.DialOptions{Options: websocket.Options{
				Compression: websocket.CompressionOptions{Enabled: true, ServerNoContextTakeover: true, ClientNoContextTakeover: true, Threshold: -1},
			}})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.CloseNow()
			ext := resp.Header.Get("Sec-WebSocket-Extensions")
			if !strings.HasPrefix(ext, "permessage-deflate") || !strings.Contains(ext, "server_no_context_takeover") {
				t.Fatalf("Sec-WebSocket-Extensions %q, want permessage-deflate with server_no_context_takeover", ext)
			}
			checkEchoes(ctx, t, c, msgs)
		})
	}
}

// TestMemLine checks the SIGUSR2 answer's form and that its counts grow
// with allocations.
func TestMemLine(t *testing.T) {
	var m0, b0, m1, b1 uint64
	if _, err := fmt.Sscanf(memLine(), "mem %d %d", &m0, &b0); err != nil {
		t.Fatalf("memLine %q: %v", memLine(), err)
	}
	sink = make([]byte, 1<<20)
	if _, err := fmt.Sscanf(memLine(), "mem %d %d", &m1, &b1); err != nil {
		t.Fatal(err)
	}
	if m1 <= m0 || b1 < b0+1<<20 {
		t.Fatalf("after a 1 MiB allocation: mallocs %d → %d, bytes %d → %d", m0, m1, b0, b1)
	}
}

var sink []byte

//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation
// counts are only meaningful without it.

package websocket_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/duplex-ws/duplex/websocket"
)

// allocSizes are the message sizes whose whole-message Read and Write must
// not allocate: a small message and one of 2300 bytes (under the 4 KiB
// write buffer, but past the 2-byte and 125-byte length forms).
var allocSizes = []int{32, 2300}

// TestAllocsWrite: a whole-message Write allocates nothing in steady state,
// as server (unmasked) and as client (masked through the write buffer).
func TestAllocsWrite(t *testing.T) {
	ctx := context.Background()
	for _, role := range benchRoles {
		for _, size := range allocSizes {
			t.Run(fmt.Sprintf("%s/%d", ctRoleName(role), size), func(t *testing.T) {
				sink := &benchSink{}
				c := websocket.NewConn(sink, nil, role, "", nil)
				p := benchPayload(size)
				write := func() {
					if err := c.Write(ctx, websocket.MessageBinary, p); err != nil {
						t.Fatal(err)
					}
				}
				for i := 0; i < 100; i++ { // warm up the pools
					write()
				}
				before := sink.n
				write()
				hdr := 4 // 2-byte header + 16-bit extended length
				if size <= 125 {
					hdr = 2
				}
				if role == websocket.RoleClient {
					hdr += 4 // masking key
				}
				if got := sink.n - before; got != int64(hdr+size) {
					t.Fatalf("one Write sent %d bytes, want %d", got, hdr+size)
				}
				if n := testing.AllocsPerRun(1000, write); n != 0 {
					t.Errorf("Write of %d bytes as %s: %v allocs per call, want 0", size, ctRoleName(role), n)
				}
			})
		}
	}
}

// TestAllocsRead: a whole-message Read allocates nothing in steady state,
// for binary and text (UTF-8 checked) messages, as server (unmasking) and
// as client.
func TestAllocsRead(t *testing.T) {
	ctx := context.Background()
	for _, role := range benchRoles {
		for _, typ := range []websocket.MessageType{websocket.MessageBinary, websocket.MessageText} {
			for _, size := range allocSizes {
				t.Run(fmt.Sprintf("%s/%v/%d", ctRoleName(role), typ, size), func(t *testing.T) {
					c := benchReadConn(role, typ, size)
					want := benchPayload(size)
					read := func() {
						gt, p, err := c.Read(ctx)
						if err != nil || gt != typ || len(p) != size || p[size-1] != want[size-1] {
							t.Fatalf("Read = %v, %d bytes, %v", gt, len(p), err)
						}
					}
					for i := 0; i < 100; i++ {
						read()
					}
					if _, p, _ := c.Read(ctx); string(p) != string(want) {
						t.Fatal("Read returned the wrong bytes")
					}
					if n := testing.AllocsPerRun(1000, read); n != 0 {
						t.Errorf("Read of %d bytes as %s: %v allocs per call, want 0", size, ctRoleName(role), n)
					}
				})
			}
		}
	}
}

// TestAllocsTCP: over real TCP (Accept and Dial on 127.0.0.1), a whole
// message written by one side and read by the other allocates nothing, in
// both directions.
func TestAllocsTCP(t *testing.T) {
	ctx := context.Background()
	for _, sender := range benchRoles {
		for _, size := range allocSizes {
			t.Run(fmt.Sprintf("%s-sends/%d", ctRoleName(sender), size), func(t *testing.T) {
				srv, cli := ctPair(t, nil, nil)
				w, r := srv, cli
				if sender == websocket.RoleClient {
					w, r = cli, srv
				}
				p := benchPayload(size)
				got := make(chan error, 1)
				go func() {
					for {
						_, m, err := r.Read(ctx)
						if err == nil && len(m) != size {
							err = fmt.Errorf("got %d bytes", len(m))
						}
						got <- err
						if err != nil {
							return
						}
					}
				}()
				roundTrip := func() {
					if err := w.Write(ctx, websocket.MessageBinary, p); err != nil {
						t.Fatal(err)
					}
					if err := <-got; err != nil {
						t.Fatal(err)
					}
				}
				for i := 0; i < 100; i++ {
					roundTrip()
				}
				if n := testing.AllocsPerRun(1000, roundTrip); n != 0 {
					t.Errorf("Write+Read of %d bytes over TCP: %v allocs per message, want 0", size, n)
				}
			})
		}
	}
}

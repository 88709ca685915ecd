package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// faultyBcast is a broadcast server like bench/echoserver's, in this
// process, that can break its promise on purpose: fault names what it does
// to its fourth subscriber (in order of arrival, which the client numbers
// differently) at message 20.
type faultyBcast struct {
	fault string
	mu    sync.Mutex
	subs  []*websocket.Conn
}

func (b *faultyBcast) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{bcastSubProto, bcastPubProto}})
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := context.Background()
	switch r.URL.Path {
	case bcastSubPath:
		b.mu.Lock()
		b.subs = append(b.subs, c)
		err := c.Write(ctx, websocket.MessageText, []byte(bcastGreeting))
		b.mu.Unlock()
		if err != nil {
			return
		}
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	case bcastPubPath:
		for seq := 0; ; seq++ {
			typ, p, err := c.Read(ctx)
			if err != nil {
				return
			}
			b.mu.Lock()
			subs := b.subs
			b.mu.Unlock()
			for i, s := range subs {
				typ, p := typ, p
				if i == 3 && seq == 20 {
					switch b.fault {
					case "drop", "stop":
						continue
					case "twice":
						s.Write(ctx, typ, p)
					case "corrupt":
						p = append([]byte(nil), p...)
						p[len(p)-1] ^= 1
					case "text":
						typ = websocket.MessageText
						p = []byte("not the message")
					case "close":
						s.Close(websocket.StatusGoingAway, "bye")
						continue
					}
				}
				if i == 3 && seq > 20 && b.fault == "stop" {
					continue
				}
				if err := s.Write(ctx, typ, p); err != nil && (i != 3 || b.fault != "close") {
					return
				}
			}
		}
	}
}

// TestBroadcastScenario runs the broadcast scenario against a correct
// in-process server (this process stands in for the server's pid), then
// against servers that drop, repeat, change, replace or stop a message to
// one subscriber, or close it: each must fail the scenario with an error
// that names what went wrong.
func TestBroadcastScenario(t *testing.T) {
	cases := []struct {
		fault, errRE string // errRE: the error the scenario must fail with
	}{
		{"", ""},
		{"drop", `^subscriber \d+: message 21 arrived when 20 was expected \(missing or out of order\)$`},
		{"twice", `^subscriber \d+: message 20 again after message 20$`},
		{"corrupt", `^subscriber \d+: message 20 differs from what was published at byte 31$`},
		{"text", `^subscriber \d+: frame with first byte 0x81 after message 19, want a final binary frame$`},
		{"close", `^subscriber \d+: the server sent a close frame \(code 1001\) after message 19$`},
		{"stop", `^message 20 \(of \d+ sent\) did not reach 1 of 50 subscribers within 500ms: subscriber \d+ has messages 0 to 19$`},
	}
	for _, c := range cases {
		name := c.fault
		if name == "" {
			name = "correct"
		}
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: &faultyBcast{fault: c.fault}}
			go srv.Serve(ln)
			defer srv.Close()

			cfg := &config{warmup: 50 * time.Millisecond, duration: 300 * time.Millisecond,
				bcastWindow: 8, bcastStall: 500 * time.Millisecond}
			s := &server{pid: os.Getpid(), addr: ln.Addr().String()}
			r, err := runBroadcast(cfg, s, bcastSpec{50, 32})
			if c.errRE == "" {
				if err != nil {
					t.Fatalf("correct server: %v", err)
				}
				if r.Deliveries == 0 || r.Messages == 0 || r.Deliveries > r.Messages*50+8*50 ||
					r.DeliveriesPerSec <= 0 || r.P50us <= 0 || r.P99us < r.P50us || r.P999us < r.P99us ||
					r.ServerUsDelivery <= 0 || r.PerCore <= 0 || r.ServerRSSKiB <= 0 {
					t.Fatalf("implausible result %+v", r)
				}
				t.Logf("%.0f deliveries/s, p50 %.0f µs, p99 %.0f µs", r.DeliveriesPerSec, r.P50us, r.P99us)
				return
			}
			if err == nil || !regexp.MustCompile(c.errRE).MatchString(err.Error()) {
				t.Fatalf("error %v, want one matching %s", err, c.errRE)
			}
		})
	}
}

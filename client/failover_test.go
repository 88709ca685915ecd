package client_test

import (
	"net"
	"testing"

	"github.com/duplex-ws/duplex/client"
	"github.com/duplex-ws/duplex/websocket"
)

// TestFailoverOrder: with Options.URLs, each reconnection goes to the next
// address in turn (repeats dropped), an address that cannot be dialled is
// passed over, and the list wraps around; subscriptions follow the client.
func TestFailoverOrder(t *testing.T) {
	ts1 := startServer(t, "127.0.0.1:0")
	ts2 := startServer(t, "127.0.0.1:0")
	ts3 := startServer(t, "127.0.0.1:0")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "ws://" + l.Addr().String() + "/ws" // nothing listens there
	l.Close()

	ctx := testContext(t)
	r := newRecorder()
	c := newClient(t, ts1.url, r, &client.Options{URLs: []string{ts2.url, ts1.url, dead, ts3.url}})
	r.waitState(t, client.StateConnected)
	if got := c.URL(); got != ts1.url {
		t.Fatalf("URL() = %s, want the first address %s", got, ts1.url)
	}
	if _, err := c.Subscribe(ctx, "news", r.onMessage, r.subOpts()); err != nil {
		t.Fatal(err)
	}
	if ev := recv(t, r.subs, "subscribed"); ev.Resubscribed || ev.Err != nil {
		t.Fatalf("subscribed event %+v", ev)
	}

	// ts1 dies: the client moves to ts2 and subscribes there.
	ts1.l.pause(true)
	ts1.l.kill()
	if err := r.waitState(t, client.StateDisconnected); websocket.CloseStatus(err) != websocket.StatusAbnormalClosure {
		t.Fatalf("disconnected with %v, want an abnormal closure", err)
	}
	r.waitState(t, client.StateConnected)
	if got := c.URL(); got != ts2.url {
		t.Fatalf("after ts1 died: URL() = %s, want %s", got, ts2.url)
	}
	if ev := recv(t, r.subs, "resubscribed on ts2"); !ev.Resubscribed || ev.Err != nil {
		t.Fatalf("resubscribed event %+v", ev)
	}
	p := ts2.publish(t, "news", `"on ts2"`)
	expectMessage(t, recv(t, r.msgs, "message from ts2"), "news", p.Offset, p.Epoch, `"on ts2"`)

	// ts2 dies: the dead address fails, then ts3 takes the client.
	ts2.l.pause(true)
	ts2.l.kill()
	r.waitState(t, client.StateDisconnected)
	if err := r.waitState(t, client.StateDisconnected); err == nil {
		t.Fatal("the dial of the dead address reported no error")
	}
	r.waitState(t, client.StateConnected)
	if got := c.URL(); got != ts3.url {
		t.Fatalf("after ts2 died: URL() = %s, want %s", got, ts3.url)
	}
	recv(t, r.subs, "resubscribed on ts3")

	// ts3 dies and ts1 is back: the list wraps around to ts1.
	ts1.l.pause(false)
	ts3.l.pause(true)
	ts3.l.kill()
	r.waitState(t, client.StateDisconnected)
	r.waitState(t, client.StateConnected)
	if got := c.URL(); got != ts1.url {
		t.Fatalf("after ts3 died: URL() = %s, want %s", got, ts1.url)
	}
	recv(t, r.subs, "resubscribed on ts1")
	p = ts1.publish(t, "news", `"back on ts1"`)
	expectMessage(t, recv(t, r.msgs, "message from ts1"), "news", p.Offset, p.Epoch, `"back on ts1"`)
	if n1, n2, n3 := ts1.l.count(), ts2.l.count(), ts3.l.count(); n1 != 2 || n2 != 1 || n3 != 1 {
		t.Fatalf("connections accepted: ts1 %d, ts2 %d, ts3 %d; want 2, 1, 1", n1, n2, n3)
	}
}

// TestFailoverBadURL: an address of Options.URLs that is not ws or wss
// stops the client at once, as a bad url given to New does.
func TestFailoverBadURL(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0")
	r := newRecorder()
	newClient(t, ts.url, r, &client.Options{URLs: []string{"ftp://127.0.0.1/ws"}})
	err := r.waitState(t, client.StateClosed)
	if err == nil || err.Error() != `duplex: URL scheme "ftp" is not ws or wss` {
		t.Fatalf("closed with %v", err)
	}
	if ts.l.count() != 0 {
		t.Fatal("the client dialled despite a bad address")
	}
}

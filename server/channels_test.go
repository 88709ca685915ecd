package server_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/websocket"
)

// Fifty subscribers on five channels (two channels each) while, on every
// channel, one publisher publishes over WebSocket and another over POST
// /api/publish, concurrently: every subscriber receives, on each of its
// channels, every offset once, in order, with the exact data the publish
// that got that offset sent.
func TestFanOutManySubscribersSeveralChannels(t *testing.T) {
	ts := startServer(t, server.Config{})
	ctx := testContext(t)
	const nChannels, nSubs, perPublisher = 5, 50, 60
	const perChannel = 2 * perPublisher
	channels := make([]string, nChannels)
	for i := range channels {
		channels[i] = fmt.Sprintf("live:room-%d", i)
	}

	type sub struct {
		c        *wsClient
		channels [2]string
	}
	subs := make([]sub, nSubs)
	epochs := make(map[string]string)
	for i := range subs {
		s := sub{c: ts.dial(ctx, t), channels: [2]string{channels[i%nChannels], channels[(i+1)%nChannels]}}
		for j, ch := range s.channels {
			r := s.c.subscribe(j+1, ch)
			if r.Recovered || r.Offset != 0 {
				t.Fatalf("subscribe %s: %+v, want recovered false at offset 0", ch, r)
			}
			if e, ok := epochs[ch]; ok && e != r.Epoch {
				t.Fatalf("subscribers of %s see epochs %q and %q", ch, e, r.Epoch)
			}
			epochs[ch] = r.Epoch
		}
		subs[i] = s
	}

	// Every subscriber reads its 2*perChannel pushes.
	received := make([][]string, nSubs)
	var readers sync.WaitGroup
	readErrs := make(chan error, nSubs)
	for i, s := range subs {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for len(received[i]) < 2*perChannel {
				msg, err := s.c.recv()
				if err != nil {
					readErrs <- fmt.Errorf("subscriber %d after %d messages: %v", i, len(received[i]), err)
					return
				}
				received[i] = append(received[i], msg)
			}
		}()
	}

	// data[channel][offset] is what the publish that got offset sent.
	var mu sync.Mutex
	data := make(map[string]map[uint64]string)
	for _, ch := range channels {
		data[ch] = make(map[uint64]string)
	}
	record := func(ch string, off uint64, epoch, d string) error {
		mu.Lock()
		defer mu.Unlock()
		if epoch != epochs[ch] {
			return fmt.Errorf("publish to %s got epoch %q, subscribers saw %q", ch, epoch, epochs[ch])
		}
		if prev, dup := data[ch][off]; dup {
			return fmt.Errorf("offset %d of %s given to both %s and %s", off, ch, prev, d)
		}
		data[ch][off] = d
		return nil
	}
	var publishers sync.WaitGroup
	pubErrs := make(chan error, 2*nChannels)
	for k, ch := range channels {
		wsPub := ts.dial(ctx, t)
		publishers.Add(2)
		go func() { // over WebSocket, pipelined: every command, then every answer
			defer publishers.Done()
			sent := make([]string, perPublisher)
			for n := range perPublisher {
				sent[n] = fmt.Sprintf(`{"via":"ws","channel":%d,"seq":%d,"text":"é✓ \"q\""}`, k, n)
				cmd := fmt.Sprintf(`{"id":%d,"op":"publish","channel":%q,"data":%s}`, n+1, ch, sent[n])
				if err := wsPub.conn.Write(ctx, websocket.MessageText, []byte(cmd)); err != nil {
					pubErrs <- err
					return
				}
			}
			for n := range perPublisher {
				got, err := wsPub.recv()
				if err != nil {
					pubErrs <- err
					return
				}
				var a struct {
					Result struct {
						Offset uint64 `json:"offset"`
						Epoch  string `json:"epoch"`
					} `json:"result"`
				}
				json.Unmarshal([]byte(got), &a)
				want := fmt.Sprintf(`{"id":%d,"result":{"offset":%d,"epoch":%q}}`, n+1, a.Result.Offset, a.Result.Epoch)
				if got != want {
					pubErrs <- fmt.Errorf("publish answer %s, want %s", got, want)
					return
				}
				if err := record(ch, a.Result.Offset, a.Result.Epoch, sent[n]); err != nil {
					pubErrs <- err
					return
				}
			}
		}()
		go func() { // over HTTP
			defer publishers.Done()
			for n := range perPublisher {
				d := fmt.Sprintf(`{"via":"api","channel":%d,"seq":%d}`, k, n)
				pos, err := ts.tryPublishAPI(ch, d)
				if err == nil {
					err = record(ch, pos.Offset, pos.Epoch, d)
				}
				if err != nil {
					pubErrs <- err
					return
				}
			}
		}()
	}
	publishers.Wait()
	close(pubErrs)
	for err := range pubErrs {
		t.Fatal(err)
	}
	for _, ch := range channels {
		for off := uint64(1); off <= perChannel; off++ {
			if _, ok := data[ch][off]; !ok {
				t.Fatalf("%s: no publish got offset %d (offsets must rise by one)", ch, off)
			}
		}
	}

	readers.Wait()
	close(readErrs)
	for err := range readErrs {
		t.Fatal(err)
	}
	for i, s := range subs {
		next := map[string]uint64{s.channels[0]: 1, s.channels[1]: 1}
		for _, msg := range received[i] {
			var f frame
			json.Unmarshal([]byte(msg), &f)
			off, ok := next[f.Channel]
			if !ok {
				t.Fatalf("subscriber %d of %v got %s", i, s.channels, msg)
			}
			if want := push(f.Channel, off, epochs[f.Channel], data[f.Channel][off]); msg != want {
				t.Fatalf("subscriber %d: got  %s\nwant %s", i, msg, want)
			}
			next[f.Channel] = off + 1
		}
		for ch, n := range next {
			if n != perChannel+1 {
				t.Fatalf("subscriber %d got offsets up to %d of %s, want %d", i, n-1, ch, perChannel)
			}
		}
	}
}

// A publisher subscribed to its channel receives its own message as a push,
// and the answer carries the push's offset and epoch. null is a value.
func TestPublisherReceivesItsOwnMessage(t *testing.T) {
	ts := startServer(t, server.Config{})
	ctx := testContext(t)
	c := ts.dial(ctx, t)
	r := c.subscribe(1, "bare:x")
	c.send(`{"id":2,"op":"publish","channel":"bare:x","data":null}`)
	got := []string{c.next(), c.next()}
	answer := fmt.Sprintf(`{"id":2,"result":{"offset":1,"epoch":%q}}`, r.Epoch)
	msg := push("bare:x", 1, r.Epoch, "null")
	if !(got[0] == answer && got[1] == msg) && !(got[0] == msg && got[1] == answer) {
		t.Fatalf("got %q, want %s and %s", got, answer, msg)
	}
	c.expectCall(`{"id":3,"op":"ping"}`, `{"id":3,"result":{}}`)
}

// ping is answered with an empty result, answers come in the order of the
// commands, and unknown fields are ignored.
func TestPingAndAnswerOrder(t *testing.T) {
	ts := startServer(t, server.Config{})
	ctx := testContext(t)
	c := ts.dial(ctx, t)
	for id := 1; id <= 20; id++ {
		c.send(fmt.Sprintf(`{"op":"ping","id":%d,"unknown":[1,{"x":2}]}`, id))
	}
	for id := 1; id <= 20; id++ {
		c.expect(fmt.Sprintf(`{"id":%d,"result":{}}`, id))
	}
	// The largest id is answered as sent.
	c.expectCall(`{"id":9007199254740991,"op":"ping"}`, `{"id":9007199254740991,"result":{}}`)
}

// After unsubscribe's answer, no push of the channel arrives; subscribing
// again works.
func TestUnsubscribe(t *testing.T) {
	ts := startServer(t, server.Config{})
	ctx := testContext(t)
	c := ts.dial(ctx, t)
	r := c.subscribe(1, "bare:u")
	ts.publishAPI(t, "bare:u", `"one"`)
	c.expect(push("bare:u", 1, r.Epoch, `"one"`))
	c.expectCall(`{"id":2,"op":"unsubscribe","channel":"bare:u"}`, `{"id":2,"result":{}}`)
	ts.publishAPI(t, "bare:u", `"two"`)
	// A ping's answer comes after anything queued before it: no push came.
	c.expectCall(`{"id":3,"op":"ping"}`, `{"id":3,"result":{}}`)
	r2 := c.subscribe(4, "bare:u")
	if r2.Recovered {
		t.Fatalf("resubscribe: %+v, want not recovered", r2)
	}
	pos := ts.publishAPI(t, "bare:u", `"three"`)
	c.expect(push("bare:u", pos.Offset, r2.Epoch, `"three"`))
}

// Subscribing, reading some messages, cutting the TCP connection (no
// closing handshake) and resubscribing with since gets recovered:true and
// exactly the missed messages, in order, before those published during and
// after the resubscription.
func TestRecoveryAfterForcedDisconnect(t *testing.T) {
	ts := startServer(t, server.Config{})
	ctx := testContext(t)
	const ch = "live:news"
	c := ts.dial(ctx, t)
	r := c.subscribe(1, ch)
	for n := 1; n <= 5; n++ {
		ts.publishAPI(t, ch, fmt.Sprintf(`{"n":%d}`, n))
		c.expect(push(ch, uint64(n), r.Epoch, fmt.Sprintf(`{"n":%d}`, n)))
	}
	c.tcp.Close() // forced: the server sees the connection drop

	for n := 6; n <= 12; n++ { // missed
		ts.publishAPI(t, ch, fmt.Sprintf(`{"n":%d}`, n))
	}
	c2 := ts.dial(ctx, t)
	// Publish concurrently with the resubscription: whatever the timing,
	// every offset comes once, in order, after the answer.
	pubDone := make(chan error, 1)
	go func() {
		for n := 13; n <= 40; n++ {
			if _, err := ts.tryPublishAPI(ch, fmt.Sprintf(`{"n":%d}`, n)); err != nil {
				pubDone <- err
				return
			}
		}
		pubDone <- nil
	}()
	c2.send(fmt.Sprintf(`{"id":1,"op":"subscribe","channel":%q,"since":{"offset":5,"epoch":%q}}`, ch, r.Epoch))
	ans := c2.checkSubscribeAnswer(1, c2.next())
	if !ans.Recovered || ans.Epoch != r.Epoch || ans.Offset < 12 || ans.Offset > 40 {
		t.Fatalf("resubscribe answer %+v, want recovered in epoch %s at an offset from 12 to 40", ans, r.Epoch)
	}
	for n := 6; n <= 40; n++ {
		c2.expect(push(ch, uint64(n), r.Epoch, fmt.Sprintf(`{"n":%d}`, n)))
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	c2.expectCall(`{"id":2,"op":"ping"}`, `{"id":2,"result":{}}`)
}

// Recovery is refused (recovered:false, nothing replayed) for another
// epoch, for an offset past the channel's, and when missed messages were
// evicted from history; it succeeds from the oldest offset history still
// covers.
func TestRecoveryRefused(t *testing.T) {
	ts := startServer(t, server.Config{})
	ctx := testContext(t)
	const ch = "small:x" // keeps 3 messages
	var epoch string
	for n := 1; n <= 10; n++ {
		epoch = ts.publishAPI(t, ch, fmt.Sprint(n)).Epoch
	}
	cases := []struct {
		since     string
		recovered bool
		replay    []int
	}{
		{fmt.Sprintf(`{"offset":5,"epoch":"x%s"}`, epoch), false, nil}, // another epoch
		{fmt.Sprintf(`{"offset":2,"epoch":%q}`, epoch), false, nil},    // 3..7 evicted
		{fmt.Sprintf(`{"offset":6,"epoch":%q}`, epoch), false, nil},    // 7 evicted
		{fmt.Sprintf(`{"offset":99,"epoch":%q}`, epoch), false, nil},   // from the future
		{fmt.Sprintf(`{"offset":7,"epoch":%q}`, epoch), true, []int{8, 9, 10}},
		{fmt.Sprintf(`{"offset":9,"epoch":%q}`, epoch), true, []int{10}},
		{fmt.Sprintf(`{"offset":10,"epoch":%q}`, epoch), true, nil},
	}
	latest := 10
	for _, tc := range cases {
		c := ts.dial(ctx, t)
		c.expectCall(fmt.Sprintf(`{"id":1,"op":"subscribe","channel":%q,"since":%s}`, ch, tc.since),
			fmt.Sprintf(`{"id":1,"result":{"recovered":%t,"offset":%d,"epoch":%q}}`, tc.recovered, latest, epoch))
		for _, n := range tc.replay {
			c.expect(push(ch, uint64(n), epoch, fmt.Sprint(n)))
		}
		c.conn.Close(websocket.StatusNormalClosure, "")
	}
	// After a refused recovery the next message is a new one: nothing is
	// replayed in between.
	c := ts.dial(ctx, t)
	c.expectCall(fmt.Sprintf(`{"id":1,"op":"subscribe","channel":%q,"since":{"offset":1,"epoch":%q}}`, ch, epoch),
		fmt.Sprintf(`{"id":1,"result":{"recovered":false,"offset":10,"epoch":%q}}`, epoch))
	ts.publishAPI(t, ch, "11")
	c.expect(push(ch, 11, epoch, "11"))

	// A restarted server has another epoch for the same channel.
	ts2 := startServer(t, server.Config{})
	for n := 1; n <= 10; n++ {
		ts2.publishAPI(t, ch, fmt.Sprint(n))
	}
	c2 := ts2.dial(ctx, t)
	r := c2.checkSubscribeAnswer(1, c2.call(fmt.Sprintf(`{"id":1,"op":"subscribe","channel":%q,"since":{"offset":9,"epoch":%q}}`, ch, epoch)))
	if r.Recovered || r.Offset != 10 || r.Epoch == epoch {
		t.Fatalf("recovery across a restart: %+v, want recovered false at offset 10 in a new epoch", r)
	}
}

// smallFirstSendBuffer is a listener whose first connection has a send
// buffer of size bytes, so that what that client absorbs while it does not
// read is bounded by the test, not by the kernel's autotuning (megabytes).
// The other connections keep the kernel's buffers.
type smallFirstSendBuffer struct {
	net.Listener
	size  int
	first atomic.Bool
}

func (l *smallFirstSendBuffer) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil && l.first.CompareAndSwap(false, true) {
		if err = c.(*net.TCPConn).SetWriteBuffer(l.size); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, err
}

// A subscriber that stops reading is closed with 1013 once its send queue
// overflows, while another subscriber of the channel receives every
// message and the publisher is never held up.
//
// The slow subscriber connects first: the socket buffers on both sides of
// its connection are 16 KiB, so it can absorb at most its queue (16), the
// batch its writer is blocked in (at most 17) and about one message in the
// kernel: the overflow comes by message 35 of 100, whatever the kernel's
// defaults. The slow subscriber starts reading once the fast one has
// received message overflowBy, after the overflow: the close frame then
// leaves behind the write in progress, long before the close timeout (5 s)
// would cut the connection (a client that never reads sees 1006, see
// docs/protocol.md).
func TestSlowConsumerIsCutOff(t *testing.T) {
	const (
		queue      = 16
		n          = 100
		overflowBy = 50
		sockBuf    = 16 << 10
	)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServerOn(t, server.Config{SendQueue: queue}, &smallFirstSendBuffer{Listener: l, size: sockBuf})
	ctx := testContext(t)
	const ch = "live:big"
	big := `"` + strings.Repeat("x", 60<<10) + `"`

	slow, err := ts.dialPath(ctx, t, "/ws", sockBuf, server.Subprotocol)
	if err != nil {
		t.Fatal(err)
	}
	rs := slow.subscribe(1, ch)
	fast := ts.dial(ctx, t)
	rf := fast.subscribe(1, ch)
	if rs.Epoch != rf.Epoch {
		t.Fatalf("epochs %q and %q", rs.Epoch, rf.Epoch)
	}

	fastDone := make(chan error, 1)
	pastOverflow := make(chan struct{})
	go func() {
		for i := 1; i <= n; i++ {
			msg, err := fast.recv()
			if err != nil {
				fastDone <- fmt.Errorf("fast subscriber, message %d: %v", i, err)
				return
			}
			if want := push(ch, uint64(i), rf.Epoch, big); msg != want {
				fastDone <- fmt.Errorf("fast subscriber, message %d: got %d bytes %.80q", i, len(msg), msg)
				return
			}
			if i == overflowBy {
				close(pastOverflow)
			}
		}
		fastDone <- nil
	}()

	// The publisher goes on while the slow subscriber reads nothing, and
	// finishes in bounded time.
	pubDone := make(chan error, 1)
	go func() {
		start := time.Now()
		for i := 1; i <= n; i++ {
			pos, err := ts.tryPublishAPI(ch, big)
			if err != nil {
				pubDone <- err
				return
			}
			if pos.Offset != uint64(i) {
				pubDone <- fmt.Errorf("publish %d got offset %d", i, pos.Offset)
				return
			}
		}
		if d := time.Since(start); d > 20*time.Second {
			pubDone <- fmt.Errorf("publishing took %v: the slow consumer held the publisher up", d)
			return
		}
		pubDone <- nil
	}()

	select {
	case <-pastOverflow:
	case err := <-fastDone:
		t.Fatalf("fast subscriber ended before message %d: %v", overflowBy, err)
	case <-ctx.Done():
		t.Fatalf("the fast subscriber did not receive message %d", overflowBy)
	}
	// The slow subscriber now reads what reached it: a prefix of the
	// messages, in order, then the close.
	got := 0
	for {
		msg, err := slow.recv()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.StatusTryAgainLater || ce.Reason != "slow consumer: send queue full" {
				t.Fatalf("slow subscriber ended with %v after %d messages, want close 1013 \"slow consumer: send queue full\"", err, got)
			}
			break
		}
		got++
		if want := push(ch, uint64(got), rs.Epoch, big); msg != want {
			t.Fatalf("slow subscriber, message %d: got %d bytes %.80q", got, len(msg), msg)
		}
	}
	if got >= overflowBy {
		t.Fatalf("slow subscriber received %d messages before being closed: more than its queue, its writer's batch and 16 KiB socket buffers hold", got)
	}
	for _, done := range []chan error{pubDone, fastDone} {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("timed out waiting for the publisher and the fast subscriber")
		}
	}
	t.Logf("the slow subscriber received %d of %d messages before 1013", got, n)
}

// Presence: join and leave pushes carry the client's id, user and info;
// the presence command (and the API) lists subscribers sorted by client id;
// a client leaves on unsubscribe and on disconnect.
func TestPresenceJoinLeave(t *testing.T) {
	ts := startServer(t, server.Config{})
	ctx := testContext(t)
	alice := ts.dial(ctx, t)
	var ca struct {
		Result struct{ Client string } `json:"result"`
	}
	got := alice.call(`{"id":1,"op":"connect","user":"alice","info":{"color": "teal","n":[1, 2]}}`)
	json.Unmarshal([]byte(got), &ca)
	if want := fmt.Sprintf(`{"id":1,"result":{"client":%q,"user":"alice","version":"test"}}`, ca.Result.Client); got != want || len(ca.Result.Client) < 8 {
		t.Fatalf("connect: got %s, want %s", got, want)
	}
	aliceInfo := fmt.Sprintf(`{"client":%q,"user":"alice","info":{"color":"teal","n":[1,2]}}`, ca.Result.Client)
	alice.subscribe(2, "lobby")
	alice.expect(fmt.Sprintf(`{"op":"join","channel":"lobby","client":%s}`, aliceInfo))

	bob := ts.dial(ctx, t)
	var cb struct {
		Result struct{ Client string } `json:"result"`
	}
	json.Unmarshal([]byte(bob.call(`{"id":1,"op":"connect","user":"bob","info":null}`)), &cb)
	if cb.Result.Client == ca.Result.Client {
		t.Fatalf("two connections share the client id %q", cb.Result.Client)
	}
	bobInfo := fmt.Sprintf(`{"client":%q,"user":"bob"}`, cb.Result.Client)
	bob.subscribe(2, "lobby")
	bob.expect(fmt.Sprintf(`{"op":"join","channel":"lobby","client":%s}`, bobInfo))
	alice.expect(fmt.Sprintf(`{"op":"join","channel":"lobby","client":%s}`, bobInfo))

	// A client that is not subscribed may ask.
	anon := ts.dial(ctx, t)
	list := []string{aliceInfo, bobInfo}
	if ca.Result.Client > cb.Result.Client {
		list = []string{bobInfo, aliceInfo}
	}
	anon.expectCall(`{"id":1,"op":"presence","channel":"lobby"}`, fmt.Sprintf(`{"id":1,"result":{"clients":[%s]}}`, strings.Join(list, ",")))
	status, _, body := ts.do(t, "GET", "/api/channels/lobby/presence", "", "", nil)
	if want := fmt.Sprintf("{\"clients\":[%s]}\n", strings.Join(list, ",")); status != 200 || body != want {
		t.Fatalf("GET presence: %d %s, want 200 %s", status, body, want)
	}

	// Without connect, a client joins with user "" and no info.
	anon.subscribe(2, "lobby")
	joinAnon := anon.next()
	var ja struct {
		Client struct{ Client string } `json:"client"`
	}
	json.Unmarshal([]byte(joinAnon), &ja)
	anonInfo := fmt.Sprintf(`{"client":%q,"user":""}`, ja.Client.Client)
	if want := fmt.Sprintf(`{"op":"join","channel":"lobby","client":%s}`, anonInfo); joinAnon != want {
		t.Fatalf("got %s, want %s", joinAnon, want)
	}
	alice.expect(joinAnon)
	bob.expect(joinAnon)

	// bob unsubscribes: the others see him leave, he sees nothing more.
	bob.expectCall(`{"id":3,"op":"unsubscribe","channel":"lobby"}`, `{"id":3,"result":{}}`)
	leaveBob := fmt.Sprintf(`{"op":"leave","channel":"lobby","client":%s}`, bobInfo)
	alice.expect(leaveBob)
	anon.expect(leaveBob)

	// alice's connection drops: anon sees her leave.
	alice.tcp.Close()
	anon.expect(fmt.Sprintf(`{"op":"leave","channel":"lobby","client":%s}`, aliceInfo))
	anon.expectCall(`{"id":3,"op":"presence","channel":"lobby"}`, fmt.Sprintf(`{"id":3,"result":{"clients":[%s]}}`, anonInfo))
	bob.expectCall(`{"id":4,"op":"ping"}`, `{"id":4,"result":{}}`)

	// A namespace with presence off sends no join or leave.
	q := ts.dial(ctx, t)
	rq := q.subscribe(1, "bare:q")
	ts.publishAPI(t, "bare:q", "1")
	q.expect(push("bare:q", 1, rq.Epoch, "1"))
}

// A binary message closes the connection with 1003, after the answers to
// the commands before it.
func TestBinaryMessageCloses1003(t *testing.T) {
	ts := startServer(t, server.Config{})
	ctx := testContext(t)
	c := ts.dial(ctx, t)
	c.send(`{"id":1,"op":"ping"}`)
	if err := c.conn.Write(ctx, websocket.MessageBinary, []byte(`{"id":2,"op":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	c.expect(`{"id":1,"result":{}}`)
	c.expectClose(websocket.StatusUnsupportedData, "duplex.v1 takes JSON text messages")
}

// A handshake that does not offer duplex.v1 is refused with 400 before the
// upgrade; one that offers it among others gets it.
func TestHandshakeWithoutSubprotocol(t *testing.T) {
	ts := startServer(t, server.Config{})
	ctx := testContext(t)
	for _, offer := range [][]string{nil, {"duplex.v2"}, {"chat", "superchat"}} {
		c, resp, err := websocket.Dial(ctx, ts.ws+"/ws", &websocket.DialOptions{Subprotocols: offer, Proxy: noProxy})
		if err == nil {
			c.CloseNow()
			t.Fatalf("offer %q: connected", offer)
		}
		var he *websocket.HandshakeError
		if !errors.As(err, &he) || he.Status != http.StatusBadRequest || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("offer %q: %v, want a 400 answer", offer, err)
		}
	}
	// The reason is in the body.
	status, _, body := ts.do(t, "GET", "/ws", "", "", http.Header{
		"Upgrade": {"websocket"}, "Connection": {"Upgrade"}, "Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="},
	})
	if want := "Bad Request: the channel endpoint speaks the WebSocket subprotocol duplex.v1; offer it in Sec-WebSocket-Protocol\n"; status != 400 || body != want {
		t.Fatalf("got %d %q, want 400 %q", status, body, want)
	}
	var tcp net.Conn
	c, _, err := websocket.Dial(ctx, ts.ws+"/ws", dialOptions(&tcp, 0, "other", server.Subprotocol))
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if c.Subprotocol() != server.Subprotocol {
		t.Fatalf("subprotocol %q, want duplex.v1", c.Subprotocol())
	}
}

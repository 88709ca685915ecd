package server

import (
	"context"
	"encoding/json"
	"math"
	"sync"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/websocket"
)

// queueInfo is what a send queue knows of a message push beyond its
// bytes. It is set once per event, with the frame every subscriber
// shares; answers, joins and leaves have the zero value, which is never
// dropped nor replaced.
type queueInfo struct {
	policy  pubsub.SlowConsumerPolicy
	channel string
	offset  uint64
	epoch   string
	key     string // conflation key, with SlowConsumerConflate
}

// setQueueInfo fills f.q for a message event of a namespace with opts.
func setQueueInfo(f *outFrame, e *pubsub.Event, opts pubsub.NamespaceOptions) {
	if e.Kind != pubsub.EventMessage {
		return
	}
	f.q = queueInfo{policy: opts.SlowConsumer, channel: e.Channel, offset: e.Message.Offset, epoch: e.Message.Epoch}
	if opts.SlowConsumer == pubsub.SlowConsumerConflate {
		f.q.key = conflateKey(e.Channel, e.Message.Data, opts.ConflateKey)
	}
}

// conflateKey returns the key of a message of channel: the channel, and,
// when field is set and data is a JSON object that has it, a NUL byte and
// the field's value as JSON text ("AAPL" with its quotes, 42).
func conflateKey(channel string, data json.RawMessage, field string) string {
	if field == "" {
		return channel
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return channel
	}
	v, ok := obj[field]
	if !ok {
		return channel
	}
	return channel + "\x00" + string(v)
}

// newQueueEncoding returns an Encoding that frames events with build,
// fills in what the send queue needs from the namespace options hub has
// for the event's channel, and what o's metrics need (o may be nil).
func newQueueEncoding(o *observer, hub *pubsub.Hub, build func(*pubsub.Event) *outFrame) *pubsub.Encoding {
	return pubsub.NewEncoding(func(e *pubsub.Event) any {
		f := build(e)
		if f == nil {
			return nil
		}
		if hub != nil {
			if opts, err := hub.Options(e.Channel); err == nil {
				setQueueInfo(f, e, opts)
			}
		}
		return o.frame(e, f)
	})
}

// lostRange is a run of a channel's offsets dropped from a send queue,
// not yet reported to the client.
type lostRange struct {
	channel string
	gap     pubsub.Gap
}

// queueStats is what one push did besides queueing the frame.
type queueStats struct {
	dropped   int  // messages dropped (drop-oldest)
	conflated bool // a waiting message was replaced by this one
}

// sendQueue is a connection's bounded queue of outgoing messages, answers
// and pushes alike, in the order they were queued. When it holds max
// frames, the slow-consumer policy of the messages' namespaces decides
// (pubsub.SlowConsumerPolicy): the oldest waiting message of a drop-oldest
// namespace is dropped to make room, a conflated message replaces the
// waiting one with the same key (at any time, not only when full), and
// otherwise the push fails and the connection is closed with 1013.
//
// When report is set (duplex.v1), a dropped message leaves in its place a
// marker, which the writer sends as a lost push naming the channel's
// dropped offsets (the push a Hub's pubsub.EventLost becomes): the client
// learns of the loss where the first lost message would have been, after
// everything queued before it. Later drops
// of the same channel extend the marker while it waits (a channel's
// messages are dropped oldest first, so none of them lies between). A
// marker does not count against max: there is at most one waiting per
// channel and epoch.
//
// The frames live in buf[head:], with nil holes where a frame was dropped
// or replaced; buf is compacted when holes and consumed slots fill half of
// it, so it never grows much beyond max.
type sendQueue struct {
	max    int
	report bool
	obs    *observer     // counts the lost pushes written; nil is quiet
	ready  chan struct{} // holds a token while frames wait

	mu        sync.Mutex
	buf       []*outFrame
	head      int                  // next frame to write
	n         int                  // frames waiting, markers aside
	holes     int                  // nil slots in buf[head:]
	droppable int                  // waiting frames of drop-oldest namespaces
	firstDrop int                  // no droppable frame waits before buf[firstDrop]
	keys      map[string]int       // conflation key → its frame's index in buf
	markers   map[string]*outFrame // channel → its waiting lost marker
}

func newSendQueue(max int, report bool, obs *observer) *sendQueue {
	return &sendQueue{max: max, report: report, obs: obs, ready: make(chan struct{}, 1)}
}

// len returns how many frames wait.
func (q *sendQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// push queues f. It returns false when the queue is full and f's policy
// and the waiting frames leave nothing to drop: the connection is then a
// slow consumer to close.
func (q *sendQueue) push(f *outFrame) (ok bool, st queueStats) {
	q.mu.Lock()
	if f.q.key != "" {
		if i, found := q.keys[f.q.key]; found {
			q.buf[i] = nil
			q.holes++
			q.n--
			st.conflated = true
		}
	}
	if q.n >= q.max {
		if !q.dropOldest() {
			if f.q.policy != pubsub.SlowConsumerDropOldest {
				q.mu.Unlock()
				return false, st
			}
			// Nothing older of its kind waits: f is the oldest message
			// that may go.
			st.dropped++
			if !q.extendMarker(f) {
				q.append(newMarker(f))
			}
			q.mu.Unlock()
			return true, st
		}
		st.dropped++
	}
	q.append(f)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true, st
}

// dropOldest drops the oldest waiting message of a drop-oldest namespace,
// if any, leaving a marker in its place or extending its channel's.
func (q *sendQueue) dropOldest() bool {
	if q.droppable == 0 {
		return false
	}
	for i := max(q.firstDrop, q.head); i < len(q.buf); i++ {
		f := q.buf[i]
		if f == nil || f.lost != nil || f.q.policy != pubsub.SlowConsumerDropOldest {
			continue
		}
		q.n--
		q.droppable--
		q.firstDrop = i + 1
		if q.extendMarker(f) {
			q.buf[i] = nil
			q.holes++
		} else {
			q.buf[i] = newMarker(f)
			q.markers[f.q.channel] = q.buf[i]
		}
		return true
	}
	return false // unreachable while droppable counts right
}

// extendMarker adds f's offset to the waiting marker of its channel, when
// there is one for its epoch (always, if the queue reports nothing), and
// reports whether it did.
func (q *sendQueue) extendMarker(f *outFrame) bool {
	if !q.report {
		return true
	}
	m := q.markers[f.q.channel]
	if m == nil || m.lost.gap.Epoch != f.q.epoch || f.q.offset <= m.lost.gap.To {
		if q.markers == nil {
			q.markers = make(map[string]*outFrame)
		}
		return false
	}
	m.lost.gap.To = f.q.offset
	return true
}

// newMarker returns the marker of a dropped message f, which reports it
// lost once written.
func newMarker(f *outFrame) *outFrame {
	return &outFrame{lost: &lostRange{channel: f.q.channel, gap: pubsub.Gap{Epoch: f.q.epoch, From: f.q.offset, To: f.q.offset}}}
}

// append adds f at the end, compacting buf first when that avoids growing
// it.
func (q *sendQueue) append(f *outFrame) {
	if len(q.buf) == cap(q.buf) && q.head+q.holes > 0 && q.head+q.holes >= len(q.buf)/2 {
		q.compact()
	}
	q.buf = append(q.buf, f)
	if f.lost != nil {
		q.markers[f.lost.channel] = f
		return
	}
	q.n++
	if f.q.policy == pubsub.SlowConsumerDropOldest {
		q.droppable++
	}
	if f.q.key != "" {
		if q.keys == nil {
			q.keys = make(map[string]int)
		}
		q.keys[f.q.key] = len(q.buf) - 1
	}
}

// compact moves the waiting frames to the front of buf.
func (q *sendQueue) compact() {
	j := 0
	for i := q.head; i < len(q.buf); i++ {
		f := q.buf[i]
		if f == nil {
			continue
		}
		q.buf[j] = f
		if f.q.key != "" {
			q.keys[f.q.key] = j
		}
		j++
	}
	clear(q.buf[j:])
	q.buf = q.buf[:j]
	q.head, q.holes, q.firstDrop = 0, 0, 0
}

// maxIdleQueue is the capacity beyond which an emptied queue releases its
// buffer, so that a burst does not leave idle connections holding memory.
const maxIdleQueue = 256

// take appends to out the next frames to write, at most maxWriteBatch of
// them and at most limit queued messages (markers aside), and returns out
// and how many queued messages it took.
func (q *sendQueue) take(out []*outFrame, limit int) ([]*outFrame, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	taken := 0
	for len(out) < maxWriteBatch && taken < limit && q.head < len(q.buf) {
		f := q.buf[q.head]
		q.buf[q.head] = nil
		q.head++
		switch {
		case f == nil:
			q.holes--
			continue
		case f.lost != nil:
			if q.markers[f.lost.channel] == f {
				delete(q.markers, f.lost.channel)
			}
			if f = q.lostPush(f.lost); f == nil {
				continue
			}
		default:
			taken++
			q.n--
			if f.q.policy == pubsub.SlowConsumerDropOldest {
				q.droppable--
			}
			if f.q.key != "" && q.keys[f.q.key] == q.head-1 {
				delete(q.keys, f.q.key)
			}
		}
		out = append(out, f)
	}
	if q.head == len(q.buf) {
		if cap(q.buf) > maxIdleQueue {
			q.buf = nil
		} else {
			q.buf = q.buf[:0]
		}
		q.head, q.holes, q.firstDrop = 0, 0, 0
	}
	return out, taken
}

// lostPush frames the lost push of r, as the Hub's reports of lost
// messages are framed (docs/protocol.md, "Lost messages"), and counted
// with them.
func (q *sendQueue) lostPush(r *lostRange) *outFrame {
	e := &pubsub.Event{Kind: pubsub.EventLost, Channel: r.channel, Lost: r.gap}
	f, _ := q.obs.frame(e, buildPush(e)).(*outFrame)
	return f
}

// flush writes what waits, in batches of up to maxWriteBatch messages,
// until the queue is empty or a write fails.
func (q *sendQueue) flush(c *websocket.Conn, rec *connRecord) error {
	return q.flushN(c, rec, math.MaxInt)
}

// flushN is flush that stops after n queued messages (and the markers
// among them).
func (q *sendQueue) flushN(c *websocket.Conn, rec *connRecord, n int) error {
	var farr [maxWriteBatch]*outFrame
	var parr [maxWriteBatch]*websocket.PreparedMessage
	for {
		frames, taken := q.take(farr[:0], n)
		n -= taken
		if len(frames) == 0 {
			return nil
		}
		err := writeFrames(c, frames, parr[:0], rec)
		clear(frames)
		if err != nil {
			return err
		}
	}
}

// maxWriteBatch is how many queued messages a connection's writer sends in
// one vectored write.
const maxWriteBatch = 64

// writeFrames writes frames with one WritePrepared: under load, a
// subscriber receives many pushes per system call. The messages are
// counted in rec (taken back if the write fails) and, once written, in the
// namespaces' metrics, and their latency observed.
//
// The write runs without a context (a Background one costs no deadline
// bookkeeping per write, about a tenth of the server's CPU in a large
// fan-out): a writer stuck on a client that does not read is released by
// closing the connection (slow-consumer close, CloseNow), never by a
// context.
func writeFrames(c *websocket.Conn, frames []*outFrame, batch []*websocket.PreparedMessage, rec *connRecord) error {
	for _, f := range frames {
		batch = append(batch, f.pm)
	}
	handed := time.Now()
	// Counted before the write: the client may have read them, closed,
	// and the connection's close line been logged before WritePrepared
	// returns here; a failed write takes them back.
	rec.wrote(len(batch))
	err := c.WritePrepared(context.Background(), batch...)
	if err == nil {
		writtenFrames(frames, handed)
	} else {
		rec.wrote(-len(batch))
	}
	clear(batch)
	return err
}

// queued counts in rec's metrics what a push did to the queue.
func (rec *connRecord) queued(st queueStats) {
	if rec == nil {
		return
	}
	if st.dropped > 0 {
		rec.ep.drops.Add(float64(st.dropped))
	}
	if st.conflated {
		rec.ep.conflated.Inc()
	}
}

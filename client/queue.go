package client

import "sync"

// queue runs callbacks one at a time, in the order they were pushed, on one
// goroutine (run). Message callbacks count against limit; others (state and
// subscription events) do not, so that they are never lost.
type queue struct {
	limit int

	mu     sync.Mutex
	items  []queued // items[head:] wait
	head   int
	msgs   int           // message items waiting
	wake   chan struct{} // capacity 1: something was pushed, or closed
	low    chan struct{} // closed once msgs ≤ limit/2; nil when no one waits
	closed bool
}

type queued struct {
	fn  func()
	msg bool
}

func newQueue(limit int) *queue {
	return &queue{limit: limit, wake: make(chan struct{}, 1)}
}

// push appends fn. A message is refused (false) when limit messages wait.
func (q *queue) push(fn func(), msg bool) bool {
	q.mu.Lock()
	if msg {
		if q.msgs >= q.limit {
			q.mu.Unlock()
			return false
		}
		q.msgs++
	}
	if q.head > 0 && len(q.items) == cap(q.items) {
		// Slide the waiting items to the front instead of growing.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, queued{fn: fn, msg: msg})
	q.mu.Unlock()
	q.signal()
	return true
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close lets run return once everything pushed so far has run.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// run calls the callbacks until close.
func (q *queue) run() {
	for {
		q.mu.Lock()
		for q.head == len(q.items) {
			if q.closed {
				q.mu.Unlock()
				return
			}
			q.mu.Unlock()
			<-q.wake
			q.mu.Lock()
		}
		it := q.items[q.head]
		q.items[q.head] = queued{}
		q.head++
		if q.head == len(q.items) {
			q.items, q.head = q.items[:0], 0 // reuse the array
		}
		if it.msg {
			q.msgs--
			if q.low != nil && q.msgs <= q.limit/2 {
				close(q.low)
				q.low = nil
			}
		}
		q.mu.Unlock()
		it.fn()
	}
}

// lowWater returns a channel closed once at most limit/2 messages wait.
func (q *queue) lowWater() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.msgs <= q.limit/2 {
		done := make(chan struct{})
		close(done)
		return done
	}
	if q.low == nil {
		q.low = make(chan struct{})
	}
	return q.low
}

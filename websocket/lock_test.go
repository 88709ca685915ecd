package websocket

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConnLockExclusion: goroutines that take the lock, some of them with
// contexts that end while they wait, never hold it together, every one
// either gets it or reports its context's error, and the lock ends free.
func TestConnLockExclusion(t *testing.T) {
	var l connLock
	closed := make(chan struct{})
	var inside, got, gaveUp atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				ctx, cancel := context.Background(), func() {}
				if (g+i)%3 == 0 {
					ctx, cancel = context.WithTimeout(context.Background(), time.Duration(i%5)*time.Microsecond)
				}
				err := l.lock(ctx, closed)
				cancel()
				if err != nil {
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("lock: %v", err)
						return
					}
					gaveUp.Add(1)
					continue
				}
				if n := inside.Add(1); n != 1 {
					t.Errorf("%d holders at once", n)
				}
				inside.Add(-1)
				got.Add(1)
				l.unlock()
			}
		}(g)
	}
	wg.Wait()
	if got.Load()+gaveUp.Load() != 8*2000 {
		t.Fatalf("%d locked + %d gave up, want %d", got.Load(), gaveUp.Load(), 8*2000)
	}
	if s := l.state.Load(); s != 0 || len(l.waiters) != 0 {
		t.Fatalf("lock left with state %d and %d waiters, want free", s, len(l.waiters))
	}
}

// TestConnLockClosedAndHandoff: a waiter gives up with errLockClosed when
// closed is closed, and the next waiter is handed the lock in order.
func TestConnLockClosedAndHandoff(t *testing.T) {
	var l connLock
	if !l.tryLock() {
		t.Fatal("tryLock on a free lock failed")
	}
	if l.tryLock() {
		t.Fatal("tryLock on a held lock succeeded")
	}
	closed := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- l.lock(context.Background(), closed) }()
	waitWaiters := func(n int) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			l.mu.Lock()
			k := len(l.waiters)
			l.mu.Unlock()
			if k == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d waiters, want %d", k, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitWaiters(1)
	close(closed)
	select {
	case err := <-errc:
		if err != errLockClosed {
			t.Fatalf("lock = %v, want errLockClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not give up when closed was closed")
	}
	waitWaiters(0)
	if s := l.state.Load(); s != lockHeld {
		t.Fatalf("state %d after the waiter left, want held (%d)", s, lockHeld)
	}
	go func() { errc <- l.lock(context.Background(), nil) }()
	waitWaiters(1)
	l.unlock()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("lock = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter was not handed the lock")
	}
	if s := l.state.Load(); s != lockHeld {
		t.Fatalf("state %d after the hand-off, want held (%d)", s, lockHeld)
	}
	l.unlock()
	if s := l.state.Load(); s != 0 {
		t.Fatalf("state %d after unlock, want 0", s)
	}
}

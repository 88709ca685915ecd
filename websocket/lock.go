package websocket

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
)

// connLock is a mutual-exclusion lock whose waiters can give up, when their
// context ends or the connection closes. A Conn takes two or three of them
// per message, so the uncontended path is a single compare-and-swap to lock
// and another to unlock (a lock made of a channel costs two runtime lock
// sections per operation, about a third of a small echo's time in the
// Conn). Waiters queue in order and are handed the lock directly.
type connLock struct {
	state   atomic.Int32 // lockHeld, plus lockWaiters while waiters is not empty
	mu      sync.Mutex   // guards waiters and the lockWaiters bit
	waiters []chan struct{}
}

const (
	lockHeld    = 1
	lockWaiters = 2
)

// waiterPool recycles the channels on which waiters are handed the lock, so
// waiting allocates nothing in steady state. A channel is always empty when
// it is put back.
var waiterPool = sync.Pool{New: func() any { return make(chan struct{}, 1) }}

// tryLock takes the lock if it is free.
func (l *connLock) tryLock() bool { return l.state.CompareAndSwap(0, lockHeld) }

// lock takes the lock, waiting until it is free, ctx ends (ctx.Err()) or
// closed is closed (errLockClosed).
func (l *connLock) lock(ctx context.Context, closed <-chan struct{}) error {
	if l.state.CompareAndSwap(0, lockHeld) {
		return nil
	}
	l.mu.Lock()
	for {
		s := l.state.Load()
		if s&lockHeld == 0 {
			if l.state.CompareAndSwap(s, s|lockHeld) {
				l.mu.Unlock()
				return nil
			}
			continue
		}
		if l.state.CompareAndSwap(s, s|lockWaiters) {
			break
		}
	}
	w := waiterPool.Get().(chan struct{})
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()
	var err error
	select {
	case <-w:
		waiterPool.Put(w)
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-closed:
		err = errLockClosed
	}
	l.mu.Lock()
	if i := slices.Index(l.waiters, w); i >= 0 {
		l.waiters = slices.Delete(l.waiters, i, i+1)
		if len(l.waiters) == 0 {
			l.clearWaitersLocked()
		}
	} else {
		// Handed the lock while giving up: pass it on.
		<-w
		l.unlockLocked()
	}
	l.mu.Unlock()
	waiterPool.Put(w)
	return err
}

// unlock releases the lock, handing it to the first waiter if there is one.
func (l *connLock) unlock() {
	if l.state.CompareAndSwap(lockHeld, 0) {
		return
	}
	l.mu.Lock()
	l.unlockLocked()
	l.mu.Unlock()
}

func (l *connLock) unlockLocked() {
	if len(l.waiters) == 0 {
		l.state.Store(0)
		return
	}
	w := l.waiters[0]
	l.waiters = slices.Delete(l.waiters, 0, 1)
	if len(l.waiters) == 0 {
		l.clearWaitersLocked()
	}
	w <- struct{}{} // the lock stays held: it now belongs to w's owner
}

func (l *connLock) clearWaitersLocked() {
	for {
		s := l.state.Load()
		if l.state.CompareAndSwap(s, s&^lockWaiters) {
			return
		}
	}
}

// errLockClosed is what lock returns when closed was closed; the Conn
// reports its sticky error instead.
var errLockClosed = errors.New("websocket: connection closed while waiting")

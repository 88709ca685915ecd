package server

import (
	"context"
	"testing"
	"time"
)

// TestDrainBatchSize: the configured batch size holds while the batches
// start within the first half of the time to the deadline, and grows so
// that they do otherwise.
func TestDrainBatchSize(t *testing.T) {
	for _, tc := range []struct {
		n, batch int
		interval time.Duration
		timeout  time.Duration // 0: no deadline
		want     int
	}{
		{n: 1000, batch: 100, interval: 100 * time.Millisecond, want: 100},                            // no deadline
		{n: 1000, batch: 100, interval: 100 * time.Millisecond, timeout: 10 * time.Second, want: 100}, // 10 batches, the last at 0.9 s
		// 10 000 in 10 s: the last batch may start at 5 s less the moment
		// since the deadline was set, so after 49 intervals: 50 batches.
		{n: 10000, batch: 100, interval: 100 * time.Millisecond, timeout: 10 * time.Second, want: 200},
		{n: 50, batch: 100, interval: time.Second, timeout: time.Second, want: 100}, // one batch anyway
		{n: 10, batch: 0, interval: time.Second, want: 1},                           // batch < 1 means 1
		{n: 10, batch: 3, interval: 0, want: 10},                                    // no interval: all at once
		{n: 0, batch: 3, interval: 0, want: 1},
		{n: 500, batch: 1, interval: time.Second, timeout: time.Second, want: 500}, // less than an interval: one batch
	} {
		ctx := context.Background()
		if tc.timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, tc.timeout)
			defer cancel()
		}
		if got := drainBatchSize(ctx, tc.n, tc.batch, tc.interval); got != tc.want {
			t.Errorf("drainBatchSize(%d connections, batch %d, interval %v, deadline in %v) = %d, want %d", tc.n, tc.batch, tc.interval, tc.timeout, got, tc.want)
		}
	}
}

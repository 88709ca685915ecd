package client

import (
	"testing"
	"time"
)

func TestBackoffBoundsAndJitter(t *testing.T) {
	const min, max = 100 * time.Millisecond, 5 * time.Second
	fixed := func(r float64) func() float64 { return func() float64 { return r } }
	cases := []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{1, 0, 100 * time.Millisecond},   // the floor
		{1, 0.5, 150 * time.Millisecond}, // between min and 2·min
		{1, 0.999999, 199999900 * time.Nanosecond},
		{2, 0.5, 250 * time.Millisecond},  // between min and 4·min
		{3, 0.25, 275 * time.Millisecond}, // between min and 8·min
		{5, 1 - 1e-9, 3199999996900 * time.Nanosecond / 1000},
		{6, 0.5, 2550 * time.Millisecond}, // 6.4 s is over the ceiling: min + (max-min)/2
		{6, 0, 100 * time.Millisecond},
		{40, 0.5, 2550 * time.Millisecond}, // huge n: the ceiling
		{64, 0.5, 2550 * time.Millisecond}, // min << 64 overflows: still the ceiling
		{1000, 0.999, 4995100 * time.Microsecond},
		{0, 0.5, 150 * time.Millisecond}, // n < 1 counts as the first attempt
		{1, 1, 100 * time.Millisecond},   // a source out of [0,1) is taken as 0
		{1, -0.5, 100 * time.Millisecond},
	}
	for _, tc := range cases {
		if got := backoff(tc.n, min, max, fixed(tc.r)); got != tc.want {
			t.Errorf("backoff(%d, r=%v) = %v, want %v", tc.n, tc.r, got, tc.want)
		}
	}
	// max below min: min is both.
	if got := backoff(3, time.Second, time.Millisecond, fixed(0.7)); got != time.Second {
		t.Errorf("backoff with max < min = %v, want 1s", got)
	}
}

// TestBackoffSpread draws many delays from a deterministic source and
// checks that every one is within bounds and that they spread over the
// whole range (jitter), for every attempt count.
func TestBackoffSpread(t *testing.T) {
	const min, max = 10 * time.Millisecond, 1 * time.Second
	// A fixed linear congruential sequence: reproducible, evenly spread.
	var x uint64 = 42
	rnd := func() float64 {
		x = x*6364136223846793005 + 1442695040888963407
		return float64(x>>11) / (1 << 53)
	}
	for n := 1; n <= 12; n++ {
		ceil := min << n
		if ceil > max {
			ceil = max
		}
		lo, hi := ceil, time.Duration(0)
		for range 2000 {
			d := backoff(n, min, max, rnd)
			if d < min || d > ceil {
				t.Fatalf("attempt %d: %v outside [%v, %v]", n, d, min, ceil)
			}
			lo, hi = minDur(lo, d), maxDur(hi, d)
		}
		span := ceil - min
		if lo > min+span/20 || hi < ceil-span/20 {
			t.Fatalf("attempt %d: delays span [%v, %v], want most of [%v, %v]", n, lo, hi, min, ceil)
		}
	}
}

func minDur(a, b time.Duration) time.Duration { return min(a, b) }
func maxDur(a, b time.Duration) time.Duration { return max(a, b) }

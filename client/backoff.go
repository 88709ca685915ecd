package client

import "time"

// backoff returns how long to wait before the n-th consecutive attempt to
// reconnect (n ≥ 1): a random duration, uniform between lo and
// min(hi, lo·2^n), drawn from rnd (uniform in [0, 1)). The floor keeps a
// failing server from being hammered; the jitter spreads the reconnections
// of many clients that lost the same server at once; the ceiling bounds the
// wait.
func backoff(n int, lo, hi time.Duration, rnd func() float64) time.Duration {
	if n < 1 {
		n = 1
	}
	if hi < lo {
		hi = lo
	}
	ceil := hi
	if n < 63 {
		if d := lo << n; d>>n == lo && d < hi {
			ceil = d
		}
	}
	r := rnd()
	if r < 0 || r >= 1 {
		r = 0
	}
	return lo + time.Duration(r*float64(ceil-lo))
}

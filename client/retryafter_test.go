package client

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"2", 2 * time.Second, true},
		{" 0 ", 0, true},
		{"299", 299 * time.Second, true},
		{"400", MaxRetryAfter, true},                     // capped
		{"99999999999999999999999", MaxRetryAfter, true}, // past uint64, still a number of seconds
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true}, // a date gone by: no wait
		{now.Add(time.Hour).Format(http.TimeFormat), MaxRetryAfter, true},
		{"", 0, false},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
	}
	for _, tc := range cases {
		got, ok := parseRetryAfter(tc.v, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

// TestWithRetryAfter: only a 503 or a 429 with a valid Retry-After asks
// for a wait, and the wrapped error is still the refusal.
func TestWithRetryAfter(t *testing.T) {
	now := time.Now()
	refusal := &websocket.HandshakeError{Check: websocket.CheckStatus, Status: 503, Reason: "busy"}
	answer := func(status int, ra string) *http.Response {
		h := http.Header{}
		if ra != "" {
			h.Set("Retry-After", ra)
		}
		return &http.Response{StatusCode: status, Header: h}
	}
	for _, tc := range []struct {
		resp *http.Response
		want time.Duration
		ok   bool
	}{
		{answer(503, "3"), 3 * time.Second, true},
		{answer(429, "1"), time.Second, true},
		{answer(500, "3"), 0, false},
		{answer(403, "3"), 0, false},
		{answer(503, ""), 0, false},
		{answer(503, "later"), 0, false},
		{nil, 0, false},
	} {
		err := withRetryAfter(refusal, tc.resp, now)
		got, ok := retryAfter(err)
		if got != tc.want || ok != tc.ok {
			t.Errorf("answer %+v: wait %v, %v; want %v, %v", tc.resp, got, ok, tc.want, tc.ok)
		}
		var he *websocket.HandshakeError
		if !errors.As(err, &he) || he != refusal || err.Error() != refusal.Error() {
			t.Errorf("answer %+v: error %v no longer the refusal", tc.resp, err)
		}
	}
	if err := withRetryAfter(nil, answer(503, "3"), now); err != nil {
		t.Errorf("no error became %v", err)
	}
}

func TestReconnectDelay(t *testing.T) {
	now := time.Now()
	half := func() float64 { return 0.5 }
	for _, tc := range []struct {
		backoff   time.Duration
		notBefore time.Time
		rnd       func() float64
		want      time.Duration
	}{
		{40 * time.Millisecond, time.Time{}, half, 40 * time.Millisecond},                    // no request
		{40 * time.Millisecond, now.Add(10 * time.Millisecond), half, 40 * time.Millisecond}, // the backoff is longer
		{40 * time.Millisecond, now.Add(-time.Second), half, 40 * time.Millisecond},          // gone by
		{40 * time.Millisecond, now.Add(time.Second), func() float64 { return 0 }, time.Second},
		{40 * time.Millisecond, now.Add(time.Second), half, 1100 * time.Millisecond}, // plus up to a fifth
	} {
		if got := reconnectDelay(tc.backoff, tc.notBefore, now, tc.rnd); got != tc.want {
			t.Errorf("reconnectDelay(%v, now%+v) = %v, want %v", tc.backoff, tc.notBefore.Sub(now), got, tc.want)
		}
	}
}

// TestNextAddress: fail-over goes round the addresses in order, past the
// ones a Retry-After holds back, and when all are held, to the one free
// soonest.
func TestNextAddress(t *testing.T) {
	now := time.Now()
	free, later, soon := time.Time{}, now.Add(time.Minute), now.Add(time.Second)
	for _, tc := range []struct {
		cur       int
		notBefore []time.Time
		want      int
	}{
		{0, []time.Time{free}, 0},
		{0, []time.Time{later}, 0}, // one address: it, held or not
		{0, []time.Time{free, free, free}, 1},
		{2, []time.Time{free, free, free}, 0},
		{0, []time.Time{later, later, free}, 2},                  // B held: on to C
		{1, []time.Time{later, free, free}, 2},                   // A held, after B comes C
		{2, []time.Time{later, free, free}, 1},                   // A held, after C comes B (not A)
		{0, []time.Time{later, later, soon}, 2},                  // all held: C is free soonest
		{0, []time.Time{soon, later, later}, 0},                  // all held: back to A
		{1, []time.Time{now.Add(-time.Second), later, later}, 0}, // A's wait is over
	} {
		if got := nextAddress(tc.cur, tc.notBefore, now); got != tc.want {
			t.Errorf("nextAddress(%d, %v) = %d, want %d", tc.cur, tc.notBefore, got, tc.want)
		}
	}
}

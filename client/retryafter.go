package client

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter caps the wait a server's Retry-After can impose on a
// reconnection, so that a misconfigured or hostile answer (Retry-After:
// 86400) cannot park a client for a day; past it the client tries again
// anyway, and the server can refuse again.
const MaxRetryAfter = 5 * time.Minute

// retryAfterError is a refused handshake whose answer (503 or 429) asked
// the client to wait before trying that address again. It unwraps to the
// refusal, so OnState and Err see the same error as without it.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// withRetryAfter wraps err, the failure of a dial answered by resp (nil
// when the dial got no answer), with the wait resp's Retry-After asks for:
// only on 503 Service Unavailable and 429 Too Many Requests (RFC 9110
// §10.2.3, RFC 6585 §4), where the Duplex server sends it for its
// connection and accept-rate limits.
func withRetryAfter(err error, resp *http.Response, now time.Time) error {
	if err == nil || resp == nil {
		return err
	}
	if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests {
		return err
	}
	d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), now)
	if !ok {
		return err
	}
	return &retryAfterError{err: err, after: d}
}

// parseRetryAfter reads a Retry-After value, delay-seconds or an HTTP-date
// (RFC 9110 §10.2.3), as a wait from now: never negative, at most
// MaxRetryAfter; ok is false for an empty or malformed value.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			if !errors.Is(err, strconv.ErrRange) {
				return 0, false
			}
			return MaxRetryAfter, true // all digits, too many of them
		}
		if secs >= uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter, true
		}
		d = time.Duration(secs) * time.Second
	} else {
		t, err := http.ParseTime(v)
		if err != nil {
			return 0, false
		}
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter), true
}

// retryAfter returns the wait err asks for before its address is dialled
// again (see withRetryAfter).
func retryAfter(err error) (time.Duration, bool) {
	var ra *retryAfterError
	if errors.As(err, &ra) {
		return ra.after, true
	}
	return 0, false
}

// reconnectDelay is the wait before the next attempt, to an address the
// server asked not to be dialled before notBefore (zero: no such request):
// the jittered backoff, or, when that is shorter, the rest of the server's
// wait plus up to a fifth of it more (drawn from rnd), so that the many
// clients one refusal turned away do not all come back in the same
// instant.
func reconnectDelay(backoffDelay time.Duration, notBefore, now time.Time, rnd func() float64) time.Duration {
	if notBefore.IsZero() {
		return backoffDelay
	}
	wait := notBefore.Sub(now)
	if wait <= backoffDelay {
		return backoffDelay
	}
	r := rnd()
	if r < 0 || r >= 1 {
		r = 0
	}
	return wait + time.Duration(r*float64(wait)/5)
}

// nextAddress picks the address of the next attempt after cur: the next
// one in order that no refusal holds back (notBefore passed), so that an
// address that asked for a wait does not delay the others; when every one
// is held back, the one free soonest.
func nextAddress(cur int, notBefore []time.Time, now time.Time) int {
	n := len(notBefore)
	soonest := (cur + 1) % n
	for k := 1; k <= n; k++ {
		i := (cur + k) % n
		if !notBefore[i].After(now) {
			return i
		}
		if notBefore[i].Before(notBefore[soonest]) {
			soonest = i
		}
	}
	return soonest
}

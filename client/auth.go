package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// The close codes with which a server that authenticates ends a
// connection (docs/protocol.md, "Authentication").
const (
	// CloseUnauthorized: the token sent with connect was refused (after
	// an *Error with CodeUnauthorized).
	CloseUnauthorized websocket.StatusCode = 4001
	// CloseTokenExpired: the connection's token expired before a newer
	// one replaced it.
	CloseTokenExpired websocket.StatusCode = 4002
)

// maxRefreshLead is the longest time before its expiry that a token is
// replaced; a short-lived token is replaced when a fifth of its life is
// left.
const maxRefreshLead = 10 * time.Second

// refreshRetry is how long the client waits before trying again a refresh
// that failed, while the token has not expired.
const refreshRetry = time.Second

// tokenState is the client's token and when it expires, as the server
// said.
type tokenState struct {
	mu      sync.Mutex // held across Options.RefreshToken, so it never runs twice at once
	token   string
	expires time.Time     // zero: unknown, or never
	lead    time.Duration // how long before expires to replace it
	stale   bool          // the server refused it, or it expired: fetch another
}

// tokenAnswer is the part of the connect and refresh answers about the
// token.
type tokenAnswer struct {
	TTL *int64 `json:"ttl"`
}

// setTTL records the expiry the server gave for the token now in use
// (t.mu held).
func (t *tokenState) setTTL(ttl *int64) {
	t.expires, t.lead = time.Time{}, 0
	if ttl == nil {
		return
	}
	life := time.Duration(*ttl) * time.Second
	t.expires = time.Now().Add(life)
	t.lead = min(maxRefreshLead, life/5)
}

// tokenFor returns the token to send with connect: Options.Token, or, with
// Options.RefreshToken, a fresh one when there is none yet, it was
// refused, or it expires within its refresh lead.
func (c *Client) tokenFor(ctx context.Context) (string, error) {
	t := &c.tok
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.opts.RefreshToken == nil {
		return t.token, nil
	}
	if t.token != "" && !t.stale && (t.expires.IsZero() || time.Until(t.expires) > t.lead) {
		return t.token, nil
	}
	tok, err := c.opts.RefreshToken(ctx)
	if err != nil {
		return "", fmt.Errorf("duplex: RefreshToken: %w", err)
	}
	t.token, t.stale, t.expires = tok, false, time.Time{}
	return tok, nil
}

// connected records the connect answer's ttl and, with
// Options.RefreshToken, keeps the token of cn fresh until cn ends.
func (c *Client) connected(cn *conn, res json.RawMessage) {
	var a tokenAnswer
	json.Unmarshal(res, &a)
	c.tok.mu.Lock()
	c.tok.setTTL(a.TTL)
	c.tok.mu.Unlock()
	if c.opts.RefreshToken != nil && a.TTL != nil {
		go c.keepFresh(cn)
	}
}

// keepFresh replaces cn's token with a fresh one (refresh) shortly before
// it expires, again and again, until cn ends. A failed refresh is tried
// again every second until the token expires; the server then closes the
// connection with CloseTokenExpired and the reconnection fetches a token.
func (c *Client) keepFresh(cn *conn) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		c.tok.mu.Lock()
		expires, lead := c.tok.expires, c.tok.lead
		c.tok.mu.Unlock()
		if expires.IsZero() {
			return
		}
		timer.Reset(time.Until(expires) - lead)
		select {
		case <-timer.C:
		case <-cn.done:
			return
		case <-c.ctx.Done():
			return
		}
		for {
			err := c.refresh(cn)
			if err == nil {
				break
			}
			if errors.Is(err, ErrDisconnected) || errors.Is(err, errNotSent) || c.ctx.Err() != nil {
				return
			}
			c.log.Warn("duplex: token refresh failed", "err", err)
			wait := min(refreshRetry, time.Until(expires))
			if wait <= 0 {
				return
			}
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-cn.done:
				return
			case <-c.ctx.Done():
				return
			}
		}
	}
}

// refresh fetches a token with Options.RefreshToken and sends it on cn.
func (c *Client) refresh(cn *conn) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.DialTimeout)
	defer cancel()
	t := &c.tok
	t.mu.Lock()
	defer t.mu.Unlock()
	tok, err := c.opts.RefreshToken(ctx)
	if err != nil {
		return fmt.Errorf("duplex: RefreshToken: %w", err)
	}
	res, err := cn.call(ctx, &command{Op: "refresh", Token: tok})
	if err != nil {
		return err
	}
	var a tokenAnswer
	json.Unmarshal(res, &a)
	t.token, t.stale = tok, false
	t.setTTL(a.TTL)
	return nil
}

// tokenRefused reports whether err, the end of a connection, says its
// token was refused or expired, and if so marks the token stale so that
// the next connection fetches another.
func (c *Client) tokenRefused(err error) bool {
	var e *Error
	refused := errors.As(err, &e) && e.Code == CodeUnauthorized
	switch websocket.CloseStatus(err) {
	case CloseUnauthorized, CloseTokenExpired:
		refused = true
	}
	if refused {
		c.tok.mu.Lock()
		c.tok.stale = true
		c.tok.mu.Unlock()
	}
	return refused
}

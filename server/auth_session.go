package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/duplex-ws/duplex/websocket"
)

// Authentication in the channel protocol (docs/protocol.md,
// "Authentication"): the error code of a refused token and the close codes
// of a refused and of an expired token.
const (
	codeUnauthorized = 111
	// CloseUnauthorized closes a connection whose connect command carried
	// a token the server refused (after error 111 answers it).
	CloseUnauthorized websocket.StatusCode = 4001
	// CloseTokenExpired closes a connection whose token expired without
	// being replaced by a refresh command.
	CloseTokenExpired websocket.StatusCode = 4002

	closeReasonUnauthorized = "invalid token"
	closeReasonTokenExpired = "token expired"
)

// connAuth is a connection's authentication: its identity (nil while
// anonymous) and the timer that closes it when the token expires.
type connAuth struct {
	mu          sync.Mutex
	id          *identity
	byHandshake bool // the token came with the upgrade request
	timer       *time.Timer
	gen         uint64 // counts set calls, so a superseded timer does nothing
	stopped     bool
}

// set makes id the connection's identity and arranges for expire to run
// when its token expires (never for a token without exp), instead of when
// the previous one would have.
func (ca *connAuth) set(id *identity, expire func()) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if ca.timer != nil {
		ca.timer.Stop()
		ca.timer = nil
	}
	ca.gen++
	ca.id = id
	if id == nil || id.expires.IsZero() || ca.stopped {
		return
	}
	gen := ca.gen
	ca.timer = time.AfterFunc(time.Until(id.expires), func() {
		ca.mu.Lock()
		current := ca.gen == gen && !ca.stopped
		ca.mu.Unlock()
		if current {
			expire()
		}
	})
}

// identity returns the connection's identity, nil while anonymous.
func (ca *connAuth) identity() *identity {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.id
}

// stop cancels the expiry timer for good.
func (ca *connAuth) stop() {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.stopped = true
	if ca.timer != nil {
		ca.timer.Stop()
	}
}

// ttl returns the whole seconds the connection's token has left, or nil
// when it does not expire.
func (ca *connAuth) ttl() *int64 {
	id := ca.identity()
	if id == nil || id.expires.IsZero() {
		return nil
	}
	s := max(int64(time.Until(id.expires)/time.Second), 0)
	return &s
}

// sessionEnd is a close a command decided on (a refused token), made once
// the answers queued before it are written.
type sessionEnd struct {
	code   websocket.StatusCode
	reason string
}

func (e *sessionEnd) Error() string { return e.reason }

// startAuth gives the session the identity of its upgrade request's token
// (nil for none).
func (s *session) startAuth(id *identity) {
	if id != nil {
		s.auth.byHandshake = true
		s.client.User = id.user
	}
	s.auth.set(id, s.tokenExpired)
}

// tokenExpired closes the connection with CloseTokenExpired; it runs on
// the expiry timer's goroutine.
func (s *session) tokenExpired() {
	s.rec.sent(CloseTokenExpired, closeReasonTokenExpired)
	s.closeWith(CloseTokenExpired, closeReasonTokenExpired)
}

// authorize reports why the connection may not do op on channel, or nil.
func (s *session) authorize(op operation, channel string) *protoError {
	if s.h.Auth == nil {
		return nil
	}
	return s.h.Auth.authorize(s.h.Hub, s.auth.identity(), op, channel)
}

// connectAuth applies the token of a connect command and sets *user to the
// connection's user: the token's sub when there is a token (the one of the
// upgrade request, or this one), "" for an anonymous connection of a
// server that authenticates. A server that does not authenticate ignores
// the token and keeps the user the client gave. A token that is refused
// is answered with error 111 and the connection is then closed with
// CloseUnauthorized.
func (s *session) connectAuth(ctx context.Context, token string, user *string) *protoError {
	a := s.h.Auth
	if a == nil {
		return nil
	}
	if token == "" {
		*user = ""
		if id := s.auth.identity(); id != nil {
			*user = id.user
		}
		return nil
	}
	if s.auth.byHandshake {
		return &protoError{Code: codeConnectNotAllowed, Message: "the connection is already authenticated by the token of its upgrade request; send refresh to replace it"}
	}
	id, err := a.verify(ctx, token)
	if err != nil {
		s.end = &sessionEnd{code: CloseUnauthorized, reason: closeReasonUnauthorized}
		return &protoError{Code: codeUnauthorized, Message: err.Error()}
	}
	s.auth.set(id, s.tokenExpired)
	*user = id.user
	return nil
}

// refreshResult is the answer to refresh.
type refreshResult struct {
	TTL *int64 `json:"ttl,omitempty"`
}

// refresh replaces the connection's token with a newer one of the same
// user, so that the connection lives until the new token expires. A token
// that is refused leaves the connection as it was (it still closes when
// the old token expires).
func (s *session) refresh(ctx context.Context, cmd *command) (any, *protoError) {
	a := s.h.Auth
	if a == nil {
		return refreshResult{}, nil // nothing expires on a server that does not authenticate
	}
	if cmd.Token == "" {
		return nil, badRequest("refresh needs a token")
	}
	cur := s.auth.identity()
	if cur == nil {
		return nil, &protoError{Code: codeUnauthorized, Message: "refresh needs a connection authenticated by a token (send it with connect)"}
	}
	id, err := a.verify(ctx, cmd.Token)
	if err != nil {
		return nil, &protoError{Code: codeUnauthorized, Message: err.Error()}
	}
	if id.user != cur.user {
		return nil, &protoError{Code: codeUnauthorized, Message: fmt.Sprintf("the token is for user %q, the connection's is %q", id.user, cur.user)}
	}
	s.auth.set(id, s.tokenExpired)
	return refreshResult{TTL: s.auth.ttl()}, nil
}

package client_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/duplex-ws/duplex/client"
	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/websocket"
)

const authSecret = "0123456789abcdef0123456789abcdef-client"

// startAuthServer serves a server that authenticates with authSecret; its
// namespaces refuse anonymous clients.
func startAuthServer(t *testing.T) *testServer {
	t.Helper()
	return serveConfig(t, "127.0.0.1:0", server.Config{Auth: server.AuthConfig{HMACSecret: authSecret}})
}

// token signs a token of user expiring at exp.
func token(t testing.TB, user string, exp time.Time) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": user, "exp": exp.Unix()}).SignedString([]byte(authSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTokenConnects: Options.Token authenticates: presence shows the
// token's user, not the one the client claims.
func TestTokenConnects(t *testing.T) {
	ts := startAuthServer(t)
	r := newRecorder()
	c := newClient(t, ts.url, r, &client.Options{User: "mallory", Token: token(t, "alice", time.Now().Add(time.Hour))})
	ctx := testContext(t)
	if _, err := c.Subscribe(ctx, "news", r.onMessage, r.subOpts()); err != nil {
		t.Fatal(err)
	}
	who, err := c.Presence(ctx, "news")
	if err != nil || len(who) != 1 || who[0].User != "alice" || who[0].Client != c.ClientID() {
		t.Fatalf("presence %+v, %v; want alice", who, err)
	}
}

// TestTokenRefusedStops: without RefreshToken, a refused token stops the
// client with error 111, and an expired one with close 4002.
func TestTokenRefusedStops(t *testing.T) {
	t.Parallel()
	ts := startAuthServer(t)
	r := newRecorder()
	newClient(t, ts.url, r, &client.Options{Token: token(t, "alice", time.Now().Add(-time.Hour))})
	err := r.waitState(t, client.StateConnecting)
	if err != nil {
		t.Fatal(err)
	}
	ev := recv(t, r.states, "a state")
	var e *client.Error
	if ev.state != client.StateClosed || !errors.As(ev.err, &e) || e.Code != client.CodeUnauthorized || e.Message != "token expired at "+time.Unix(time.Now().Add(-time.Hour).Unix(), 0).UTC().Format(time.RFC3339) {
		t.Fatalf("got %v %v, want closed with error 111 token expired", ev.state, ev.err)
	}

	r2 := newRecorder()
	c := newClient(t, ts.url, r2, &client.Options{Token: token(t, "bob", time.Now().Add(2*time.Second))})
	r2.waitState(t, client.StateConnected)
	ev = recv(t, r2.states, "a state")
	if ev.state != client.StateClosed || websocket.CloseStatus(ev.err) != client.CloseTokenExpired {
		t.Fatalf("got %v %v, want closed with 4002", ev.state, ev.err)
	}
	if err := c.Ping(testContext(t)); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Ping after expiry: %v, want ErrClosed", err)
	}
}

// TestRefreshTokenKeepsConnection: with RefreshToken, the client sends a
// fresh token before each one expires: the connection outlives several
// short tokens, and the server never closes it.
func TestRefreshTokenKeepsConnection(t *testing.T) {
	t.Parallel()
	ts := startAuthServer(t)
	var calls atomic.Int64
	called := make(chan struct{}, 100)
	r := newRecorder()
	c := newClient(t, ts.url, r, &client.Options{
		Token: token(t, "alice", time.Now().Add(2*time.Second)),
		RefreshToken: func(ctx context.Context) (string, error) {
			calls.Add(1)
			called <- struct{}{}
			return token(t, "alice", time.Now().Add(2*time.Second)), nil
		},
	})
	r.waitState(t, client.StateConnected)
	for range 3 {
		recv(t, called, "a token refresh")
	}
	// Three tokens of at most 2 s each have come and gone: still the first
	// connection.
	if err := c.Ping(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if n := ts.l.count(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
	select {
	case ev := <-r.states:
		t.Fatalf("state %v %v, want none after connected", ev.state, ev.err)
	default:
	}
}

// TestRefreshTokenOnReconnect: RefreshToken gives the first token when
// Options.Token is empty, replaces one the server refuses, and is not
// called again when a connection merely drops with a token still fresh.
func TestRefreshTokenOnReconnect(t *testing.T) {
	ts := startAuthServer(t)
	tokens := make(chan string, 10)
	tokens <- "not a token"
	tokens <- token(t, "alice", time.Now().Add(time.Hour))
	var calls atomic.Int64
	r := newRecorder()
	c := newClient(t, ts.url, r, &client.Options{RefreshToken: func(ctx context.Context) (string, error) {
		calls.Add(1)
		select {
		case tok := <-tokens:
			return tok, nil
		default:
			return "", errors.New("no more tokens")
		}
	}})
	err := r.waitState(t, client.StateDisconnected)
	var e *client.Error
	if !errors.As(err, &e) || e.Code != client.CodeUnauthorized {
		t.Fatalf("first connection ended with %v, want error 111", err)
	}
	r.waitState(t, client.StateConnected)
	if n := calls.Load(); n != 2 {
		t.Fatalf("RefreshToken called %d times, want 2", n)
	}
	ts.l.kill()
	r.waitState(t, client.StateDisconnected)
	r.waitState(t, client.StateConnected)
	if n := calls.Load(); n != 2 {
		t.Fatalf("RefreshToken called %d times after a drop, want still 2", n)
	}
	if _, err := c.Subscribe(testContext(t), "news", r.onMessage, nil); err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/duplex-ws/duplex/websocket"
)

// TestServeAuthSettings checks the auth settings end to end: with
// --auth-hmac-secret a client without a token is refused in the default
// namespace and let in where --namespace says anonymous=on, a token in
// the query gets the user its sub names; --api-keys gives a key limited to
// publishing in one namespace.
func TestServeAuthSettings(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	_, addr := startServe(t, "--auth-hmac-secret", secret, "--namespace", "pub:anonymous=on",
		"--api-keys", "name=feed,key=feed-0123456789abcdef,ops=publish,channels=pub:*")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call := func(c *websocket.Conn, cmd, want string) {
		t.Helper()
		if err := c.Write(ctx, websocket.MessageText, []byte(cmd)); err != nil {
			t.Fatal(err)
		}
		_, p, err := c.Read(ctx)
		if err != nil || !strings.HasPrefix(string(p), want) {
			t.Fatalf("answer to %s: %s %v, want %s…", cmd, p, err, want)
		}
	}
	dial := func(query string) *websocket.Conn {
		t.Helper()
		c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws"+query, &websocket.DialOptions{Subprotocols: []string{"duplex.v1"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseNow() })
		return c
	}
	anon := dial("")
	call(anon, `{"id":1,"op":"subscribe","channel":"news"}`, `{"id":1,"error":{"code":105,"message":"the default namespace refuses anonymous connections: connect with a token"}}`)
	call(anon, `{"id":2,"op":"subscribe","channel":"pub:x"}`, `{"id":2,"result":{"recovered":false,"offset":0,"epoch":"`)

	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	alice := dial("?token=" + tok)
	call(alice, `{"id":1,"op":"connect"}`, `{"id":1,"result":{"client":"`)
	call(alice, `{"id":2,"op":"subscribe","channel":"news"}`, `{"id":2,"result":{"recovered":false,"offset":0,"epoch":"`)

	publish := func(channel string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/api/publish", strings.NewReader(`{"channel":"`+channel+`","data":1}`))
		req.Header.Set("Authorization", "apikey feed-0123456789abcdef")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := publish("pub:x"); status != 200 || !strings.HasPrefix(body, `{"offset":1,`) {
		t.Fatalf("feed publishes to pub:x: %d %s", status, body)
	}
	if status, body := publish("news"); status != 403 || body != "{\"error\":{\"code\":105,\"message\":\"API key \\\"feed\\\" may not publish to \\\"news\\\"\"}}\n" {
		t.Fatalf("feed publishes to news: %d %s", status, body)
	}
}

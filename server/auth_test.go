package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/duplex-ws/duplex/pubsub"
	"github.com/duplex-ws/duplex/server"
	"github.com/duplex-ws/duplex/websocket"
)

// testSecret is the HS256 secret of the test servers.
const testSecret = "0123456789abcdef0123456789abcdef-test"

// Keys of the tests, made once: RSA keys take a while to generate.
var (
	rsaKey      = sync.OnceValue(func() *rsa.PrivateKey { return genRSA() })
	rsaKey2     = sync.OnceValue(func() *rsa.PrivateKey { return genRSA() })
	rsaKeyOther = sync.OnceValue(func() *rsa.PrivateKey { return genRSA() })
	ecKey       = sync.OnceValue(func() *ecdsa.PrivateKey { return genEC(elliptic.P256()) })
	ecKeyOther  = sync.OnceValue(func() *ecdsa.PrivateKey { return genEC(elliptic.P256()) })
)

func genRSA() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

func genEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// sign returns a token of claims signed with method and key, with a kid
// header when kid is not "".
func sign(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claimsFor returns the claims of user's token expiring after ttl.
func claimsFor(user string, ttl time.Duration) jwt.MapClaims {
	return jwt.MapClaims{"sub": user, "exp": time.Now().Add(ttl).Unix()}
}

// pemFile writes the public key of k to a PEM file and returns its path.
func pemFile(t testing.TB, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// authNamespaces are the namespaces of the auth tests: the default one and
// news refuse anonymous connections, pub lets them in; clients publish in
// all three.
func authNamespaces() map[string]pubsub.NamespaceOptions {
	open := pubsub.DefaultNamespace
	open.Anonymous = true
	return map[string]pubsub.NamespaceOptions{
		"":     pubsub.DefaultNamespace,
		"news": pubsub.DefaultNamespace,
		"chat": server.DefaultNamespaces()[server.ChatNamespace],
		"pub":  open,
	}
}

// startAuthServer serves with auth (and the auth namespaces unless cfg
// has some).
func startAuthServer(t *testing.T, cfg server.Config) *testServer {
	t.Helper()
	if cfg.Namespaces == nil {
		cfg.Namespaces = authNamespaces()
	}
	return startServer(t, cfg)
}

// dialWith opens a duplex.v1 connection to path with extra headers.
func (ts *testServer) dialWith(ctx context.Context, t testing.TB, path string, header http.Header) *wsClient {
	t.Helper()
	var tcp net.Conn
	opts := dialOptions(&tcp, 0, server.Subprotocol)
	opts.Header = header
	c, resp, err := websocket.Dial(ctx, ts.ws+path, opts)
	if err != nil {
		body := ""
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
		}
		t.Fatalf("dial %s: %v %s", path, err, body)
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, ctx: ctx, conn: c, tcp: tcp}
}

// dialRefused dials path offering subprotocols (none: a plain client),
// expects the upgrade to be refused, and returns the status, the
// WWW-Authenticate header and the body.
func (ts *testServer) dialRefused(ctx context.Context, t testing.TB, path string, header http.Header, subprotocols ...string) (int, string, string) {
	t.Helper()
	var tcp net.Conn
	opts := dialOptions(&tcp, 0, subprotocols...)
	opts.Header = header
	c, resp, err := websocket.Dial(ctx, ts.ws+path, opts)
	if err == nil {
		c.CloseNow()
		t.Fatalf("dial %s succeeded, want it refused", path)
	}
	if resp == nil {
		t.Fatalf("dial %s: %v, without a response", path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)
}

// connectResult is the result of a connect answer.
type connectResult struct {
	Client  string `json:"client"`
	User    string `json:"user"`
	Version string `json:"version"`
	TTL     *int64 `json:"ttl"`
}

// checkConnect checks that got is exactly the answer to connect id for
// user, with a ttl in [minTTL, maxTTL] (maxTTL < 0: no ttl), and returns
// it.
func checkConnect(t testing.TB, got string, id int, user string, minTTL, maxTTL int64) connectResult {
	t.Helper()
	f := parseFrame(t, got)
	var r connectResult
	if f.Result == nil || json.Unmarshal(f.Result, &r) != nil {
		t.Fatalf("got %s, want a connect answer", got)
	}
	ttl := ""
	if maxTTL >= 0 {
		if r.TTL == nil || *r.TTL < minTTL || *r.TTL > maxTTL {
			t.Fatalf("got %s, want a ttl from %d to %d", got, minTTL, maxTTL)
		}
		ttl = fmt.Sprintf(`,"ttl":%d`, *r.TTL)
	}
	want := fmt.Sprintf(`{"id":%d,"result":{"client":%q,"user":%q,"version":"test"%s}}`, id, r.Client, user, ttl)
	if got != want || r.Client == "" {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	return r
}

// expectEnd checks that the connection is closed with code and reason,
// whatever messages came before (pushes of other tests' traffic).
func (c *wsClient) expectEnd(code websocket.StatusCode, reason string) {
	c.t.Helper()
	for {
		_, _, err := c.conn.Read(c.ctx)
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != code || ce.Reason != reason {
			c.t.Fatalf("connection ended with %v, want close %d %q", err, code, reason)
		}
		return
	}
}

// TestAuthAlgorithms: a token signed with each kind of key is accepted in
// each place a token may come (the token query parameter, an
// Authorization: Bearer header, the connect command), and the connection's
// user is the token's sub whatever user the client claims.
func TestAuthAlgorithms(t *testing.T) {
	ctx := testContext(t)
	ts := startAuthServer(t, server.Config{Auth: server.AuthConfig{
		HMACSecret:     testSecret,
		PublicKeyFiles: []string{pemFile(t, &rsaKey().PublicKey), pemFile(t, &ecKey().PublicKey)},
	}})
	tokens := map[string]string{
		"HS256": sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claimsFor("alice", time.Hour)),
		"RS256": sign(t, jwt.SigningMethodRS256, rsaKey(), "", claimsFor("alice", time.Hour)),
		"ES256": sign(t, jwt.SigningMethodES256, ecKey(), "", claimsFor("alice", time.Hour)),
	}
	for alg, tok := range tokens {
		t.Run(alg, func(t *testing.T) {
			// In the query, without connect: presence shows the token's user.
			c := ts.dialWith(ctx, t, "/ws?token="+tok, nil)
			c.subscribe(1, "news:"+alg+"q")
			join := parseFrame(t, c.next())
			var who struct{ Client, User string }
			json.Unmarshal(join.Client, &who)
			if who.User != "alice" || string(join.Client) != fmt.Sprintf(`{"client":%q,"user":"alice"}`, who.Client) {
				t.Fatalf("join %s, want user alice", join.Client)
			}

			// In a header, with connect claiming another user.
			c = ts.dialWith(ctx, t, "/ws", http.Header{"Authorization": {"Bearer " + tok}})
			r := checkConnect(t, c.call(`{"id":1,"op":"connect","user":"mallory"}`), 1, "alice", 3590, 3600)
			c.subscribe(2, "news:"+alg+"h")
			c.expect(fmt.Sprintf(`{"op":"join","channel":"news:%sh","client":{"client":%q,"user":"alice"}}`, alg, r.Client))
			c.expectCall(fmt.Sprintf(`{"id":3,"op":"presence","channel":"news:%sh"}`, alg), fmt.Sprintf(`{"id":3,"result":{"clients":[{"client":%q,"user":"alice"}]}}`, r.Client))

			// In connect.
			c = ts.dial(ctx, t)
			checkConnect(t, c.call(fmt.Sprintf(`{"id":1,"op":"connect","user":"mallory","token":%q}`, tok)), 1, "alice", 3590, 3600)
			c.subscribe(2, "news:"+alg+"c")
		})
	}
}

// TestAuthRefused: every kind of bad token gets 401 with its reason before
// the upgrade, and, in the connect command, error 111 with the same
// reason and then close 4001.
func TestAuthRefused(t *testing.T) {
	ctx := testContext(t)
	rsaPEM := pemFile(t, &rsaKey().PublicKey)
	ts := startAuthServer(t, server.Config{Auth: server.AuthConfig{
		HMACSecret:     testSecret,
		PublicKeyFiles: []string{rsaPEM},
	}})
	// A server with only the RSA key: the classic confusion is an HS256
	// token whose secret is the RSA public key's PEM.
	rsaOnly := startAuthServer(t, server.Config{Auth: server.AuthConfig{PublicKeyFiles: []string{rsaPEM}}})
	pemBytes, err := os.ReadFile(rsaPEM)
	if err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	exp := now.Add(-time.Minute).Unix()
	nbf := now.Add(time.Hour).Unix()
	stamp := func(unix int64) string { return time.Unix(unix, 0).UTC().Format(time.RFC3339) }
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", c) }
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claimsFor("alice", time.Hour)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		ts     *testServer
		token  string
		reason string
	}{
		{"expired", ts, hs(jwt.MapClaims{"sub": "alice", "exp": exp}), "token expired at " + stamp(exp)},
		{"not yet valid", ts, hs(jwt.MapClaims{"sub": "alice", "nbf": nbf, "exp": nbf + 60}), "token is not valid before " + stamp(nbf)},
		{"wrong secret", ts, sign(t, jwt.SigningMethodHS256, []byte("another secret, another secret!!"), "", claimsFor("alice", time.Hour)), "token signature is invalid"},
		{"wrong RSA key", ts, sign(t, jwt.SigningMethodRS256, rsaKeyOther(), "", claimsFor("alice", time.Hour)), "token signature is invalid"},
		{"no key for ES256", ts, sign(t, jwt.SigningMethodES256, ecKey(), "", claimsFor("alice", time.Hour)), `token alg "ES256" is not accepted (this server takes HS256, RS256)`},
		{"HS512", ts, sign(t, jwt.SigningMethodHS512, []byte(testSecret), "", claimsFor("alice", time.Hour)), `token alg "HS512" is not accepted (this server takes HS256, RS256)`},
		{"none", ts, none, `token alg "none" is not accepted (this server takes HS256, RS256)`},
		{"HS256 with the RSA key as secret", rsaOnly, sign(t, jwt.SigningMethodHS256, pemBytes, "", claimsFor("alice", time.Hour)), `token alg "HS256" is not accepted (this server takes RS256)`},
		{"no sub", ts, hs(jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}), "token has no sub claim (the user id)"},
		{"malformed", ts, "abc", "token is malformed: token contains an invalid number of segments"},
		{"bad channels claim", ts, hs(jwt.MapClaims{"sub": "alice", "channels": "all"}), `token claim channels is not {"subscribe":[patterns…],"publish":[patterns…]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, challenge, body := tc.ts.dialRefused(ctx, t, "/ws?token="+tc.token, nil, server.Subprotocol)
			if status != http.StatusUnauthorized || challenge != `Bearer realm="duplex", error="invalid_token"` || body != "Unauthorized: "+tc.reason+"\n" {
				t.Errorf("query token: %d %q %q\nwant 401 %q", status, challenge, body, "Unauthorized: "+tc.reason+"\n")
			}
			status, _, body = tc.ts.dialRefused(ctx, t, "/ws", http.Header{"Authorization": {"bearer " + tc.token}}, server.Subprotocol)
			if status != http.StatusUnauthorized || body != "Unauthorized: "+tc.reason+"\n" {
				t.Errorf("header token: %d %q", status, body)
			}
			c := tc.ts.dial(ctx, t)
			want, _ := json.Marshal(tc.reason)
			c.expectCall(fmt.Sprintf(`{"id":1,"op":"connect","token":%q}`, tc.token), fmt.Sprintf(`{"id":1,"error":{"code":111,"message":%s}}`, want))
			c.expectClose(server.CloseUnauthorized, "invalid token")
		})
	}
}

// jwksServer serves a JWKS on 127.0.0.1 whose keys the test replaces, and
// counts the fetches.
type jwksServer struct {
	url     string
	fetches atomic.Int64
	mu      sync.Mutex
	body    []byte
}

func startJWKS(t *testing.T) *jwksServer {
	t.Helper()
	js := &jwksServer{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js.fetches.Add(1)
		js.mu.Lock()
		b := js.body
		js.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})}}
	srv.Start()
	t.Cleanup(srv.Close)
	js.url = srv.URL + "/.well-known/jwks.json"
	return js
}

// set makes the JWKS hold keys, by kid, with their alg when algs has one.
func (js *jwksServer) set(t testing.TB, keys map[string]any, algs map[string]jwkset.ALG) {
	t.Helper()
	st := jwkset.NewMemoryStorage()
	for kid, k := range keys {
		jwk, err := jwkset.NewJWKFromKey(k, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: algs[kid]}})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.KeyWrite(context.Background(), jwk); err != nil {
			t.Fatal(err)
		}
	}
	b, err := st.JSONPublic(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	js.mu.Lock()
	js.body = b
	js.mu.Unlock()
}

// jwksClient fetches the test JWKS without any proxy.
var jwksClient = &http.Client{Transport: &http.Transport{Proxy: noProxy}, Timeout: 10 * time.Second}

// connectWith sends connect with token on a new connection and returns
// the answer.
func (ts *testServer) connectWith(ctx context.Context, t testing.TB, token string) (*wsClient, string) {
	t.Helper()
	c := ts.dial(ctx, t)
	return c, c.call(fmt.Sprintf(`{"id":1,"op":"connect","token":%q}`, token))
}

// TestAuthJWKSRotation: keys come from a JWKS by kid; a token with a kid
// the set lacks makes the server fetch it again, so a key rotated in is
// accepted without a restart and the key rotated out is refused; a key is
// used only with its own algorithm.
func TestAuthJWKSRotation(t *testing.T) {
	ctx := testContext(t)
	js := startJWKS(t)
	js.set(t, map[string]any{"k1": &rsaKey().PublicKey, "e1": &ecKey().PublicKey}, map[string]jwkset.ALG{"k1": jwkset.AlgRS256})
	ts := startAuthServer(t, server.Config{Auth: server.AuthConfig{JWKSURL: js.url, JWKSClient: jwksClient, JWKSRefresh: time.Hour, JWKSUnknownKID: time.Hour}})
	if n := js.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches at start, want 1", n)
	}
	tok1 := sign(t, jwt.SigningMethodRS256, rsaKey(), "k1", claimsFor("alice", time.Hour))
	_, got := ts.connectWith(ctx, t, tok1)
	checkConnect(t, got, 1, "alice", 3590, 3600)
	_, got = ts.connectWith(ctx, t, sign(t, jwt.SigningMethodES256, ecKey(), "e1", claimsFor("bob", time.Hour)))
	checkConnect(t, got, 1, "bob", 3590, 3600)

	refused := func(token, reason string) {
		t.Helper()
		c, got := ts.connectWith(ctx, t, token)
		want, _ := json.Marshal(reason)
		if w := fmt.Sprintf(`{"id":1,"error":{"code":111,"message":%s}}`, want); got != w {
			t.Fatalf("got  %s\nwant %s", got, w)
		}
		c.expectClose(server.CloseUnauthorized, "invalid token")
	}
	// Pinned algorithms: the RSA key with ES256, the EC key (no alg in
	// the set) with RS256, and a token without kid.
	refused(sign(t, jwt.SigningMethodES256, ecKey(), "k1", claimsFor("alice", time.Hour)), `token alg ES256 does not match the alg RS256 of JWKS key "k1"`)
	refused(sign(t, jwt.SigningMethodRS256, rsaKey(), "e1", claimsFor("alice", time.Hour)), `JWKS key "e1" verifies ES256, not the token's RS256`)
	refused(sign(t, jwt.SigningMethodRS256, rsaKey(), "", claimsFor("alice", time.Hour)), "token has no kid to choose a JWKS key with")
	refused(sign(t, jwt.SigningMethodRS256, rsaKeyOther(), "k1", claimsFor("alice", time.Hour)), "token signature is invalid")
	if n := js.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want still 1", n)
	}

	// Rotation: k2 replaces k1 in the set.
	js.set(t, map[string]any{"k2": &rsaKey2().PublicKey}, nil)
	_, got = ts.connectWith(ctx, t, sign(t, jwt.SigningMethodRS256, rsaKey2(), "k2", claimsFor("carol", time.Hour)))
	checkConnect(t, got, 1, "carol", 3590, 3600)
	if n := js.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after the unknown kid k2, want 2", n)
	}
	refused(tok1, `token kid "k1" is not in the JWKS`)
	// The fetch on unknown kids is rate limited: k1 did not cause one.
	refused(sign(t, jwt.SigningMethodRS256, rsaKey(), "k9", claimsFor("alice", time.Hour)), `token kid "k9" is not in the JWKS`)
	if n := js.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want still 2 (one per JWKSUnknownKID)", n)
	}
	// Before the upgrade too.
	status, _, body := ts.dialRefused(ctx, t, "/ws?token="+tok1, nil, server.Subprotocol)
	if status != http.StatusUnauthorized || body != "Unauthorized: token kid \"k1\" is not in the JWKS\n" {
		t.Fatalf("old kid before the upgrade: %d %q", status, body)
	}
}

// TestAuthJWKSPeriodicRefresh: the JWKS is fetched every JWKSRefresh, so
// a key removed from the set is refused afterwards even though its kid was
// known, and one added is accepted without a fetch of its own.
func TestAuthJWKSPeriodicRefresh(t *testing.T) {
	ctx := testContext(t)
	js := startJWKS(t)
	js.set(t, map[string]any{"k1": &rsaKey().PublicKey}, nil)
	ts := startAuthServer(t, server.Config{Auth: server.AuthConfig{JWKSURL: js.url, JWKSClient: jwksClient, JWKSRefresh: 100 * time.Millisecond, JWKSUnknownKID: time.Hour}})
	tok1 := sign(t, jwt.SigningMethodRS256, rsaKey(), "k1", claimsFor("alice", time.Hour))
	_, got := ts.connectWith(ctx, t, tok1)
	checkConnect(t, got, 1, "alice", 3590, 3600)

	js.set(t, map[string]any{"k2": &rsaKey2().PublicKey}, nil)
	before := js.fetches.Load()
	for js.fetches.Load() < before+2 { // a whole fetch after the change
		select {
		case <-ctx.Done():
			t.Fatal("the JWKS was not fetched again")
		case <-time.After(20 * time.Millisecond):
		}
	}
	c, got := ts.connectWith(ctx, t, tok1)
	if want := `{"id":1,"error":{"code":111,"message":"token kid \"k1\" is not in the JWKS"}}`; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	c.expectClose(server.CloseUnauthorized, "invalid token")
	_, got = ts.connectWith(ctx, t, sign(t, jwt.SigningMethodRS256, rsaKey2(), "k2", claimsFor("carol", time.Hour)))
	checkConnect(t, got, 1, "carol", 3590, 3600)
}

// TestAuthChannelPermissions: a token's channels claim limits subscribe
// (and presence and history) and publish to the channels its patterns
// match; anything else is error 105.
func TestAuthChannelPermissions(t *testing.T) {
	ctx := testContext(t)
	ts := startAuthServer(t, server.Config{Auth: server.AuthConfig{HMACSecret: testSecret}})
	claims := claimsFor("alice", time.Hour)
	claims["channels"] = map[string]any{"subscribe": []string{"news:*", "chat:lobby"}, "publish": []string{"chat:*"}}
	c := ts.dialWith(ctx, t, "/ws?token="+sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claims), nil)

	c.expectCall(`{"id":1,"op":"subscribe","channel":"chat:secret"}`, `{"id":1,"error":{"code":105,"message":"user \"alice\" may not subscribe to \"chat:secret\""}}`)
	c.expectCall(`{"id":2,"op":"subscribe","channel":"other"}`, `{"id":2,"error":{"code":105,"message":"user \"alice\" may not subscribe to \"other\""}}`)
	c.expectCall(`{"id":3,"op":"publish","channel":"news:a","data":1}`, `{"id":3,"error":{"code":105,"message":"user \"alice\" may not publish to \"news:a\""}}`)
	c.expectCall(`{"id":4,"op":"history","channel":"chat:secret"}`, `{"id":4,"error":{"code":105,"message":"user \"alice\" may not read \"chat:secret\": presence and history need subscribe permission"}}`)
	c.expectCall(`{"id":5,"op":"presence","channel":"chat:secret"}`, `{"id":5,"error":{"code":105,"message":"user \"alice\" may not read \"chat:secret\": presence and history need subscribe permission"}}`)
	// Invalid names and unknown namespaces keep their own errors.
	c.expectCall(`{"id":6,"op":"subscribe","channel":"x:a"}`, `{"id":6,"error":{"code":104,"message":"unknown namespace \"x\" (channel \"x:a\")"}}`)

	r := c.subscribe(7, "news:a.b")
	c.next() // the join
	checkPublished(t, c.call(`{"id":8,"op":"publish","channel":"chat:secret","data":"hi"}`), 8, 1)
	c.subscribe(9, "chat:lobby")
	c.next() // the join
	pos := ts.publishAPI(t, "news:a.b", `"x"`)
	c.expect(push("news:a.b", pos.Offset, r.Epoch, `"x"`))
	// A channel of a namespace open to anonymous connections is open to
	// every token.
	c.subscribe(10, "pub:y")
	c.next() // the join
	checkPublished(t, c.call(`{"id":11,"op":"publish","channel":"pub:x","data":2}`), 11, 1)
}

// checkPublished checks that got is exactly the answer to publish id
// with offset.
func checkPublished(t testing.TB, got string, id int, offset uint64) {
	t.Helper()
	var r struct {
		Result struct{ Epoch string }
	}
	json.Unmarshal([]byte(got), &r)
	if want := fmt.Sprintf(`{"id":%d,"result":{"offset":%d,"epoch":%q}}`, id, offset, r.Result.Epoch); got != want || r.Result.Epoch == "" {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestAuthExpiry: at its token's expiry a connection is closed with 4002,
// and one that sent refresh with a newer token of the same user before
// then lives on; another connection is unaffected. A refresh with a bad
// token, or another user's, is refused with 111 and changes nothing.
func TestAuthExpiry(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ts := startAuthServer(t, server.Config{Auth: server.AuthConfig{HMACSecret: testSecret}})
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", c) }
	now := time.Now()
	shortExp := now.Add(2 * time.Second).Unix()

	// expiring: no refresh, expires a second after refreshed's first token.
	expiring := ts.dialWith(ctx, t, "/ws?token="+hs(jwt.MapClaims{"sub": "alice", "exp": shortExp + 1}), nil)
	expiring.subscribe(1, "news:e")
	expiring.next() // the join
	// refreshed: connect with a short token, then refresh.
	refreshed, got := ts.connectWith(ctx, t, hs(jwt.MapClaims{"sub": "bob", "exp": shortExp}))
	checkConnect(t, got, 1, "bob", 0, 2)
	// other: a token of an hour.
	other, got := ts.connectWith(ctx, t, hs(claimsFor("carol", time.Hour)))
	checkConnect(t, got, 1, "carol", 3590, 3600)
	// anon: anonymous, in a namespace open to it.
	anon := ts.dial(ctx, t)
	anon.subscribe(1, "pub:x")
	anon.next() // the join

	refreshed.expectCall(fmt.Sprintf(`{"id":2,"op":"refresh","token":%q}`, hs(claimsFor("carol", time.Hour))), `{"id":2,"error":{"code":111,"message":"the token is for user \"carol\", the connection's is \"bob\""}}`)
	refreshed.expectCall(fmt.Sprintf(`{"id":3,"op":"refresh","token":%q}`, hs(jwt.MapClaims{"sub": "bob", "exp": now.Add(-time.Minute).Unix()})), fmt.Sprintf(`{"id":3,"error":{"code":111,"message":"token expired at %s"}}`, time.Unix(now.Add(-time.Minute).Unix(), 0).UTC().Format(time.RFC3339)))
	refreshed.expectCall(`{"id":4,"op":"refresh"}`, `{"id":4,"error":{"code":101,"message":"refresh needs a token"}}`)
	got = refreshed.call(fmt.Sprintf(`{"id":5,"op":"refresh","token":%q}`, hs(claimsFor("bob", time.Hour))))
	var rr struct{ TTL int64 }
	if json.Unmarshal([]byte(parseFrame(t, got).Result), &rr) != nil || rr.TTL < 3590 || got != fmt.Sprintf(`{"id":5,"result":{"ttl":%d}}`, rr.TTL) {
		t.Fatalf("refresh answered %s", got)
	}
	anon.expectCall(fmt.Sprintf(`{"id":2,"op":"refresh","token":%q}`, hs(claimsFor("dan", time.Hour))), `{"id":2,"error":{"code":111,"message":"refresh needs a connection authenticated by a token (send it with connect)"}}`)

	expiring.expectClose(server.CloseTokenExpired, "token expired")
	// refreshed's first token expired a second before: it lives on, as do
	// the others.
	refreshed.expectCall(`{"id":6,"op":"ping"}`, `{"id":6,"result":{}}`)
	other.expectCall(`{"id":2,"op":"ping"}`, `{"id":2,"result":{}}`)
	anon.expectCall(`{"id":3,"op":"ping"}`, `{"id":3,"result":{}}`)
	if time.Now().Unix() <= shortExp {
		t.Fatalf("the connection closed before its token expired")
	}
}

// TestAuthAnonymous: a connection without a token may use the namespaces
// open to anonymous connections only, and its user is "" whatever it
// claims; a server without auth ignores tokens and lets everyone do
// everything, as before.
func TestAuthAnonymous(t *testing.T) {
	ctx := testContext(t)
	ts := startAuthServer(t, server.Config{Auth: server.AuthConfig{HMACSecret: testSecret}})
	c := ts.dial(ctx, t)
	checkConnect(t, c.call(`{"id":1,"op":"connect","user":"mallory"}`), 1, "", 0, -1)
	c.expectCall(`{"id":2,"op":"subscribe","channel":"news:a"}`, `{"id":2,"error":{"code":105,"message":"namespace \"news\" refuses anonymous connections: connect with a token"}}`)
	c.expectCall(`{"id":3,"op":"publish","channel":"top","data":1}`, `{"id":3,"error":{"code":105,"message":"the default namespace refuses anonymous connections: connect with a token"}}`)
	c.expectCall(`{"id":4,"op":"history","channel":"news:a"}`, `{"id":4,"error":{"code":105,"message":"namespace \"news\" refuses anonymous connections: connect with a token"}}`)
	r := c.subscribe(5, "pub:x")
	c.next() // the join
	// The push may come before the answer.
	c.send(`{"id":6,"op":"publish","channel":"pub:x","data":1}`)
	got := []string{c.next(), c.next()}
	answer, message := fmt.Sprintf(`{"id":6,"result":{"offset":1,"epoch":%q}}`, r.Epoch), push("pub:x", 1, r.Epoch, "1")
	if !(got[0] == answer && got[1] == message || got[0] == message && got[1] == answer) {
		t.Fatalf("got %q, want %s and %s", got, answer, message)
	}
	// A token after subscribe is too late, as connect is.
	c.expectCall(fmt.Sprintf(`{"id":7,"op":"connect","token":%q}`, sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claimsFor("alice", time.Hour))), `{"id":7,"error":{"code":106,"message":"connect was already sent"}}`)
	// A token in the upgrade request and another in connect.
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claimsFor("alice", time.Hour))
	c = ts.dialWith(ctx, t, "/ws?token="+tok, nil)
	c.expectCall(fmt.Sprintf(`{"id":1,"op":"connect","token":%q}`, tok), `{"id":1,"error":{"code":106,"message":"the connection is already authenticated by the token of its upgrade request; send refresh to replace it"}}`)

	// Without auth: tokens are ignored, the claimed user stays, refresh
	// answers {}.
	open := startServer(t, server.Config{})
	c = open.dial(ctx, t)
	checkConnect(t, c.call(`{"id":1,"op":"connect","user":"mallory","token":"whatever"}`), 1, "mallory", 0, -1)
	c.subscribe(2, "news")
	c.next() // the join
	c.expectCall(`{"id":3,"op":"refresh","token":"whatever"}`, `{"id":3,"result":{}}`)
	c = open.dialWith(ctx, t, "/ws?token=whatever", nil)
	c.expectCall(`{"id":1,"op":"ping"}`, `{"id":1,"result":{}}`)
}

// TestAuthChat: plain chat members give their token in the upgrade
// request; without one a room of a namespace closed to anonymous
// connections is 401, a token that may not subscribe 403, a member that
// may subscribe but not publish is closed with 1008 when it sends a text,
// and a member whose token expires is closed with 4002.
func TestAuthChat(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ts := startAuthServer(t, server.Config{Auth: server.AuthConfig{HMACSecret: testSecret}})
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", c) }
	limited := func(sub, pub []string, ttl time.Duration) string {
		c := claimsFor("alice", ttl)
		c["channels"] = map[string]any{"subscribe": sub, "publish": pub}
		return hs(c)
	}

	status, challenge, body := ts.dialRefused(ctx, t, "/chat/lobby", nil)
	if status != http.StatusUnauthorized || challenge != `Bearer realm="duplex"` || body != "Unauthorized: namespace \"chat\" refuses anonymous connections: connect with a token\n" {
		t.Errorf("no token: %d %q %q", status, challenge, body)
	}
	status, _, body = ts.dialRefused(ctx, t, "/chat/lobby?token="+limited([]string{"chat:other"}, nil, time.Hour), nil)
	if status != http.StatusForbidden || body != "Forbidden: user \"alice\" may not subscribe to \"chat:lobby\"\n" {
		t.Errorf("forbidden room: %d %q", status, body)
	}
	status, _, body = ts.dialRefused(ctx, t, "/chat/lobby?token=abc", nil)
	if status != http.StatusUnauthorized || body != "Unauthorized: token is malformed: token contains an invalid number of segments\n" {
		t.Errorf("bad token: %d %q", status, body)
	}
	// The page needs no token.
	if status, _, _ := ts.do(t, "GET", "/chat/lobby", "", "", nil); status != http.StatusOK {
		t.Errorf("chat page: %d", status)
	}

	writer, err := ts.dialPath(ctx, t, "/chat/lobby?token="+hs(claimsFor("bob", time.Hour)), 0)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := ts.dialPath(ctx, t, "/chat/lobby?token="+limited([]string{"chat:*"}, nil, time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	short, err := ts.dialPath(ctx, t, "/chat/lobby?token="+hs(claimsFor("carol", 2*time.Second)), 0)
	if err != nil {
		t.Fatal(err)
	}
	// Everyone is in once the server has the three subscribers.
	waitSubscribers(t, ts, "chat:lobby", 3)
	writer.send("hello")
	for _, c := range []*wsClient{writer, reader, short} {
		c.expect("hello")
	}
	reader.send("may I?")
	reader.expectClose(websocket.StatusPolicyViolation, "publish not allowed")
	short.expectClose(server.CloseTokenExpired, "token expired")
	writer.send("still here")
	writer.expect("still here")
}

// waitSubscribers polls GET /api/channels until channel has n
// subscribers.
func waitSubscribers(t testing.TB, ts *testServer, channel string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	want := fmt.Sprintf(`"channel":%q,`, channel)
	for {
		_, _, body := ts.do(t, "GET", "/api/channels", "", "", nil)
		if i := strings.Index(body, want); i >= 0 && strings.Contains(body[i:], fmt.Sprintf(`"subscribers":%d}`, n)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has not %d subscribers: %s", channel, n, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAuthConfigErrors: bad auth settings and API keys stop Serve with a
// message naming the problem.
func TestAuthConfigErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a key"), 0o600)
	p384 := pemFile(t, &genEC(elliptic.P384()).PublicKey)
	cases := []struct {
		cfg  server.Config
		want string
	}{
		{server.Config{Auth: server.AuthConfig{HMACSecret: "short"}}, "auth: the HMAC secret is 5 bytes; HS256 needs at least 32"},
		{server.Config{Auth: server.AuthConfig{PublicKeyFiles: []string{garbage}}}, "auth: public key file " + garbage + ": no PEM block"},
		{server.Config{Auth: server.AuthConfig{PublicKeyFiles: []string{filepath.Join(dir, "missing.pem")}}}, "auth: public key file " + filepath.Join(dir, "missing.pem") + ": open " + filepath.Join(dir, "missing.pem") + ": no such file or directory"},
		{server.Config{Auth: server.AuthConfig{PublicKeyFiles: []string{p384}}}, "auth: public key file " + p384 + ": PEM block 1: ECDSA key on P-384; ES256 needs P-256"},
		{server.Config{APIKeys: []server.APIKey{{Name: "feed", Key: "short"}}}, `API key "feed" is 5 bytes, at least 16 wanted`},
		{server.Config{APIKeys: []server.APIKey{{Name: "feed", Key: "0123456789abcdef", Ops: []string{"delete"}}}}, `API key "feed": unknown operation "delete" (publish, channels, presence, history)`},
		{server.Config{APIKeys: []server.APIKey{{Name: "a", Key: "0123456789abcdef"}, {Name: "a", Key: "0123456789abcdeg"}}}, `two API keys are named "a"`},
		{server.Config{APIKey: "0123456789abcdef", APIKeys: []server.APIKey{{Name: "a", Key: "0123456789abcdef"}}}, `API key "a" is the same secret as the single API key`},
	}
	for _, tc := range cases {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		err = server.New(tc.cfg).Serve(l)
		l.Close()
		if err == nil || err.Error() != tc.want {
			t.Errorf("Serve: %v\nwant %s", err, tc.want)
		}
	}
}

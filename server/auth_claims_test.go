package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/duplex-ws/duplex/server"
)

// TestAuthIssuerAudienceLeeway: with AuthConfig.Issuer, Audience and
// Leeway (auth_issuer, auth_audience, auth_leeway of duplex serve), a
// token whose iss is another or missing, or whose aud lacks the audience,
// is refused as every invalid token is (401 before the upgrade, error 111
// then close 4001 on connect) with a message naming the claim; a token
// expired by less than the leeway is accepted, its connection lasting
// until exp plus the leeway, and one expired by more is refused; the
// same for nbf.
func TestAuthIssuerAudienceLeeway(t *testing.T) {
	ctx := testContext(t)
	const (
		iss    = "https://id.example.com/"
		aud    = "duplex"
		leeway = 30 * time.Second
	)
	ts := startAuthServer(t, server.Config{Auth: server.AuthConfig{HMACSecret: testSecret, Issuer: iss, Audience: aud, Leeway: leeway}})
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", c) }
	now := time.Now()
	hour := now.Add(time.Hour).Unix()
	stamp := func(unix int64) string { return time.Unix(unix, 0).UTC().Format(time.RFC3339) }
	longAgo := now.Add(-leeway - 30*time.Second).Unix()
	farNBF := now.Add(leeway + 30*time.Second).Unix()

	refused := []struct {
		name   string
		claims jwt.MapClaims
		reason string
	}{
		{"other iss", jwt.MapClaims{"sub": "alice", "exp": hour, "iss": "https://evil.example.com/", "aud": aud}, `token iss is not "https://id.example.com/"`},
		{"no iss", jwt.MapClaims{"sub": "alice", "exp": hour, "aud": aud}, `token iss is not "https://id.example.com/"`},
		{"other aud", jwt.MapClaims{"sub": "alice", "exp": hour, "iss": iss, "aud": "billing"}, `token aud does not include "duplex"`},
		{"aud list without it", jwt.MapClaims{"sub": "alice", "exp": hour, "iss": iss, "aud": []string{"billing", "chat"}}, `token aud does not include "duplex"`},
		{"no aud", jwt.MapClaims{"sub": "alice", "exp": hour, "iss": iss}, `token aud does not include "duplex"`},
		{"expired beyond the leeway", jwt.MapClaims{"sub": "alice", "exp": longAgo, "iss": iss, "aud": aud}, "token expired at " + stamp(longAgo)},
		{"nbf beyond the leeway", jwt.MapClaims{"sub": "alice", "nbf": farNBF, "exp": hour, "iss": iss, "aud": aud}, "token is not valid before " + stamp(farNBF)},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			token := hs(tc.claims)
			status, challenge, body := ts.dialRefused(ctx, t, "/ws?token="+token, nil, server.Subprotocol)
			if status != http.StatusUnauthorized || challenge != `Bearer realm="duplex", error="invalid_token"` || body != "Unauthorized: "+tc.reason+"\n" {
				t.Errorf("query token: %d %q %q\nwant 401 %q", status, challenge, body, "Unauthorized: "+tc.reason+"\n")
			}
			c := ts.dial(ctx, t)
			want, _ := json.Marshal(tc.reason)
			c.expectCall(fmt.Sprintf(`{"id":1,"op":"connect","token":%q}`, token), fmt.Sprintf(`{"id":1,"error":{"code":111,"message":%s}}`, want))
			c.expectClose(server.CloseUnauthorized, "invalid token")
		})
	}

	// Accepted: the right iss and aud (alone or in a list); expired 10 s
	// ago, within the 30 s leeway, the connection has about 20 s left;
	// not valid for 10 s more, within the leeway too.
	recent := now.Add(-10 * time.Second).Unix()
	accepted := []struct {
		name           string
		claims         jwt.MapClaims
		minTTL, maxTTL int64
	}{
		{"iss and aud", jwt.MapClaims{"sub": "alice", "exp": hour, "iss": iss, "aud": aud}, 3600, 3630},
		{"aud in a list", jwt.MapClaims{"sub": "alice", "exp": hour, "iss": iss, "aud": []string{"billing", aud}}, 3600, 3630},
		{"expired within the leeway", jwt.MapClaims{"sub": "alice", "exp": recent, "iss": iss, "aud": aud}, 1, 20},
		{"nbf within the leeway", jwt.MapClaims{"sub": "alice", "nbf": now.Add(10 * time.Second).Unix(), "exp": hour, "iss": iss, "aud": aud}, 3600, 3630},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			_, got := ts.connectWith(ctx, t, hs(tc.claims))
			checkConnect(t, got, 1, "alice", tc.minTTL, tc.maxTTL)
			c := ts.dialWith(ctx, t, "/ws?token="+hs(tc.claims), nil)
			c.expectCall(`{"id":1,"op":"ping"}`, `{"id":1,"result":{}}`)
		})
	}
}

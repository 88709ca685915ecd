package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/duplex-ws/duplex/pubsub"
)

// The signing algorithms the server verifies. Each key is pinned to one of
// them: a shared secret to HS256, an RSA key to RS256, an ECDSA P-256 key
// to ES256, so a token can never have one kind of key used as another.
const (
	algHS256 = "HS256"
	algRS256 = "RS256"
	algES256 = "ES256"
)

// Defaults of AuthConfig.
const (
	// DefaultJWKSRefresh is how often the JWKS is fetched again when
	// AuthConfig.JWKSRefresh is zero.
	DefaultJWKSRefresh = 10 * time.Minute
	// DefaultJWKSUnknownKID is the shortest time between two fetches of the
	// JWKS caused by tokens whose kid it lacks, when
	// AuthConfig.JWKSUnknownKID is zero.
	DefaultJWKSUnknownKID = 30 * time.Second
	// jwksTimeout bounds one fetch of the JWKS.
	jwksTimeout = 10 * time.Second
	// jwksWaitMax is how long a token with an unknown kid may wait for the
	// rate limit of fetches; a later allowance refuses the token at once.
	// It also bounds the fetch such a token causes.
	jwksWaitMax = 5 * time.Second
	// minHMACSecret is the shortest HS256 secret (RFC 7518, 3.2: a key of
	// the hash's size or larger).
	minHMACSecret = 32
	// minRSABits is the smallest RSA key accepted.
	minRSABits = 2048
)

// AuthConfig configures how the channel endpoints (/ws and /chat/{room})
// authenticate clients with JSON Web Tokens. The zero value turns
// authentication off: every client is anonymous and may do what the
// namespaces allow, as when Duplex had no authentication. With any key
// configured, a client proves who it is with a token (docs/protocol.md,
// "Authentication"), and namespaces without pubsub.NamespaceOptions.Anonymous
// refuse clients that have none.
type AuthConfig struct {
	// HMACSecret verifies HS256 tokens: the secret shared with the service
	// that issues them, at least 32 bytes.
	HMACSecret string
	// PublicKeyFiles are PEM files of public keys, each file holding one or
	// more PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE blocks. An RSA key (2048
	// bits or more) verifies RS256 tokens, an ECDSA P-256 key ES256 tokens.
	PublicKeyFiles []string
	// PublicKeys are public keys given in code, for programs that embed the
	// server: *rsa.PublicKey (RS256) or *ecdsa.PublicKey on P-256 (ES256).
	PublicKeys []crypto.PublicKey
	// JWKSURL is the address of a JSON Web Key Set (an identity provider's
	// jwks_uri) whose RSA and P-256 keys verify RS256 and ES256 tokens by
	// their kid. The set is fetched at start, every JWKSRefresh, and when a
	// token names a kid the set lacks (at most once per JWKSUnknownKID), so
	// keys the provider rotates in are accepted without a restart and keys
	// it removes are refused after the next fetch.
	JWKSURL string
	// JWKSRefresh is how often the JWKS is fetched (0: DefaultJWKSRefresh).
	JWKSRefresh time.Duration
	// JWKSUnknownKID is the shortest time between two fetches caused by
	// unknown kids (0: DefaultJWKSUnknownKID), so that tokens with made-up
	// kids cannot make the server hammer the provider.
	JWKSUnknownKID time.Duration
	// JWKSClient fetches the JWKS (nil: a client with a 10 s timeout that
	// honours the proxy environment variables).
	JWKSClient *http.Client
	// Issuer, when set, must be the tokens' iss claim.
	Issuer string
	// Audience, when set, must be one of the tokens' aud values.
	Audience string
	// Leeway tolerates that much clock difference with the token issuer
	// when checking exp and nbf (0: none). A connection's token expires
	// Leeway after its exp.
	Leeway time.Duration
}

// Enabled reports whether cfg configures any key, and so turns
// authentication on.
func (cfg *AuthConfig) Enabled() bool {
	return cfg.HMACSecret != "" || len(cfg.PublicKeyFiles) > 0 || len(cfg.PublicKeys) > 0 || cfg.JWKSURL != ""
}

// verifyKey is a key and the one algorithm it verifies.
type verifyKey struct {
	alg string
	key any // []byte, *rsa.PublicKey or *ecdsa.PublicKey
}

// Authenticator verifies the tokens of the channel endpoints' clients. Its
// keys are fixed when it is made, except those of a JWKS, which it keeps
// fetching until Close.
type Authenticator struct {
	cfg    AuthConfig
	keys   []verifyKey
	algs   []string // the algorithms of the configured keys, in a fixed order
	jwks   keyfunc.Keyfunc
	cancel context.CancelFunc
	parser *jwt.Parser
}

// NewAuthenticator checks cfg, loads its keys and, with a JWKS, fetches it
// once (a fetch that fails is logged to log and retried later: the server
// starts anyway). Close stops the JWKS's fetches.
func NewAuthenticator(cfg AuthConfig, log *slog.Logger) (*Authenticator, error) {
	if !cfg.Enabled() {
		return nil, errors.New("auth: no key configured (HMAC secret, public key file or JWKS URL)")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Leeway < 0 || cfg.JWKSRefresh < 0 || cfg.JWKSUnknownKID < 0 {
		return nil, errors.New("auth: leeway and JWKS intervals must not be negative")
	}
	a := &Authenticator{cfg: cfg}
	if cfg.HMACSecret != "" {
		if len(cfg.HMACSecret) < minHMACSecret {
			return nil, fmt.Errorf("auth: the HMAC secret is %d bytes; HS256 needs at least %d", len(cfg.HMACSecret), minHMACSecret)
		}
		a.keys = append(a.keys, verifyKey{alg: algHS256, key: []byte(cfg.HMACSecret)})
	}
	for _, f := range cfg.PublicKeyFiles {
		keys, err := loadPublicKeys(f)
		if err != nil {
			return nil, fmt.Errorf("auth: public key file %s: %w", f, err)
		}
		a.keys = append(a.keys, keys...)
	}
	for i, k := range cfg.PublicKeys {
		vk, err := pinKey(k)
		if err != nil {
			return nil, fmt.Errorf("auth: public key %d: %w", i+1, err)
		}
		a.keys = append(a.keys, vk)
	}
	for _, k := range a.keys {
		a.addAlg(k.alg)
	}
	if cfg.JWKSURL != "" {
		if err := a.startJWKS(log); err != nil {
			return nil, err
		}
		a.addAlg(algRS256)
		a.addAlg(algES256)
	}
	slices.SortFunc(a.algs, func(x, y string) int { return algRank(x) - algRank(y) })
	opts := []jwt.ParserOption{jwt.WithValidMethods(a.algs), jwt.WithLeeway(cfg.Leeway)}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	a.parser = jwt.NewParser(opts...)
	return a, nil
}

func (a *Authenticator) addAlg(alg string) {
	if !slices.Contains(a.algs, alg) {
		a.algs = append(a.algs, alg)
	}
}

// algRank orders algorithms in messages: HS256, RS256, ES256.
func algRank(alg string) int {
	return strings.Index(algHS256+algRS256+algES256, alg)
}

// startJWKS makes the JWKS client: fetched now, every JWKSRefresh, and on
// unknown kids at most once per JWKSUnknownKID.
func (a *Authenticator) startJWKS(log *slog.Logger) error {
	refresh := a.cfg.JWKSRefresh
	if refresh == 0 {
		refresh = DefaultJWKSRefresh
	}
	unknown := a.cfg.JWKSUnknownKID
	if unknown == 0 {
		unknown = DefaultJWKSUnknownKID
	}
	client := a.cfg.JWKSClient
	if client == nil {
		client = &http.Client{Timeout: jwksTimeout}
	}
	ctx, cancel := context.WithCancel(context.Background())
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{a.cfg.JWKSURL}, keyfunc.Override{
		Client:            client,
		HTTPTimeout:       jwksTimeout,
		RefreshInterval:   refresh,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(unknown), 1),
		RateLimitWaitMax:  jwksWaitMax,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				if !errors.Is(err, context.Canceled) {
					log.Warn("auth: fetching the JWKS failed", "url", u, "err", err)
				}
			}
		},
	})
	if err != nil {
		cancel()
		return fmt.Errorf("auth: JWKS URL %q: %w", a.cfg.JWKSURL, err)
	}
	a.jwks, a.cancel = kf, cancel
	return nil
}

// Close stops fetching the JWKS. The Authenticator still verifies tokens
// with the keys it has.
func (a *Authenticator) Close() {
	if a != nil && a.cancel != nil {
		a.cancel()
	}
}

// ReadPublicKeys reads the public keys of a PEM file as
// AuthConfig.PublicKeyFiles takes it, and checks that each can verify
// tokens (RSA of 2048 bits or more, ECDSA on P-256), so that a program can
// check a file before it starts a server with it.
func ReadPublicKeys(path string) ([]crypto.PublicKey, error) {
	keys, err := loadPublicKeys(path)
	if err != nil {
		return nil, err
	}
	out := make([]crypto.PublicKey, len(keys))
	for i, k := range keys {
		out[i] = k.key
	}
	return out, nil
}

// loadPublicKeys reads the public keys of a PEM file.
func loadPublicKeys(path string) ([]verifyKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var keys []verifyKey
	for n := 1; ; n++ {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		var pub any
		switch blk.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(blk.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(blk.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(blk.Bytes); err == nil {
				pub = cert.PublicKey
			}
		default:
			return nil, fmt.Errorf("PEM block %d is %q; want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", n, blk.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		vk, err := pinKey(pub)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		keys = append(keys, vk)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM block")
	}
	return keys, nil
}

// pinKey returns the algorithm a public key verifies.
func pinKey(k any) (verifyKey, error) {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return verifyKey{}, fmt.Errorf("RSA key of %d bits; at least %d wanted", k.N.BitLen(), minRSABits)
		}
		return verifyKey{alg: algRS256, key: k}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return verifyKey{}, fmt.Errorf("ECDSA key on %s; ES256 needs P-256", k.Curve.Params().Name)
		}
		return verifyKey{alg: algES256, key: k}, nil
	}
	return verifyKey{}, fmt.Errorf("a %T; want an RSA or ECDSA P-256 public key", k)
}

// identity is who a connection is, from its token.
type identity struct {
	user    string
	expires time.Time // the token's exp plus the leeway; zero: never
	// restricted says the token has a channels claim: the connection may
	// then subscribe and publish only to channels matching these patterns
	// (beyond what a namespace allows anonymous connections).
	restricted bool
	subscribe  []string
	publish    []string
}

// tokenClaims are the claims Duplex reads from a token.
type tokenClaims struct {
	jwt.RegisteredClaims
	// Channels is decoded by verify, which explains a bad one.
	Channels json.RawMessage `json:"channels"`
}

// channelsClaim is the channels claim: the patterns of the channels the
// user may subscribe to and publish to.
type channelsClaim struct {
	Subscribe []string `json:"subscribe"`
	Publish   []string `json:"publish"`
}

// tokenError is a token refused; its message is the reason, for the
// client.
type tokenError struct{ msg string }

func (e *tokenError) Error() string { return e.msg }

func tokenErrorf(format string, a ...any) error {
	return &tokenError{msg: fmt.Sprintf(format, a...)}
}

// verify checks a token and returns its identity, or a *tokenError saying
// why it is refused.
func (a *Authenticator) verify(ctx context.Context, token string) (*identity, error) {
	var claims tokenClaims
	tok, err := a.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		return a.keyFor(ctx, t)
	})
	if err != nil {
		return nil, a.explain(tok, &claims, err)
	}
	if claims.Subject == "" {
		return nil, tokenErrorf("token has no sub claim (the user id)")
	}
	if len(claims.Subject) > maxUserLen {
		return nil, tokenErrorf("token sub is %d bytes, at most %d", len(claims.Subject), maxUserLen)
	}
	id := &identity{user: claims.Subject}
	if claims.ExpiresAt != nil {
		id.expires = claims.ExpiresAt.Time.Add(a.cfg.Leeway)
	}
	if len(claims.Channels) > 0 && string(claims.Channels) != "null" {
		var c channelsClaim
		dec := json.NewDecoder(bytes.NewReader(claims.Channels))
		dec.DisallowUnknownFields()
		if dec.Decode(&c) != nil {
			return nil, tokenErrorf(`token claim channels is not {"subscribe":[patterns…],"publish":[patterns…]}`)
		}
		id.restricted, id.subscribe, id.publish = true, c.Subscribe, c.Publish
	}
	return id, nil
}

// keyFor returns the keys that may verify t: the configured keys pinned to
// t's algorithm and, for RS256 and ES256 with a kid, the JWKS's key of
// that kid if it is pinned to the same algorithm.
func (a *Authenticator) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	var keys []jwt.VerificationKey
	for _, k := range a.keys {
		if k.alg == alg {
			keys = append(keys, k.key)
		}
	}
	kid, _ := t.Header["kid"].(string)
	if a.jwks != nil && kid != "" && (alg == algRS256 || alg == algES256) {
		ctx, cancel := context.WithTimeout(ctx, jwksWaitMax+time.Second)
		defer cancel()
		jwk, err := a.jwks.Storage().KeyRead(ctx, kid)
		switch {
		case err != nil && len(keys) == 0:
			return nil, tokenErrorf("token kid %q is not in the JWKS", kid)
		case err == nil:
			if ja := jwk.Marshal().ALG.String(); ja != "" && ja != alg {
				return nil, tokenErrorf("token alg %s does not match the alg %s of JWKS key %q", alg, ja, kid)
			}
			vk, perr := pinKey(publicOf(jwk.Key()))
			if perr != nil {
				return nil, tokenErrorf("JWKS key %q is unusable: %v", kid, perr)
			}
			if vk.alg != alg {
				return nil, tokenErrorf("JWKS key %q verifies %s, not the token's %s", kid, vk.alg, alg)
			}
			keys = append(keys, vk.key)
		}
	}
	switch len(keys) {
	case 0:
		if a.jwks != nil && kid == "" && (alg == algRS256 || alg == algES256) {
			return nil, tokenErrorf("token has no kid to choose a JWKS key with")
		}
		return nil, tokenErrorf("no key for alg %s", alg)
	case 1:
		return keys[0], nil
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// publicOf returns the public half of a key from a JWKS (which may hold
// private keys).
func publicOf(k any) any {
	if p, ok := k.(interface{ Public() crypto.PublicKey }); ok {
		return p.Public()
	}
	return k
}

// missing reports whether err is the parser's "required claim missing"
// and absent says the claim in question is the one missing: a token
// without the iss or aud the server requires gets the same reason as one
// with another value (docs/protocol.md).
func missing(err error, absent bool) bool {
	return absent && errors.Is(err, jwt.ErrTokenRequiredClaimMissing)
}

// explain turns the parser's error into a one-line reason for the client.
func (a *Authenticator) explain(tok *jwt.Token, claims *tokenClaims, err error) error {
	var te *tokenError
	switch {
	case errors.As(err, &te):
		return te
	case errors.Is(err, jwt.ErrTokenMalformed):
		return tokenErrorf("%v", err)
	case tok != nil && (tok.Method == nil || !slices.Contains(a.algs, tok.Method.Alg())):
		alg, _ := tok.Header["alg"].(string)
		return tokenErrorf("token alg %q is not accepted (this server takes %s)", alg, strings.Join(a.algs, ", "))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return tokenErrorf("token signature is invalid")
	case errors.Is(err, jwt.ErrTokenExpired):
		return tokenErrorf("token expired at %s", claims.ExpiresAt.UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return tokenErrorf("token is not valid before %s", claims.NotBefore.UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), missing(err, a.cfg.Issuer != "" && claims != nil && claims.Issuer == ""):
		return tokenErrorf("token iss is not %q", a.cfg.Issuer)
	case errors.Is(err, jwt.ErrTokenInvalidAudience), missing(err, a.cfg.Audience != "" && claims != nil && len(claims.Audience) == 0):
		return tokenErrorf("token aud does not include %q", a.cfg.Audience)
	}
	return tokenErrorf("token refused: %v", err)
}

// requestToken returns the token of an upgrade request: the Authorization
// header's Bearer credentials, else the token query parameter; "" when
// there is neither.
func requestToken(r *http.Request) string {
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(cred) != "" {
		return strings.TrimSpace(cred)
	}
	return r.URL.Query().Get("token")
}

// handshake authenticates an upgrade request by its token, if it has one.
// It returns the identity (nil for a request without a token, or when
// authentication is off) and true, or answers 401 with the reason and
// returns false.
func (a *Authenticator) handshake(w http.ResponseWriter, r *http.Request) (*identity, bool) {
	if a == nil {
		return nil, true
	}
	token := requestToken(r)
	if token == "" {
		return nil, true
	}
	id, err := a.verify(r.Context(), token)
	if err != nil {
		refuseToken(w, http.StatusUnauthorized, err.Error(), true)
		return nil, false
	}
	return id, true
}

// refuseToken answers an upgrade request that cannot go on for want of a
// valid token (401) or for a token that does not allow it (403), with the
// reason on one line.
func refuseToken(w http.ResponseWriter, status int, reason string, invalid bool) {
	if status == http.StatusUnauthorized {
		challenge := `Bearer realm="duplex"`
		if invalid {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	http.Error(w, http.StatusText(status)+": "+reason, status)
}

// operation is what a connection asks to do with a channel.
type operation int

const (
	opSubscribe operation = iota // subscribe
	opPublish                    // publish
	opRead                       // presence and history, which need subscribe permission
)

// authorize reports why a connection with identity id (nil: anonymous)
// may not do op on channel, or nil when it may (always when a is nil). A
// channel of a namespace open to anonymous connections is open to every
// connection; otherwise an anonymous connection is refused, and one whose
// token has a channels claim needs a pattern that matches.
func (a *Authenticator) authorize(hub *pubsub.Hub, id *identity, op operation, channel string) *protoError {
	if a == nil {
		return nil
	}
	o, err := hub.Options(channel)
	if err != nil {
		return hubError(err)
	}
	if o.Anonymous {
		return nil
	}
	if id == nil {
		return &protoError{Code: codePermissionDenied, Message: fmt.Sprintf("%s refuses anonymous connections: connect with a token", namespaceName(channel))}
	}
	if !id.restricted {
		return nil
	}
	patterns, msg := id.subscribe, "user %q may not subscribe to %q"
	switch op {
	case opPublish:
		patterns, msg = id.publish, "user %q may not publish to %q"
	case opRead:
		msg = "user %q may not read %q: presence and history need subscribe permission"
	}
	if matchAnyChannel(patterns, channel) {
		return nil
	}
	return &protoError{Code: codePermissionDenied, Message: fmt.Sprintf(msg, id.user, channel)}
}

// namespaceName names a channel's namespace for people.
func namespaceName(channel string) string {
	if ns := pubsub.Namespace(channel); ns != "" {
		return fmt.Sprintf("namespace %q", ns)
	}
	return "the default namespace"
}

// matchAnyChannel reports whether channel matches one of patterns.
func matchAnyChannel(patterns []string, channel string) bool {
	for _, p := range patterns {
		if matchChannel(p, channel) {
			return true
		}
	}
	return false
}

// matchChannel reports whether name matches pattern, in which '*' stands
// for any run of bytes (none included, ':' and every other byte too) and
// every other byte for itself: "news:*" matches "news:" and "news:a.b",
// "*" every channel, "user:*:inbox" "user:42:inbox". The whole name must
// match.
func matchChannel(pattern, name string) bool {
	// The classic greedy matcher: on a mismatch, let the last '*' swallow
	// one more byte. Linear in len(pattern)*len(name) at worst.
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case p < len(pattern) && pattern[p] == name[n]:
			p++
			n++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

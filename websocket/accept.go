package websocket

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// AcceptOptions configures Accept. The zero value is safe: no subprotocol,
// same-origin requests only, default connection Options.
type AcceptOptions struct {
	Options

	// Subprotocols lists the subprotocols the server speaks, most preferred
	// first. Accept picks the first of them that the client offered; if the
	// client offered none of them, no subprotocol is chosen (RFC 6455 §4.2.2).
	Subprotocols []string

	// OriginPatterns lists the host patterns (path.Match syntax, such as
	// "*.example.com" or "localhost:8080") whose pages may open connections
	// across origins. By default a request whose Origin header names a host
	// other than the request's Host is refused with 403, which stops
	// cross-site WebSocket hijacking: browsers send cookies with WebSocket
	// handshakes from any site.
	OriginPatterns []string

	// CheckOrigin, when set, decides instead of the same-host rule for
	// requests whose origin no pattern matched.
	CheckOrigin func(r *http.Request) bool

	// HandshakeTimeout bounds writing the 101 response (default 10 s). The
	// request itself is bounded by http.Server.ReadHeaderTimeout, which the
	// server that calls Accept should set so a trickling handshake is cut.
	HandshakeTimeout time.Duration
}

// Accept upgrades an HTTP request to a WebSocket connection (RFC 6455 §4.2).
// It checks the request, and when a check fails it answers with the HTTP
// status the failure calls for and a one-line reason, and returns a
// *HandshakeError naming the check. On success it hijacks the connection
// through http.ResponseController (so wrapped ResponseWriters work), reusing
// the buffered reader and writer net/http already allocated, and writes the
// 101 response with any headers the handler set on w.
func Accept(w http.ResponseWriter, r *http.Request, opts *AcceptOptions) (*Conn, error) {
	if opts == nil {
		opts = &AcceptOptions{}
	}
	if err := opts.Compression.Validate(); err != nil {
		// A server misconfiguration, not the client's fault.
		he := &HandshakeError{Check: CheckOptions, Status: http.StatusInternalServerError,
			Reason: "the server's WebSocket options are invalid", Err: err}
		refuse(w, he)
		return nil, he
	}
	key, err := checkRequest(r, opts)
	if err != nil {
		he := err.(*HandshakeError)
		refuse(w, he)
		return nil, he
	}
	subproto := selectSubprotocol(r, opts.Subprotocols)
	var params deflateParams
	var deflateAnswer string
	deflateOn := false
	if opts.Compression.enabled() {
		// A malformed Sec-WebSocket-Extensions header only costs the client
		// compression: the connection goes on without it.
		if offers, err := parseExtensions(r.Header); err == nil {
			params, deflateAnswer, deflateOn = acceptDeflate(offers, &opts.Compression)
		}
	}

	netConn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		he := &HandshakeError{Check: CheckHijack, Status: http.StatusInternalServerError,
			Reason: "the connection cannot be taken over for WebSocket", Err: err}
		refuse(w, he)
		return nil, he
	}

	h := w.Header()
	h.Del("Content-Length")
	h.Del("Content-Type")
	h.Set("Upgrade", "websocket")
	h.Set("Connection", "Upgrade")
	h.Set("Sec-WebSocket-Accept", acceptKey(key))
	if subproto != "" {
		h.Set("Sec-WebSocket-Protocol", subproto)
	} else {
		h.Del("Sec-WebSocket-Protocol")
	}
	if deflateOn {
		h.Set("Sec-WebSocket-Extensions", deflateAnswer)
	} else {
		h.Del("Sec-WebSocket-Extensions")
	}
	bw := brw.Writer
	bw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	h.Write(bw)
	bw.WriteString("\r\n")
	timeout := opts.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	netConn.SetWriteDeadline(time.Now().Add(timeout))
	if err := bw.Flush(); err != nil {
		netConn.Close()
		return nil, &HandshakeError{Check: CheckTransport, Reason: "writing the 101 response failed", Err: err}
	}
	netConn.SetDeadline(time.Time{})

	br := brw.Reader
	if br.Buffered() == 0 {
		// net/http's reader reads through its connReader, which takes a
		// mutex twice and wakes a condition variable on every read, even
		// after the hijack. With nothing buffered, the same buffer can read
		// the connection directly.
		br.Reset(netConn)
	}
	c := NewConn(netConn, br, RoleServer, subproto, &opts.Options)
	if deflateOn {
		c.setupDeflate(params, &opts.Compression)
	}
	donateWriter(bw)
	return c, nil
}

// refuse answers a refused handshake. After a failed hijack, w may still be
// usable; if it is not, the write fails harmlessly.
func refuse(w http.ResponseWriter, he *HandshakeError) {
	setRefusalHeaders(w.Header(), he)
	w.WriteHeader(he.Status)
	fmt.Fprintln(w, he.Reason)
}

// checkRequest applies the checks of RFC 6455 §4.2.1 and the origin policy,
// and returns the client's key.
func checkRequest(r *http.Request, opts *AcceptOptions) (string, error) {
	fail := func(check HandshakeCheck, status int, reason string) (string, error) {
		return "", &HandshakeError{Check: check, Status: status, Reason: reason}
	}
	if r.Method != http.MethodGet {
		return fail(CheckMethod, http.StatusMethodNotAllowed, "WebSocket handshake must use GET, not "+r.Method)
	}
	if !r.ProtoAtLeast(1, 1) {
		return fail(CheckHTTPVersion, http.StatusHTTPVersionNotSupported, "WebSocket handshake needs HTTP/1.1 or later, got "+r.Proto)
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		return fail(CheckUpgrade, http.StatusUpgradeRequired, `WebSocket handshake needs "Upgrade: websocket"`)
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") {
		return fail(CheckConnection, http.StatusBadRequest, `WebSocket handshake needs "Connection: Upgrade"`)
	}
	if v := r.Header.Values("Sec-WebSocket-Version"); len(v) != 1 || strings.TrimSpace(v[0]) != "13" {
		return fail(CheckVersion, http.StatusUpgradeRequired, "unsupported Sec-WebSocket-Version (this server speaks 13)")
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return fail(CheckKey, http.StatusBadRequest, "WebSocket handshake needs exactly one Sec-WebSocket-Key")
	}
	key := strings.TrimSpace(keys[0])
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 {
		return fail(CheckKey, http.StatusBadRequest, "Sec-WebSocket-Key must be 16 bytes in base64")
	}
	if err := checkOrigin(r, opts); err != nil {
		return fail(CheckOrigin, http.StatusForbidden, err.Error())
	}
	return key, nil
}

// checkOrigin refuses cross-origin requests that no pattern or check allows.
// Requests without an Origin header come from non-browser clients, which
// cannot be tricked into sending another site's cookies, and pass.
func checkOrigin(r *http.Request, opts *AcceptOptions) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return fmt.Errorf("Origin %q is not a valid origin", origin)
	}
	if strings.EqualFold(hostWithoutDefaultPort(u.Host, u.Scheme), hostWithoutDefaultPort(r.Host, "")) {
		return nil
	}
	for _, pattern := range opts.OriginPatterns {
		if ok, _ := path.Match(strings.ToLower(pattern), strings.ToLower(u.Host)); ok {
			return nil
		}
	}
	if opts.CheckOrigin != nil && opts.CheckOrigin(r) {
		return nil
	}
	return fmt.Errorf("Origin %q is not allowed to connect to %q", origin, r.Host)
}

// hostWithoutDefaultPort drops a port that is the default for scheme (or,
// with no scheme, for either http or https), so "example.com:80" and
// "example.com" compare equal.
func hostWithoutDefaultPort(host, scheme string) string {
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		return strings.Trim(host, "[]") // no port
	}
	switch {
	case port == "80" && (scheme == "http" || scheme == "ws" || scheme == ""),
		port == "443" && (scheme == "https" || scheme == "wss" || scheme == ""):
		return h
	}
	return net.JoinHostPort(h, port)
}

// selectSubprotocol returns the server's most preferred subprotocol among
// those the client offered, or "".
func selectSubprotocol(r *http.Request, supported []string) string {
	if len(supported) == 0 {
		return ""
	}
	offered := headerList(r.Header, "Sec-WebSocket-Protocol")
	for _, s := range supported {
		for _, o := range offered {
			if o == s { // subprotocol names are case-sensitive (RFC 6455 §4.1)
				return s
			}
		}
	}
	return ""
}

package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DialOptions configures Dial. The zero value is safe: no extra headers, no
// subprotocol, the system's TLS roots, proxies from the environment.
type DialOptions struct {
	Options

	// Header holds extra request headers, such as Authorization, Cookie or
	// Origin. The handshake's own headers cannot be overridden.
	Header http.Header

	// Subprotocols lists the subprotocols to offer, most preferred first.
	Subprotocols []string

	// TLSConfig is used for wss:// URLs; nil means the defaults.
	TLSConfig *tls.Config

	// Proxy chooses an HTTP(S) proxy for a request, as in http.Transport.
	// Nil means http.ProxyFromEnvironment (HTTP_PROXY, HTTPS_PROXY,
	// NO_PROXY), as net/http does.
	Proxy func(*http.Request) (*url.URL, error)

	// NetDialContext, when set, opens the TCP connection (to the server or
	// to the proxy) instead of a net.Dialer.
	NetDialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Dial opens a WebSocket connection to a ws:// or wss:// URL (RFC 6455
// §4.1). ctx bounds the whole handshake, including the TCP connection, the
// proxy and TLS; it does not bound the connection's life afterwards.
//
// Dial checks the server's answer: status 101, the Upgrade and Connection
// headers, the Sec-WebSocket-Accept value, a subprotocol only among those
// offered, and no extension (none is offered). When the handshake fails it
// returns a *HandshakeError and, if the server answered, its response with
// up to 4 KiB of the body, so the caller can see the status and the reason.
// On success the response's headers are there to read, but its Body is the
// connection itself: leave it to the Conn.
func Dial(ctx context.Context, rawURL string, opts *DialOptions) (*Conn, *http.Response, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	if err := opts.Compression.Validate(); err != nil {
		return nil, nil, err
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, &HandshakeError{Check: CheckTransport, Reason: "invalid URL", Err: err}
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	case "http", "https":
	default:
		return nil, nil, &HandshakeError{Check: CheckTransport, Reason: fmt.Sprintf("URL scheme %q is not ws or wss", u.Scheme)}
	}

	var raw [16]byte
	rand.Read(raw[:])
	key := base64.StdEncoding.EncodeToString(raw[:])

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, &HandshakeError{Check: CheckTransport, Reason: "invalid request", Err: err}
	}
	for k, vs := range opts.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if host := req.Header.Get("Host"); host != "" {
		req.Host = host
		req.Header.Del("Host")
	}
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", key)
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Del("Sec-WebSocket-Extensions")
	if offer := deflateOffer(&opts.Compression); offer != "" {
		req.Header.Set("Sec-WebSocket-Extensions", offer)
	}
	if len(opts.Subprotocols) > 0 {
		req.Header.Set("Sec-WebSocket-Protocol", strings.Join(opts.Subprotocols, ", "))
	}

	// The transport is used for this one request. The hook records the TCP
	// connection it dials, so the Conn can use its deadlines.
	var tcpConn net.Conn
	dial := opts.NetDialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	proxy := opts.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	tlsConfig := opts.TLSConfig.Clone()
	if tlsConfig == nil {
		tlsConfig = &tls.Config{}
	}
	tlsConfig.NextProtos = []string{"http/1.1"} // WebSocket over HTTP/1.1
	tr := &http.Transport{
		Proxy: proxy,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			tcpConn = c
			return c, err
		},
		TLSClientConfig:   tlsConfig,
		DisableKeepAlives: true,
		ForceAttemptHTTP2: false,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect is a failed handshake, shown to the caller
	}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, &HandshakeError{Check: CheckTransport, Reason: "request failed", Err: err}
	}
	params, deflateOn, herr := checkResponse(resp, key, opts.Subprotocols, &opts.Compression)
	if herr != nil {
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
			rwc.Close()
			resp.Body = io.NopCloser(bytes.NewReader(nil))
		} else {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(body))
		}
		return nil, resp, herr
	}
	body, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return nil, resp, &HandshakeError{Check: CheckTransport, Status: resp.StatusCode, Reason: "HTTP transport did not hand over the connection"}
	}
	rwc := &clientTransport{ReadWriteCloser: body, conn: tcpConn}
	c := NewConn(rwc, bufio.NewReaderSize(body, readBufSize), RoleClient, resp.Header.Get("Sec-WebSocket-Protocol"), &opts.Options)
	if deflateOn {
		c.setupDeflate(params, &opts.Compression)
	}
	return c, resp, nil
}

// clientTransport is the connection net/http hands over after a 101
// response, with the deadlines of the underlying TCP connection. Deadline
// timeouts on a tls.Conn's underlying connection are not fatal to reads.
type clientTransport struct {
	io.ReadWriteCloser
	conn net.Conn
}

func (t *clientTransport) SetReadDeadline(d time.Time) error {
	if t.conn == nil {
		return nil
	}
	return t.conn.SetReadDeadline(d)
}

func (t *clientTransport) SetWriteDeadline(d time.Time) error {
	if t.conn == nil {
		return nil
	}
	return t.conn.SetWriteDeadline(d)
}

// CloseWrite shuts the TCP write side, for lingering close.
func (t *clientTransport) CloseWrite() error {
	if cw, ok := t.conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// checkResponse applies the client's checks of RFC 6455 §4.1 to the
// server's answer.
// With comp enabled, it also checks the answer to the permessage-deflate
// offer and returns the agreed parameters (deflateOn false: the server
// declined); otherwise any extension in the answer fails the handshake.
func checkResponse(resp *http.Response, key string, offered []string, comp *CompressionOptions) (params deflateParams, deflateOn bool, herr *HandshakeError) {
	fail := func(check HandshakeCheck, reason string) (deflateParams, bool, *HandshakeError) {
		return deflateParams{}, false, &HandshakeError{Check: check, Status: resp.StatusCode, Reason: reason}
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fail(CheckStatus, fmt.Sprintf("server answered %s instead of 101 Switching Protocols", resp.Status))
	}
	if !headerHasToken(resp.Header, "Upgrade", "websocket") {
		return fail(CheckUpgrade, `response lacks "Upgrade: websocket"`)
	}
	if !headerHasToken(resp.Header, "Connection", "upgrade") {
		return fail(CheckConnection, `response lacks "Connection: Upgrade"`)
	}
	if got := resp.Header.Values("Sec-WebSocket-Accept"); len(got) != 1 || strings.TrimSpace(got[0]) != acceptKey(key) {
		return fail(CheckAccept, "Sec-WebSocket-Accept does not match the key sent")
	}
	params, deflateOn, err := checkDeflateResponse(resp.Header, comp)
	if err != nil {
		return fail(CheckExtension, err.Error())
	}
	if protos := resp.Header.Values("Sec-WebSocket-Protocol"); len(protos) > 0 {
		p := strings.TrimSpace(protos[0])
		ok := len(protos) == 1 && p != ""
		if ok {
			ok = false
			for _, o := range offered {
				if o == p {
					ok = true
				}
			}
		}
		if !ok {
			return fail(CheckSubprotocol, fmt.Sprintf("server chose subprotocol %q that was not offered", strings.Join(protos, ", ")))
		}
	}
	return params, deflateOn, nil
}

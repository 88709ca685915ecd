package websocket

import (
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strings"
)

// keyGUID is the fixed GUID of RFC 6455 §1.3 that the server appends to the
// client's key before hashing.
const keyGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// acceptKey computes Sec-WebSocket-Accept for a Sec-WebSocket-Key value.
func acceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte(keyGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// headerTokens calls fn with each comma-separated token of the named header
// across all its lines, trimmed of spaces and tabs; fn returns false to stop.
func headerTokens(h http.Header, name string, fn func(string) bool) {
	for _, v := range h[http.CanonicalHeaderKey(name)] {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			tok = strings.Trim(tok, " \t")
			if tok != "" && !fn(tok) {
				return
			}
		}
	}
}

// headerHasToken reports whether the named header lists token, compared
// case-insensitively (RFC 6455 §4.2.1 items 3 and 4; RFC 9110 §5.6.1).
func headerHasToken(h http.Header, name, token string) bool {
	found := false
	headerTokens(h, name, func(t string) bool {
		found = strings.EqualFold(t, token)
		return !found
	})
	return found
}

// headerList returns the comma-separated tokens of the named header.
func headerList(h http.Header, name string) []string {
	var list []string
	headerTokens(h, name, func(t string) bool {
		list = append(list, t)
		return true
	})
	return list
}

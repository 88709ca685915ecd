package server

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/duplex-ws/duplex/pubsub"
)

// API serves the HTTP API of docs/protocol.md: publish (server push from
// any backend with one HTTP call), and channel listings, presence and
// history.
type API struct {
	// Hub is the channel engine.
	Hub *pubsub.Hub
	// Key, when set, is required as "Authorization: apikey <Key>" (with
	// Keys, it is one more key, allowed everything). When there is no key
	// at all, the API answers loopback clients only.
	Key string
	// Keys are more keys, each possibly limited to some operations and
	// channels (see APIKey).
	Keys []APIKey
	// MaxBody bounds a request body in bytes (0: DefaultMaxMessageSize,
	// 64 KiB; negative: no bound); a larger body is answered with 413.
	MaxBody int64

	obs *observer // counts publishes; nil when the API runs outside a Server

	ring *apiKeyring // Key and Keys, built by register
}

// legacyKeyName names APIKey.Key (Config.APIKey) among the keys.
const legacyKeyName = "api-key"

// register checks the keys and adds the API's routes to mux.
func (a *API) register(mux *http.ServeMux) error {
	ring, err := newAPIKeyring(a.Keys)
	if err != nil {
		return err
	}
	if a.Key != "" {
		for _, k := range a.Keys {
			if k.Key == a.Key {
				return fmt.Errorf("API key %q is the same secret as the single API key", k.Name)
			}
		}
		ring.keys = append(ring.keys, APIKey{Name: legacyKeyName, Key: a.Key})
		ring.hashes = append(ring.hashes, sha256.Sum256([]byte(a.Key)))
	}
	a.ring = ring
	mux.HandleFunc("POST /api/publish", a.guard(APIOpPublish, a.publish))
	mux.HandleFunc("GET /api/channels", a.guard(APIOpChannels, a.channels))
	mux.HandleFunc("GET /api/channels/{name}/presence", a.guard(APIOpPresence, a.presence))
	mux.HandleFunc("GET /api/channels/{name}/history", a.guard(APIOpHistory, a.history))
	return nil
}

// apiHandler is a route of the API, told the key of the request (nil:
// no key is configured and the request came from loopback).
type apiHandler func(w http.ResponseWriter, r *http.Request, key *APIKey)

// guard checks the API key and that it may use op, or the loopback rule
// without keys.
func (a *API) guard(op string, next apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if len(a.ring.keys) == 0 {
			if !isLoopback(r.RemoteAddr) {
				writeAPIError(w, http.StatusForbidden, &protoError{Code: codePermissionDenied, Message: "no API key is configured, so the API answers loopback clients only"})
				return
			}
			next(w, r, nil)
			return
		}
		key := a.ring.keyOf(r)
		if key == nil {
			w.Header().Set("WWW-Authenticate", `apikey realm="duplex"`)
			writeAPIError(w, http.StatusUnauthorized, &protoError{Code: codePermissionDenied, Message: "missing or wrong API key (Authorization: apikey <key>)"})
			return
		}
		if !key.allowsOp(op) {
			writeAPIError(w, http.StatusForbidden, apiForbidden("API key %q may not use %s", key.Name, op))
			return
		}
		next(w, r, key)
	}
}

// checkChannel reports why key, when limited to some channels, may not
// touch channel (verb says how), after checking the name and its
// namespace.
func (a *API) checkChannel(key *APIKey, verb, channel string) *protoError {
	if key == nil || len(key.Channels) == 0 {
		return nil
	}
	if _, err := a.Hub.Options(channel); err != nil {
		return hubError(err)
	}
	if !key.allowsChannel(channel) {
		return apiForbidden("API key %q may not %s %q", key.Name, verb, channel)
	}
	return nil
}

// isLoopback reports whether a request's remote address is a loopback one.
func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// publishRequest is one message to publish; a batch has Messages instead.
type publishRequest struct {
	Channel  string           `json:"channel"`
	Data     json.RawMessage  `json:"data"`
	Messages []publishRequest `json:"messages"`
}

// batchItem is one answer of a batch publish.
type batchItem struct {
	*pubsub.Position
	Error *protoError `json:"error,omitempty"`
}

func (a *API) publish(w http.ResponseWriter, r *http.Request, key *APIKey) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			writeAPIError(w, http.StatusUnsupportedMediaType, badRequest("Content-Type must be application/json, got %q", ct))
			return
		}
	}
	limit := a.MaxBody
	if limit == 0 {
		limit = DefaultMaxMessageSize
	}
	var rd io.Reader = r.Body
	if limit > 0 {
		rd = http.MaxBytesReader(w, r.Body, limit)
	}
	body, err := io.ReadAll(rd)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeAPIError(w, http.StatusRequestEntityTooLarge, badRequest("body over %d bytes", limit))
			return
		}
		writeAPIError(w, http.StatusBadRequest, badRequest("reading the body: %v", err))
		return
	}
	if !utf8.Valid(body) {
		writeAPIError(w, http.StatusBadRequest, badRequest("body is not valid UTF-8"))
		return
	}
	var req publishRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeAPIError(w, http.StatusBadRequest, badRequest("body must be a JSON object: %v", err))
		return
	}
	if req.Messages != nil {
		if req.Channel != "" || req.Data != nil {
			writeAPIError(w, http.StatusBadRequest, badRequest("a batch has only \"messages\""))
			return
		}
		results := make([]batchItem, len(req.Messages))
		for i, m := range req.Messages {
			pos, perr := a.publishOne(r, key, m)
			results[i] = batchItem{Position: pos, Error: perr}
		}
		writeJSON(w, http.StatusOK, struct {
			Results []batchItem `json:"results"`
		}{results})
		return
	}
	pos, perr := a.publishOne(r, key, req)
	if perr != nil {
		writeAPIError(w, apiStatus(perr), perr)
		return
	}
	writeJSON(w, http.StatusOK, pos)
}

func (a *API) publishOne(r *http.Request, key *APIKey, m publishRequest) (*pubsub.Position, *protoError) {
	if len(m.Data) == 0 {
		return nil, badRequest("publish needs data (any JSON value)")
	}
	if perr := a.checkChannel(key, "publish to", m.Channel); perr != nil {
		return nil, perr
	}
	pos, err := a.Hub.Publish(r.Context(), m.Channel, m.Data)
	if err != nil {
		return nil, hubError(err)
	}
	a.obs.namespace(m.Channel).publishedAPI(len(m.Data))
	return &pos, nil
}

func (a *API) channels(w http.ResponseWriter, r *http.Request, key *APIKey) {
	list, err := a.Hub.Channels(r.Context())
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, hubError(err))
		return
	}
	if key != nil {
		list = slices.DeleteFunc(list, func(c pubsub.ChannelInfo) bool { return !key.allowsChannel(c.Channel) })
	}
	writeJSON(w, http.StatusOK, struct {
		Channels []pubsub.ChannelInfo `json:"channels"`
	}{list})
}

func (a *API) presence(w http.ResponseWriter, r *http.Request, key *APIKey) {
	if perr := a.checkChannel(key, "read", r.PathValue("name")); perr != nil {
		writeAPIError(w, apiStatus(perr), perr)
		return
	}
	clients, err := a.Hub.Presence(r.Context(), r.PathValue("name"))
	if err != nil {
		perr := hubError(err)
		writeAPIError(w, apiStatus(perr), perr)
		return
	}
	writeJSON(w, http.StatusOK, presenceResult{Clients: clients})
}

func (a *API) history(w http.ResponseWriter, r *http.Request, key *APIKey) {
	if perr := a.checkChannel(key, "read", r.PathValue("name")); perr != nil {
		writeAPIError(w, apiStatus(perr), perr)
		return
	}
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeAPIError(w, http.StatusBadRequest, badRequest("limit must be a non-negative integer, got %q", v))
			return
		}
		limit = n
	}
	var since *pubsub.Position
	if v := q.Get("since"); v != "" {
		off, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, badRequest("since must be an offset (a non-negative integer), got %q", v))
			return
		}
		since = &pubsub.Position{Offset: off, Epoch: q.Get("epoch")}
	}
	res, perr := history(r.Context(), a.Hub, r.PathValue("name"), since, limit)
	if perr != nil {
		writeAPIError(w, apiStatus(perr), perr)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// apiStatus is the HTTP status of an error answer.
func apiStatus(e *protoError) int {
	switch e.Code {
	case codeBadRequest, codeInvalidChannel, codeUnknownNamespace:
		return http.StatusBadRequest
	case codeHistoryDisabled, codePresenceDisabled:
		return http.StatusNotFound
	case codePermissionDenied:
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

func writeAPIError(w http.ResponseWriter, status int, e *protoError) {
	writeJSON(w, status, struct {
		Error *protoError `json:"error"`
	}{e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = fmt.Appendf(nil, `{"error":{"code":%d,"message":%q}}`, codeInternal, err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

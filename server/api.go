package server

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
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
	// Key, when set, is required as "Authorization: apikey <Key>". When
	// empty, the API answers loopback clients only.
	Key string
	// MaxBody bounds a request body in bytes (0: 32 MiB).
	MaxBody int64

	obs *observer // counts publishes; nil when the API runs outside a Server
}

// register adds the API's routes to mux.
func (a *API) register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/publish", a.guard(a.publish))
	mux.HandleFunc("GET /api/channels", a.guard(a.channels))
	mux.HandleFunc("GET /api/channels/{name}/presence", a.guard(a.presence))
	mux.HandleFunc("GET /api/channels/{name}/history", a.guard(a.history))
}

// guard checks the API key, or the loopback rule without one.
func (a *API) guard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.Key != "" {
			scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			if !strings.EqualFold(scheme, "apikey") || subtle.ConstantTimeCompare([]byte(got), []byte(a.Key)) != 1 {
				w.Header().Set("WWW-Authenticate", `apikey realm="duplex"`)
				writeAPIError(w, http.StatusUnauthorized, &protoError{Code: codePermissionDenied, Message: "missing or wrong API key (Authorization: apikey <key>)"})
				return
			}
		} else if !isLoopback(r.RemoteAddr) {
			writeAPIError(w, http.StatusForbidden, &protoError{Code: codePermissionDenied, Message: "no API key is configured, so the API answers loopback clients only"})
			return
		}
		next(w, r)
	}
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

func (a *API) publish(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			writeAPIError(w, http.StatusUnsupportedMediaType, badRequest("Content-Type must be application/json, got %q", ct))
			return
		}
	}
	limit := a.MaxBody
	if limit <= 0 {
		limit = 32 << 20
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
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
			pos, perr := a.publishOne(r, m)
			results[i] = batchItem{Position: pos, Error: perr}
		}
		writeJSON(w, http.StatusOK, struct {
			Results []batchItem `json:"results"`
		}{results})
		return
	}
	pos, perr := a.publishOne(r, req)
	if perr != nil {
		writeAPIError(w, apiStatus(perr), perr)
		return
	}
	writeJSON(w, http.StatusOK, pos)
}

func (a *API) publishOne(r *http.Request, m publishRequest) (*pubsub.Position, *protoError) {
	if len(m.Data) == 0 {
		return nil, badRequest("publish needs data (any JSON value)")
	}
	pos, err := a.Hub.Publish(r.Context(), m.Channel, m.Data)
	if err != nil {
		return nil, hubError(err)
	}
	a.obs.namespace(m.Channel).publishedAPI(len(m.Data))
	return &pos, nil
}

func (a *API) channels(w http.ResponseWriter, r *http.Request) {
	list, err := a.Hub.Channels(r.Context())
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, hubError(err))
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Channels []pubsub.ChannelInfo `json:"channels"`
	}{list})
}

func (a *API) presence(w http.ResponseWriter, r *http.Request) {
	clients, err := a.Hub.Presence(r.Context(), r.PathValue("name"))
	if err != nil {
		perr := hubError(err)
		writeAPIError(w, apiStatus(perr), perr)
		return
	}
	writeJSON(w, http.StatusOK, presenceResult{Clients: clients})
}

func (a *API) history(w http.ResponseWriter, r *http.Request) {
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

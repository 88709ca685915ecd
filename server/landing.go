package server

import (
	"html/template"
	"net/http"
)

var landingPage = template.Must(template.New("landing").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Duplex</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
code { background: #f2f2f2; padding: 0 .25em; border-radius: 3px; }
</style>
</head>
<body>
<h1>Duplex</h1>
<p>A WebSocket (RFC 6455) server. Version {{.Version}}.</p>
<h2>Endpoints</h2>
<dl>
<dt><code>GET /echo</code></dt>
<dd>The echo service: every WebSocket message you send comes back unchanged, text as text and binary as binary.
Try it from a browser console on this page: <code>ws = new WebSocket("ws://{{.Host}}/echo"); ws.onmessage = e =&gt; console.log(e.data); ws.onopen = () =&gt; ws.send("hello")</code>.</dd>
<dt><code>GET /ws</code> (subprotocol <code>duplex.v1</code>)</dt>
<dd>Channels: subscribe, publish, presence, history, and recovery of missed messages after a reconnect. The browser SDK is at <a href="/duplex.js"><code>/duplex.js</code></a> (types: <a href="/duplex.d.ts"><code>/duplex.d.ts</code></a>).</dd>
<dt><code>POST /api/publish</code></dt>
<dd>Server push from any backend: <code>curl -H 'Content-Type: application/json' -d '{"channel":"news","data":{"text":"hi"}}' http://{{.Host}}/api/publish</code>. Also <code>GET /api/channels</code>, <code>/api/channels/{name}/presence</code> and <code>/history</code>.</dd>
<dt><code>GET /chat/{room}</code></dt>
<dd>A plain chat room: every text a member sends reaches every member. <code>ws = new WebSocket("ws://{{.Host}}/chat/lobby")</code>.</dd>
</dl>
</body>
</html>
`))

// landing serves the page at / that says what this server offers.
func (s *Server) landing(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	landingPage.Execute(w, struct{ Version, Host string }{s.cfg.Version, r.Host})
}

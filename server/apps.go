package server

import (
	"net/http"
	"path"
)

// appAssetTypes are the extensions served under /app/: the apps' scripts,
// styles and images. Their HTML pages are served at /chat/, /echo/ and
// /ticker/ instead, and the landing template is not served raw.
var appAssetTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
}

// mountApps adds the web apps' routes: the landing page at /, the pages of
// the chat room, echo tester and ticker, and their files under /app/.
func (s *Server) mountApps() {
	s.mux.HandleFunc("GET /{$}", s.landing)
	s.mux.HandleFunc("GET /app/", serveAppAsset)
	s.mux.Handle("GET /chat/{$}", appPage("chat"))
	s.mux.Handle("GET /echo/{$}", appPage("echo"))
	s.mux.Handle("GET /ticker/{$}", appPage("ticker"))
}

// appPage serves the HTML page of one app (web/app/{name}/index.html). The
// chat page is also ChatHandler.Fallback, so /chat/{room} opened in a
// browser shows the room (the page reads the room from its URL); the
// handler has refused an invalid room with 400 before.
func appPage(name string) http.Handler {
	return serveWebFile("app/"+name+"/index.html", "text/html; charset=utf-8")
}

// serveAppAsset serves an embedded file under /app/ whose extension is in
// appAssetTypes.
func serveAppAsset(w http.ResponseWriter, r *http.Request) {
	name := path.Clean(r.URL.Path)[1:] // "app/..."
	ctype, ok := appAssetTypes[path.Ext(name)]
	if !ok {
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	writeWebFile(w, name, ctype)
}

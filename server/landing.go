package server

import (
	"html/template"
	"net/http"

	"github.com/duplex-ws/duplex/web"
)

// landingPage is web/app/landing.html, the page at / that says what this
// server offers.
var landingPage = template.Must(template.ParseFS(web.FS, "app/landing.html"))

// landingData is what the landing template shows.
type landingData struct {
	Version string
	Host    string
	Demo    bool
	Symbols []string
}

// landing serves the page at / that says what this server offers.
func (s *Server) landing(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	landingPage.Execute(w, landingData{Version: s.cfg.Version, Host: r.Host, Demo: s.cfg.Demo, Symbols: TickerSymbols})
}

package server

import (
	"bytes"
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
	// The page is rendered whole before a byte is sent, so that a template
	// that fails answers 500 rather than half a page with 200.
	var page bytes.Buffer
	if err := landingPage.Execute(&page, landingData{Version: s.cfg.Version, Host: r.Host, Demo: s.cfg.Demo, Symbols: TickerSymbols}); err != nil {
		s.cfg.Log.Error("landing page", "err", err)
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(page.Bytes())
}

package server

import (
	"bytes"
	"html/template"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestLandingTemplateError checks that a landing template that fails to
// render answers 500 with no part of the page, and logs why.
func TestLandingTemplateError(t *testing.T) {
	saved := landingPage
	defer func() { landingPage = saved }()
	// Rendering fails halfway: the text before the bad field must not leak.
	landingPage = template.Must(template.New("landing").Parse("<h1>half a page</h1>{{.Nope}}"))

	var logs bytes.Buffer
	s := New(Config{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", rec.Code)
	}
	if got, want := rec.Body.String(), "Internal Server Error\n"; got != want {
		t.Errorf("body %q, want %q", got, want)
	}
	if !strings.Contains(logs.String(), `level=ERROR msg="landing page" err=`) || !strings.Contains(logs.String(), "Nope") {
		t.Errorf("log %q: want an error line naming the failure", logs.String())
	}
}

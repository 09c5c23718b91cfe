package web

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServesPageAndAssets(t *testing.T) {
	h := Handler()
	for _, c := range []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", `<table id="trackers">`},
		{"/index.html", "text/html; charset=utf-8", `id="signin"`},
		{"/static/fleet.js", "text/javascript; charset=utf-8", "/v2/event/subscription"},
		{"/static/fleet.css", "text/css; charset=utf-8", "#map"},
		{"/static/bridge.js", "text/javascript; charset=utf-8", "WebSocket.connect"},
		{"/static/atmosphere.js", "text/javascript; charset=utf-8", "Licensed under the Apache License, Version 2.0"},
		{"/static/ATMOSPHERE-LICENSE", "text/plain; charset=utf-8", "Apache License"},
	} {
		t.Run(c.path, func(t *testing.T) {
			r := get(t, h, http.MethodGet, c.path)
			if r.StatusCode != http.StatusOK {
				t.Fatalf("status %d", r.StatusCode)
			}
			if got := r.Header.Get("Content-Type"); got != c.ctype {
				t.Errorf("Content-Type %q, want %q", got, c.ctype)
			}
			if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", got)
			}
			if r.Header.Get("ETag") == "" {
				t.Error("no ETag")
			}
			if b := body(t, r); !strings.Contains(b, c.contains) {
				t.Errorf("body lacks %q", c.contains)
			}
		})
	}
}

func TestPageElements(t *testing.T) {
	b := body(t, get(t, Handler(), http.MethodGet, "/"))
	for _, want := range []string{
		`id="login"`, `id="password"`, `id="signin"`, `id="transport"`, `id="status"`,
		`id="map"`, `id="details"`, `<table id="trackers">`, `<tbody>`,
		`value="websocket" selected`, `value="long-polling"`, `value="streaming"`, `value="sse"`,
		`src="/static/atmosphere.js"`, `src="/static/fleet.js"`, `href="/static/fleet.css"`,
		`src="/static/bridge.js"`, `id="bridge-console"`, `id="bridge-frames"`, `id="bridge-frame"`, `id="bridge-relays"`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(b, tilesMarker) || strings.Contains(b, "fleetwire-tiles") {
		t.Error("page without tiles carries the tile marker or meta tag")
	}
	if strings.Index(b, "atmosphere.js") > strings.Index(b, "fleet.js") {
		t.Error("fleet.js is loaded before atmosphere.js")
	}
}

func TestVendoredAtmosphereUnchanged(t *testing.T) {
	b, err := os.ReadFile("static/atmosphere.js")
	if err != nil {
		t.Fatal(err)
	}
	served := body(t, get(t, Handler(), http.MethodGet, "/static/atmosphere.js"))
	if !bytes.Equal(b, []byte(served)) {
		t.Error("served atmosphere.js differs from the vendored file")
	}
	if !strings.HasPrefix(served, "/*\n * Copyright 2018 Async-IO.org") {
		t.Error("atmosphere.js lost its licence header")
	}
	if !strings.Contains(served, `"2.3.8-javascript"`) {
		t.Error("atmosphere.js is not version 2.3.8")
	}
}

func TestTileMetaTag(t *testing.T) {
	const tmpl = "https://tile.openstreetmap.org/{z}/{x}/{y}.png?k=a&b=\"c\""
	h := New(Options{TileURL: tmpl})
	r := get(t, h, http.MethodGet, "/")
	b := body(t, r)
	want := `<meta name="fleetwire-tiles" content="https://tile.openstreetmap.org/{z}/{x}/{y}.png?k=a&amp;b=&#34;c&#34;">`
	if !strings.Contains(b, want) {
		t.Errorf("page lacks %s", want)
	}
	if strings.Count(b, "fleetwire-tiles") != 1 {
		t.Error("tile meta tag not exactly once")
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src 'self' data: https://tile.openstreetmap.org;") {
		t.Errorf("CSP does not allow the tile host: %s", csp)
	}
	if csp := get(t, Handler(), http.MethodGet, "/").Header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src 'self' data:;") {
		t.Errorf("CSP without tiles: %s", csp)
	}
}

func TestTileSource(t *testing.T) {
	for in, want := range map[string]string{
		"https://tile.openstreetmap.org/{z}/{x}/{y}.png":     "https://tile.openstreetmap.org",
		"https://{s}.tile.example.com/{z}/{x}/{y}.png":       "https://*.tile.example.com",
		"http://127.0.0.1:8081/tiles/{z}/{x}/{y}.png":        "http://127.0.0.1:8081",
		"/tiles/{z}/{x}/{y}.png":                             "'self'",
		"https://a.example.com;script-src */{z}/{x}/{y}.png": "'self'",
		"javascript:alert(1)":                                "'self'",
		"https://{s}tiles.example.com/{z}/{x}/{y}.png":       "https:",
	} {
		if got := tileSource(in); got != want {
			t.Errorf("tileSource(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/nope", "/static/", "/static/missing.js", "/static/index.html", "/static/../web.go", "/v2/tracker/list"} {
		if r := get(t, h, http.MethodGet, p); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, r.StatusCode)
		}
	}
	if r := get(t, h, http.MethodPost, "/"); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d", r.StatusCode)
	}
	r := get(t, h, http.MethodHead, "/static/fleet.js")
	if r.StatusCode != http.StatusOK || body(t, r) != "" {
		t.Errorf("HEAD: status %d", r.StatusCode)
	}
}

func TestConditionalGet(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/", "/static/fleet.js"} {
		tag := get(t, h, http.MethodGet, p).Header.Get("ETag")
		if r := get(t, h, http.MethodGet, p, "If-None-Match", tag); r.StatusCode != http.StatusNotModified {
			t.Errorf("%s with If-None-Match: status %d, want 304", p, r.StatusCode)
		}
	}
}

// Package web serves the live fleet page: a single HTML page with its
// script, style sheet and a vendored copy of atmosphere.js, all embedded in
// the binary so the page works with no network beyond the fleetwire server.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// tilesMarker in index.html is replaced by the tile meta tag, or removed.
const tilesMarker = "<!--fleetwire-tiles-->"

// Options configure the page.
type Options struct {
	// TileURL is a raster tile URL template such as
	// "https://tile.openstreetmap.org/{z}/{x}/{y}.png" drawn under the
	// trackers; empty (the default) draws none, so the page needs no
	// network beyond the fleetwire server.
	TileURL string
}

// Handler is New with default options.
func Handler() http.Handler { return New(Options{}) }

// New returns a handler serving the page at "/" and its assets under
// "/static/". It expects the full request path (mount it at "/", or at
// "GET /{$}" and "GET /static/"); other paths are 404.
func New(o Options) http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err)
	}
	page, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		panic(err)
	}
	meta := ""
	if o.TileURL != "" {
		meta = `<meta name="fleetwire-tiles" content="` + html.EscapeString(o.TileURL) + `">`
	}
	page = bytes.Replace(page, []byte(tilesMarker), []byte(meta), 1)

	etags := map[string]string{}
	_ = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := fs.ReadFile(sub, p); err == nil {
				etags["/static/"+p] = etag(b)
			}
		}
		return nil
	})

	imgSrc := "'self' data:"
	if o.TileURL != "" {
		imgSrc += " " + tileSource(o.TileURL)
	}
	csp := "default-src 'self'; img-src " + imgSrc +
		"; connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

	return &handler{page: page, pageTag: etag(page), etags: etags, files: http.FileServerFS(sub), csp: csp}
}

type handler struct {
	page    []byte
	pageTag string
	etags   map[string]string
	files   http.Handler
	csp     string
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", "no-cache")
	switch p := r.URL.Path; {
	case p == "/" || p == "/index.html":
		hd.Set("Content-Type", "text/html; charset=utf-8")
		hd.Set("Content-Security-Policy", h.csp)
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("ETag", h.pageTag)
		http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(h.page))
	case strings.HasPrefix(p, "/static/") && p != "/static/index.html":
		tag, ok := h.etags[p]
		if !ok {
			http.NotFound(w, r)
			return
		}
		hd.Set("ETag", tag)
		if strings.HasSuffix(p, "LICENSE") {
			hd.Set("Content-Type", "text/plain; charset=utf-8")
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = strings.TrimPrefix(p, "/static")
		h.files.ServeHTTP(w, r2)
	default:
		http.NotFound(w, r)
	}
}

func etag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// tileSource is the CSP source of a tile URL template: its scheme and host,
// a "{s}" subdomain placeholder widened to a wildcard.
func tileSource(tmpl string) string {
	scheme, rest, ok := strings.Cut(tmpl, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return "'self'"
	}
	host, _, _ := strings.Cut(rest, "/")
	if i := strings.LastIndex(host, "}"); i >= 0 {
		host = "*" + host[i+1:]
		if !strings.HasPrefix(host, "*.") {
			return scheme + ":"
		}
	}
	if host == "" || strings.ContainsAny(host, " ;,'\"") {
		return "'self'"
	}
	return scheme + "://" + host
}

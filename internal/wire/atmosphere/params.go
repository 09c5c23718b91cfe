package atmosphere

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Request parameters. Clients put them in the query string (legacy
// clients drop the real headers by default); the real header is the
// fallback.
const (
	hTrackingID  = "X-Atmosphere-tracking-id"
	hFramework   = "X-Atmosphere-Framework"
	hTransport   = "X-Atmosphere-Transport"
	hTrackSize   = "X-Atmosphere-TrackMessageSize"
	hProtocol    = "X-atmo-protocol"
	hHeartbeat   = "X-Heartbeat-Server"
	hError       = "X-Atmosphere-error"
	hFirst       = "X-Atmosphere-first-request"
	hPostBody    = "X-Atmosphere-Post-Body"
	hReceived    = "X-Fleetwire-Received"
	hResume      = "X-Fleetwire-Resume"
	qJSONPCallbk = "jsonpTransport"
)

// params are the Atmosphere parameters of one request.
type params struct {
	trackingID string
	transport  string
	framework  string
	protocol   bool // handshake wanted
	track      bool // trackMessageLength framing
	heartbeat  string
	callback   string // JSONP callback name
	postBody   string
	hasBody    bool // postBody present
	// received is the X-Fleetwire-Received acknowledgement, when given.
	received    uint64
	hasReceived bool
	// resume is the client's resume secret (X-Fleetwire-Resume), which
	// binds a session it opens to it.
	resume string
}

// lookup returns the query parameter name (matched without regard to
// case), else the header.
func lookup(q url.Values, h http.Header, name string) (string, bool) {
	if v, ok := q[name]; ok && len(v) > 0 {
		return v[0], true
	}
	for k, v := range q {
		if len(v) > 0 && strings.EqualFold(k, name) {
			return v[0], true
		}
	}
	if v := h.Values(name); len(v) > 0 {
		return v[0], true
	}
	return "", false
}

func parseParams(r *http.Request) params {
	q := r.URL.Query()
	get := func(name string) string {
		v, _ := lookup(q, r.Header, name)
		return strings.TrimSpace(v)
	}
	p := params{
		trackingID: get(hTrackingID),
		transport:  strings.ToLower(get(hTransport)),
		framework:  get(hFramework),
		protocol:   strings.EqualFold(get(hProtocol), "true"),
		track:      strings.EqualFold(get(hTrackSize), "true"),
		heartbeat:  get(hHeartbeat),
		callback:   q.Get(qJSONPCallbk),
	}
	p.postBody, p.hasBody = lookup(q, nil, hPostBody)
	p.resume = get(hResume)
	if v := get(hReceived); v != "" {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			p.received, p.hasReceived = n, true
		}
	}
	return p
}

// isNew reports whether the request starts a new session (tracking id 0
// or missing).
func (p params) isNew() bool { return p.trackingID == "" || p.trackingID == "0" }

// legacy reports whether the client is a pre-5 atmosphere.js, which needs
// whitespace padding at the start of streams.
func (p params) legacy() bool { return !strings.HasPrefix(p.framework, "5") }

// heartbeatPeriod is the server→client heartbeat period for this request:
// the configured one, or the client's X-Heartbeat-Server wish when longer
// or 0 (disabled). Zero means no heartbeat.
func (p params) heartbeatPeriod(configured time.Duration) time.Duration {
	if configured < 0 {
		return 0
	}
	if p.heartbeat != "" {
		if n, err := strconv.Atoi(p.heartbeat); err == nil && n >= 0 {
			if n == 0 {
				return 0
			}
			if d := time.Duration(n) * time.Second; d > configured {
				return d
			}
		}
	}
	return configured
}

// validID reports whether id may name a session: a uuid or any short token
// of letters, digits, '-', '_' and '.'.
func validID(id string) bool {
	if id == "" || len(id) > 100 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// setHeaders writes the headers every Atmosphere response carries:
// no-cache, CORS and, when known, the tracking id.
func (srv *Server) setHeaders(w http.ResponseWriter, r *http.Request, trackingID string) {
	h := w.Header()
	h.Set("Cache-Control", "no-store, no-cache, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "-1")
	srv.cors(h, r)
	if trackingID != "" {
		h.Set(hTrackingID, trackingID)
	}
}

// cors sets the CORS headers for a request from an allowed origin: the
// origin itself, with credentials, when it is listed; "*" without
// credentials when any origin is allowed. A reflected origin never gets
// credentials.
func (srv *Server) cors(h http.Header, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h.Add("Vary", "Origin")
	allowed, any := false, false
	for _, o := range srv.opts.AllowedOrigins {
		switch {
		case o == "*":
			any = true
		case strings.EqualFold(o, origin):
			allowed = true
		}
	}
	switch {
	case allowed:
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
	case any:
		h.Set("Access-Control-Allow-Origin", "*")
	default:
		return
	}
	h.Set("Access-Control-Expose-Headers", "X-Atmosphere-tracking-id, X-Heartbeat-Server, X-Atmosphere-error")
}

// preflight answers a CORS OPTIONS request.
func (srv *Server) preflight(w http.ResponseWriter, r *http.Request) {
	srv.setHeaders(w, r, "")
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "OPTIONS, GET, POST")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
	} else {
		h.Set("Access-Control-Allow-Headers", "Origin, Content-Type, X-Atmosphere-Framework, X-Atmosphere-tracking-id, "+
			"X-Atmosphere-Transport, X-Atmosphere-TrackMessageSize, X-atmo-protocol, X-Heartbeat-Server, X-Cache-Date, X-Fleetwire-Received, X-Fleetwire-Resume")
	}
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusOK)
}

// fail answers with status and the Atmosphere error header.
func (srv *Server) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	srv.setHeaders(w, r, "")
	w.Header().Set(hError, msg)
	http.Error(w, msg, status)
}

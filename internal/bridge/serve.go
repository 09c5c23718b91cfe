package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/auth"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/netlimit"
)

// Realm is the basic-auth realm a 401 names.
const Realm = "fleetwire"

// credential is who a request authenticated as.
type credential struct {
	user *fleet.User
	hash string
	// started is set when the bridge started the session with Login; it
	// ends with the connection.
	started bool
}

// validHash reports whether h is 32 lower-case hex characters, the form
// of a session hash or API key.
func validHash(h string) bool {
	if len(h) != 32 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// authenticate reads the credential of r: ?hash=, or basic auth with an
// API key or session hash as the password (any user name), or basic auth
// with login and password.
func (b *Bridge) authenticate(ctx context.Context, r *http.Request) (*credential, error) {
	if h := r.URL.Query().Get("hash"); h != "" {
		u, _, err := b.opts.Auth.Resolve(ctx, h)
		if err != nil {
			return nil, err
		}
		return &credential{user: u, hash: h}, nil
	}
	login, password, ok := r.BasicAuth()
	if !ok {
		return nil, apierr.SessionNotFound.With("no credentials: use basic auth or ?hash=")
	}
	if validHash(password) {
		u, _, err := b.opts.Auth.Resolve(ctx, password)
		if err == nil {
			return &credential{user: u, hash: password}, nil
		}
		if login == "" || strings.EqualFold(login, "apikey") || strings.EqualFold(login, "hash") || isServerError(err) {
			return nil, err
		}
		// Maybe a password that merely looks like a hash: try it as one.
	}
	s, err := b.opts.Auth.Login(ctx, login, password)
	if err != nil {
		return nil, err
	}
	u, _, err := b.opts.Auth.Resolve(ctx, s.Hash)
	if err != nil {
		return nil, err
	}
	return &credential{user: u, hash: s.Hash, started: true}, nil
}

func isServerError(err error) bool {
	e := apierr.From(err)
	return e.HTTPStatus >= 500
}

// sameOrigin reports whether the request's Origin names the host it was
// sent to.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// Name returns the bridge name a request path carries: what follows
// "/auth/" or "/bridge/" ("/auth/clown-talk-server_nodes_bridge_0" →
// "clown-talk-server_nodes_bridge_0"), or "" for none.
func Name(path string) string {
	for _, prefix := range [...]string{"/auth/", "/bridge/"} {
		if rest, ok := strings.CutPrefix(path, prefix); ok {
			return strings.Trim(rest, "/")
		}
	}
	return ""
}

// ServeHTTP authenticates the request and upgrades it to a bridge
// connection. Mount it at /bridge, /bridge/ and /auth/; the rest of the
// path is the bridge name (see Name), which may choose the connection's
// default node. Bad or missing credentials get 401 with a basic-auth
// challenge before any upgrade.
func (b *Bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.RLock()
	closed := b.closed
	b.mu.RUnlock()
	if closed {
		httpError(w, http.StatusServiceUnavailable, apierr.Unexpected.With("server shutting down"))
		return
	}
	byQuery := r.URL.Query().Get("hash") != ""
	if b.opts.CheckOrigin != nil {
		if !b.opts.CheckOrigin(r) {
			httpError(w, http.StatusForbidden, apierr.AccessDenied.With("origin not allowed"))
			return
		}
	} else if !byQuery && !sameOrigin(r) {
		httpError(w, http.StatusForbidden, apierr.AccessDenied.With("cross-origin pages must authenticate with ?hash="))
		return
	}

	ctx, cancel := context.WithTimeout(auth.WithClientAddr(r.Context(), r.RemoteAddr), 15*time.Second)
	cred, err := b.authenticate(ctx, r)
	cancel()
	if err != nil {
		e := apierr.From(err)
		if e.HTTPStatus >= 500 {
			b.log.Error("bridge: authenticate", "err", err)
			httpError(w, http.StatusServiceUnavailable, e)
			return
		}
		if s, ok := apierr.RetryAfterSeconds(err); ok {
			w.Header().Set("Retry-After", strconv.Itoa(s))
			httpError(w, http.StatusTooManyRequests, e)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="`+Realm+`", charset="UTF-8"`)
		httpError(w, http.StatusUnauthorized, e)
		return
	}
	// An authenticated connection no longer counts against its address's
	// cap on unauthenticated connections.
	netlimit.Authenticated(r.Context())

	ws, err := b.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader has answered the request.
		b.endSession(cred)
		return
	}
	c := newConn(b, ws, cred, b.defaultNode(cred.user.ID, Name(r.URL.Path)))
	if !b.add(c) {
		c.closeWith(1001, "server shutting down")
		b.endSession(cred)
		return
	}
	b.log.Debug("bridge: connected", "user_id", cred.user.ID, "remote", r.RemoteAddr, "node", c.node())
	c.serve()
	b.remove(c)
	b.endSession(cred)
	b.log.Debug("bridge: disconnected", "user_id", cred.user.ID, "remote", r.RemoteAddr,
		"dropped", c.droppedTotal())
}

// endSession ends a session the bridge started with Login.
func (b *Bridge) endSession(cred *credential) {
	if !cred.started {
		return
	}
	lo, ok := b.opts.Auth.(loggerOut)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := lo.Logout(ctx, cred.hash); err != nil && !errors.Is(err, apierr.SessionNotFound) {
		b.log.Warn("bridge: end session", "user_id", cred.user.ID, "err", err)
	}
}

// httpError answers with the API's error envelope.
func httpError(w http.ResponseWriter, status int, e *apierr.Error) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"success": false,
		"status":  map[string]any{"code": e.Code, "description": e.Description},
	})
}

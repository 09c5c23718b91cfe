package atmosphere

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/fleetwire/fleetwire/internal/wire/websocket"
)

// Server serves the Atmosphere transports for a Handler. Create it with
// NewServer, mount it with ServeHTTP, and end it with Shutdown.
//
// # Sessions
//
// Sessions are keyed by tracking id. A GET or WebSocket upgrade with
// tracking id 0 (or none) opens a session under a new uuid and, with
// X-atmo-protocol=true, starts with the handshake `<uuid>|<ms>|X|`. A known
// id reattaches to its session without a handshake; an unknown one (after a
// restart, or once expired) opens a session under that id, so the client
// carries on. One transport carries a session at a time: a new one
// detaches the old (its WebSocket is closed, its held GET answered empty).
// While no transport is attached, messages wait in the outbox; a session
// left without a transport for longer than Options.SessionGrace is closed.
// POST is a client message for the session (any transport value);
// X-Atmosphere-Transport=close, with any method, closes the session.
//
// # Acknowledged delivery
//
// A write that succeeded into a socket that then died is lost without any
// sign. To close that gap, every application message a session hands to a
// transport gets the next number (1, 2, 3, …; the handshake and heartbeats
// are not counted) and is kept in a replay ring bounded like the outbox
// (by default 4096 messages or 16 MiB, the oldest dropped first). A client
// that wants zero loss counts the application messages it received on its
// tracking id and sends the count as the query parameter
// X-Fleetwire-Received=<n> on every GET or WebSocket (re)attach. The server
// then first re-sends the messages numbered above n that the ring still
// holds, in order, then carries on with the outbox; the messages up to n
// leave the ring. If the ring no longer reaches back to n+1 it sends what
// it has and logs the gap. A session opened under an unknown tracking id
// (after a server restart, or after it expired) numbers on from the
// client's count. An attachment opened with the parameter never puts
// messages back into the outbox: whatever was taken is in the ring.
//
// Without the parameter the server behaves as plain Atmosphere: messages
// come from the outbox only, and the messages of a write that failed go
// back to the front of the outbox (giving their numbers back), to be sent
// on the next attach.
type Server struct {
	h        Handler
	opts     Options
	log      *slog.Logger
	upgrader websocket.Upgrader

	mu       sync.Mutex
	sessions map[string]*session
	closing  bool

	quit       chan struct{} // closed by Shutdown
	wg         sync.WaitGroup
	reaperDone chan struct{}
}

// NewServer returns a Server for h. It starts the goroutine that closes
// sessions left without a transport for longer than the grace period;
// Shutdown stops it.
func NewServer(h Handler, opts Options) *Server {
	opts = opts.withDefaults()
	srv := &Server{
		h:          h,
		opts:       opts,
		log:        opts.Logger,
		sessions:   map[string]*session{},
		quit:       make(chan struct{}),
		reaperDone: make(chan struct{}),
	}
	srv.upgrader = wsUpgrader(opts)
	go srv.reaper()
	return srv
}

// enter registers a request with the server, false once shutting down.
func (srv *Server) enter() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.closing {
		return false
	}
	srv.wg.Add(1)
	return true
}

// ServeHTTP serves one Atmosphere request: a subscription (GET or
// WebSocket upgrade), a client push (POST) or a disconnect
// (X-Atmosphere-Transport=close, any method).
func (srv *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions {
		preflight(w, r)
		return
	}
	if !srv.enter() {
		fail(w, r, http.StatusServiceUnavailable, "server shutting down")
		return
	}
	defer srv.wg.Done()
	p := parseParams(r)
	if p.transport == tClose {
		srv.serveClose(w, r, p)
		return
	}
	switch r.Method {
	case http.MethodPost:
		srv.servePush(w, r, p)
		return
	case http.MethodGet:
	default:
		w.Header().Set("Allow", "OPTIONS, GET, POST")
		fail(w, r, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if websocket.IsUpgrade(r) {
		srv.serveWebSocket(w, r, p)
		return
	}
	if p.hasBody && !p.isNew() {
		// JSONP pushes travel as GETs with the body in the query.
		srv.servePush(w, r, p)
		return
	}
	switch p.transport {
	case tLongPolling, tJSONP, tPolling, "":
		srv.serveLongPoll(w, r, p)
	case tStreaming:
		srv.serveStream(w, r, p, false)
	case tSSE:
		srv.serveStream(w, r, p, true)
	case tWebSocket:
		fail(w, r, http.StatusBadRequest, "websocket upgrade required")
	default:
		// atmosphere.js 2.3.x falls back twice when a refused WebSocket
		// fires both onerror and onclose, and then polls with transport
		// "none" as long-polling does; serve any other name the same way.
		srv.serveLongPoll(w, r, p)
	}
}

var (
	errBadID    = errors.New("invalid tracking id")
	errClosing  = errors.New("server shutting down")
	errNotFound = errors.New("unknown tracking id")
)

// open returns the session for p's tracking id, opening one with the
// Handler when the id is new (0 or missing: a fresh uuid) or unknown (the
// client carries on under its id). created is set for a fresh uuid, the
// case that calls for a handshake.
func (srv *Server) open(r *http.Request, p params) (s *session, created bool, err error) {
	id := p.trackingID
	if p.isNew() {
		id, created = uuid.NewString(), true
	} else {
		if !validID(id) {
			return nil, false, errBadID
		}
		if s = srv.lookup(id); s != nil {
			return s, false, nil
		}
	}
	app, err := srv.h.Open(r, id)
	if err != nil {
		return nil, false, err
	}
	s = newSession(srv, id, app)
	srv.mu.Lock()
	if srv.closing {
		srv.mu.Unlock()
		app.Close()
		return nil, false, errClosing
	}
	if other := srv.sessions[id]; other != nil {
		// A concurrent request for the same unknown id won.
		srv.mu.Unlock()
		app.Close()
		return other, false, nil
	}
	srv.sessions[id] = s
	srv.mu.Unlock()
	mSessions.Add(1)
	if !created {
		srv.log.Debug("atmosphere: session opened under the client's tracking id", "tracking_id", id)
	}
	return s, created, nil
}

func (srv *Server) lookup(id string) *session {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.sessions[id]
}

// attach opens or finds p's session and attaches a to it.
func (srv *Server) attach(r *http.Request, p params, a *attachment) (*session, bool, error) {
	for range 3 {
		s, created, err := srv.open(r, p)
		if err != nil {
			return nil, false, err
		}
		err = s.attach(a, p)
		if err == nil {
			return s, created, nil
		}
		srv.forget(s)
	}
	return nil, false, errGone
}

// forget drops s from the table if it is still there.
func (srv *Server) forget(s *session) {
	srv.mu.Lock()
	if srv.sessions[s.id] == s {
		delete(srv.sessions, s.id)
	}
	srv.mu.Unlock()
}

// remove ends s: its transport is detached with code and reason, and the
// application session is closed. With cond, only if cond holds (checked
// under the session's lock). It reports whether s was removed now.
func (srv *Server) remove(s *session, code int, reason string, cond func() bool) bool {
	s.mu.Lock()
	if s.removed || (cond != nil && !cond()) {
		s.mu.Unlock()
		return false
	}
	s.removed = true
	cur := s.cur
	s.mu.Unlock()
	srv.forget(s)
	if cur != nil {
		cur.detach(code, reason)
	}
	s.closeApp()
	return true
}

// openError answers a failed open.
func (srv *Server) openError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errBadID):
		fail(w, r, http.StatusBadRequest, err.Error())
	case errors.Is(err, errClosing), errors.Is(err, errGone):
		fail(w, r, http.StatusServiceUnavailable, err.Error())
	default:
		srv.log.Info("atmosphere: connection refused", "err", err)
		fail(w, r, http.StatusForbidden, err.Error())
	}
}

// reaper closes sessions left without a transport beyond the grace period.
func (srv *Server) reaper() {
	defer close(srv.reaperDone)
	grace := srv.opts.SessionGrace
	tick := min(max(grace/4, 10*time.Millisecond), 5*time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-srv.quit:
			return
		case now := <-t.C:
			srv.reap(now, grace)
		}
	}
}

func (srv *Server) reap(now time.Time, grace time.Duration) {
	srv.mu.Lock()
	list := make([]*session, 0, len(srv.sessions))
	for _, s := range srv.sessions {
		list = append(list, s)
	}
	srv.mu.Unlock()
	for _, s := range list {
		if srv.remove(s, 1000, "session expired", func() bool { return s.idleFor(now) >= grace }) {
			srv.log.Debug("atmosphere: session expired", "tracking_id", s.id)
		}
	}
}

// Shutdown closes every WebSocket with 1001 "server shutting down", ends
// held requests and streams, closes all sessions, and waits for the
// goroutines it started, or for ctx.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.mu.Lock()
	already := srv.closing
	srv.closing = true
	list := make([]*session, 0, len(srv.sessions))
	for _, s := range srv.sessions {
		list = append(list, s)
	}
	srv.mu.Unlock()
	if !already {
		close(srv.quit)
	}
	for _, s := range list {
		srv.remove(s, websocket.CloseGoingAway, "server shutting down", nil)
	}
	done := make(chan struct{})
	go func() {
		srv.wg.Wait()
		<-srv.reaperDone
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

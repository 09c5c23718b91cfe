package atmosphere

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/fleetwire/fleetwire/internal/netlimit"
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

	perAddr *netlimit.Counter // sessions alive per client address

	mu        sync.Mutex
	sessions  map[string]*session
	takeovers map[string]chan struct{}
	closing   bool

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
		takeovers:  map[string]chan struct{}{},
		perAddr:    netlimit.NewCounter(opts.MaxSessionsPerAddr),
		quit:       make(chan struct{}),
		reaperDone: make(chan struct{}),
	}
	srv.upgrader = wsUpgrader(srv, opts)
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
		srv.preflight(w, r)
		return
	}
	if !srv.enter() {
		srv.fail(w, r, http.StatusServiceUnavailable, "server shutting down")
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
		srv.fail(w, r, http.StatusMethodNotAllowed, "method not allowed")
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
		srv.fail(w, r, http.StatusBadRequest, "websocket upgrade required")
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
	errResume   = errors.New("session cannot be resumed now")
	errTooMany  = errors.New("too many sessions from this address")
)

// opened says how a request found its session.
type opened int

const (
	// openedExisting: the session the tracking id names.
	openedExisting opened = iota
	// openedNew: a new session under a new id (tracking id 0): the client
	// gets the handshake.
	openedNew
	// openedReset: a new session under a new id, because the client's id
	// could not be honoured (not issued here, or the request does not show
	// what the session is bound to): the client gets the handshake and the
	// reset notice.
	openedReset
	// openedRetaken: a new session under the client's id, which this
	// server issued but whose session is gone: the client gets the reset
	// notice (no handshake: it keeps its id).
	openedRetaken
	// openedResumed: the session taken over from another node.
	openedResumed
)

// handshake reports whether the client gets the protocol handshake.
func (o opened) handshake() bool { return o == openedNew || o == openedReset }

// open returns the session for p's tracking id (see opened).
func (srv *Server) open(r *http.Request, p params) (*session, opened, error) {
	b := srv.binding(r, p)
	if p.isNew() {
		return srv.create(r, newID(srv.opts.IDKey), b, openedNew)
	}
	id := p.trackingID
	if !validID(id) {
		return nil, 0, errBadID
	}
	if s := srv.lookup(id); s != nil {
		if s.binding.Admits(b, srv.opts.Bind) {
			return s, openedExisting, nil
		}
		srv.log.Info("atmosphere: request not admitted to its session; opening a new one",
			"tracking_id", ShortID(id), "addr", b.Addr)
		return srv.create(r, newID(srv.opts.IDKey), b, openedReset)
	}
	if _, ok := srv.h.(Resumer); ok {
		s, err := srv.takeOver(r, p, id, b)
		switch {
		case err == nil:
			if s.binding.Admits(b, srv.opts.Bind) {
				return s, openedResumed, nil
			}
			return srv.create(r, newID(srv.opts.IDKey), b, openedReset)
		case errors.Is(err, ErrNotAdmitted):
			srv.log.Info("atmosphere: request not admitted to its session on another node; opening a new one",
				"tracking_id", ShortID(id), "addr", b.Addr)
			return srv.create(r, newID(srv.opts.IDKey), b, openedReset)
		case errors.Is(err, ErrUnknownSession):
		default:
			return nil, 0, err
		}
	}
	if issued(srv.opts.IDKey, id) {
		return srv.create(r, id, b, openedRetaken)
	}
	return srv.create(r, newID(srv.opts.IDKey), b, openedReset)
}

// takeOver resumes session id from another node through the Resumer and
// installs it here. One take-over per id at a time: a request for an id
// being taken over waits for it and then finds the session here.
func (srv *Server) takeOver(r *http.Request, p params, id string, b Binding) (*session, error) {
	rs, ok := srv.h.(Resumer)
	if !ok {
		return nil, ErrUnknownSession
	}
	for {
		if s := srv.lookup(id); s != nil {
			return s, nil
		}
		wait, mine := srv.resuming(id)
		if !mine {
			<-wait
			continue
		}
		res, err := rs.Resume(r, id, b, p.received, p.hasReceived)
		var s *session
		if err == nil {
			s, err = srv.adopt(id, res)
		}
		srv.resumed(id)
		if err != nil && !errors.Is(err, ErrUnknownSession) && !errors.Is(err, ErrNotAdmitted) {
			srv.log.Warn("atmosphere: resume", "tracking_id", ShortID(id), "err", err)
			return nil, fmt.Errorf("%w: %w", errResume, err)
		}
		return s, err
	}
}

// resuming marks id as being taken over. mine is false when another
// request is at it already; wait is closed when that one is done.
func (srv *Server) resuming(id string) (wait chan struct{}, mine bool) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if w, ok := srv.takeovers[id]; ok {
		return w, false
	}
	w := make(chan struct{})
	srv.takeovers[id] = w
	return w, true
}

func (srv *Server) resumed(id string) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if w, ok := srv.takeovers[id]; ok {
		close(w)
		delete(srv.takeovers, id)
	}
}

// create opens a session under id with the Handler.
func (srv *Server) create(r *http.Request, id string, b Binding, kind opened) (*session, opened, error) {
	if !srv.perAddr.Take(b.Addr) {
		mRefused.Inc()
		return nil, 0, errTooMany
	}
	app, err := srv.h.Open(r, id, b)
	if err != nil {
		srv.perAddr.Give(b.Addr)
		return nil, 0, err
	}
	s := newSession(srv, id, app)
	s.binding = b
	s.addrHeld.Store(true)
	if kind != openedNew && len(srv.opts.ResetNotice) > 0 {
		_ = s.q.Push(srv.opts.ResetNotice)
	}
	srv.mu.Lock()
	if srv.closing {
		srv.mu.Unlock()
		app.Close()
		s.freeAddr()
		return nil, 0, errClosing
	}
	if other := srv.sessions[id]; other != nil {
		// A concurrent request for the same gone id won.
		srv.mu.Unlock()
		app.Close()
		s.freeAddr()
		if !other.binding.Admits(b, srv.opts.Bind) {
			return srv.create(r, newID(srv.opts.IDKey), b, openedReset)
		}
		return other, openedExisting, nil
	}
	srv.sessions[id] = s
	srv.mu.Unlock()
	mSessions.Add(1)
	if kind == openedRetaken || kind == openedReset {
		mResets.Inc()
		srv.log.Debug("atmosphere: session opened anew", "tracking_id", ShortID(id), "kept_id", kind == openedRetaken)
	}
	return s, kind, nil
}

// adopt installs a session taken over from another node.
func (srv *Server) adopt(id string, res *Resumed) (*session, error) {
	s := newSession(srv, id, res.Session)
	s.binding = res.Binding
	s.addrHeld.Store(srv.perAddr.Take(res.Binding.Addr))
	s.seq = res.Last
	first := res.Last - uint64(len(res.Replay)) + 1
	for i, m := range res.Replay {
		s.keep(delivery{seq: first + uint64(i), msg: m})
	}
	srv.mu.Lock()
	if srv.closing {
		srv.mu.Unlock()
		res.Session.Close()
		return nil, errClosing
	}
	srv.sessions[id] = s
	srv.mu.Unlock()
	mSessions.Add(1)
	mResumed.Inc()
	return s, nil
}

func (srv *Server) lookup(id string) *session {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.sessions[id]
}

// attach opens or finds p's session and attaches a to it.
func (srv *Server) attach(r *http.Request, p params, a *attachment) (*session, opened, error) {
	for range 3 {
		s, kind, err := srv.open(r, p)
		if err != nil {
			return nil, 0, err
		}
		err = s.attach(a, p)
		if err == nil {
			return s, kind, nil
		}
		srv.forget(s)
	}
	return nil, 0, errGone
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
// application session is closed (or, with handoff, handed off). With
// cond, only if cond holds (checked under the session's lock). It reports
// whether s was removed now.
func (srv *Server) remove(s *session, code int, reason string, cond func() bool) bool {
	return srv.end(s, code, reason, cond, false)
}

func (srv *Server) end(s *session, code int, reason string, cond func() bool, handoff bool) bool {
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
		if handoff {
			// Nothing may be delivered here once another node holds the
			// session: wait for the transport to stop.
			cur.wait()
		}
	}
	if handoff {
		s.handoffApp()
	} else {
		s.closeApp()
	}
	return true
}

// Handoff releases the session of tracking id to another node: its
// transport is detached (and has stopped when Handoff returns) and the
// application session handed off, not closed. It reports whether the
// server held the session.
func (srv *Server) Handoff(id string) bool {
	s := srv.lookup(id)
	if s == nil {
		return false
	}
	return srv.end(s, 1000, "session moved to another server", nil, true)
}

// Deliver hands a client message to the session of tracking id held here,
// for a node that received it for a session it does not hold. It reports
// whether the server held the session.
func (srv *Server) Deliver(id string, msg []byte) bool {
	s := srv.lookup(id)
	if s == nil {
		return false
	}
	if len(msg) > 0 && string(msg) != "X" {
		s.app.Receive(msg)
	}
	return true
}

// End closes the session of tracking id held here (a close request that
// reached another node). It reports whether the server held the session.
func (srv *Server) End(id string) bool {
	s := srv.lookup(id)
	if s == nil {
		return false
	}
	srv.remove(s, 1000, "closed by the client", nil)
	return true
}

// openError answers a failed open.
func (srv *Server) openError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errBadID):
		srv.fail(w, r, http.StatusBadRequest, err.Error())
	case errors.Is(err, errTooMany):
		w.Header().Set("Retry-After", "10")
		srv.fail(w, r, http.StatusTooManyRequests, err.Error())
	case errors.Is(err, errClosing), errors.Is(err, errGone), errors.Is(err, errResume):
		srv.fail(w, r, http.StatusServiceUnavailable, err.Error())
	default:
		srv.log.Info("atmosphere: connection refused", "err", err)
		srv.fail(w, r, http.StatusForbidden, err.Error())
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
		case <-t.C:
			srv.reap(now(), grace)
		}
	}
}

func (srv *Server) reap(t int64, grace time.Duration) {
	srv.mu.Lock()
	list := make([]*session, 0, len(srv.sessions))
	for _, s := range srv.sessions {
		list = append(list, s)
	}
	srv.mu.Unlock()
	for _, s := range list {
		if srv.remove(s, 1000, "session expired", func() bool { return s.idleFor(t) >= grace }) {
			srv.log.Debug("atmosphere: session expired", "tracking_id", ShortID(s.id))
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
		// Sessions that can live on elsewhere are handed off: their
		// clients reconnect to another node and carry on there.
		_, handoff := s.app.(Handoffer)
		srv.end(s, websocket.CloseGoingAway, "server shutting down", nil, handoff)
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

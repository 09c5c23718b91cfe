package atmosphere

import (
	"net/http"
)

// serveLongPoll serves the long-polling transport, and JSONP and polling
// the same way. The first GET of a new session with the protocol on gets
// the handshake as its whole response. Later GETs are held until there is
// something to send, then answered and completed; after the heartbeat
// period or the poll timeout they are answered empty, and the client polls
// again. Framed responses carry every pending message; without
// trackMessageLength the client cannot split messages, so a response
// carries one.
func (srv *Server) serveLongPoll(w http.ResponseWriter, r *http.Request, p params) {
	transport := p.transport
	if transport == "" {
		transport = tLongPolling
	}
	c := newHTTPConn(w, p, srv.opts.WriteTimeout)
	defer c.finish()
	if transport == tJSONP {
		if !validCallback(p.callback) {
			srv.fail(w, r, http.StatusBadRequest, "invalid JSONP callback")
			return
		}
		c.jsonp = p.callback
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}

	if p.isNew() && p.protocol {
		s, _, err := srv.open(r, p)
		if err != nil {
			srv.openError(w, r, err)
			return
		}
		srv.sendHandshake(w, r, c, s, p)
		return
	}

	a := newAttachment(transport, c.kick)
	s, kind, err := srv.attach(r, p, a)
	if err != nil {
		srv.openError(w, r, err)
		return
	}
	defer s.release(a)
	if kind.handshake() && p.protocol {
		// A new id for a client whose id could not be honoured: this poll
		// answers with the handshake, the next one carries on.
		srv.sendHandshake(w, r, c, s, p)
		return
	}
	srv.setHeaders(w, r, s.id)
	if kind.handshake() {
		w.Header().Set(hFirst, "true")
	}
	w.WriteHeader(http.StatusOK)
	if transport == tLongPolling && p.legacy() {
		// Browsers surface a held response (readyState 2, on which
		// atmosphere.js 2.x fires onOpen/onReopen) only once body bytes
		// arrive, so a legacy client would wait for the first event or
		// the poll timeout to open. One space starts the body: the legacy
		// client trims it (an otherwise empty poll is still empty) and
		// tolerates it before a length prefix.
		if _, err := w.Write([]byte{' '}); err != nil {
			return
		}
	}
	if err := c.rc.Flush(); err != nil {
		return
	}
	l := loop{once: true, max: 1, dead: r.Context().Done(), timeout: srv.opts.LongPollTimeout}
	if p.track {
		l.max = 0
	}
	if hb := p.heartbeatPeriod(srv.opts.Heartbeat); hb > 0 && hb < l.timeout {
		l.timeout = hb
	}
	if transport == tPolling {
		l.noWait = true
	}
	switch s.pump(a, c, l) {
	case endClosed, endDelivered:
		if done, code, reason := s.ended(); done {
			srv.remove(s, code, reason, nil)
		}
	}
}

// sendHandshake answers a poll with the handshake of session s.
func (srv *Server) sendHandshake(w http.ResponseWriter, r *http.Request, c *httpConn, s *session, p params) {
	srv.setHeaders(w, r, s.id)
	w.Header().Set(hFirst, "true")
	hs := appendMessage(nil, srv.handshake(s.id), p.track)
	if c.jsonp != "" {
		hs = appendJSONP(nil, c.jsonp, hs)
	}
	_ = c.send(hs)
}

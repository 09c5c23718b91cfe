package atmosphere

import (
	"bytes"
	"net/http"
)

// serveStream serves the streaming transport (sse false) and SSE (sse
// true): one GET whose response stays open. Legacy clients first get
// whitespace padding (5.x clients would surface it as a message); a new
// session with the protocol on then gets the handshake; then messages as
// they come, each write flushed. The response ends when the session is
// closed, replaced or the server shuts down.
func (srv *Server) serveStream(w http.ResponseWriter, r *http.Request, p params, sse bool) {
	transport := tStreaming
	if sse {
		transport = tSSE
	}
	c := newHTTPConn(w, p, srv.opts.WriteTimeout)
	c.sse, c.stream = sse, !sse
	defer c.finish()
	a := newAttachment(transport, c.kick)
	s, kind, err := srv.attach(r, p, a)
	if err != nil {
		srv.openError(w, r, err)
		return
	}
	defer s.release(a)
	srv.setHeaders(w, r, s.id)
	if kind.handshake() {
		w.Header().Set(hFirst, "true")
	}
	if sse {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	var first []byte
	if p.legacy() {
		first = append(bytes.Repeat([]byte{' '}, paddingLen), '\n')
	}
	if kind.handshake() && p.protocol {
		first = c.appendPayload(first, srv.handshake(s.id))
	}
	var err2 error
	if len(first) > 0 {
		err2 = c.send(first)
	} else {
		err2 = c.rc.Flush()
	}
	if err2 != nil {
		return
	}
	res := s.pump(a, c, loop{
		heartbeat: p.heartbeatPeriod(srv.opts.Heartbeat),
		max:       drainBatch,
		dead:      r.Context().Done(),
	})
	if res == endClosed {
		_, code, reason := s.q.Closed()
		srv.remove(s, code, reason, nil)
	}
}

package atmosphere

import (
	"errors"
	"io"
	"net/http"
)

// servePush routes a client message (a POST body, or the
// X-Atmosphere-Post-Body of a JSONP GET) to its session and answers at
// once with an empty 200; replies travel on the session's transport. A
// body that is exactly the padding `X` is a client heartbeat.
func (srv *Server) servePush(w http.ResponseWriter, r *http.Request, p params) {
	var body []byte
	if r.Method == http.MethodPost {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMessage))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				srv.fail(w, r, http.StatusRequestEntityTooLarge, "message too large")
				return
			}
			srv.fail(w, r, http.StatusBadRequest, "cannot read message")
			return
		}
		body = b
	} else {
		if len(p.postBody) > maxMessage {
			srv.fail(w, r, http.StatusRequestEntityTooLarge, "message too large")
			return
		}
		body = []byte(p.postBody)
	}
	if p.isNew() || !validID(p.trackingID) {
		srv.fail(w, r, http.StatusNotFound, errNotFound.Error())
		return
	}
	id, b := p.trackingID, srv.binding(r, p)
	if s := srv.lookup(id); s != nil {
		if !s.binding.Admits(b, srv.opts.Bind) {
			srv.log.Info("atmosphere: push not admitted to its session", "tracking_id", ShortID(id), "addr", b.Addr)
			srv.fail(w, r, http.StatusNotFound, errNotFound.Error())
			return
		}
		srv.setHeaders(w, r, s.id)
		if len(body) > 0 && string(body) != "X" {
			s.app.Receive(body)
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	rs, ok := srv.h.(Resumer)
	if !ok {
		srv.fail(w, r, http.StatusNotFound, errNotFound.Error())
		return
	}
	// The session lives on another node: the message goes there. When no
	// node holds it (its node died), it is taken over here.
	err := rs.Forward(r, id, b, body)
	if errors.Is(err, ErrUnknownSession) {
		var s *session
		s, err = srv.takeOver(r, p, id, b)
		if err == nil {
			srv.setHeaders(w, r, s.id)
			if len(body) > 0 && string(body) != "X" {
				s.app.Receive(body)
			}
			w.WriteHeader(http.StatusOK)
			return
		}
	}
	switch {
	case err == nil:
		srv.setHeaders(w, r, id)
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, ErrUnknownSession), errors.Is(err, ErrNotAdmitted):
		srv.fail(w, r, http.StatusNotFound, errNotFound.Error())
	default:
		srv.log.Warn("atmosphere: forward push", "tracking_id", ShortID(id), "err", err)
		srv.fail(w, r, http.StatusServiceUnavailable, errResume.Error())
	}
}

// serveClose ends the session of a disconnect request
// (X-Atmosphere-Transport=close, any method): the application session is
// closed, its transport detached, and the request answered with an empty
// 200, known tracking id or not.
func (srv *Server) serveClose(w http.ResponseWriter, r *http.Request, p params) {
	srv.setHeaders(w, r, "")
	if !p.isNew() && validID(p.trackingID) {
		id, b := p.trackingID, srv.binding(r, p)
		if s := srv.lookup(id); s != nil {
			if s.binding.Admits(b, srv.opts.Bind) {
				srv.remove(s, 1000, "closed by the client", nil)
			}
		} else if rs, ok := srv.h.(Resumer); ok {
			if err := rs.End(r, id, b); err != nil && !errors.Is(err, ErrUnknownSession) && !errors.Is(err, ErrNotAdmitted) {
				srv.log.Warn("atmosphere: forward close", "tracking_id", ShortID(id), "err", err)
			}
		}
	}
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxMessage))
	}
	w.WriteHeader(http.StatusOK)
}

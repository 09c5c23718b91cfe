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
				fail(w, r, http.StatusRequestEntityTooLarge, "message too large")
				return
			}
			fail(w, r, http.StatusBadRequest, "cannot read message")
			return
		}
		body = b
	} else {
		if len(p.postBody) > maxMessage {
			fail(w, r, http.StatusRequestEntityTooLarge, "message too large")
			return
		}
		body = []byte(p.postBody)
	}
	var s *session
	if !p.isNew() && validID(p.trackingID) {
		s = srv.lookup(p.trackingID)
	}
	if s == nil {
		fail(w, r, http.StatusNotFound, errNotFound.Error())
		return
	}
	setHeaders(w, r, s.id)
	if len(body) > 0 && string(body) != "X" {
		s.app.Receive(body)
	}
	w.WriteHeader(http.StatusOK)
}

// serveClose ends the session of a disconnect request
// (X-Atmosphere-Transport=close, any method): the application session is
// closed, its transport detached, and the request answered with an empty
// 200, known tracking id or not.
func (srv *Server) serveClose(w http.ResponseWriter, r *http.Request, p params) {
	setHeaders(w, r, "")
	if !p.isNew() && validID(p.trackingID) {
		if s := srv.lookup(p.trackingID); s != nil {
			srv.remove(s, 1000, "closed by the client", nil)
		}
	}
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxMessage))
	}
	w.WriteHeader(http.StatusOK)
}

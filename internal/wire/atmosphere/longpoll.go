package atmosphere

import "net/http"

func (srv *Server) serveLongPoll(w http.ResponseWriter, r *http.Request, p params) {
	fail(w, r, http.StatusNotImplemented, "not implemented yet")
}

func (srv *Server) serveStream(w http.ResponseWriter, r *http.Request, p params, sse bool) {
	fail(w, r, http.StatusNotImplemented, "not implemented yet")
}

func (srv *Server) servePush(w http.ResponseWriter, r *http.Request, p params) {
	fail(w, r, http.StatusNotImplemented, "not implemented yet")
}

func (srv *Server) serveClose(w http.ResponseWriter, r *http.Request, p params) {
	fail(w, r, http.StatusNotImplemented, "not implemented yet")
}

package netlimit

import (
	"io"
	"net/http"
	"sync"
	"time"
)

// BodyTimeout returns h with a bound on how long a request body may take
// to arrive: from the start of the request, the whole body must be read
// within d, or the handler's next Read fails with a timeout (and the
// server closes the connection once the handler has answered). Requests
// without a body are passed on untouched, and so is everything once the
// body has been read to its end, so handlers that hold a request open (long
// polls, streams) are not cut. d <= 0 returns h itself.
func BodyTimeout(h http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || (r.ContentLength == 0 && len(r.TransferEncoding) == 0) {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(d)); err != nil {
			// The connection cannot take deadlines; serve it as it is.
			h.ServeHTTP(w, r)
			return
		}
		r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		h.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the read deadline once the body has been read whole.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	once sync.Once
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(func() { _ = b.rc.SetReadDeadline(time.Time{}) })
	}
	return n, err
}

// Package osmand receives positions over the OsmAnd protocol as Traccar
// Client and OsmAnd send them: HTTP GET or POST on any path, with the
// message in the query string, in a form body, or (Traccar Client 9.0 and
// later) in a JSON body. See Parse and ParseJSON for the fields and units.
//
// Answers: 200 with an empty body when the fix was applied; 400 for a
// message without a device id or with a malformed value; 404 for a device
// no tracker has; 403 for a blocked tracker; 413 for a body over MaxBody;
// 405 for other methods; 500 when applying failed otherwise. Error bodies
// are plain text.
package osmand

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/metrics"
	"github.com/fleetwire/fleetwire/internal/state"
)

// Applier takes a parsed fix; *state.Registry is one.
type Applier interface {
	Apply(ctx context.Context, f *state.Fix) (*fleet.State, error)
}

const ingestHelp = "Device messages received, by protocol and result."

var (
	mAccepted      = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="osmand",result="accepted"`)
	mBadRequest    = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="osmand",result="bad_request"`)
	mUnknownDevice = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="osmand",result="unknown_device"`)
	mBlocked       = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="osmand",result="blocked"`)
	mError         = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="osmand",result="error"`)
	mUnavailable   = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="osmand",result="unavailable"`)
)

// NewHandler returns the OsmAnd ingest handler applying fixes to app. A
// nil log means slog.Default().
func NewHandler(app Applier, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return &handler{app: app, log: log}
}

type handler struct {
	app Applier
	log *slog.Logger
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		plain(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	q := r.URL.Query()
	var (
		fix *state.Fix
		err error
	)
	if r.Method == http.MethodPost {
		if r.ContentLength > MaxBody {
			h.tooLarge(w)
			return
		}
		buf := bufPool.Get().(*bytes.Buffer)
		defer func() {
			if buf.Cap() <= 2*MaxBody {
				buf.Reset()
				bufPool.Put(buf)
			}
		}()
		buf.Reset()
		if _, rerr := buf.ReadFrom(io.LimitReader(r.Body, MaxBody+1)); rerr != nil {
			mBadRequest.Inc()
			plain(w, http.StatusBadRequest, "cannot read body")
			return
		}
		if buf.Len() > MaxBody {
			h.tooLarge(w)
			return
		}
		body := buf.Bytes()
		switch {
		case isJSON(r.Header.Get("Content-Type"), body):
			fix, err = ParseJSON(body, now)
		case len(bytes.TrimSpace(body)) > 0:
			// A form body, with or without its content type. Body
			// values come before query values, as in http.Request.Form.
			bq, perr := url.ParseQuery(string(bytes.TrimSpace(body)))
			if perr != nil && len(bq) == 0 {
				mBadRequest.Inc()
				plain(w, http.StatusBadRequest, "malformed form body")
				return
			}
			for k, vs := range q {
				bq[k] = append(bq[k], vs...)
			}
			fix, err = Parse(bq, now)
		default:
			fix, err = Parse(q, now)
		}
	} else {
		fix, err = Parse(q, now)
	}
	if err != nil {
		mBadRequest.Inc()
		plain(w, http.StatusBadRequest, err.Error())
		return
	}

	_, err = h.app.Apply(r.Context(), fix)
	switch {
	case err == nil:
		mAccepted.Inc()
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, state.ErrUnknownDevice):
		mUnknownDevice.Inc()
		h.log.Debug("osmand: unknown device", "device", fix.DeviceID, "remote", r.RemoteAddr)
		plain(w, http.StatusNotFound, "unknown device")
	case errors.Is(err, state.ErrBlocked):
		mBlocked.Inc()
		plain(w, http.StatusForbidden, "tracker blocked")
	case errors.Is(err, state.ErrUnavailable):
		// Not kept: the device must send the fix again.
		mUnavailable.Inc()
		h.log.Warn("osmand: fix not stored", "device", fix.DeviceID, "err", err)
		w.Header().Set("Retry-After", "5")
		plain(w, http.StatusServiceUnavailable, "not stored, send again")
	default:
		mError.Inc()
		h.log.Warn("osmand: apply fix", "device", fix.DeviceID, "err", err)
		plain(w, http.StatusInternalServerError, "internal error")
	}
}

func (h *handler) tooLarge(w http.ResponseWriter) {
	mBadRequest.Inc()
	// The rest of an oversized body is not read; do not keep the
	// connection for another request.
	w.Header().Set("Connection", "close")
	plain(w, http.StatusRequestEntityTooLarge, "body too large")
}

// isJSON tells a JSON body by its content type, or, without a usable one,
// by its first non-blank byte.
func isJSON(contentType string, body []byte) bool {
	if contentType != "" {
		if mt, _, err := mime.ParseMediaType(contentType); err == nil {
			switch mt {
			case "application/json":
				return true
			case "application/x-www-form-urlencoded":
				return false
			}
		}
	}
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

func plain(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}

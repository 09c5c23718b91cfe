package ngp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/metrics"
	"github.com/fleetwire/fleetwire/internal/state"
)

// DefaultAddr is where the HTTP transport listens by default: the port of
// the protocol's published endpoints.
const DefaultAddr = ":47642"

// MQTTTopic is the topic filter of the MQTT transport: devices publish to
// ngp/<device_id>.
const MQTTTopic = "ngp/+"

// ErrOutOfOrder is returned by Apply for a message whose message_time is
// earlier than the device's last message. The protocol discards such
// messages.
var ErrOutOfOrder = errors.New("ngp: message older than the device's last message")

// Applier takes parsed fixes; *state.Registry is one.
type Applier interface {
	Apply(ctx context.Context, f *state.Fix) (*fleet.State, error)
}

// stateReader is the part of *state.Registry Apply uses to find a
// device's last message time.
type stateReader interface {
	TrackerByDevice(deviceID string) (*fleet.Tracker, bool)
	State(id int64) (*fleet.State, bool)
}

// Apply applies a parsed message to reg, unless it is older than the last
// message of its device (ErrOutOfOrder). When reg cannot tell its states
// (it is not a *state.Registry or alike) every message is applied.
// Otherwise it returns what reg.Apply returns.
func Apply(ctx context.Context, reg Applier, f *state.Fix) error {
	if sr, ok := reg.(stateReader); ok && !f.Time.IsZero() {
		if t, ok := sr.TrackerByDevice(f.DeviceID); ok && !t.Blocked {
			if s, ok := sr.State(t.ID); ok && f.Time.Truncate(time.Second).Before(s.LastUpdate) {
				return ErrOutOfOrder
			}
		}
	}
	_, err := reg.Apply(ctx, f)
	return err
}

// DeviceFromTopic returns the device id of an MQTT transport topic,
// ngp/<device_id>.
func DeviceFromTopic(topic string) (string, bool) {
	id, ok := strings.CutPrefix(topic, "ngp/")
	if !ok || id == "" || strings.ContainsAny(id, "/+#") {
		return "", false
	}
	return id, true
}

// Protocols are the HTTP versions the HTTP transport is specified for:
// HTTP/1.1 and HTTP/2, including HTTP/2 without TLS (h2c) since the
// published endpoints are plain http://. Set them as the http.Server's
// Protocols.
func Protocols() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return &p
}

// NewHandler returns the HTTP transport: each POST carries one message as
// its JSON body, on any path. It answers as the protocol specifies:
//
//	200  message received (also when discarded as out of order)
//	400  malformed JSON, a missing mandatory attribute or a value of the
//	     wrong type or outside its range; the body says which
//	403  unknown device_id (or a blocked tracker)
//	500  the message could not be stored
//
// Other methods get 405. Error bodies are one line of plain text.
func NewHandler(reg Applier, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return &handler{reg: reg, log: log.With("component", "ngp"), now: time.Now}
}

type handler struct {
	reg Applier
	log *slog.Logger
	now func() time.Time
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "NGP messages are sent with POST", http.StatusMethodNotAllowed)
		mBadRequest.Inc()
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxMessage))
	if err != nil {
		mBadRequest.Inc()
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, ErrInvalid.Error()+": message larger than 8 MiB", http.StatusBadRequest)
			return
		}
		h.log.Debug("read body", "remote", r.RemoteAddr, "err", err)
		http.Error(w, ErrInvalid.Error()+": incomplete body", http.StatusBadRequest)
		return
	}
	f, err := ParseMessage(body, h.now())
	if err != nil {
		mBadRequest.Inc()
		h.log.Debug("bad message", "remote", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// The state change should complete even if the device hangs up.
	ctx := context.WithoutCancel(r.Context())
	switch err := Apply(ctx, h.reg, f); {
	case err == nil:
		mAccepted.Inc()
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, ErrOutOfOrder):
		mDiscarded.Inc()
		h.log.Debug("out-of-order message discarded", "device", f.DeviceID, "message_time", f.Time)
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, state.ErrUnknownDevice):
		mUnknown.Inc()
		h.log.Debug("unknown device", "device", f.DeviceID, "remote", r.RemoteAddr)
		http.Error(w, "ngp: unknown device_id", http.StatusForbidden)
	case errors.Is(err, state.ErrBlocked):
		mBlocked.Inc()
		h.log.Debug("blocked device", "device", f.DeviceID, "remote", r.RemoteAddr)
		http.Error(w, "ngp: device is blocked", http.StatusForbidden)
	case errors.Is(err, state.ErrUnavailable):
		// Not kept: the device must send the message again.
		mUnavailable.Inc()
		h.log.Warn("message not stored", "device", f.DeviceID, "err", err)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "ngp: not stored, send again", http.StatusServiceUnavailable)
	default:
		mError.Inc()
		h.log.Warn("apply message", "device", f.DeviceID, "err", err)
		http.Error(w, "ngp: internal error", http.StatusInternalServerError)
	}
}

const ingestHelp = "Device messages received, by protocol and result."

var (
	mAccepted    = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="ngp",result="accepted"`)
	mBadRequest  = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="ngp",result="bad_request"`)
	mUnknown     = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="ngp",result="unknown_device"`)
	mBlocked     = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="ngp",result="blocked"`)
	mError       = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="ngp",result="error"`)
	mDiscarded   = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="ngp",result="discarded"`)
	mUnavailable = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="ngp",result="unavailable"`)
)

// Package trackers serves the binary vehicle-tracker protocols, Teltonika
// and GT06, over TCP and UDP: it identifies each device, hands its
// records to the live state, answers the device as its protocol wants,
// and carries commands from the API to connected devices and their
// answers back.
//
// # Acknowledgements
//
// A record is acknowledged to the device only after the Applier took it
// (and, with position history on, after it was written): a Teltonika
// packet is answered with the number of records taken in order, stopping
// at the first one refused, so the device sends the rest again; a GT06
// alarm or heartbeat is answered only when it was taken. A device whose
// IMEI no tracker has, or whose tracker is blocked, is refused (Teltonika
// 0x00 to the handshake, GT06 connection closed at login) and its
// connection closed.
//
// # Bounds
//
// Each connection has a handshake deadline, an idle deadline renewed by
// every packet, a write deadline and a packet size bound; a malformed or
// oversized packet closes that connection only. A listener holds at most
// MaxConns connections and refuses more.
package trackers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/metrics"
	"github.com/fleetwire/fleetwire/internal/state"
)

// Applier takes fixes and knows the trackers; *state.Registry is one.
type Applier interface {
	// Apply takes one fix; see state.Registry.Apply.
	Apply(ctx context.Context, f *state.Fix) (*fleet.State, error)
	// TrackerByDevice finds the tracker of a device id (the IMEI).
	TrackerByDevice(deviceID string) (*fleet.Tracker, bool)
}

// BatchApplier is an Applier that also takes the fixes of one packet at
// once and reports how many of them, in order, it kept. The history
// recorder is one: it makes a packet's fixes durable with one write
// before the device is answered.
type BatchApplier interface {
	Applier
	// ApplyAll takes fixes in order and returns how many it kept before
	// the first it could not, with that one's error.
	ApplyAll(ctx context.Context, fixes []*state.Fix) (int, error)
}

// applyAll applies fixes through a BatchApplier when app is one, one by
// one otherwise.
func applyAll(ctx context.Context, app Applier, fixes []*state.Fix) (int, error) {
	if b, ok := app.(BatchApplier); ok {
		return b.ApplyAll(ctx, fixes)
	}
	for i, f := range fixes {
		if _, err := app.Apply(ctx, f); err != nil {
			return i, err
		}
	}
	return len(fixes), nil
}

// Options tune a listener. Zero values take the defaults noted.
type Options struct {
	// HandshakeTimeout is how long a new connection has to identify its
	// device (default 30s).
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that sends nothing this long
	// (default 15m; devices send keep-alives or heartbeats more often).
	IdleTimeout time.Duration
	// WriteTimeout bounds each write to a device (default 10s).
	WriteTimeout time.Duration
	// CommandTimeout is how long a command waits for the device's
	// answer (default 10s).
	CommandTimeout time.Duration
	// MaxPacket bounds a packet's size in bytes (default 16 KiB).
	MaxPacket int
	// MaxConns bounds the TCP connections of one listener (default
	// 20,000).
	MaxConns int
	// UDPPeers bounds the GT06 UDP peers remembered after their login
	// (default 10,000).
	UDPPeers int
	// Logger receives connection errors at debug level and failures at
	// warn (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 30 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 15 * time.Minute
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = 10 * time.Second
	}
	if o.MaxPacket <= 0 {
		o.MaxPacket = 16 << 10
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 20000
	}
	if o.UDPPeers <= 0 {
		o.UDPPeers = 10000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Errors of commands. ErrOffline and ErrUnsupported carry the API's
// codes (213, 214).
var (
	// ErrOffline means the device has no open connection to this node.
	ErrOffline = fmt.Errorf("trackers: device not connected: %w", apierr.DeviceOffline)
	// ErrUnsupported means the device's protocol has no such command.
	ErrUnsupported = fmt.Errorf("trackers: %w", apierr.NotSupported)
	// errNoAnswer means the command was written to the device, which did
	// not answer in time.
	errNoAnswer = errors.New("trackers: device did not answer")
)

// ingest counts device messages by protocol and result, as the other
// ingest adapters do.
type ingest struct {
	accepted, badRequest, unknownDevice, blocked, failed *metrics.Counter
	conns                                                *metrics.Gauge
}

const ingestHelp = "Device messages received, by protocol and result."

func newIngest(protocol string) *ingest {
	l := func(result string) string { return `protocol="` + protocol + `",result="` + result + `"` }
	return &ingest{
		accepted:      metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, l("accepted")),
		badRequest:    metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, l("bad_request")),
		unknownDevice: metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, l("unknown_device")),
		blocked:       metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, l("blocked")),
		failed:        metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, l("error")),
		conns:         metrics.Default.NewGauge("fleetwire_tracker_connections", "Open TCP connections of binary trackers, by protocol.", `protocol="`+protocol+`"`),
	}
}

// count records the outcome of applying a message's fixes.
func (m *ingest) count(taken int, err error) {
	m.accepted.Add(uint64(taken))
	switch {
	case err == nil:
	case errors.Is(err, state.ErrUnknownDevice):
		m.unknownDevice.Inc()
	case errors.Is(err, state.ErrBlocked):
		m.blocked.Inc()
	default:
		m.failed.Inc()
	}
}

var (
	mTeltonika = newIngest("teltonika")
	mGT06      = newIngest("gt06")
)

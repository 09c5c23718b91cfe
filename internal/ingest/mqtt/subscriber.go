package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/ingest/ngp"
	"github.com/fleetwire/fleetwire/internal/metrics"
	"github.com/fleetwire/fleetwire/internal/state"
)

// Applier takes parsed fixes; *state.Registry is one.
type Applier interface {
	Apply(ctx context.Context, f *state.Fix) (*fleet.State, error)
}

// Options configure a Subscriber.
type Options struct {
	// URL of the broker: tcp://host:port (also mqtt://), ssl://, tls://,
	// mqtts://, ws://, wss:// or unix://path. Default tcp://127.0.0.1:1883.
	URL string
	// ClientID is the MQTT client id. When set, the session is persistent
	// (clean session off), so the broker keeps QoS 1 messages that arrive
	// while fleetwire is down. When empty a random "fleetwire-…" id is
	// used with a clean session.
	ClientID string
	// Username and Password authenticate to the broker, if it wants them.
	Username, Password string
	// ShareGroup, when set, subscribes through MQTT shared subscriptions
	// ($share/<group>/<filter>, which Mosquitto 2 and the embedded broker
	// support), so that the nodes of a cluster sharing a broker split the
	// telemetry between them and each message is ingested once.
	ShareGroup string
	// Logger receives connection events at info/warn and rejected
	// messages at debug (default slog.Default()).
	Logger *slog.Logger
}

// Subscriber reads device telemetry from an MQTT broker into the registry.
type Subscriber struct {
	reg     Applier
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	ready   chan struct{}
	once    sync.Once
	running atomic.Bool
	ctx     context.Context
	// brokerName is the broker URL as logged, without a password.
	brokerName string
}

// New returns a subscriber applying what it reads to reg. It does nothing
// until Run.
func New(reg Applier, opts Options) *Subscriber {
	if opts.URL == "" {
		opts.URL = "tcp://127.0.0.1:1883"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Subscriber{
		reg:  reg,
		opts: opts,
		log:  opts.Logger.With("component", "mqtt-ingest"),
		// A password in the URL stays out of the logs.
		brokerName: redactedURL(opts.URL),
		now:        time.Now,
		ready:      make(chan struct{}),
		ctx:        context.Background(),
	}
}

// Ready is closed once the first subscription to every telemetry topic
// has been granted by the broker.
func (s *Subscriber) Ready() <-chan struct{} { return s.ready }

// subscriptions are the topic filters the subscriber asks for.
var subscriptions = [...]string{
	"fleetwire/+/position",
	"fleetwire/+/readings",
	"fleetwire/+/io",
	"owntracks/+/+",
	ngp.MQTTTopic,
}

// Topics returns the topic filters the subscriber subscribes to, all at
// QoS 1.
func Topics() []string { return append([]string(nil), subscriptions[:]...) }

var errRunning = errors.New("mqtt: subscriber already running")

// Run connects to the broker and ingests until ctx is cancelled, then
// disconnects and returns nil. It keeps retrying the first connection,
// reconnects after a lost connection and subscribes again on every
// connection. It fails at once only for an unusable URL or a second call.
func (s *Subscriber) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errRunning
	}
	if err := checkURL(s.opts.URL); err != nil {
		return err
	}
	s.ctx = ctx
	id, clean := s.opts.ClientID, false
	if id == "" {
		id, clean = randomClientID(), true
	}
	co := paho.NewClientOptions().
		AddBroker(s.opts.URL).
		SetClientID(id).
		SetUsername(s.opts.Username).
		SetPassword(s.opts.Password).
		SetCleanSession(clean).
		SetOrderMatters(true). // fixes of one device apply in arrival order
		// A QoS 1 message is acknowledged once its fix is kept (or refused
		// for good); one the log could not store stays unacknowledged, for
		// the broker to deliver again.
		SetAutoAckDisabled(true).
		SetKeepAlive(30 * time.Second).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetConnectRetry(true).
		SetConnectRetryInterval(2 * time.Second).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(30 * time.Second).
		SetDefaultPublishHandler(s.handle).
		SetOnConnectHandler(s.onConnect).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			s.log.Warn("connection lost, reconnecting", "broker", s.brokerName, "err", err)
		}).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			s.log.Debug("reconnecting", "broker", s.brokerName)
		})
	c := paho.NewClient(co)
	s.log.Info("connecting", "broker", s.brokerName, "client_id", id)
	c.Connect() // with ConnectRetry the token completes only once connected
	<-ctx.Done()
	c.Disconnect(250)
	s.log.Info("disconnected", "broker", s.brokerName)
	return nil
}

func (s *Subscriber) onConnect(c paho.Client) {
	s.log.Info("connected", "broker", s.brokerName)
	filters := make(map[string]byte, len(subscriptions))
	for _, f := range s.filters() {
		filters[f] = 1
	}
	tok := c.SubscribeMultiple(filters, s.handle)
	if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		err := tok.Error()
		if err == nil {
			err = errors.New("no answer from broker")
		}
		s.log.Error("subscribe failed", "broker", s.brokerName, "err", err)
		return
	}
	ok := true
	if st, isSub := tok.(*paho.SubscribeToken); isSub {
		for topic, code := range st.Result() {
			if code > 2 {
				ok = false
				s.log.Error("subscription refused", "topic", topic, "code", code)
			}
		}
	}
	if ok {
		s.log.Debug("subscribed", "topics", subscriptions[:])
		s.once.Do(func() { close(s.ready) })
	}
}

// filters are the topic filters as subscribed: shared when a share group
// is set.
func (s *Subscriber) filters() []string {
	out := Topics()
	if s.opts.ShareGroup != "" {
		for i, f := range out {
			out[i] = "$share/" + s.opts.ShareGroup + "/" + f
		}
	}
	return out
}

// retryFor is how long a message whose fix the log could not store is
// tried again before it is left unacknowledged.
const retryFor = time.Minute

// handle ingests one message. It runs on the client's delivery goroutine,
// one message at a time, so the messages behind one the log cannot store
// wait with it (the broker holds them) while it is tried again. A message
// whose fix still could not be stored is not acknowledged.
func (s *Subscriber) handle(_ paho.Client, m paho.Message) {
	wait := 250 * time.Millisecond
	deadline := s.now().Add(retryFor)
	for {
		_, err := s.ingest(s.ctx, m.Topic(), m.Payload())
		if !errors.Is(err, state.ErrUnavailable) {
			m.Ack()
			return
		}
		if s.now().After(deadline) {
			return
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// Ingest parses one message received on topic and applies it, counting
// and logging the outcome. It is what Run does with every message; it
// reports whether the fix was applied.
func (s *Subscriber) Ingest(ctx context.Context, topic string, payload []byte) bool {
	ok, _ := s.ingest(ctx, topic, payload)
	return ok
}

func (s *Subscriber) ingest(ctx context.Context, topic string, payload []byte) (bool, error) {
	now := s.now()
	f, isNGP, err := parseTopic(topic, payload, now)
	switch {
	case errors.Is(err, ErrIgnored):
		mIgnored.Inc()
		return false, err
	case err != nil:
		mBadRequest.Inc()
		s.log.Debug("bad message", "topic", topic, "err", err)
		return false, err
	}
	if isNGP {
		err = ngp.Apply(ctx, s.reg, f)
	} else {
		_, err = s.reg.Apply(ctx, f)
	}
	switch {
	case err == nil:
		mAccepted.Inc()
		return true, nil
	case errors.Is(err, state.ErrUnknownDevice):
		mUnknown.Inc()
		s.log.Debug("unknown device", "topic", topic, "device", f.DeviceID)
	case errors.Is(err, state.ErrBlocked):
		mBlocked.Inc()
		s.log.Debug("blocked device", "topic", topic, "device", f.DeviceID)
	case errors.Is(err, ngp.ErrOutOfOrder):
		mDiscarded.Inc()
		s.log.Debug("out-of-order message discarded", "topic", topic, "device", f.DeviceID)
	case errors.Is(err, state.ErrUnavailable):
		mUnavailable.Inc()
		s.log.Warn("fix not stored, left unacknowledged", "topic", topic, "device", f.DeviceID, "err", err)
	default:
		mError.Inc()
		s.log.Warn("apply fix", "topic", topic, "device", f.DeviceID, "err", err)
	}
	return false, err
}

// parseTopic routes a message by its topic to its parser. isNGP tells a
// generic protocol message, which is applied with ngp.Apply.
func parseTopic(topic string, payload []byte, now time.Time) (f *state.Fix, isNGP bool, err error) {
	root, rest, _ := strings.Cut(topic, "/")
	switch root {
	case "fleetwire":
		device, kind, ok := strings.Cut(rest, "/")
		if !ok || !validDevice(device) {
			return nil, false, bad("topic %q has no device id", topic)
		}
		switch kind {
		case "position":
			f, err = ParsePosition(device, payload, now)
		case "readings":
			f, err = ParseReadings(device, payload, now)
		case "io":
			f, err = ParseIO(device, payload, now)
		default:
			err = fmt.Errorf("%w: topic %q", ErrIgnored, topic)
		}
		return f, false, err
	case "owntracks":
		user, device, ok := strings.Cut(rest, "/")
		if !ok || user == "" || !validDevice(device) {
			return nil, false, bad("topic %q is not owntracks/<user>/<device>", topic)
		}
		f, err = ParseOwnTracks(device, payload, now)
		return f, false, err
	case "ngp":
		device, ok := ngp.DeviceFromTopic(topic)
		if !ok {
			return nil, true, bad("topic %q is not ngp/<device_id>", topic)
		}
		f, err = ngp.ParseMessage(payload, now)
		if err != nil {
			return nil, true, fmt.Errorf("%w: %w", ErrBadPayload, err)
		}
		if f.DeviceID != device {
			return nil, true, bad("device_id %q differs from topic %q", f.DeviceID, topic)
		}
		return f, true, nil
	}
	return nil, false, fmt.Errorf("%w: topic %q", ErrIgnored, topic)
}

func validDevice(id string) bool {
	return id != "" && len(id) <= 128 && !strings.ContainsAny(id, "/+#")
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("mqtt: broker URL: %w", err)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "mqtt+ssl", "tcps", "ws", "wss":
	case "unix":
		return nil
	default:
		return fmt.Errorf("mqtt: broker URL %q: unsupported scheme %q", raw, u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("mqtt: broker URL %q has no host", raw)
	}
	return nil
}

// redactedURL is raw with any password replaced by "xxxxx".
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "?"
	}
	return u.Redacted()
}

func randomClientID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "fleetwire-" + hex.EncodeToString(b[:])
}

const ingestHelp = "Device messages received, by protocol and result."

var (
	mAccepted    = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="mqtt",result="accepted"`)
	mBadRequest  = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="mqtt",result="bad_request"`)
	mUnknown     = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="mqtt",result="unknown_device"`)
	mBlocked     = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="mqtt",result="blocked"`)
	mError       = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="mqtt",result="error"`)
	mIgnored     = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="mqtt",result="ignored"`)
	mDiscarded   = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="mqtt",result="discarded"`)
	mUnavailable = metrics.Default.NewCounter("fleetwire_ingest_total", ingestHelp, `protocol="mqtt",result="unavailable"`)
)

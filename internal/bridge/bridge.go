package bridge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"unicode/utf8"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/metrics"
	"github.com/fleetwire/fleetwire/internal/wire/websocket"
)

// Authenticator checks credentials. *auth.Service satisfies it.
type Authenticator interface {
	// Login checks a login and password and starts a session.
	Login(ctx context.Context, login, password string) (*fleet.Session, error)
	// Resolve returns the user behind a session hash or API key.
	Resolve(ctx context.Context, hash string) (*fleet.User, *fleet.Session, error)
}

// Devices lists a user's trackers. *state.Registry satisfies it.
type Devices interface {
	Trackers(userID int64) []*fleet.Tracker
}

// deviceLookup is an optional extension of Devices (*state.Registry has
// it): it finds a device's tracker at once, instead of listing trackers.
type deviceLookup interface {
	TrackerByDevice(deviceID string) (*fleet.Tracker, bool)
}

// loggerOut is an optional extension of Authenticator (*auth.Service has
// it): sessions the bridge started with Login end with the connection.
type loggerOut interface {
	Logout(ctx context.Context, hash string) error
}

// MQTT topic layout shared with the devices and the ingest side.
const (
	// TopicRoot is the first level of every fleetwire MQTT topic.
	TopicRoot = "fleetwire"
	// NodeSubscription is what the bridge subscribes to.
	NodeSubscription = TopicRoot + "/+/node/#"
)

// Defaults for Options.
const (
	DefaultQueueLen       = 1024
	DefaultQueueBytes     = 8 << 20
	DefaultMaxFrame       = 64 << 10
	DefaultMaxPayload     = 16 << 10
	DefaultMaxPatterns    = 256
	DefaultPingEvery      = 30 * time.Second
	DefaultRecheckEvery   = time.Minute
	DefaultPublishTimeout = 5 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
)

// Options configure a Bridge. Auth, Devices and MQTTURL are required;
// zero values of the rest take the defaults noted.
type Options struct {
	Auth    Authenticator
	Devices Devices
	// MQTTURL is the broker, e.g. "tcp://127.0.0.1:1883"; user and
	// password may be given in the URL ("tcp://user:pass@host:1883").
	MQTTURL string
	// Logger receives connection and broker events (default slog.Default()).
	Logger *slog.Logger

	// ClientID is the MQTT client id (default "fleetwire-bridge-" and a
	// random suffix, so several nodes can share a broker).
	ClientID string
	// QueueLen bounds each connection's send queue in frames (default
	// DefaultQueueLen) and QueueBytes in bytes (default
	// DefaultQueueBytes). On overflow the oldest frames of that
	// connection are dropped.
	QueueLen   int
	QueueBytes int
	// MaxFrame is the largest client frame in bytes (default
	// DefaultMaxFrame); a larger one closes the connection with 1009.
	MaxFrame int
	// MaxPayload is the largest command payload in bytes (default
	// DefaultMaxPayload); a larger one is refused with error 7.
	MaxPayload int
	// MaxPatterns bounds the subscription patterns of one connection
	// (default DefaultMaxPatterns).
	MaxPatterns int
	// PingEvery is how often idle connections are pinged (default
	// DefaultPingEvery); a client silent for two intervals is dropped.
	PingEvery time.Duration
	// RecheckEvery is how often a connection's credential is checked
	// again (default DefaultRecheckEvery); once it has ended (logout,
	// password change, blocked user) the connection closes with 1008.
	RecheckEvery time.Duration
	// PublishTimeout bounds the wait for the broker to accept a command
	// (default DefaultPublishTimeout).
	PublishTimeout time.Duration
	// WriteTimeout bounds every write to a client; a client that takes in
	// nothing for this long is closed (default DefaultWriteTimeout).
	WriteTimeout time.Duration
	// Names maps bridge names, the path element after /auth/ or /bridge/
	// ("clown-talk-server_nodes_bridge_0"), to the device id of the node
	// a connection to that name talks to by default. A name that is not
	// here but is one of the user's device ids names that device.
	Names map[string]string
	// CheckOrigin decides whether a browser page of another origin may
	// connect. The default admits requests without an Origin header, of
	// the same origin, and those authenticated with ?hash=; cross-origin
	// pages using basic auth (which a browser may attach on its own) are
	// refused with 403.
	CheckOrigin func(r *http.Request) bool
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ClientID == "" {
		var b [6]byte
		rand.Read(b[:])
		o.ClientID = "fleetwire-bridge-" + hex.EncodeToString(b[:])
	}
	if o.QueueLen <= 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = DefaultQueueBytes
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = DefaultMaxFrame
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	if o.MaxPatterns <= 0 {
		o.MaxPatterns = DefaultMaxPatterns
	}
	if o.PingEvery <= 0 {
		o.PingEvery = DefaultPingEvery
	}
	if o.RecheckEvery <= 0 {
		o.RecheckEvery = DefaultRecheckEvery
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
}

var (
	mConnections = metrics.Default.NewGauge("fleetwire_bridge_connections",
		"Open topic bridge WebSocket connections.", "")
	mFramesIn = metrics.Default.NewCounter("fleetwire_bridge_frames_total",
		"Topic bridge frames received from (in) and sent to (out) clients.", `direction="in"`)
	mFramesOut = metrics.Default.NewCounter("fleetwire_bridge_frames_total",
		"Topic bridge frames received from (in) and sent to (out) clients.", `direction="out"`)
	mDropped = metrics.Default.NewCounter("fleetwire_bridge_dropped_total",
		"Topic bridge frames dropped because a client's send queue was full.", "")
	mCommands = metrics.Default.NewCounter("fleetwire_bridge_commands_total",
		"Commands the topic bridge published to devices.", "")
)

// Bridge is the topic bridge. Serve it over HTTP and run Run once.
type Bridge struct {
	opts     Options
	log      *slog.Logger
	lookup   deviceLookup
	upgrader websocket.Upgrader
	// deviceTTL is how long a user's device list is trusted when Devices
	// offers no direct lookup.
	deviceTTL time.Duration

	client atomic.Pointer[mqtt.Client]
	ready  atomic.Bool // subscribed on the current broker connection
	runs   atomic.Bool

	mu     sync.RWMutex
	users  map[int64]*userConns
	closed bool
	conns  sync.WaitGroup

	done      chan struct{}
	closeOnce sync.Once
}

// userConns are the open connections of one user.
type userConns struct {
	conns map[*conn]struct{}
	// devices caches the user's device ids when Devices has no direct
	// lookup.
	devices atomic.Pointer[deviceSet]
}

type deviceSet struct {
	ids map[string]struct{}
	at  time.Time
}

// deviceCacheTTL is the default Bridge.deviceTTL.
const deviceCacheTTL = 5 * time.Second

// New returns a bridge. It serves connections at once; they receive device
// data once Run has connected to the broker.
func New(opts Options) *Bridge {
	opts.defaults()
	b := &Bridge{
		opts:  opts,
		log:   opts.Logger,
		users: make(map[int64]*userConns),
		done:  make(chan struct{}),

		deviceTTL: deviceCacheTTL,
	}
	b.lookup, _ = opts.Devices.(deviceLookup)
	// Origins are checked in ServeHTTP, where the credential kind is
	// known; the upgrader admits every one.
	b.upgrader = websocket.Upgrader{
		ReadLimit:    int64(opts.MaxFrame),
		IdleTimeout:  2*opts.PingEvery + 10*time.Second,
		WriteTimeout: opts.WriteTimeout,
	}
	return b
}

// Ready reports whether the bridge is connected to the broker and
// subscribed to device data.
func (b *Bridge) Ready() bool { return b.ready.Load() }

// Run connects to the broker, subscribes to NodeSubscription and fans
// device data out to the connected clients until ctx ends or Close is
// called. Lost broker connections are re-established. It returns an error
// only for a bad MQTTURL or a second call.
func (b *Bridge) Run(ctx context.Context) error {
	if err := checkBrokerURL(b.opts.MQTTURL); err != nil {
		return err
	}
	if !b.runs.CompareAndSwap(false, true) {
		return errors.New("bridge: Run called twice")
	}
	o := mqtt.NewClientOptions().
		AddBroker(b.opts.MQTTURL).
		SetClientID(b.opts.ClientID).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(2 * time.Second).
		SetMaxReconnectInterval(30 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetOrderMatters(true).
		SetOnConnectHandler(b.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			b.ready.Store(false)
			b.log.Warn("bridge: broker connection lost", "err", err)
		})
	c := mqtt.NewClient(o)
	b.client.Store(&c)
	c.Connect() // retries in the background until it succeeds
	select {
	case <-ctx.Done():
	case <-b.done:
	}
	b.ready.Store(false)
	c.Disconnect(250)
	return nil
}

func checkBrokerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("bridge: MQTT URL: %w", err)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss", "unix":
	default:
		return fmt.Errorf("bridge: MQTT URL %q: scheme must be tcp, mqtt, ssl, tls, mqtts, ws, wss or unix", s)
	}
	if u.Host == "" && u.Scheme != "unix" {
		return fmt.Errorf("bridge: MQTT URL %q has no host", s)
	}
	return nil
}

func (b *Bridge) onConnect(c mqtt.Client) {
	tok := c.Subscribe(NodeSubscription, 1, b.onMessage)
	go func() {
		if !tok.WaitTimeout(30 * time.Second) {
			b.log.Error("bridge: subscribe timed out; reconnecting")
			return
		}
		if err := tok.Error(); err != nil {
			b.log.Error("bridge: subscribe", "topic", NodeSubscription, "err", err)
			return
		}
		b.ready.Store(true)
		b.log.Info("bridge: subscribed", "broker", redactURL(b.opts.MQTTURL), "topic", NodeSubscription)
	}()
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "?"
	}
	return u.Redacted()
}

// splitNodeTopic splits "fleetwire/<device>/node/<path>" into device and
// path.
func splitNodeTopic(t string) (device, path string, ok bool) {
	rest, ok := strings.CutPrefix(t, TopicRoot+"/")
	if !ok {
		return "", "", false
	}
	device, rest, ok = strings.Cut(rest, "/")
	if !ok || device == "" {
		return "", "", false
	}
	path, ok = strings.CutPrefix(rest, "node/")
	if !ok || path == "" {
		return "", "", false
	}
	return device, path, true
}

// isCommand reports whether a node path is a command ("…/set"), which the
// bridge does not send back to clients.
func isCommand(path string) bool { return path == "set" || strings.HasSuffix(path, "/set") }

// onMessage fans one broker message out. It never blocks on a client.
func (b *Bridge) onMessage(_ mqtt.Client, m mqtt.Message) {
	device, path, ok := splitNodeTopic(m.Topic())
	if !ok || isCommand(path) {
		return
	}
	topic := device + "/" + path
	// Connections whose default node sent it get the node's own topic
	// (path); the others the device's bridge topic. Each is encoded once.
	var frame, nodeFrame []byte
	deliver := func(u *userConns) {
		for c := range u.conns {
			node := c.node() == device
			if !c.wants(topic) && !(node && c.wants(path)) {
				continue
			}
			switch {
			case node && nodeFrame == nil:
				nodeFrame = encodeFrame(path, m.Payload())
			case !node && frame == nil:
				frame = encodeFrame(topic, m.Payload())
			}
			if node {
				c.push(nodeFrame)
			} else {
				c.push(frame)
			}
		}
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if len(b.users) == 0 {
		return
	}
	if b.lookup != nil {
		t, ok := b.lookup.TrackerByDevice(device)
		if !ok || t == nil || t.Deleted || t.Blocked {
			return
		}
		if u := b.users[t.UserID]; u != nil {
			deliver(u)
		}
		return
	}
	for uid, u := range b.users {
		if b.cachedOwns(uid, u, device) {
			deliver(u)
		}
	}
}

// cachedOwns reports whether device is one of the user's unblocked
// devices, from a list refreshed every deviceCacheTTL.
func (b *Bridge) cachedOwns(uid int64, u *userConns, device string) bool {
	s := u.devices.Load()
	if s == nil || time.Since(s.at) > b.deviceTTL {
		ns := &deviceSet{ids: make(map[string]struct{}), at: time.Now()}
		for _, t := range b.opts.Devices.Trackers(uid) {
			if t.DeviceID != "" && !t.Deleted && !t.Blocked {
				ns.ids[t.DeviceID] = struct{}{}
			}
		}
		u.devices.Store(ns)
		s = ns
	}
	_, ok := s.ids[device]
	return ok
}

// tracker returns the user's tracker with device id, if the user has one.
func (b *Bridge) tracker(uid int64, device string) (*fleet.Tracker, bool) {
	if b.lookup != nil {
		t, ok := b.lookup.TrackerByDevice(device)
		if !ok || t == nil || t.Deleted || t.UserID != uid {
			return nil, false
		}
		return t, true
	}
	for _, t := range b.opts.Devices.Trackers(uid) {
		if t.DeviceID == device && !t.Deleted {
			return t, true
		}
	}
	return nil, false
}

// defaultNode is the device a new connection of user uid to the bridge
// name talks to when a topic names no device: the device Options.Names
// maps the name to, or the device whose id is the name, if it is the
// user's; else the user's only IoT node (model fleet.NodeModel); else
// none ("").
func (b *Bridge) defaultNode(uid int64, name string) string {
	if name != "" {
		dev, ok := b.opts.Names[name]
		if !ok {
			dev = name
		}
		if _, own := b.tracker(uid, dev); own {
			return dev
		}
	}
	node := ""
	for _, t := range b.opts.Devices.Trackers(uid) {
		if t.Model != fleet.NodeModel || t.Deleted || t.UserID != uid || t.DeviceID == "" {
			continue
		}
		if node != "" {
			return "" // more than one: the client must choose
		}
		node = t.DeviceID
	}
	return node
}

// deviceIDs lists the user's device ids.
func (b *Bridge) deviceIDs(uid int64) []string {
	ids := []string{}
	for _, t := range b.opts.Devices.Trackers(uid) {
		if t.DeviceID != "" && !t.Deleted && t.UserID == uid {
			ids = append(ids, t.DeviceID)
		}
	}
	return ids
}

// publish sends a command to the broker and waits for it to be accepted.
// Commands are never queued while the broker is away: a relay switched
// minutes late is worse than an error.
func (b *Bridge) publish(topic string, payload []byte) error {
	cp := b.client.Load()
	if cp == nil || !(*cp).IsConnectionOpen() {
		return apierr.Unexpected.With("the message broker is not connected")
	}
	tok := (*cp).Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(b.opts.PublishTimeout) {
		return apierr.Unexpected.With("the message broker did not confirm the command in time")
	}
	if err := tok.Error(); err != nil {
		b.log.Warn("bridge: publish", "topic", topic, "err", err)
		return apierr.Unexpected.With("the message broker refused the command")
	}
	mCommands.Inc()
	return nil
}

// encodeFrame returns ["topic", payload]. A payload that is JSON is sent
// as is (compacted), an empty one as null, anything else as a JSON string.
func encodeFrame(topic string, payload []byte) []byte {
	tj, _ := json.Marshal(topic)
	var buf bytes.Buffer
	buf.Grow(len(tj) + len(payload) + 3)
	buf.WriteByte('[')
	buf.Write(tj)
	buf.WriteByte(',')
	switch p := bytes.TrimSpace(payload); {
	case len(p) == 0:
		buf.WriteString("null")
	case json.Valid(p):
		// Invalid UTF-8 can only sit inside JSON strings: replaced, the
		// payload stays the same JSON and fits a text frame.
		_ = json.Compact(&buf, validUTF8(p))
	default:
		sj, _ := json.Marshal(string(payload))
		buf.Write(sj)
	}
	buf.WriteByte(']')
	return buf.Bytes()
}

// validUTF8 returns b with every invalid UTF-8 sequence replaced by
// U+FFFD: the bridge's frames are text frames, which a client drops
// (and closes the connection for) if they are not UTF-8.
func validUTF8(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	return bytes.ToValidUTF8(b, []byte("\uFFFD"))
}

// encodeJSONFrame returns [topic, v].
func encodeJSONFrame(topic string, v any) []byte {
	b, err := json.Marshal([]any{topic, v})
	if err != nil {
		// Only the bridge's own values get here, and they all encode.
		panic(err)
	}
	return b
}

// errorBody is the payload of a "$error" frame.
type errorBody struct {
	Code        int             `json:"code"`
	Description string          `json:"description"`
	Frame       json.RawMessage `json:"frame"`
}

func encodeError(e *apierr.Error, frame []byte) []byte {
	body := errorBody{Code: e.Code, Description: e.Description}
	if f := bytes.TrimSpace(frame); len(f) > 0 && json.Valid(f) {
		body.Frame = validUTF8(f)
	}
	return encodeJSONFrame("$error", body)
}

// Close closes every client connection (1001 going away), stops Run and
// waits for the connections to end. Later requests get 503.
func (b *Bridge) Close() {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		var all []*conn
		for _, u := range b.users {
			for c := range u.conns {
				all = append(all, c)
			}
		}
		b.mu.Unlock()
		close(b.done)
		for _, c := range all {
			c.closeWith(websocket.CloseGoingAway, "server shutting down")
		}
	})
	b.conns.Wait()
}

func (b *Bridge) add(c *conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	u := b.users[c.cred.user.ID]
	if u == nil {
		u = &userConns{conns: make(map[*conn]struct{})}
		b.users[c.cred.user.ID] = u
	}
	u.conns[c] = struct{}{}
	b.conns.Add(1)
	mConnections.Add(1)
	return true
}

func (b *Bridge) remove(c *conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.users[c.cred.user.ID]
	if u == nil {
		return
	}
	if _, ok := u.conns[c]; !ok {
		return
	}
	delete(u.conns, c)
	if len(u.conns) == 0 {
		delete(b.users, c.cred.user.ID)
	}
	mConnections.Add(-1)
	b.conns.Done()
}

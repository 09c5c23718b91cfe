package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/wire/websocket"
)

// Control topics a client writes to change its subscriptions, and the
// topics of the bridge's own frames.
const (
	TopicSub     = "$sub"
	TopicUnsub   = "$unsub"
	TopicError   = "$error"
	TopicDropped = "$dropped"
)

// conn is one client connection. The read loop runs in ServeHTTP's
// goroutine and handles client frames in order; the write loop drains the
// send queue. Broker messages reach the queue from the MQTT callback.
type conn struct {
	b    *Bridge
	ws   *websocket.Conn
	cred *credential

	// patterns and nodeID are written by the read loop only and read by
	// the MQTT callback. nodeID is the device id of the default node that
	// topics without a device id go to; "" for none.
	patterns atomic.Pointer[[]string]
	nodeID   atomic.Pointer[string]

	mu         sync.Mutex
	ring       [][]byte
	head, n    int
	bytes      int
	dropped    uint64 // since the last $dropped notice
	droppedAll uint64
	closed     bool

	wake      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newConn(b *Bridge, ws *websocket.Conn, cred *credential, node string) *conn {
	c := &conn{
		b:    b,
		ws:   ws,
		cred: cred,
		ring: make([][]byte, b.opts.QueueLen),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	all := []string{"#"}
	c.patterns.Store(&all)
	c.nodeID.Store(&node)
	return c
}

// node is the device id of the connection's default node, or "".
func (c *conn) node() string { return *c.nodeID.Load() }

// wants reports whether the client's patterns match a bridge topic.
func (c *conn) wants(topic string) bool {
	for _, p := range *c.patterns.Load() {
		if Match(p, topic) {
			return true
		}
	}
	return false
}

// push queues a frame. It never blocks: when the queue is full the oldest
// frames are dropped and counted.
func (c *conn) push(frame []byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if len(frame) > c.b.opts.QueueBytes {
		c.dropLocked(1)
		c.mu.Unlock()
		return
	}
	for c.n > 0 && (c.n == len(c.ring) || c.bytes+len(frame) > c.b.opts.QueueBytes) {
		old := c.ring[c.head]
		c.ring[c.head] = nil
		c.head = (c.head + 1) % len(c.ring)
		c.n--
		c.bytes -= len(old)
		c.dropLocked(1)
	}
	c.ring[(c.head+c.n)%len(c.ring)] = frame
	c.n++
	c.bytes += len(frame)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) dropLocked(n uint64) {
	c.dropped += n
	c.droppedAll += n
	mDropped.Add(n)
}

func (c *conn) droppedTotal() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.droppedAll
}

// take empties the queue. If frames were dropped since the last call, a
// ["$dropped", {"frames": n}] notice comes first.
func (c *conn) take(buf [][]byte) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dropped > 0 {
		buf = append(buf, encodeJSONFrame(TopicDropped, map[string]uint64{"frames": c.dropped}))
		c.dropped = 0
	}
	for c.n > 0 {
		buf = append(buf, c.ring[c.head])
		c.ring[c.head] = nil
		c.head = (c.head + 1) % len(c.ring)
		c.n--
	}
	c.head, c.bytes = 0, 0
	return buf
}

// closeWith sends a close frame and closes the socket, which ends the
// read loop. Safe to call from any goroutine, any number of times.
func (c *conn) closeWith(code int, reason string) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		_ = c.ws.WriteClose(code, reason)
		_ = c.ws.Close()
	})
}

// serve runs the connection until it ends.
func (c *conn) serve() {
	writer := make(chan struct{})
	go func() {
		defer close(writer)
		c.writeLoop()
	}()
	c.readLoop()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	close(c.done)
	<-writer
	_ = c.ws.Close()
}

// readLoop handles the client's messages until the connection ends. The
// connection's idle timeout (two ping intervals and 10 s) drops a client
// that sends nothing, not even a pong.
func (c *conn) readLoop() {
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		mFramesIn.Inc()
		c.handle(msg)
	}
}

// writeLoop sends what the queue holds, all of it in one write, pings
// idle clients and ends the connection once its credential has.
func (c *conn) writeLoop() {
	ping := time.NewTicker(c.b.opts.PingEvery)
	defer ping.Stop()
	recheck := time.NewTicker(c.b.opts.RecheckEvery)
	defer recheck.Stop()
	var buf [][]byte
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
			buf = c.take(buf[:0])
			n, err := c.ws.WriteMessages(websocket.OpText, buf)
			mFramesOut.Add(uint64(n))
			clear(buf)
			if err != nil {
				_ = c.ws.Close()
				return
			}
		case <-ping.C:
			if err := c.ws.WritePing(nil); err != nil {
				_ = c.ws.Close()
				return
			}
		case <-recheck.C:
			if c.credentialEnded() {
				c.closeWith(websocket.ClosePolicyViolation, "session ended")
				return
			}
		}
	}
}

// credentialEnded reports whether the connection's credential no longer
// resolves (logout, password change, deleted key, blocked user). A store
// failure does not end the connection.
func (c *conn) credentialEnded() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := c.b.opts.Auth.Resolve(ctx, c.cred.hash)
	return err != nil && !isServerError(err)
}

// sendError queues a $error frame about frame.
func (c *conn) sendError(e *apierr.Error, frame []byte) {
	c.push(encodeError(e, frame))
}

// handle acts on one client frame. A bad frame gets a $error frame; the
// connection carries on.
func (c *conn) handle(msg []byte) {
	topic, payload, err := ParseFrame(msg)
	if err != nil {
		c.sendError(apierr.From(err), msg)
		return
	}
	switch {
	case topic == TopicSub || topic == TopicUnsub:
		c.changeSubscriptions(topic, payload, msg)
	case strings.HasPrefix(topic, "$"):
		c.sendError(apierr.InvalidParameters.With("unknown control topic "+quote(topic)), msg)
	case isConfigTopic(topic) && !c.ownsFirstLevel(topic):
		c.configure(topic, payload, msg)
	case strings.HasSuffix(topic, "/set"):
		c.command(topic, payload, msg)
	case !ValidTopic(topic):
		c.sendError(apierr.InvalidParameters.With("bad topic "+quote(topic)), msg)
	default:
		c.sendError(apierr.InvalidParameters.With("topic "+quote(topic)+
			" is not writable: write <device>/<path>/set to send a command"), msg)
	}
}

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// isConfigTopic reports whether a topic has the shape of a config frame
// ("clown.talk/-/config/set").
func isConfigTopic(t string) bool {
	return t == "config/set" || strings.HasSuffix(t, "/config/set")
}

// ownsFirstLevel reports whether the topic's first level is one of the
// user's devices: then "<device>/…/config/set" is a command to that
// device, not a config frame.
func (c *conn) ownsFirstLevel(topic string) bool {
	dev, _, _ := strings.Cut(topic, "/")
	_, ok := c.b.tracker(c.cred.user.ID, dev)
	return ok
}

// command publishes ["<device>/<path>/set", payload] to
// fleetwire/<device>/node/<path>/set. A topic whose first level is not
// one of the user's devices goes to the default node, as
// ["<path>/set", payload].
func (c *conn) command(topic string, payload json.RawMessage, msg []byte) {
	if strings.ContainsAny(topic, "+#") {
		c.sendError(apierr.InvalidParameters.With("wildcards are not allowed in a command topic"), msg)
		return
	}
	if !ValidTopic(topic) {
		c.sendError(apierr.InvalidParameters.With("bad topic "+quote(topic)), msg)
		return
	}
	dev, rest, _ := strings.Cut(topic, "/")
	t, ok := c.b.tracker(c.cred.user.ID, dev)
	if !ok {
		node := c.node()
		if node == "" {
			c.sendError(apierr.AccessDenied.With("no device "+quote(dev)+" of yours, and no default node"+
				" (name one in the config frame: {\"node\": \"<device>\"})"), msg)
			return
		}
		if t, ok = c.b.tracker(c.cred.user.ID, node); !ok {
			c.sendError(apierr.AccessDenied.With("the default node "+quote(node)+" is no longer yours"), msg)
			return
		}
		dev, rest = node, topic
	}
	path := strings.TrimSuffix(rest, "/set")
	if rest == "set" || path == "" {
		c.sendError(apierr.InvalidParameters.With("a command topic is <device>/<path>/set"), msg)
		return
	}
	if t.Blocked {
		c.sendError(apierr.DeviceBlocked, msg)
		return
	}
	if len(payload) > c.b.opts.MaxPayload {
		c.sendError(apierr.InvalidParameters.With(fmt.Sprintf("payload is larger than %d bytes", c.b.opts.MaxPayload)), msg)
		return
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, payload); err != nil {
		// ParseFrame only returns JSON; this is for safety.
		c.sendError(apierr.WrongRequestFormat, msg)
		return
	}
	mqttTopic := TopicRoot + "/" + dev + "/node/" + path + "/set"
	if err := c.b.publish(mqttTopic, compact.Bytes()); err != nil {
		c.sendError(apierr.From(err), msg)
	}
}

// config is the payload of a config frame.
type config struct {
	Subscribe *[]string `json:"subscribe"`
	// Node is the raw "node" member: a device id, or null for none.
	Node json.RawMessage `json:"node"`
}

// configure answers a config frame with ["<topic without /set>",
// {"ok": true, "subscribe": [...], "devices": [...], "node": ...}].
func (c *conn) configure(topic string, payload json.RawMessage, msg []byte) {
	var cfg config
	switch {
	case string(payload) == "null":
	case len(payload) > 0 && payload[0] == '{':
		if err := json.Unmarshal(payload, &cfg); err != nil {
			c.sendError(apierr.InvalidParameters.With(`config: "subscribe" is a list of topic patterns and "node" a device id`), msg)
			return
		}
	default:
		c.sendError(apierr.InvalidParameters.With("config: the payload is an object"), msg)
		return
	}
	node, setNode := c.node(), cfg.Node != nil
	if setNode {
		node = "" // null clears the default node
		if err := json.Unmarshal(cfg.Node, &node); err != nil {
			c.sendError(apierr.InvalidParameters.With(`config: "node" is a device id or null`), msg)
			return
		}
		if _, own := c.b.tracker(c.cred.user.ID, node); node != "" && !own {
			c.sendError(apierr.AccessDenied.With("no device "+quote(node)+" of yours"), msg)
			return
		}
	}
	var ps []string
	if cfg.Subscribe != nil {
		var err *apierr.Error
		if ps, err = c.checkPatterns(*cfg.Subscribe); err != nil {
			c.sendError(err, msg)
			return
		}
	}
	// Both changes or neither.
	if setNode {
		c.nodeID.Store(&node)
	}
	if ps != nil {
		c.patterns.Store(&ps)
	}
	var nodeJSON *string
	if node != "" {
		nodeJSON = &node
	}
	c.push(encodeJSONFrame(strings.TrimSuffix(topic, "/set"), map[string]any{
		"ok":        true,
		"subscribe": *c.patterns.Load(),
		"devices":   c.b.deviceIDs(c.cred.user.ID),
		"node":      nodeJSON,
	}))
}

// changeSubscriptions handles ["$sub", patterns] and ["$unsub", patterns]
// (a list of patterns or one pattern) and answers with
// ["$sub"|"$unsub", {"ok": true, "subscribe": [current patterns]}].
func (c *conn) changeSubscriptions(topic string, payload json.RawMessage, msg []byte) {
	var list []string
	if err := json.Unmarshal(payload, &list); err != nil || payload[0] != '[' {
		var one string
		if err := json.Unmarshal(payload, &one); err != nil || payload[0] != '"' {
			c.sendError(apierr.InvalidParameters.With(topic+" takes a list of topic patterns"), msg)
			return
		}
		list = []string{one}
	}
	cur := *c.patterns.Load()
	var next []string
	if topic == TopicSub {
		next = append(slices.Clone(cur), list...)
	} else {
		next = slices.DeleteFunc(slices.Clone(cur), func(p string) bool { return slices.Contains(list, p) })
	}
	ps, err := c.checkPatterns(next)
	if err != nil {
		c.sendError(err, msg)
		return
	}
	c.patterns.Store(&ps)
	c.push(encodeJSONFrame(topic, map[string]any{"ok": true, "subscribe": ps}))
}

// checkPatterns validates patterns and drops duplicates.
func (c *conn) checkPatterns(in []string) ([]string, *apierr.Error) {
	out := make([]string, 0, len(in))
	for _, p := range in {
		if !ValidPattern(p) {
			return nil, apierr.InvalidParameters.With("bad topic pattern " + quote(p))
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) > c.b.opts.MaxPatterns {
		return nil, apierr.InvalidParameters.With(fmt.Sprintf("more than %d topic patterns", c.b.opts.MaxPatterns))
	}
	return out, nil
}

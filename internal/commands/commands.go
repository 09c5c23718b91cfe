// Package commands sends commands to devices over MQTT.
//
// Topics and payloads (the contract with device firmware and the ingest
// side):
//
//	fleetwire/<device_id>/cmd/output   {"index": n, "state": true|false}
//	fleetwire/<device_id>/cmd/<name>   any JSON value ({} when none is given)
//
// Commands are published with QoS 1 and not retained. The output index is
// passed on as the caller gives it (the API's 1-based output number). A
// device confirms outputs by publishing its output states on
// fleetwire/<device_id>/io as {"outputs": [...]}, which the ingest side
// reads; other commands are confirmed as each device defines.
//
// A command is only published while the broker connection is up: one that
// cannot be handed to the broker before the context ends fails with
// ErrUnavailable rather than waiting in a queue to switch an output
// minutes late. A failed call does not prove the command was not
// delivered: the broker may have taken it just before the context ended.
package commands

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetwire/fleetwire/internal/apierr"
)

// TopicRoot is the first level of every fleetwire MQTT topic.
const TopicRoot = "fleetwire"

// MaxPayload is the largest command payload, in bytes.
const MaxPayload = 64 << 10

// DefaultTimeout bounds a call whose context has no deadline.
const DefaultTimeout = 10 * time.Second

// ErrUnavailable means the broker is not connected or did not confirm the
// command in time. Errors that match it also match apierr.Unexpected.
var ErrUnavailable = errors.New("commands: message broker unavailable")

// Commander publishes device commands over one MQTT connection, which it
// keeps up in the background. It is safe for concurrent use.
type Commander struct {
	client mqtt.Client
	log    *slog.Logger

	closeOnce sync.Once
	done      chan struct{}
}

// New returns a Commander for the broker at mqttURL (e.g.
// "tcp://127.0.0.1:1883"; user and password may be in the URL). It
// connects in the background and reconnects after losing the broker. A
// nil log means slog.Default().
func New(mqttURL string, log *slog.Logger) *Commander {
	if log == nil {
		log = slog.Default()
	}
	var b [6]byte
	rand.Read(b[:])
	o := mqtt.NewClientOptions().
		AddBroker(mqttURL).
		SetClientID("fleetwire-commands-" + hex.EncodeToString(b[:])).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(2 * time.Second).
		SetMaxReconnectInterval(30 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetOnConnectHandler(func(mqtt.Client) {
			log.Info("commands: connected to the broker", "broker", redact(mqttURL))
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			log.Warn("commands: broker connection lost", "err", err)
		})
	c := &Commander{client: mqtt.NewClient(o), log: log, done: make(chan struct{})}
	c.client.Connect() // retries in the background until it succeeds
	return c
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "?"
	}
	return u.Redacted()
}

// SetOutput switches output index of a device on or off: it publishes
// {"index": index, "state": on} on fleetwire/<deviceID>/cmd/output.
func (c *Commander) SetOutput(ctx context.Context, deviceID string, index int, on bool) error {
	if index < 0 {
		return apierr.InvalidParameters.With("output index is negative")
	}
	payload := fmt.Appendf(nil, `{"index":%d,"state":%t}`, index, on)
	return c.Send(ctx, deviceID, "output", payload)
}

// Send publishes payload (JSON; empty means {}) on
// fleetwire/<deviceID>/cmd/<name>. name is one or more topic levels
// ("reboot", "config/apn") without wildcards. A bad device id, name or
// payload is apierr.InvalidParameters; a broker that is away is
// ErrUnavailable.
func (c *Commander) Send(ctx context.Context, deviceID, name string, payload json.RawMessage) error {
	if !validLevel(deviceID) {
		return apierr.InvalidParameters.With("bad device id " + quote(deviceID))
	}
	if !validName(name) {
		return apierr.InvalidParameters.With("bad command name " + quote(name))
	}
	body, err := compact(payload)
	if err != nil {
		return err
	}
	return c.publish(ctx, TopicRoot+"/"+deviceID+"/cmd/"+name, body)
}

func compact(p json.RawMessage) ([]byte, error) {
	p = bytes.TrimSpace(p)
	if len(p) == 0 {
		return []byte("{}"), nil
	}
	if len(p) > MaxPayload {
		return nil, apierr.InvalidParameters.With(fmt.Sprintf("command payload is larger than %d bytes", MaxPayload))
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, p); err != nil {
		return nil, apierr.InvalidParameters.With("command payload is not JSON")
	}
	return buf.Bytes(), nil
}

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// validLevel reports whether s can be one MQTT topic level of ours: 1 to
// 256 bytes of UTF-8 without '/', wildcards or NUL.
func validLevel(s string) bool {
	return s != "" && len(s) <= 256 && utf8.ValidString(s) && !strings.ContainsAny(s, "/+#\x00")
}

func validName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for l := range strings.SplitSeq(s, "/") {
		if !validLevel(l) {
			return false
		}
	}
	return true
}

func unavailable(topic, why string) error {
	return fmt.Errorf("commands: %s: %s: %w: %w", topic, why, ErrUnavailable, apierr.Unexpected.With("message broker unavailable"))
}

// publish waits for the broker connection, then publishes with QoS 1 and
// waits for the broker's acknowledgement, all within ctx.
func (c *Commander) publish(ctx context.Context, topic string, payload []byte) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for !c.client.IsConnectionOpen() {
		select {
		case <-c.done:
			return unavailable(topic, "commander closed")
		case <-ctx.Done():
			return unavailable(topic, "not connected")
		case <-tick.C:
		}
	}
	tok := c.client.Publish(topic, 1, false, payload)
	select {
	case <-tok.Done():
	case <-c.done:
		return unavailable(topic, "commander closed")
	case <-ctx.Done():
		return unavailable(topic, "no acknowledgement")
	}
	if err := tok.Error(); err != nil {
		c.log.Warn("commands: publish", "topic", topic, "err", err)
		return unavailable(topic, err.Error())
	}
	return nil
}

// Close disconnects from the broker. Calls after Close fail with
// ErrUnavailable.
func (c *Commander) Close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.client.Disconnect(250)
	})
}

package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/state"
)

// The demo's IoT node: the device behind seed 003's bridge name.
const (
	// NodeDeviceID is the device id of the demo IoT node.
	NodeDeviceID = "demo-node"
	// NodeLabel is its tracker label.
	NodeLabel = "IoT node"
	// BridgeName is the topic bridge name the node is behind, the one of
	// seed 003's client (wss://host/auth/clown-talk-server_nodes_bridge_0).
	BridgeName = "clown-talk-server_nodes_bridge_0"
)

// The node's parts, as bridge topics relative to the node.
const (
	// RelayTopic reports the relay's state, {"state": true|false}; the
	// relay obeys RelayTopic + "/set" with the same payload.
	RelayTopic = "relay/i2c0-3b"
	// TemperatureTopic reports the thermometer, a number in °C.
	TemperatureTopic = "thermometer/0:1/temperature"
	// HumidityTopic reports the hygrometer, a number in percent.
	HumidityTopic = "hygrometer/0:4/relative-humidity"
)

// SeedNode makes sure the demo IoT node (NodeDeviceID, model
// fleet.NodeModel) exists and returns it. An existing tracker with that
// device id is reused as it is, whoever owns it.
func SeedNode(ctx context.Context, reg *state.Registry, userID int64) (*fleet.Tracker, error) {
	if t, ok := reg.TrackerByDevice(NodeDeviceID); ok {
		return t, nil
	}
	t, err := reg.CreateTracker(ctx, &fleet.Tracker{Label: NodeLabel, UserID: userID, DeviceID: NodeDeviceID, Model: fleet.NodeModel})
	if err != nil {
		return nil, fmt.Errorf("demo node %s: %w", NodeDeviceID, err)
	}
	return t, nil
}

// NodeOptions configure a Node.
type NodeOptions struct {
	// MQTTURL is the broker the node talks to, "tcp://host:port".
	MQTTURL string
	// DeviceID is the node's device id (default NodeDeviceID).
	DeviceID string
	// Interval is how often the node reports its sensors and its relay
	// (default 3s).
	Interval time.Duration
	// Logger receives connection problems (default slog.Default()).
	Logger *slog.Logger
}

// Node simulates an IoT node over MQTT, in the topic layout of package
// bridge (fleetwire/<device>/node/<path>): a relay that obeys
// RelayTopic/set and reports its new state on RelayTopic at once, and a
// thermometer and a hygrometer reporting every Interval, with the relay.
// The sensor values also go to fleetwire/<device>/readings, so that they
// are the tracker's readings in the REST and event APIs.
type Node struct {
	opts  NodeOptions
	mu    sync.Mutex
	relay bool
	start time.Time
}

// NewNode returns a node; Run starts it.
func NewNode(opts NodeOptions) *Node {
	if opts.DeviceID == "" {
		opts.DeviceID = NodeDeviceID
	}
	if opts.Interval <= 0 {
		opts.Interval = 3 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Node{opts: opts, start: time.Now()}
}

// topic is the MQTT topic of one of the node's parts.
func (n *Node) topic(path string) string {
	return "fleetwire/" + n.opts.DeviceID + "/node/" + path
}

// Run connects to the broker (retrying until it can), then reports until
// ctx is done; it returns ctx.Err().
func (n *Node) Run(ctx context.Context) error {
	var id [4]byte
	_, _ = rand.Read(id[:])
	o := mqtt.NewClientOptions().
		AddBroker(n.opts.MQTTURL).
		SetClientID("fleetwire-demo-node-" + hex.EncodeToString(id[:])).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(2 * time.Second).
		SetOrderMatters(false).
		SetOnConnectHandler(func(c mqtt.Client) {
			tok := c.Subscribe(n.topic(RelayTopic+"/set"), 1, n.onSet)
			go func() {
				if tok.WaitTimeout(10*time.Second) && tok.Error() != nil {
					n.opts.Logger.Warn("demo node: subscribe", "err", tok.Error())
				}
			}()
		})
	c := mqtt.NewClient(o)
	c.Connect()
	defer c.Disconnect(250)
	tick := time.NewTicker(n.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-tick.C:
			if c.IsConnectionOpen() {
				n.report(c, now)
			}
		}
	}
}

// relayState is the payload of RelayTopic and RelayTopic/set.
type relayState struct {
	State *bool `json:"state"`
}

// onSet switches the relay and reports its new state.
func (n *Node) onSet(c mqtt.Client, m mqtt.Message) {
	var rs relayState
	if err := json.Unmarshal(m.Payload(), &rs); err != nil || rs.State == nil {
		n.opts.Logger.Debug("demo node: relay command is not {\"state\": true|false}", "payload", string(m.Payload()))
		return
	}
	n.mu.Lock()
	n.relay = *rs.State
	n.mu.Unlock()
	n.publish(c, RelayTopic, n.relayJSON())
}

func (n *Node) relayJSON() []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	return []byte(`{"state":` + strconv.FormatBool(n.relay) + `}`)
}

// Sensors returns the node's readings at t: the temperature in °C and the
// relative humidity in percent, slow waves with a little noise.
func (n *Node) Sensors(t time.Time) (temperature, humidity float64) {
	s := t.Sub(n.start).Seconds()
	wobble := math.Sin(s/7) * 0.05
	temperature = math.Round((21.5+1.5*math.Sin(s/300)+wobble)*100) / 100
	humidity = math.Round((45+5*math.Cos(s/420)+wobble*10)*10) / 10
	return temperature, humidity
}

func (n *Node) report(c mqtt.Client, now time.Time) {
	temp, hum := n.Sensors(now)
	n.publish(c, TemperatureTopic, strconv.AppendFloat(nil, temp, 'f', -1, 64))
	n.publish(c, HumidityTopic, strconv.AppendFloat(nil, hum, 'f', -1, 64))
	n.publish(c, RelayTopic, n.relayJSON())
	readings, _ := json.Marshal(map[string]float64{"temperature": temp, "humidity": hum})
	n.publishTo(c, "fleetwire/"+n.opts.DeviceID+"/readings", readings)
}

func (n *Node) publish(c mqtt.Client, path string, payload []byte) {
	n.publishTo(c, n.topic(path), payload)
}

func (n *Node) publishTo(c mqtt.Client, topic string, payload []byte) {
	tok := c.Publish(topic, 1, false, payload)
	go func() {
		if !tok.WaitTimeout(10 * time.Second) {
			n.opts.Logger.Debug("demo node: publish not confirmed", "topic", topic)
		} else if err := tok.Error(); err != nil && !errors.Is(err, mqtt.ErrNotConnected) {
			n.opts.Logger.Warn("demo node: publish", "topic", topic, "err", err)
		}
	}()
}

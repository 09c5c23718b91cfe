package demo

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetwire/fleetwire/internal/broker"
	"github.com/fleetwire/fleetwire/internal/fleet"
)

// TestNodeOverMQTT runs the demo node against fleetwire's embedded
// broker: it reports its sensors and relay, and its relay obeys a command.
func TestNodeOverMQTT(t *testing.T) {
	b, err := broker.Start("127.0.0.1:0", broker.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	dev := "node-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// The node and the test sign in as fleetwire's internal client; the
	// demo itself signs the node in with its device secret.
	n := NewNode(NodeOptions{MQTTURL: b.InternalURL(), DeviceID: dev, Interval: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run: %v", err)
		}
	})

	msgs := make(chan [2]string, 256)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.InternalURL()).SetClientID("node-test-client"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	if tok := c.Subscribe("fleetwire/"+dev+"/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		msgs <- [2]string{m.Topic(), string(m.Payload())}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	next := func(what string, ok func(topic, payload string) bool) string {
		t.Helper()
		timeout := time.After(15 * time.Second)
		for {
			select {
			case m := <-msgs:
				if ok(m[0], m[1]) {
					return m[1]
				}
			case <-timeout:
				t.Fatalf("no %s", what)
			}
		}
	}
	node := "fleetwire/" + dev + "/node/"
	temp := next("temperature", func(topic, _ string) bool { return topic == node+TemperatureTopic })
	if v, err := strconv.ParseFloat(temp, 64); err != nil || v < 15 || v > 30 {
		t.Errorf("temperature %q", temp)
	}
	hum := next("humidity", func(topic, _ string) bool { return topic == node+HumidityTopic })
	if v, err := strconv.ParseFloat(hum, 64); err != nil || v < 30 || v > 60 {
		t.Errorf("humidity %q", hum)
	}
	if got := next("relay state", func(topic, _ string) bool { return topic == node+RelayTopic }); got != `{"state":false}` {
		t.Errorf("relay starts %s", got)
	}
	readings := next("readings", func(topic, _ string) bool { return topic == "fleetwire/"+dev+"/readings" })
	if !strings.Contains(readings, `"temperature":`) || !strings.Contains(readings, `"humidity":`) {
		t.Errorf("readings %s", readings)
	}

	for _, cmd := range []string{`not json`, `{"state":"on"}`, `{"state":true}`} {
		if tok := c.Publish(node+RelayTopic+"/set", 1, false, cmd); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	// Malformed commands leave the relay be; the good one switches it.
	if got := next("relay switched on", func(topic, p string) bool { return topic == node+RelayTopic && p != `{"state":false}` }); got != `{"state":true}` {
		t.Errorf("relay after the command %s", got)
	}
}

func TestSeedNode(t *testing.T) {
	ctx := context.Background()
	reg, _, uid := newRegistry(t)
	n1, err := SeedNode(ctx, reg, uid)
	if err != nil {
		t.Fatal(err)
	}
	if n1.DeviceID != NodeDeviceID || n1.Model != fleet.NodeModel || n1.UserID != uid {
		t.Fatalf("node %+v", n1)
	}
	n2, err := SeedNode(ctx, reg, uid)
	if err != nil || n2.ID != n1.ID {
		t.Fatalf("reseed: %+v %v", n2, err)
	}
}

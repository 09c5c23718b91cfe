package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fleetwire/fleetwire/internal/demo"
	"github.com/fleetwire/fleetwire/internal/server"
)

// demoServer runs `fleetwire demo` in-process on free ports, with the
// embedded MQTT broker, and returns it once it serves.
func demoServer(t *testing.T, extra ...string) *server.Server {
	t.Helper()
	args := append([]string{"--listen", "127.0.0.1:0", "--osmand-listen", "127.0.0.1:0", "--ngp-listen", "",
		"--mqtt-listen", "127.0.0.1:0", "--data", t.TempDir(), "--trackers", "3", "--interval", "100ms"}, extra...)
	f, err := parseServerFlags("demo", args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	f.cfg.Logger = slog.New(slog.DiscardHandler)
	f.cfg.AdminKey = "demo-test-key"
	demoConfig(&f.cfg)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, f.cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := startDemo(ctx, srv, f, &out); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("server did not stop")
		}
	})
	<-srv.Ready()
	return srv
}

// readFrame reads one bridge frame ["topic", payload].
func readFrame(t *testing.T, c *websocket.Conn) (string, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var f []json.RawMessage
	var topic string
	if json.Unmarshal(b, &f) != nil || len(f) != 2 || json.Unmarshal(f[0], &topic) != nil {
		t.Fatalf("frame %s", b)
	}
	return topic, string(f[1])
}

// TestDemoSeedBridgeClient: seed 003's client, pointed at the demo with
// the demo user's credentials, switches the demo node's relay and sees its
// state and readings come back.
func TestDemoSeedBridgeClient(t *testing.T) {
	srv := demoServer(t)
	h := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(demoLogin+":"+demoPassword))}}
	c, resp, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr()+"/auth/"+demo.BridgeName, h)
	if err != nil {
		t.Fatalf("dial: %v %v", err, resp)
	}
	defer c.Close()
	send := func(s string) {
		t.Helper()
		if err := c.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	send("[\"clown.talk/-/config/set\", {}]\n")
	for {
		topic, p := readFrame(t, c)
		if topic == "clown.talk/-/config" {
			if !strings.Contains(p, `"node":"`+demo.NodeDeviceID+`"`) {
				t.Fatalf("config answer %s", p)
			}
			break
		}
	}
	// awaitRelay reads frames until the relay reports want, and checks a
	// temperature came by too.
	sawTemp := false
	awaitRelay := func(want string) {
		t.Helper()
		for {
			topic, p := readFrame(t, c)
			switch topic {
			case demo.TemperatureTopic:
				if _, err := strconv.ParseFloat(p, 64); err != nil {
					t.Fatalf("temperature %s", p)
				}
				sawTemp = true
			case demo.RelayTopic:
				if p == want {
					return
				}
			case "$error":
				t.Fatalf("error frame %s", p)
			}
		}
	}
	send(`["relay/i2c0-3b/set", {"state": true}]`)
	awaitRelay(`{"state":true}`)
	send("[\"relay/i2c0-3b/set\", {\"state\": false}]") // the seed's own frame
	awaitRelay(`{"state":false}`)
	for !sawTemp {
		awaitRelay(`{"state":false}`)
	}
}

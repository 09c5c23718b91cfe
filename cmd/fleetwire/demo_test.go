package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"runtime"
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
		"--teltonika-listen", "127.0.0.1:0", "--gt06-listen", "127.0.0.1:0",
		"--mqtt-listen", "127.0.0.1:0", "--data", t.TempDir(), "--trackers", "3", "--interval", "100ms"}, extra...)
	f, err := parseServerFlags("demo", args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	f.cfg.Logger = slog.New(slog.DiscardHandler)
	f.cfg.AdminKey = "demo-test-key"
	run := demoConfig(&f.cfg)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, f.cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := startDemo(ctx, srv, f, run, &out); err != nil {
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
			buf := make([]byte, 1<<20)
			t.Errorf("server did not stop; goroutines:\n%s", buf[:runtime.Stack(buf, true)])
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

// TestDemoRealDeviceLeavesSimulation: an OsmAnd fix for demo-001 stays
// while the simulator moves the other trackers on.
func TestDemoRealDeviceLeavesSimulation(t *testing.T) {
	srv := demoServer(t)
	base := "http://" + srv.Addr()
	call := func(action string, params map[string]any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(params)
		resp, err := http.Post(base+"/v2/"+action, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || m["success"] != true {
			t.Fatalf("%s: %d %v %v", action, resp.StatusCode, m, err)
		}
		return m
	}
	hash := call("user/auth", map[string]any{"login": demoLogin, "password": demoPassword})["hash"].(string)
	if info := call("user/get_info", map[string]any{"hash": hash})["user_info"].(map[string]any); info["demo"] != true {
		t.Errorf("the demo user is not a demo account: %v", info)
	}
	ids := map[string]float64{}     // device id → tracker id
	sources := map[float64]string{} // source id → device id
	for _, tr := range call("tracker/list", map[string]any{"hash": hash})["list"].([]any) {
		src := tr.(map[string]any)["source"].(map[string]any)
		dev := src["device_id"].(string)
		ids[dev] = tr.(map[string]any)["id"].(float64)
		sources[src["id"].(float64)] = dev
	}
	ev, _, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr()+"/event/subscription", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	sub, _ := json.Marshal(map[string]any{"action": "subscribe", "hash": hash,
		"requests": []any{map[string]any{"type": "state", "trackers": []float64{ids["demo-001"], ids["demo-002"]}}}})
	if err := ev.WriteMessage(websocket.TextMessage, sub); err != nil {
		t.Fatal(err)
	}

	const lat, lon = 52.6001, 13.2002
	resp, err := http.Get("http://" + srv.OsmandAddr() + "/?id=demo-001&lat=52.6001&lon=13.2002&speed=0")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("OsmAnd fix answered %d", resp.StatusCode)
	}
	real, others := false, 0
	for others < 20 {
		_ = ev.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, b, err := ev.ReadMessage()
		if err != nil {
			t.Fatalf("read events: %v", err)
		}
		var m struct {
			Event string `json:"event"`
			Data  struct {
				SourceID float64 `json:"source_id"`
				GPS      struct {
					Location *struct{ Lat, Lng float64 } `json:"location"`
				} `json:"gps"`
			} `json:"data"`
		}
		if json.Unmarshal(b, &m) != nil || m.Event != "state" || m.Data.GPS.Location == nil {
			continue
		}
		at := *m.Data.GPS.Location
		switch dev := sources[m.Data.SourceID]; {
		case dev == "demo-001" && at.Lat == lat && at.Lng == lon:
			real = true
		case dev == "demo-001" && real:
			t.Fatalf("demo-001 moved on to %v after its real fix", at)
		case dev == "demo-002" && real:
			others++
		}
	}
	st := call("tracker/get_state", map[string]any{"hash": hash, "tracker_id": ids["demo-001"]})
	loc := st["state"].(map[string]any)["gps"].(map[string]any)["location"].(map[string]any)
	if loc["lat"] != lat || loc["lng"] != lon {
		t.Fatalf("demo-001 is at %v, not where it reported", loc)
	}
}

func TestAdminUsersUpdate(t *testing.T) {
	method, path, body, err := adminRequest("users", "update", []string{"-id", "7", "locale=de_DE", "demo=true", "title=A=B"})
	if err != nil || method != http.MethodPost || path != "/admin/users/7/update" ||
		body["locale"] != "de_DE" || body["demo"] != "true" || body["title"] != "A=B" || len(body) != 3 {
		t.Fatalf("users update: %s %s %v %v", method, path, body, err)
	}
	for _, args := range [][]string{{"-id", "7"}, {"-id", "7", "nokey"}, {"locale=fr"}} {
		if _, _, _, err := adminRequest("users", "update", args); err == nil {
			t.Errorf("users update %v accepted", args)
		}
	}
}

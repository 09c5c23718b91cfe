package server

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/demo"
	"github.com/fleetwire/fleetwire/internal/fleet"
)

// chromiumEnv returns the Chromium binary and the artifacts folder, or
// skips the test when Chromium is missing (fails with
// FLEETWIRE_REQUIRE_NODE=1).
func chromiumEnv(t *testing.T) (chromium, artifacts string) {
	t.Helper()
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("FLEETWIRE_REQUIRE_NODE") == "1" {
			t.Fatalf("browser test cannot run: %v", err)
		}
		t.Skipf("browser test skipped: %v", err)
	}
	artifacts = os.Getenv("FLEETWIRE_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join(repoRoot(t), "test", "artifacts")
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	return chromium, artifacts
}

// TestFleetPageInChromium signs in on the fleet page in headless Chromium
// (Debian's, driven by playwright-core) over each transport, moves a
// tracker through the OsmAnd ingest and checks the page follows; it saves
// a screenshot per transport in $FLEETWIRE_ARTIFACTS (default
// test/artifacts).
func TestFleetPageInChromium(t *testing.T) {
	dir := nodeDir(t, "browser")
	chromium, artifacts := chromiumEnv(t)
	h := startServer(t, func(c *Config) {
		c.Heartbeat = 5 * time.Second
		trackerListeners(c)
	})
	uid := h.createUser("browser-user", "browser-pass", "Europe/Berlin")
	// A Teltonika tracker that drove in the last hours, for its trail.
	truck := h.createTracker(uid, "Truck (Teltonika)", "356307042441099")
	drive(t, h, truck.device, time.Now().Add(-2*time.Hour).Truncate(time.Minute))
	for i := 1; i <= 3; i++ {
		h.createTracker(uid, "Van "+strconv.Itoa(i), "browser-extra-"+strconv.Itoa(i))
		h.fix("browser-extra-"+strconv.Itoa(i), 52.50+float64(i)/100, 13.40+float64(i)/100, 10)
	}
	for _, transport := range []string{"websocket", "long-polling", "streaming", "sse"} {
		t.Run(transport, func(t *testing.T) {
			dev := "browser-" + transport
			tr := h.createTracker(uid, "Browser "+transport, dev)
			h.fix(dev, 52.52, 13.405, 0)
			env := []string{"FLEETWIRE_URL=" + h.base}
			if transport == "websocket" {
				env = append(env, "FLEETWIRE_TRAIL_TRACKER="+strconv.FormatInt(truck.id, 10), "FLEETWIRE_TRAIL_PROTOCOL=teltonika")
			}
			out, err := runNode(t, dir, "fleet-page.cjs", append(env,
				"FLEETWIRE_OSMAND_URL="+h.osmand,
				"FLEETWIRE_LOGIN=browser-user",
				"FLEETWIRE_PASSWORD=browser-pass",
				"FLEETWIRE_TRACKER="+strconv.FormatInt(tr.id, 10),
				"FLEETWIRE_DEVICE="+dev,
				"TRANSPORT="+transport,
				"FLEETWIRE_ARTIFACTS="+artifacts,
				"CHROMIUM="+chromium,
			)...)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %v", transport, out)
			shot := filepath.Join(artifacts, "fleet-page-"+transport+".png")
			if st, err := os.Stat(shot); err != nil || st.Size() == 0 {
				t.Errorf("no screenshot at %s: %v", shot, err)
			}
		})
	}
}

// TestBridgeConsoleInChromium: the fleet page's topic bridge console
// switches the demo IoT node's relay (toggle and typed frame) and shows
// its readings; then seed 003's client, run in the page as written,
// connects to /auth/<bridge-name> with credentials in its URL and
// switches the relay with the seed's own frame.
func TestBridgeConsoleInChromium(t *testing.T) {
	dir := nodeDir(t, "browser")
	chromium, artifacts := chromiumEnv(t)
	node := "browser-node-" + randomSuffix()
	h := startServer(t, func(c *Config) {
		c.MQTTListen = "127.0.0.1:0"
		c.BridgeNames = map[string]string{demo.BridgeName: node}
	})
	uid := h.createUser("clown", "bigclown", "UTC")
	m := h.admin("POST", "/admin/trackers", map[string]any{"user_id": uid, "label": "IoT node", "device_id": node, "model": fleet.NodeModel})
	// The node signs in to the embedded broker as its device.
	nodeURL, _ := url.Parse(h.srv.MQTTURL())
	nodeURL.User = url.UserPassword(node, h.deviceSecret(findID(m), ""))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	n := demo.NewNode(demo.NodeOptions{MQTTURL: nodeURL.String(), DeviceID: node, Interval: 300 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(15 * time.Second); !h.srv.bridge.Ready(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the bridge did not subscribe")
		}
	}
	out, err := runNode(t, dir, "bridge-console.cjs",
		"FLEETWIRE_URL="+h.base,
		"FLEETWIRE_LOGIN=clown",
		"FLEETWIRE_PASSWORD=bigclown",
		"FLEETWIRE_NODE="+node,
		"FLEETWIRE_BRIDGE_NAME="+demo.BridgeName,
		"FLEETWIRE_ARTIFACTS="+artifacts,
		"CHROMIUM="+chromium,
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v", out)
}

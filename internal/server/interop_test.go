package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// repoRoot is the module root, found from this file's location.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// nodeDir returns the interop test folder with its node_modules, skipping
// the test when Node or the packages are missing, unless
// FLEETWIRE_REQUIRE_NODE=1 (as in CI), where that is a failure.
func nodeDir(t *testing.T, sub string) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "test", sub)
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not installed"
	} else if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		missing = "run `npm ci` in test/" + sub
	}
	if missing != "" {
		if os.Getenv("FLEETWIRE_REQUIRE_NODE") == "1" {
			t.Fatalf("real-client test cannot run: %s", missing)
		}
		t.Skipf("real-client test skipped: %s", missing)
	}
	return dir
}

// TestAtmosphereJSLegacyClient drives the event API with the published
// atmosphere.js 2.3.x client in Node over every transport it offers.
func TestAtmosphereJSLegacyClient(t *testing.T) {
	dir := nodeDir(t, "interop")
	h := startServer(t, func(c *Config) {
		c.Heartbeat = 400 * time.Millisecond
		c.ClientHeartbeat = 500 * time.Millisecond
	})
	uid := h.createUser("node-user", "node-pass", "UTC")
	for _, transport := range []string{"websocket", "long-polling", "streaming", "sse"} {
		t.Run(transport, func(t *testing.T) {
			dev := "node-" + transport
			tr := h.createTracker(uid, "Node "+transport, dev)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "node", "events-legacy.cjs")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(),
				"FLEETWIRE_URL="+h.base,
				"FLEETWIRE_OSMAND_URL="+h.osmand,
				"FLEETWIRE_LOGIN=node-user",
				"FLEETWIRE_PASSWORD=node-pass",
				"FLEETWIRE_TRACKER="+strconv.FormatInt(tr.id, 10),
				"FLEETWIRE_DEVICE="+dev,
				"TRANSPORT="+transport,
				"IDLE_MS=2500",
				"CLIENT_TIMEOUT_MS=1500",
			)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var out struct {
				Opened        bool      `json:"opened"`
				TransportUsed string    `json:"transportUsed"`
				States        []float64 `json:"states"`
				Errors        []string  `json:"errors"`
				Unsubscribed  bool      `json:"unsubscribed"`
				Failure       string    `json:"failure"`
			}
			if jerr := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &out); jerr != nil {
				t.Fatalf("node output %q (stderr %q): %v", stdout.String(), stderr.String(), jerr)
			}
			if err != nil {
				t.Fatalf("atmosphere.js over %s failed: %s\noutcome: %s\nstderr: %s", transport, out.Failure, stdout.String(), stderr.String())
			}
			if out.TransportUsed != transport {
				t.Errorf("client ended on %q, want %q", out.TransportUsed, transport)
			}
			if want := []float64{50.01, 50.02, 50.03, 51}; fmt.Sprint(out.States) != fmt.Sprint(want) {
				t.Errorf("states %v, want %v", out.States, want)
			}
			if !out.Unsubscribed {
				t.Errorf("no unsubscribe response")
			}
		})
	}
}

package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
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

// runNode runs one interop script with env and decodes its JSON outcome.
func runNode(t *testing.T, dir, script string, env ...string) (map[string]any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var out map[string]any
	if jerr := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &out); jerr != nil {
		t.Fatalf("%s output %q (stderr %q): %v", script, stdout.String(), stderr.String(), jerr)
	}
	if err != nil {
		return out, fmt.Errorf("%s: %v: %s; stderr: %s", script, err, stdout.String(), stderr.String())
	}
	return out, nil
}

// brokenWebSocketProxy is a reverse proxy whose WebSocket support is
// broken, as behind some corporate proxies: with refuse it answers every
// upgrade with 403; otherwise it relays the upgrade's 101 answer and then
// cuts the connection before any frame gets through. Everything else
// passes through unbuffered.
func brokenWebSocketProxy(t *testing.T, target string, refuse bool) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			rp.ServeHTTP(w, r)
			return
		}
		if refuse {
			http.Error(w, "WebSocket not allowed here", http.StatusForbidden)
			return
		}
		up, err := net.Dial("tcp", u.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer up.Close()
		if err := r.Write(up); err != nil {
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(up), r)
		if err != nil {
			return
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = resp.Write(io.Discard) // the 101 head only; the frames never pass
		fmt.Fprintf(conn, "HTTP/1.1 %s\r\n", resp.Status)
		_ = resp.Header.Write(conn)
		_, _ = io.WriteString(conn, "\r\n")
		time.Sleep(50 * time.Millisecond)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestAtmosphereJSFallback: with WebSocket broken on the way, atmosphere.js
// falls back to long-polling and every event still arrives.
func TestAtmosphereJSFallback(t *testing.T) {
	dir := nodeDir(t, "interop")
	h := startServer(t, func(c *Config) {
		c.Heartbeat = 400 * time.Millisecond
	})
	uid := h.createUser("fallback-user", "fallback-pass", "UTC")
	for _, tc := range []struct {
		name   string
		refuse bool
		env    []string
	}{
		// The proxy completes the upgrade, then drops the connection.
		{name: "upgrade-dropped"},
		// The proxy refuses the upgrade. A refused WebSocket fires both
		// error and close, and atmosphere.js 2.3.x then falls back twice,
		// to its fallback and on to "none", which it never polls with;
		// apps set maxWebsocketErrorRetries: 0 so that only close falls back.
		{name: "upgrade-refused", refuse: true, env: []string{"MAX_WS_ERROR_RETRIES=0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := "node-" + tc.name
			tr := h.createTracker(uid, "Behind a proxy "+tc.name, dev)
			proxied := brokenWebSocketProxy(t, h.base, tc.refuse)
			out, err := runNode(t, dir, "events-legacy.cjs", append([]string{
				"FLEETWIRE_URL=" + proxied,
				"FLEETWIRE_OSMAND_URL=" + h.osmand,
				"FLEETWIRE_LOGIN=fallback-user",
				"FLEETWIRE_PASSWORD=fallback-pass",
				"FLEETWIRE_TRACKER=" + strconv.FormatInt(tr.id, 10),
				"FLEETWIRE_DEVICE=" + dev,
				"TRANSPORT=websocket",
				"IDLE_MS=1500",
				"CLIENT_TIMEOUT_MS=1500",
				"LOG_LEVEL=" + os.Getenv("ATMOSPHERE_LOG_LEVEL"),
			}, tc.env...)...)
			if err != nil {
				t.Fatal(err)
			}
			if out["transportUsed"] != "long-polling" {
				t.Errorf("client ended on %v, want the long-polling fallback", out["transportUsed"])
			}
			if got := fmt.Sprint(out["states"]); got != "[50.01 50.02 50.03 51]" {
				t.Errorf("states %s", got)
			}
		})
	}
}

// TestAtmosphereJS5Client drives the event API with the current
// atmosphere.js 5.x client in Node over each of its transports.
func TestAtmosphereJS5Client(t *testing.T) {
	dir := nodeDir(t, "interop")
	h := startServer(t, func(c *Config) { c.Heartbeat = 400 * time.Millisecond })
	uid := h.createUser("v5-user", "v5-password", "UTC")
	for _, transport := range []string{"websocket", "long-polling", "streaming", "sse"} {
		t.Run(transport, func(t *testing.T) {
			dev := "v5-" + transport
			tr := h.createTracker(uid, "V5 "+transport, dev)
			out, err := runNode(t, dir, "events-v5.cjs",
				"FLEETWIRE_URL="+h.base,
				"FLEETWIRE_OSMAND_URL="+h.osmand,
				"FLEETWIRE_LOGIN=v5-user",
				"FLEETWIRE_PASSWORD=v5-password",
				"FLEETWIRE_TRACKER="+strconv.FormatInt(tr.id, 10),
				"FLEETWIRE_DEVICE="+dev,
				"TRANSPORT="+transport,
			)
			if err != nil {
				t.Fatal(err)
			}
			if out["transportUsed"] != transport {
				t.Errorf("client ended on %v, want %s", out["transportUsed"], transport)
			}
			if got := fmt.Sprint(out["states"]); got != "[40.01 40.02 40.03]" {
				t.Errorf("states %s", got)
			}
		})
	}
}

package server

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// mosquitto runs a mosquitto_pub or mosquitto_sub command line against
// the broker at addr and returns its exit error and output.
func mosquitto(t *testing.T, tool, addr string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s not installed (scripts/test.sh installs mosquitto-clients)", tool)
	}
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, append([]string{"-h", host, "-p", port, "-V", "mqttv311"}, args...)...).CombinedOutput()
	return string(out), err
}

// deviceSecret sets a tracker's MQTT secret through the admin API and
// returns it (secret "" asks for a generated one).
func (h *harness) deviceSecret(trackerID int64, secret string) string {
	h.t.Helper()
	m := h.admin("POST", fmt.Sprintf("/admin/trackers/%d/secret", trackerID), map[string]any{"secret": secret})
	v := m["value"].(map[string]any)
	if v["tracker_id"] != float64(trackerID) || v["secret"] == "" {
		h.t.Fatalf("secret answer %v", m)
	}
	return v["secret"].(string)
}

// waitLat waits until the tracker's state has latitude lat.
func (h *harness) waitLat(trackerID int64, lat float64) {
	h.t.Helper()
	for range 500 {
		if s, ok := h.srv.State.State(trackerID); ok && s.GPS.Location != nil && s.GPS.Location.Lat == lat {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("tracker %d never reached latitude %v", trackerID, lat)
}

// TestEmbeddedBrokerAuth drives the embedded broker with the real
// mosquitto clients: anonymous clients and wrong secrets are refused, a
// device with its secret publishes its own position (and not another
// device's) and reads its own commands (and not another device's).
func TestEmbeddedBrokerAuth(t *testing.T) {
	h := startServer(t, func(c *Config) { c.MQTTListen = "127.0.0.1:0" })
	select {
	case <-h.srv.mqttSub.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("MQTT ingest did not subscribe")
	}
	addr := h.srv.broker.Addr()
	uid := h.createUser("mqtt-owner", "mqtt-owner-password", "UTC")
	a := h.createTracker(uid, "A", "dev-a")
	b := h.createTracker(uid, "B", "dev-b")
	secretA := h.deviceSecret(a.id, "")
	secretB := h.deviceSecret(b.id, "a-secret-chosen-by-the-operator")
	if len(secretA) != 32 {
		t.Fatalf("generated secret %q, want 32 characters", secretA)
	}
	code, m := h.call("POST", fmt.Sprintf("/admin/trackers/%d/secret", a.id), map[string]any{"secret": "short"}, map[string]string{"X-Admin-Key": testAdminKey})
	if code != 400 || m["status"].(map[string]any)["code"] != float64(7) {
		t.Fatalf("a short secret: %d %v, want 400 code 7", code, m)
	}

	t.Run("anonymous", func(t *testing.T) {
		out, err := mosquitto(t, "mosquitto_sub", addr, "-t", "#", "-C", "1", "-W", "5")
		if err == nil || !strings.Contains(out, "not authorised") {
			t.Fatalf("anonymous subscriber: %v %q, want refused as not authorised", err, out)
		}
		out, err = mosquitto(t, "mosquitto_pub", addr, "-t", "fleetwire/dev-b/position", "-m", `{"lat":1,"lon":1}`)
		if err == nil {
			t.Fatalf("anonymous publisher accepted: %q", out)
		}
	})
	t.Run("wrong device", func(t *testing.T) {
		out, err := mosquitto(t, "mosquitto_pub", addr, "-u", "dev-b", "-P", secretA, "-t", "fleetwire/dev-b/position", "-m", `{"lat":2,"lon":2}`)
		if err == nil || !strings.Contains(out, "not authorised") {
			t.Fatalf("dev-b with dev-a's secret: %v %q, want refused", err, out)
		}
		out, err = mosquitto(t, "mosquitto_pub", addr, "-u", "dev-c", "-P", secretA, "-t", "fleetwire/dev-c/position", "-m", `{"lat":2,"lon":2}`)
		if err == nil {
			t.Fatalf("an unknown device was accepted: %q", out)
		}
	})
	t.Run("right device", func(t *testing.T) {
		// dev-a publishes on dev-b's topic (dropped), then on its own.
		mosquitto(t, "mosquitto_pub", addr, "-u", "dev-a", "-P", secretA, "-t", "fleetwire/dev-b/position", "-m", `{"lat":3,"lon":3}`)
		if out, err := mosquitto(t, "mosquitto_pub", addr, "-u", "dev-a", "-P", secretA, "-q", "1", "-t", "fleetwire/dev-a/position", "-m", `{"lat":4,"lon":4}`); err != nil {
			t.Fatalf("dev-a on its own topic: %v %q", err, out)
		}
		h.waitLat(a.id, 4)
		// The broker handled dev-a's first publish before its second, and
		// ingest applies in arrival order: had it passed, it would show.
		if s, ok := h.srv.State.State(b.id); ok && s.GPS.Location != nil {
			t.Fatalf("dev-a moved dev-b to %+v", s.GPS.Location)
		}
		if out, err := mosquitto(t, "mosquitto_pub", addr, "-u", "dev-b", "-P", secretB, "-q", "1", "-t", "fleetwire/dev-b/position", "-m", `{"lat":5,"lon":5}`); err != nil {
			t.Fatalf("dev-b with its own secret: %v %q", err, out)
		}
		h.waitLat(b.id, 5)

		// Subscriptions: another device's commands are denied.
		out, err := mosquitto(t, "mosquitto_sub", addr, "-u", "dev-a", "-P", secretA, "-t", "fleetwire/dev-b/cmd/#", "-C", "1", "-W", "5")
		if !strings.Contains(out, "All subscription requests were denied") {
			t.Fatalf("dev-a subscribing to dev-b's commands: %v %q, want denied", err, out)
		}
		// Its own commands arrive: an output switched over the REST API.
		hash := h.login("mqtt-owner", "mqtt-owner-password")
		got := make(chan string, 1)
		go func() {
			out, _ := mosquitto(t, "mosquitto_sub", addr, "-u", "dev-a", "-P", secretA, "-t", "fleetwire/dev-a/cmd/#", "-C", "1", "-W", "15", "-v")
			got <- out
		}()
		deadline := time.Now().Add(15 * time.Second)
		for {
			h.call("POST", "/v2/tracker/output/set", map[string]any{"hash": hash, "tracker_id": a.id, "output": 1, "enable": true}, nil)
			select {
			case out := <-got:
				if !strings.HasPrefix(out, "fleetwire/dev-a/cmd/output ") {
					t.Fatalf("dev-a's command subscriber got %q", out)
				}
				return
			case <-time.After(300 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatal("dev-a never received its command")
			}
		}
	})
}

package server

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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
		h.awaitCommand(t, addr, "dev-a", secretA, h.login("mqtt-owner", "mqtt-owner-password"), a.id)
	})
}

// awaitCommand switches output 1 of the tracker over the REST API with
// hash until the device, signed in with mosquitto_sub at addr to its
// command topics, receives the command.
func (h *harness) awaitCommand(t *testing.T, addr, device, secret, hash string, trackerID int64) {
	t.Helper()
	if _, err := exec.LookPath("mosquitto_sub"); err != nil {
		t.Skip("mosquitto_sub not installed")
	}
	got := make(chan string, 1)
	go func() {
		host, port, _ := strings.Cut(addr, ":")
		out, _ := exec.Command("mosquitto_sub", "-h", host, "-p", port, "-u", device, "-P", secret,
			"-t", "fleetwire/"+device+"/cmd/#", "-C", "1", "-W", "15", "-v").CombinedOutput()
		got <- string(out)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		h.call("POST", "/v2/tracker/output/set", map[string]any{"hash": hash, "tracker_id": trackerID, "output": 1, "enable": true}, nil)
		select {
		case out := <-got:
			if !strings.HasPrefix(out, "fleetwire/"+device+"/cmd/output ") {
				t.Fatalf("%s's command subscriber got %q", device, out)
			}
			return
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never received its command", device)
		}
	}
}

// readmeBlock returns the body of the README code block whose first line
// is first.
func readmeBlock(t *testing.T, first string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range strings.Split(string(raw), "```") {
		if body, ok := strings.CutPrefix(block, "\n"+first+"\n"); ok {
			return body
		}
	}
	t.Fatalf("README has no code block starting %q", first)
	return ""
}

// TestMosquittoRulesFromREADME runs a Mosquitto with the configuration and
// ACL the README gives for an external broker, and fleetwire against it:
// fleetwire's own user works, anonymous and wrong-secret devices are
// refused, a device moves only its own tracker and gets its commands.
func TestMosquittoRulesFromREADME(t *testing.T) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/mosquitto"); err != nil {
			t.Skip("mosquitto not installed")
		}
	}
	if _, err := exec.LookPath("mosquitto_passwd"); err != nil {
		t.Skip("mosquitto_passwd not installed")
	}
	// Mosquitto started as root reads its files as the mosquitto user: a
	// directory of its own that user can enter (t.TempDir's parent is 0700).
	dir, err := os.MkdirTemp("", "fleetwire-mosquitto-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	paths := strings.NewReplacer("/etc/mosquitto/", dir+"/", "listener 1883", "listener "+port+" 127.0.0.1")
	conf := paths.Replace(readmeBlock(t, "# /etc/mosquitto/conf.d/fleetwire.conf")) + "persistence false\nlog_dest stderr\n"
	acl := readmeBlock(t, "# /etc/mosquitto/fleetwire.acl")
	os.WriteFile(filepath.Join(dir, "fleetwire.conf"), []byte(conf), 0o600)
	os.WriteFile(filepath.Join(dir, "fleetwire.acl"), []byte(acl), 0o600)
	const fwPassword, secretA = "a-long-random-password", "secret-of-dev-a-1234"
	passwd := filepath.Join(dir, "fleetwire.passwd")
	for i, cred := range [][2]string{{"fleetwire", fwPassword}, {"dev-a", secretA}} {
		args := []string{"-b", passwd, cred[0], cred[1]}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command("mosquitto_passwd", args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v %s", err, out)
		}
	}
	for _, f := range []string{"fleetwire.conf", "fleetwire.acl", "fleetwire.passwd"} {
		os.Chmod(filepath.Join(dir, f), 0o644)
	}
	var logs strings.Builder
	cmd := exec.Command(bin, "-c", filepath.Join(dir, "fleetwire.conf"))
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatalf("mosquitto did not start: %s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	h := startServer(t, func(c *Config) { c.MQTTURL = "tcp://fleetwire:" + fwPassword + "@" + addr })
	select {
	case <-h.srv.mqttSub.Ready():
	case <-time.After(10 * time.Second):
		t.Fatalf("fleetwire did not subscribe at the README's Mosquitto: %s", logs.String())
	}
	uid := h.createUser("mosq-owner", "mosq-owner-password", "UTC")
	a := h.createTracker(uid, "A", "dev-a")
	b := h.createTracker(uid, "B", "dev-b")
	h.deviceSecret(a.id, secretA)

	if out, err := mosquitto(t, "mosquitto_sub", addr, "-t", "#", "-C", "1", "-W", "5"); err == nil {
		t.Fatalf("anonymous client admitted: %q", out)
	}
	if out, err := mosquitto(t, "mosquitto_pub", addr, "-u", "dev-a", "-P", "wrong-secret", "-t", "fleetwire/dev-a/position", "-m", `{"lat":1,"lon":1}`); err == nil {
		t.Fatalf("wrong secret admitted: %q", out)
	}
	mosquitto(t, "mosquitto_pub", addr, "-u", "dev-a", "-P", secretA, "-q", "1", "-t", "fleetwire/dev-b/position", "-m", `{"lat":2,"lon":2}`)
	if out, err := mosquitto(t, "mosquitto_pub", addr, "-u", "dev-a", "-P", secretA, "-q", "1", "-t", "fleetwire/dev-a/position", "-m", `{"lat":3,"lon":3}`); err != nil {
		t.Fatalf("dev-a on its own topic: %v %q", err, out)
	}
	h.waitLat(a.id, 3)
	if s, ok := h.srv.State.State(b.id); ok && s.GPS.Location != nil {
		t.Fatalf("dev-a moved dev-b to %+v", s.GPS.Location)
	}
	h.awaitCommand(t, addr, "dev-a", secretA, h.login("mosq-owner", "mosq-owner-password"), a.id)
}

// TestEmbeddedBrokerPortTaken: when the embedded broker's port is taken
// (a real broker on 1883, typically), it listens on a free port of the
// same host, and MQTT ingest works through it.
func TestEmbeddedBrokerPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	h := startServer(t, func(c *Config) { c.MQTTListen = taken.Addr().String() })
	if h.srv.broker == nil {
		t.Fatal("no embedded broker: the taken port disabled MQTT")
	}
	addr := h.srv.broker.Addr()
	if addr == taken.Addr().String() || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("broker on %s; want another port of 127.0.0.1 than the taken %s", addr, taken.Addr())
	}
	if h.srv.MQTTURL() != "tcp://"+addr {
		t.Fatalf("MQTTURL %q, want tcp://%s", h.srv.MQTTURL(), addr)
	}
	select {
	case <-h.srv.mqttSub.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("MQTT ingest did not subscribe")
	}
	uid := h.createUser("moved-owner", "moved-owner-password", "UTC")
	tr := h.createTracker(uid, "M", "dev-moved")
	secret := h.deviceSecret(tr.id, "")
	if out, err := mosquitto(t, "mosquitto_pub", addr, "-u", "dev-moved", "-P", secret, "-q", "1", "-t", "fleetwire/dev-moved/position", "-m", `{"lat":7,"lon":7}`); err != nil {
		t.Fatalf("publish: %v %q", err, out)
	}
	h.waitLat(tr.id, 7)
}

package commands

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/apierr"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func brokerURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("FLEETWIRE_TEST_MQTT_URL")
	if u == "off" {
		t.Skip("FLEETWIRE_TEST_MQTT_URL=off")
	}
	if u == "" {
		u = "tcp://127.0.0.1:1883"
	}
	return u
}

func uniq() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sub starts mosquitto_sub for one message on topic and returns once it
// is subscribed; the returned func waits for the message's payload.
func sub(t *testing.T, broker, topic string) func() string {
	t.Helper()
	if _, err := exec.LookPath("mosquitto_sub"); err != nil {
		t.Fatal("mosquitto_sub is not installed: this test runs the real Mosquitto clients " +
			"(apt-get install -y mosquitto-clients), or set FLEETWIRE_TEST_MQTT_URL=off to skip it")
	}
	u, err := url.Parse(broker)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-h", u.Hostname(), "-d", "-C", "1", "-W", "20", "-q", "1", "-t", topic}
	if p := u.Port(); p != "" {
		args = append(args, "-p", p)
	}
	if u.User != nil {
		args = append(args, "-u", u.User.Username())
		if pw, ok := u.User.Password(); ok {
			args = append(args, "-P", pw)
		}
	}
	// mosquitto_sub buffers its output when it is not a terminal; stdbuf
	// makes it line-buffered so that its SUBACK is seen at once.
	cmd := exec.Command("mosquitto_sub", args...)
	sb, err := exec.LookPath("stdbuf")
	if err == nil {
		cmd = exec.Command(sb, append([]string{"-oL", "mosquitto_sub"}, args...)...)
	}
	lineBuffered := err == nil
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	if !lineBuffered {
		time.Sleep(time.Second) // no way to see the SUBACK: give it time
	}
	timeout := time.After(15 * time.Second)
	for subscribed := !lineBuffered; !subscribed; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("mosquitto_sub %v ended before subscribing", args)
			}
			subscribed = strings.Contains(l, "SUBACK")
		case <-timeout:
			t.Fatalf("mosquitto_sub %v did not subscribe", args)
		}
	}
	return func() string {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("mosquitto_sub on %s got no message", topic)
				}
				// With -d, protocol lines start with "Client "; the
				// message is the one line that does not.
				if !strings.HasPrefix(l, "Client ") && !strings.HasPrefix(l, "Subscribed") {
					return l
				}
			case <-timeout:
				t.Fatalf("mosquitto_sub on %s got no message", topic)
			}
		}
	}
}

func TestCommands(t *testing.T) {
	broker := brokerURL(t)
	c := New(broker, quiet)
	defer c.Close()
	ctx := context.Background()
	dev := "dev-cmd-" + uniq()

	cases := []struct {
		name string
		call func() error
		want string
		on   string
	}{
		{"output on", func() error { return c.SetOutput(ctx, dev, 2, true) }, `{"index":2,"state":true}`, "output"},
		{"output off", func() error { return c.SetOutput(ctx, dev, 1, false) }, `{"index":1,"state":false}`, "output"},
		{"no payload", func() error { return c.Send(ctx, dev, "reboot", nil) }, `{}`, "reboot"},
		{"payload compacted", func() error {
			return c.Send(ctx, dev, "config/apn", json.RawMessage(` { "apn" : "internet" } `))
		}, `{"apn":"internet"}`, "config/apn"},
		{"scalar payload", func() error { return c.Send(ctx, dev, "beep", json.RawMessage(`3`)) }, `3`, "beep"},
	}
	for _, tc := range cases {
		wait := sub(t, broker, "fleetwire/"+dev+"/cmd/"+tc.on)
		if err := tc.call(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := wait(); got != tc.want {
			t.Fatalf("%s: device got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestInvalidCommands(t *testing.T) {
	// Checked before anything is sent: no broker needed.
	c := New("tcp://127.0.0.1:1", quiet)
	defer c.Close()
	ctx := context.Background()
	for name, err := range map[string]error{
		"empty device":    c.Send(ctx, "", "x", nil),
		"slash in device": c.Send(ctx, "a/b", "x", nil),
		"wildcard device": c.Send(ctx, "+", "x", nil),
		"# in device":     c.SetOutput(ctx, "a#", 1, true),
		"empty name":      c.Send(ctx, "d", "", nil),
		"wildcard name":   c.Send(ctx, "d", "a/+", nil),
		"empty level":     c.Send(ctx, "d", "a//b", nil),
		"not json":        c.Send(ctx, "d", "x", json.RawMessage(`{nope`)),
		"too large":       c.Send(ctx, "d", "x", json.RawMessage(`"`+strings.Repeat("x", MaxPayload)+`"`)),
		"negative index":  c.SetOutput(ctx, "d", -1, true),
	} {
		if !errors.Is(err, apierr.InvalidParameters) {
			t.Errorf("%s: %v, want code 7", name, err)
		}
	}
}

func TestBrokerAway(t *testing.T) {
	c := New("tcp://127.0.0.1:1", quiet)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := c.SetOutput(ctx, "d", 1, true)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, apierr.Unexpected) {
		t.Fatalf("broker away: %v", err)
	}
	c.Close()
	c.Close()
	if err := c.Send(context.Background(), "d", "x", nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestCloseAfterUse(t *testing.T) {
	broker := brokerURL(t)
	c := New(broker, quiet)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Send(ctx, "dev-cmd-"+uniq(), "ping", nil); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := c.Send(ctx, "d", "x", nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("after Close: %v", err)
	}
}

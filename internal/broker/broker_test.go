package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// secrets is a DeviceAuthenticator over a fixed table.
type secrets map[string]string

func (s secrets) AuthenticateDevice(_ context.Context, id, secret, _ string) error {
	if want, ok := s[id]; ok && want == secret {
		return nil
	}
	return errors.New("refused")
}

func start(t *testing.T) *Broker {
	t.Helper()
	b, err := Start("127.0.0.1:0", Options{Devices: secrets{"dev1": "secret-of-dev1", "dev2": "secret-of-dev2"}, Logger: quietLog()})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// dial connects with user and password (none when user is empty) and
// returns the client and the connect error.
func dial(t *testing.T, b *Broker, id, user, password string, will ...string) (paho.Client, error) {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(b.URL()).SetClientID(id).SetConnectTimeout(5 * time.Second).
		SetAutoReconnect(false)
	if user != "" {
		opts.SetUsername(user).SetPassword(password)
	}
	if len(will) == 1 {
		opts.SetWill(will[0], "gone", 1, false)
	}
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("connect %s: no answer", id)
	}
	if tok.Error() == nil {
		t.Cleanup(func() { c.Disconnect(100) })
	}
	return c, tok.Error()
}

func mustDial(t *testing.T, b *Broker, id, user, password string) paho.Client {
	t.Helper()
	c, err := dial(t, b, id, user, password)
	if err != nil {
		t.Fatalf("connect %s as %q: %v", id, user, err)
	}
	return c
}

func TestInternalRoundTrip(t *testing.T) {
	b := start(t)
	host, port, err := net.SplitHostPort(b.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" || port == "" {
		t.Fatalf("Addr() = %q (%v), want 127.0.0.1 with a bound port", b.Addr(), err)
	}
	u, _ := url.Parse(b.InternalURL())
	user, pw := b.InternalCredentials()
	if got, _ := u.User.Password(); u.User.Username() != InternalUser || user != InternalUser || got != pw || len(pw) != 32 {
		t.Fatalf("internal URL %s and credentials %q/%q disagree", u.Redacted(), user, pw)
	}

	sub := mustDial(t, b, "sub", user, pw)
	got := make(chan paho.Message, 4)
	if tok := sub.Subscribe("fleetwire/+/position", 1, func(_ paho.Client, m paho.Message) { got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	pub := mustDial(t, b, "pub", "dev1", "secret-of-dev1")
	if tok := pub.Publish("fleetwire/dev1/position", 1, false, `{"lat":1,"lon":2}`); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case m := <-got:
		if m.Topic() != "fleetwire/dev1/position" || string(m.Payload()) != `{"lat":1,"lon":2}` {
			t.Fatalf("got %s %s", m.Topic(), m.Payload())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message delivered")
	}
}

// TestRefusedClients: anonymous clients, wrong passwords, unknown devices,
// a device naming itself the internal user, a will on another device's
// topic and a takeover of another user's client id are all refused.
func TestRefusedClients(t *testing.T) {
	b := start(t)
	_, pw := b.InternalCredentials()
	mustDial(t, b, "fleetwire-ingest", InternalUser, pw)
	for name, c := range map[string]struct{ id, user, password, will string }{
		"anonymous":               {"anon", "", "", ""},
		"empty username":          {"empty", "", "x", ""},
		"wrong internal password": {"x1", InternalUser, "guess", ""},
		"wrong device secret":     {"x2", "dev1", "secret-of-dev2", ""},
		"unknown device":          {"x3", "dev9", "secret-of-dev1", ""},
		"wildcard device id":      {"x4", "dev1/#", "secret-of-dev1", ""},
		"will on another device":  {"x5", "dev1", "secret-of-dev1", "fleetwire/dev2/position"},
		"takeover of a client id": {"fleetwire-ingest", "dev1", "secret-of-dev1", ""},
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			if c.will != "" {
				_, err = dial(t, b, c.id, c.user, c.password, c.will)
			} else {
				_, err = dial(t, b, c.id, c.user, c.password)
			}
			if err == nil {
				t.Fatal("connected")
			}
		})
	}
	// A will on its own topic is fine.
	if _, err := dial(t, b, "w-ok", "dev1", "secret-of-dev1", "fleetwire/dev1/io"); err != nil {
		t.Fatalf("will on the device's own topic: %v", err)
	}
}

// TestDeviceTopics: a device's publishes reach subscribers only on its
// own telemetry topics, and it may subscribe only to its own command and
// node topics.
func TestDeviceTopics(t *testing.T) {
	b := start(t)
	user, pw := b.InternalCredentials()
	watch := mustDial(t, b, "watch", user, pw)
	got := make(chan string, 64)
	if tok := watch.Subscribe("#", 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("internal subscribe to #: %v", tok.Error())
	}
	dev := mustDial(t, b, "dev1-client", "dev1", "secret-of-dev1")
	allowed := []string{"fleetwire/dev1/position", "fleetwire/dev1/readings", "fleetwire/dev1/io",
		"fleetwire/dev1/node/relay/i2c0-3b", "ngp/dev1", "owntracks/anna/dev1"}
	denied := []string{"fleetwire/dev2/position", "fleetwire/dev1/cmd/output", "fleetwire/dev1/node/relay/set",
		"fleetwire/dev1/other", "ngp/dev2", "owntracks/anna/dev2", "fleetwire/dev1", "other/topic"}
	// QoS 0, so that a refused publish is dropped (QoS 1 refusals close
	// MQTT 3.1.1 connections); a final allowed marker orders the check.
	for _, topic := range append(denied, allowed...) {
		if tok := dev.Publish(topic, 0, false, "{}"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	dev.Publish("fleetwire/dev1/io", 1, false, "marker").WaitTimeout(5 * time.Second)
	seen := map[string]int{}
	for n := 0; n < len(allowed)+1; n++ {
		select {
		case topic := <-got:
			seen[topic]++
		case <-time.After(5 * time.Second):
			t.Fatalf("only %v arrived", seen)
		}
	}
	for _, topic := range denied {
		if seen[topic] > 0 {
			t.Errorf("device published to %s", topic)
		}
	}
	for _, topic := range allowed {
		if seen[topic] == 0 {
			t.Errorf("device could not publish to %s", topic)
		}
	}

	for filter, ok := range map[string]bool{
		"fleetwire/dev1/cmd/#":          true,
		"fleetwire/dev1/cmd/output":     true,
		"fleetwire/dev1/node/+/set":     true,
		"fleetwire/dev2/cmd/#":          false,
		"fleetwire/+/cmd/#":             false,
		"#":                             false,
		"fleetwire/dev1/#":              false,
		"fleetwire/dev1/position":       false,
		"$share/g/fleetwire/dev2/cmd/#": false,
	} {
		tok := dev.Subscribe(filter, 1, nil)
		if !tok.WaitTimeout(5 * time.Second) {
			t.Fatalf("subscribe %s: no answer", filter)
		}
		var code byte
		for _, c := range tok.(*paho.SubscribeToken).Result() { // one filter (paho keys $share/ ones without the prefix)
			code = c
		}
		if granted := tok.Error() == nil && code <= 2; granted != ok {
			t.Errorf("subscribe %s: granted %v (code %#x), want %v", filter, granted, code, ok)
		}
	}
}

func TestCloseTwiceAndPortInUse(t *testing.T) {
	b, err := Start("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := Start(b.Addr(), Options{Logger: quietLog()}); err == nil {
		t.Error("second Start on a bound address succeeded")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The port is free again.
	c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
	if err == nil {
		c.Close()
		t.Error("listener still accepting after Close")
	}
}

// FuzzTopicRules: whatever the device id and topic, a device is allowed
// only topics under its own id, and never a wildcard publish or a filter
// reaching past its command and node topics.
func FuzzTopicRules(f *testing.F) {
	for _, s := range [][2]string{{"dev1", "fleetwire/dev1/position"}, {"dev1", "fleetwire/dev1/node/a/set"},
		{"dev1", "owntracks/u/dev1"}, {"dev1", "fleetwire/dev1/cmd/#"}, {"a", "owntracks/+/a"}, {"a/b", "fleetwire/a/b/io"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, dev, topic string) {
		if !validDeviceID(dev) {
			return
		}
		if mayPublish(dev, topic) {
			own := strings.HasPrefix(topic, "fleetwire/"+dev+"/") || topic == "ngp/"+dev ||
				(strings.HasPrefix(topic, "owntracks/") && strings.HasSuffix(topic, "/"+dev) && strings.Count(topic, "/") == 2)
			if !own || strings.ContainsAny(strings.TrimPrefix(topic, "fleetwire/"+dev), "+#") || strings.HasSuffix(topic, "/set") {
				t.Fatalf("device %q may publish to %q", dev, topic)
			}
		}
		if maySubscribe(dev, topic) && !strings.HasPrefix(topic, "fleetwire/"+dev+"/cmd/") && !strings.HasPrefix(topic, "fleetwire/"+dev+"/node/") {
			t.Fatalf("device %q may subscribe to %q", dev, topic)
		}
	})
}

// TestRefusalsNotWarned: clients refused at connect are not logged above
// debug level, so a flood of them does not flood the log.
func TestRefusalsNotWarned(t *testing.T) {
	var buf syncBuffer
	b, err := Start("127.0.0.1:0", Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	for i := range 5 {
		if _, err := dial(t, b, fmt.Sprint("bad-", i), "nobody", "guess"); err == nil {
			t.Fatal("refused client connected")
		}
	}
	b.Close()
	if strings.Contains(buf.String(), "bad username or password") {
		t.Fatalf("refusals logged at info or above:\n%s", buf.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the broker's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

package broker

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func connect(t *testing.T, url, id string) paho.Client {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func TestRoundTrip(t *testing.T) {
	b, err := Start("127.0.0.1:0", quietLog())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })

	host, port, err := net.SplitHostPort(b.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" || port == "" {
		t.Fatalf("Addr() = %q (%v), want 127.0.0.1 with a bound port", b.Addr(), err)
	}

	sub := connect(t, b.URL(), "sub")
	got := make(chan paho.Message, 4)
	if tok := sub.Subscribe("fleetwire/+/position", 1, func(_ paho.Client, m paho.Message) { got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	pub := connect(t, b.URL(), "pub")
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

func TestCloseTwiceAndPortInUse(t *testing.T) {
	b, err := Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := Start(b.Addr(), quietLog()); err == nil {
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

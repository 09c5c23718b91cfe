// Package broker runs the embedded MQTT broker fleetwire starts when no
// external broker is configured, so that a single binary accepts device
// telemetry over MQTT with no other setup.
//
// The broker accepts every client and every topic: it is meant for a
// trusted network or for development. Deployments that need device
// authentication run an external broker (Mosquitto, EMQX, …) and point the
// MQTT subscriber at it instead.
package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Broker is a running embedded MQTT broker.
type Broker struct {
	srv  *mqtt.Server
	tcp  *listeners.TCP
	once sync.Once
	err  error
}

// Start binds a plain TCP MQTT listener on addr ("127.0.0.1:1883"; port 0
// picks a free port, see Addr) and starts serving MQTT 3.1.1 and 5 clients.
// log receives the broker's own messages (slog.Default() when nil).
func Start(addr string, log *slog.Logger) (*Broker, error) {
	if log == nil {
		log = slog.Default()
	}
	srv := mqtt.New(&mqtt.Options{
		Logger: log.With("component", "mqtt-broker"),
	})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		return nil, fmt.Errorf("broker: add auth hook: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("broker: listen on %s: %w", addr, err)
	}
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("broker: serve: %w", err)
	}
	return &Broker{srv: srv, tcp: tcp}, nil
}

// Addr is the address the TCP listener is bound to, with the actual port
// when Start was given port 0.
func (b *Broker) Addr() string { return b.tcp.Address() }

// URL is the broker's address as an MQTT client URL, "tcp://host:port".
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Close disconnects every client and stops the listener. It is safe to
// call more than once.
func (b *Broker) Close() error {
	if b == nil {
		return errors.New("broker: nil broker")
	}
	b.once.Do(func() { b.err = b.srv.Close() })
	return b.err
}

// allowAll lets every client connect and use every topic.
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "fleetwire-allow-all" }

func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

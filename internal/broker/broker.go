// Package broker runs the embedded MQTT broker fleetwire starts when no
// external broker is configured, so that a single binary accepts device
// telemetry over MQTT with no other setup.
//
// Every client authenticates; anonymous clients are refused:
//
//   - Devices connect with their device id as the username and their
//     device secret (set through the admin API) as the password. A device
//     may publish only its own telemetry topics (fleetwire/<id>/position,
//     /readings, /io, /node/<path> except .../set, ngp/<id>,
//     owntracks/<user>/<id>), and subscribe only to its own command topics
//     (fleetwire/<id>/cmd/..., fleetwire/<id>/node/...). A will message
//     must go to a topic the device may publish, and a device cannot take
//     over the client id of a client connected under another username.
//   - fleetwire's own clients (MQTT ingest, topic bridge, commands) connect
//     as InternalUser with a password generated for each run
//     (InternalCredentials); they may use every topic.
package broker

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// InternalUser is the username of fleetwire's own MQTT clients. No device
// may use it as its device id on the embedded broker.
const InternalUser = "fleetwire"

// DeviceAuthenticator checks a device's credentials; *auth.Service
// provides it.
type DeviceAuthenticator interface {
	// AuthenticateDevice returns nil when secret is the device secret of
	// the live tracker with deviceID; from is the client's address.
	AuthenticateDevice(ctx context.Context, deviceID, secret, from string) error
}

// Options configure the embedded broker.
type Options struct {
	// Devices authenticates device clients; nil admits no device, only
	// fleetwire's internal clients.
	Devices DeviceAuthenticator
	// InternalPassword is the password of InternalUser (default: a new
	// random one on every Start, which is what fleetwire uses; tests that
	// restart a broker under running clients keep one).
	InternalPassword string
	// Logger receives the broker's own messages (default slog.Default()).
	Logger *slog.Logger
}

// authTimeout bounds one device credential check.
const authTimeout = 5 * time.Second

// Broker is a running embedded MQTT broker.
type Broker struct {
	srv      *mqtt.Server
	tcp      *listeners.TCP
	password string
	once     sync.Once
	err      error
}

// Start binds a plain TCP MQTT listener on addr ("127.0.0.1:1883"; port 0
// picks a free port, see Addr) and starts serving MQTT 3.1.1 and 5
// clients, with a new internal password.
func Start(addr string, opts Options) (*Broker, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	log := slog.New(refusalsAtDebug{opts.Logger.Handler()}).With("component", "mqtt-broker")
	b := &Broker{password: opts.InternalPassword}
	if b.password == "" {
		var pw [16]byte
		rand.Read(pw[:]) // never fails; see crypto/rand.Read
		b.password = hex.EncodeToString(pw[:])
	}
	b.srv = mqtt.New(&mqtt.Options{Logger: log})
	h := &authHook{srv: b.srv, devices: opts.Devices, internal: []byte(b.password), log: log}
	if err := b.srv.AddHook(h, nil); err != nil {
		return nil, fmt.Errorf("broker: add auth hook: %w", err)
	}
	b.tcp = listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
	if err := b.srv.AddListener(b.tcp); err != nil {
		return nil, fmt.Errorf("broker: listen on %s: %w", addr, err)
	}
	if err := b.srv.Serve(); err != nil {
		_ = b.srv.Close()
		return nil, fmt.Errorf("broker: serve: %w", err)
	}
	return b, nil
}

// Addr is the address the TCP listener is bound to, with the actual port
// when Start was given port 0.
func (b *Broker) Addr() string { return b.tcp.Address() }

// URL is the broker's address as an MQTT client URL, "tcp://host:port",
// without credentials.
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// InternalCredentials are the username and password of fleetwire's own
// clients for this run.
func (b *Broker) InternalCredentials() (user, password string) { return InternalUser, b.password }

// InternalURL is URL with the internal credentials in it, for clients
// that take them from the URL (the topic bridge, commands). It is a
// secret: log it redacted.
func (b *Broker) InternalURL() string {
	u := url.URL{Scheme: "tcp", Host: b.Addr(), User: url.UserPassword(InternalUser, b.password)}
	return u.String()
}

// Close disconnects every client and stops the listener. It is safe to
// call more than once.
func (b *Broker) Close() error {
	if b == nil {
		return errors.New("broker: nil broker")
	}
	b.once.Do(func() { b.err = b.srv.Close() })
	return b.err
}

// authHook authenticates clients and applies the topic rules of the
// package comment.
type authHook struct {
	mqtt.HookBase
	srv      *mqtt.Server
	devices  DeviceAuthenticator
	internal []byte
	log      *slog.Logger
}

func (*authHook) ID() string { return "fleetwire-auth" }

func (*authHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

// OnConnectAuthenticate admits the internal user with this run's
// password and devices whose secret the DeviceAuthenticator accepts.
func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	refuse := func(why string) bool {
		h.log.Debug("refused MQTT client", "username", user, "client_id", cl.ID, "remote", cl.Net.Remote, "why", why)
		return false
	}
	switch {
	case !pk.Connect.UsernameFlag || user == "":
		return refuse("anonymous")
	case user == InternalUser:
		if subtle.ConstantTimeCompare(pk.Connect.Password, h.internal) != 1 {
			return refuse("wrong internal password")
		}
	case !validDeviceID(user):
		return refuse("not a device id")
	case h.devices == nil:
		return refuse("no device authentication")
	default:
		ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
		err := h.devices.AuthenticateDevice(ctx, user, string(pk.Connect.Password), cl.Net.Remote)
		cancel()
		if err != nil {
			return refuse(err.Error())
		}
		if pk.Connect.WillFlag && !mayPublish(user, pk.Connect.WillTopic) {
			return refuse("will topic not allowed")
		}
	}
	if old, ok := h.srv.Clients.Get(cl.ID); ok && string(old.Properties.Username) != user {
		return refuse("client id held by another user")
	}
	return true
}

// OnACLCheck lets the internal user use every topic and a device its own.
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	user := string(cl.Properties.Username)
	switch {
	case user == InternalUser:
		return true
	case write:
		return mayPublish(user, topic)
	default:
		return maySubscribe(user, topic)
	}
}

// validDeviceID reports whether id can name a device in topics: not empty,
// no '/', '+' or '#', at most 128 bytes.
func validDeviceID(id string) bool {
	return id != "" && len(id) <= 128 && !strings.ContainsAny(id, "/+#\x00")
}

// mayPublish reports whether device dev may publish to topic.
func mayPublish(dev, topic string) bool {
	switch topic {
	case "fleetwire/" + dev + "/position", "fleetwire/" + dev + "/readings", "fleetwire/" + dev + "/io", "ngp/" + dev:
		return true
	}
	if rest, ok := strings.CutPrefix(topic, "fleetwire/"+dev+"/node/"); ok {
		return rest != "" && !strings.HasSuffix(rest, "/set") && rest != "set" && !strings.ContainsAny(rest, "+#")
	}
	if rest, ok := strings.CutPrefix(topic, "owntracks/"); ok {
		user, device, ok := strings.Cut(rest, "/")
		return ok && user != "" && !strings.ContainsAny(user, "+#") && device == dev
	}
	return false
}

// maySubscribe reports whether device dev may subscribe to filter (or
// receive a message on a topic, which the broker checks the same way):
// only within its command and node topics.
func maySubscribe(dev, filter string) bool {
	for _, root := range []string{"fleetwire/" + dev + "/cmd/", "fleetwire/" + dev + "/node/"} {
		if rest, ok := strings.CutPrefix(filter, root); ok && rest != "" {
			return true
		}
	}
	return false
}

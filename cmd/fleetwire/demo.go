package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync/atomic"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/demo"
	"github.com/fleetwire/fleetwire/internal/server"
)

// Demo credentials, printed at start.
const (
	demoLogin    = "demo"
	demoPassword = "demo"
)

// startDemo makes sure the demo user and its trackers exist, starts the
// simulator and prints where to look.
func startDemo(ctx context.Context, srv *server.Server, f *serverFlags, run *demoRun, out io.Writer) error {
	u, err := srv.Auth.CreateUser(ctx, demoLogin, demoPassword, "Demo fleet", "Europe/Berlin")
	if errors.Is(err, apierr.LoginInUse) {
		var found bool
		users, lerr := srv.Auth.Users(ctx)
		if lerr != nil {
			return fmt.Errorf("list users: %w", lerr)
		}
		for _, x := range users {
			if x.Login == demoLogin {
				u, found = x, true
			}
		}
		if !found {
			return fmt.Errorf("demo user: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("create demo user: %w", err)
	}
	if !u.Profile.Demo {
		u.Profile.Demo = true
		if u, err = srv.Auth.UpdateUser(ctx, u); err != nil {
			return fmt.Errorf("mark the demo user: %w", err)
		}
	}
	trackers, err := demo.Seed(ctx, srv.State, u.ID, f.demoTrackers)
	if err != nil {
		return fmt.Errorf("seed demo fleet: %w", err)
	}
	// The demo's fixes are kept in the history without waiting for each
	// write; they are acknowledged to nobody.
	var app demo.Applier = srv.State
	if srv.History != nil {
		app = srv.History.Async()
	}
	sim := demo.NewSimulator(app, trackers, demo.SimOptions{Interval: f.demoInterval})
	run.sim.Store(sim)
	go func() {
		if err := sim.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			slog.Error("demo simulator stopped", "err", err)
		}
	}()
	nodeTracker, err := demo.SeedNode(ctx, srv.State, u.ID)
	if err != nil {
		return fmt.Errorf("seed demo node: %w", err)
	}
	if brokerURL := srv.MQTTURL(); brokerURL != "" {
		// The simulated node signs in as the device it is, with a secret
		// set afresh at every start (the broker admits no anonymous client).
		secret, err := srv.Auth.SetDeviceSecret(ctx, nodeTracker.ID, "")
		if err != nil {
			return fmt.Errorf("demo node secret: %w", err)
		}
		nodeURL, err := url.Parse(brokerURL)
		if err != nil {
			return fmt.Errorf("demo node broker URL: %w", err)
		}
		nodeURL.User = url.UserPassword(nodeTracker.DeviceID, secret)
		node := demo.NewNode(demo.NodeOptions{MQTTURL: nodeURL.String(), DeviceID: nodeTracker.DeviceID})
		go func() {
			if err := node.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				slog.Error("demo node stopped", "err", err)
			}
		}()
	}
	go func() {
		select {
		case <-srv.Ready():
		case <-ctx.Done():
			return
		}
		printDemo(out, srv, f, len(trackers))
	}()
	return nil
}

func printDemo(out io.Writer, srv *server.Server, f *serverFlags, n int) {
	fmt.Fprintf(out, `
fleetwire demo is running
  fleet page    http://%s/   (sign in as %s / %s)
  REST API      http://%s/v2/user/auth
  events        ws://%s/v2/event/subscription
  OsmAnd ingest http://%s/?id=demo-001&lat=52.52&lon=13.40
  topic bridge  %s
  admin key     %s
  trackers      %d simulated, reporting every %s
Press Ctrl+C to stop.
`, srv.Addr(), demoLogin, demoPassword, srv.Addr(), srv.Addr(), reachable(srv.OsmandAddr()), bridgeLine(srv),
		f.cfg.AdminKey, n, f.demoInterval)
}

// bridgeLine says where the demo IoT node is reached over the topic bridge.
func bridgeLine(srv *server.Server) string {
	if srv.MQTTURL() == "" {
		return "off (no MQTT broker)"
	}
	return fmt.Sprintf("ws://%s:%s@%s/auth/%s   (IoT node %s: relay, thermometer, hygrometer)",
		demoLogin, demoPassword, srv.Addr(), demo.BridgeName, demo.NodeDeviceID)
}

// reachable turns a listener's address into one a local client can dial:
// a wildcard host becomes 127.0.0.1.
func reachable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func randomKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// demoRun links the server's configuration, made before the server
// starts, to the simulator, started after it.
type demoRun struct {
	sim atomic.Pointer[demo.Simulator]
}

// demoConfig adds what the demo needs to the server's configuration: the
// demo IoT node behind seed 003's bridge name (unless --bridge-name maps
// that name already), and real device messages taking their trackers out
// of the simulation.
func demoConfig(cfg *server.Config) *demoRun {
	if cfg.BridgeNames == nil {
		cfg.BridgeNames = map[string]string{}
	}
	if _, ok := cfg.BridgeNames[demo.BridgeName]; !ok {
		cfg.BridgeNames[demo.BridgeName] = demo.NodeDeviceID
	}
	run := &demoRun{}
	cfg.OnDeviceMessage = func(deviceID string) {
		if sim := run.sim.Load(); sim != nil {
			sim.Release(deviceID)
		}
	}
	return run
}

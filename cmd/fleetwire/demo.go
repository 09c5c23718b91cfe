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
func startDemo(ctx context.Context, srv *server.Server, f *serverFlags, out io.Writer) error {
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
	go func() {
		if err := sim.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			slog.Error("demo simulator stopped", "err", err)
		}
	}()
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
  admin key     %s
  trackers      %d simulated, reporting every %s
Press Ctrl+C to stop.
`, srv.Addr(), demoLogin, demoPassword, srv.Addr(), srv.Addr(), reachable(srv.OsmandAddr()), f.cfg.AdminKey, n, f.demoInterval)
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

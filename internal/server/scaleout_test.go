package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fleetwire/fleetwire/internal/natstest"
)

// scaleOut returns a PostgreSQL DSN on a fresh schema (dropped when t
// ends) and the NATS URL, or skips when either is switched off.
func scaleOut(t *testing.T) (dsn, natsURL string) {
	t.Helper()
	base := os.Getenv("FLEETWIRE_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	natsURL = os.Getenv("FLEETWIRE_TEST_NATS_URL")
	if natsURL == "" {
		natsURL = "nats://127.0.0.1:4222"
	}
	if base == "off" || natsURL == "off" {
		t.Skip("scale-out test needs PostgreSQL and NATS")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to PostgreSQL (FLEETWIRE_TEST_POSTGRES=off skips): %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "fw_scale_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, base); err == nil {
			_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			c.Close(ctx)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), natsURL
}

// TestTwoNodes runs two fleetwire nodes on one PostgreSQL store and one
// NATS bus: a tracker created and a device ingested on node A reach a
// subscriber on node B, and a logout on A ends B's subscription.
func TestTwoNodes(t *testing.T) {
	dsn, natsURL := scaleOut(t)
	prefix := natstest.Prefix(t, natsURL)
	cluster := func(c *Config) {
		c.Store = dsn
		c.Bus = natsURL
		c.Cluster = prefix
	}
	a := startServer(t, cluster)
	nodeB := startServer(t, cluster)

	uid := a.createUser("ada", "pw-ada-secret", "UTC")
	hash := nodeB.login("ada", "pw-ada-secret") // the store is shared
	c := nodeB.dialEvents(nil)
	c.send(subscribeMsg(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}, "rate_limit": "100ms"}))
	c.await(wait, "response", func(m map[string]any) bool { return m["type"] == "response" })

	tr := a.createTracker(uid, "Cross-node van", "dev-ada")
	deadline := time.Now().Add(wait)
	for {
		a.fix("dev-ada", 47.5, 19.05, 20)
		m := c.next(time.Second)
		if isEvent("state_batch")(m) {
			found := false
			for _, e := range m["data"].([]any) {
				d := e.(map[string]any)
				if int64(d["source_id"].(float64)) == tr.sourceID && d["gps"].(map[string]any)["location"] != nil {
					found = true
				}
			}
			if found {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("node B never delivered the state ingested on node A")
		}
	}
	// Node B's registry knows the tracker and its state too.
	code, m := nodeB.call("POST", "/v2/tracker/get_state", map[string]any{"hash": hash, "tracker_id": tr.id}, nil)
	if code != 200 || m["state"].(map[string]any)["gps"].(map[string]any)["location"] == nil {
		t.Fatalf("get_state on node B: %d %v", code, m)
	}
	// Logout on node A ends the subscription on node B.
	if code, m := a.call("POST", "/v2/user/logout", map[string]any{"hash": hash}, nil); code != 200 {
		t.Fatalf("logout on A: %d %v", code, m)
	}
	c.await(wait, "logout on node B", isEvent("logout"))
}

package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/natstest"
)

// collector gathers delivered messages.
type collector struct {
	mu   sync.Mutex
	msgs []*bus.Message
}

func (c *collector) add(m *bus.Message) { c.mu.Lock(); c.msgs = append(c.msgs, m); c.mu.Unlock() }

func (c *collector) take() []*bus.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.msgs
	c.msgs = nil
	return out
}

// wait returns the messages once there are n, failing after 5s.
func (c *collector) wait(t *testing.T, n int) []*bus.Message {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		if len(c.msgs) >= n {
			out := append([]*bus.Message(nil), c.msgs...)
			c.mu.Unlock()
			return out
		}
		c.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Fatalf("got %d messages, want %d: %v", len(c.msgs), n, c.msgs)
	return nil
}

func open(t *testing.T, url, prefix, node string) *Bus {
	t.Helper()
	b, err := Open(context.Background(), Options{URL: url, Prefix: prefix, Node: node, PublishTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("open bus (FLEETWIRE_TEST_NATS_URL=off skips): %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func stateMsg(user, tracker int64, speed int, prev uint64) *bus.Message {
	lvl := 70
	return &bus.Message{
		Kind: bus.KindState, UserID: user, TrackerID: tracker, SourceID: 1000 + tracker, Prev: prev,
		State: &fleet.State{
			TrackerID: tracker, SourceID: 1000 + tracker, ConnectionStatus: fleet.Active, BatteryLevel: &lvl,
			GPS: fleet.GPS{Updated: time.Unix(1700000000, 0).UTC(), Location: &fleet.Location{Lat: 52.5, Lng: 13.4}, Speed: speed},
		},
		Record: &fleet.Record{MsgTime: time.Unix(1700000000, 0).UTC(), SrvTime: time.Unix(1700000001, 0).UTC(),
			Fields: []fleet.Field{{Name: "speed", Value: []byte(fmt.Sprint(speed))}}},
	}
}

// TestTwoNodes: a node delivers its own messages at once; another node
// gets them only while it follows the user, starting with the latest
// state of each tracker as Sync messages; a tracker's states are a chain
// the log enforces; the tracker metadata reaches every node.
func TestTwoNodes(t *testing.T) {
	url := natstest.URL(t)
	prefix := natstest.Prefix(t, url)
	a := open(t, url, prefix, "a")
	b := open(t, url, prefix, "b")
	var ca, cb collector
	a.Subscribe(ca.add)
	b.Subscribe(cb.add)
	ctx := context.Background()

	m1 := stateMsg(7, 1, 10, 0)
	if err := a.Publish(ctx, m1); err != nil {
		t.Fatal(err)
	}
	if got := ca.take(); len(got) != 1 || got[0] != m1 || !m1.Local || m1.Seq == 0 || m1.State.Seq != m1.Seq || m1.Origin != "a" {
		t.Fatalf("local delivery: %+v", got)
	}
	// The same predecessor again: refused, with the log's latest.
	err := a.Publish(ctx, stateMsg(7, 1, 11, 0))
	var stale *bus.StaleError
	if !errors.As(err, &stale) || stale.Latest == nil || stale.Latest.Seq != m1.Seq || stale.Latest.State.GPS.Speed != 10 {
		t.Fatalf("publish on a stale state: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if got := cb.take(); len(got) != 0 {
		t.Fatalf("node b got %d messages of a user it does not follow", len(got))
	}

	release, err := b.Follow(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	got := cb.take()
	if len(got) != 1 || !got[0].Sync || got[0].Seq != m1.Seq || got[0].State.GPS.Speed != 10 || got[0].Local ||
		got[0].Record == nil || string(got[0].Record.Fields[0].Value) != "10" {
		t.Fatalf("sync on follow: %+v", got)
	}
	m2 := stateMsg(7, 1, 12, m1.Seq)
	if err := a.Publish(ctx, m2); err != nil {
		t.Fatal(err)
	}
	lc := &bus.Message{Kind: bus.KindLifecycle, UserID: 7, TrackerID: 1, SourceID: 1001, Lifecycle: fleet.LifecycleBlock}
	if err := a.Publish(ctx, lc); err != nil {
		t.Fatal(err)
	}
	got = cb.wait(t, 2)
	if got[0].Seq != m2.Seq || got[0].Sync || got[0].Prev != m1.Seq || got[1].Kind != bus.KindLifecycle || got[1].Lifecycle != fleet.LifecycleBlock {
		t.Fatalf("live delivery: %+v %+v", got[0], got[1])
	}
	cb.take()
	// Another user's messages do not reach b.
	if err := a.Publish(ctx, stateMsg(8, 2, 1, 0)); err != nil {
		t.Fatal(err)
	}
	tr := &fleet.Tracker{ID: 3, UserID: 8, SourceID: 1003, DeviceID: "dev-3", Label: "three", CreatedAt: time.Unix(1700000000, 0).UTC()}
	if err := a.Publish(ctx, &bus.Message{Kind: bus.KindTracker, UserID: 8, TrackerID: 3, Tracker: tr}); err != nil {
		t.Fatal(err)
	}
	got = cb.wait(t, 1)
	if len(got) != 1 || got[0].Kind != bus.KindTracker || *got[0].Tracker != *tr {
		t.Fatalf("b got %+v, want only the tracker metadata", got)
	}
	cb.take()
	release()
	time.Sleep(100 * time.Millisecond)
	if err := a.Publish(ctx, stateMsg(7, 1, 13, m2.Seq)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if got := cb.take(); len(got) != 0 {
		t.Fatalf("b got %d messages after release", len(got))
	}

	// Latest and Replay read the log.
	l, err := b.Latest(ctx, 7, 1)
	if err != nil || l == nil || l.State.GPS.Speed != 13 {
		t.Fatalf("latest: %+v, %v", l, err)
	}
	if l, err := b.Latest(ctx, 7, 99); err != nil || l != nil {
		t.Fatalf("latest of a tracker without states: %+v, %v", l, err)
	}
	var seen []uint64
	first, err := b.Replay(ctx, 7, m2.Seq, func(m *bus.Message) bool { seen = append(seen, m.Seq); return true })
	if err != nil || first != m2.Seq || len(seen) != 3 || seen[1] != lc.Seq {
		t.Fatalf("replay from %d: first %d, %v, %v", m2.Seq, first, seen, err)
	}
	if err := a.Healthy(); err != nil {
		t.Fatal(err)
	}
}

// TestInstallationsIsolated: two prefixes on one NATS never see each
// other's messages.
func TestInstallationsIsolated(t *testing.T) {
	url := natstest.URL(t)
	a := open(t, url, natstest.Prefix(t, url), "a")
	e := open(t, url, natstest.Prefix(t, url), "e")
	var ce collector
	e.Subscribe(ce.add)
	ctx := context.Background()
	release, err := e.Follow(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if err := a.Publish(ctx, stateMsg(1, 1, 50, 0)); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, &bus.Message{Kind: bus.KindTracker, UserID: 1, TrackerID: 1, Tracker: &fleet.Tracker{ID: 1, UserID: 1}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := ce.take(); len(got) != 0 {
		t.Fatalf("other installation got %v", got)
	}
	if l, err := e.Latest(ctx, 1, 1); err != nil || l != nil {
		t.Fatalf("other installation's latest: %+v, %v", l, err)
	}
	// Its own chain starts at 0, independent of the other's.
	if err := e.Publish(ctx, stateMsg(1, 1, 5, 0)); err != nil {
		t.Fatalf("first state in the second installation: %v", err)
	}
}

// TestUnavailable: with NATS gone, Publish fails with ErrUnavailable and
// Healthy says so; after NATS is back both recover.
func TestUnavailable(t *testing.T) {
	srv := natstest.Start(t)
	b := open(t, srv.URL(), "fw", "a")
	ctx := context.Background()
	if err := b.Publish(ctx, stateMsg(1, 1, 1, 0)); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	err := b.Publish(ctx, stateMsg(1, 1, 2, 1))
	if !errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("publish with NATS down: %v", err)
	}
	waitFor(t, func() bool { return b.Healthy() != nil }, "Healthy to fail")
	srv.Restart()
	waitFor(t, func() bool { return b.Healthy() == nil }, "Healthy to recover")
	if err := b.Publish(ctx, stateMsg(1, 1, 2, 1)); err != nil {
		t.Fatalf("publish after NATS is back: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestWireVersions: a message of a newer version with fields this node
// does not know is read for the fields it shares; one without a version
// or of an unknown kind is refused.
func TestWireVersions(t *testing.T) {
	m, err := decode([]byte(`{"v":2,"kind":"lifecycle","user_id":1,"tracker_id":2,"source_id":3,"lifecycle":"block","future":{"x":1}}`), 9)
	if err != nil || m.Kind != bus.KindLifecycle || m.Lifecycle != "block" || m.Seq != 9 {
		t.Fatalf("newer version: %+v, %v", m, err)
	}
	for _, bad := range []string{`{"kind":"state"}`, `{"v":1,"kind":"nope"}`, `{"v":1,"kind":"state","user_id":1}`, `nope`} {
		if m, err := decode([]byte(bad), 1); err == nil {
			t.Errorf("decode(%s) = %+v", bad, m)
		}
	}
	in := stateMsg(4, 5, 66, 3)
	data, err := encode(in, "n1")
	if err != nil {
		t.Fatal(err)
	}
	out, err := decode(data, 10)
	if err != nil || out.Prev != 3 || out.Origin != "n1" || out.State.GPS.Speed != 66 || out.State.Seq != 10 || out.State.SourceID != 1005 {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
}

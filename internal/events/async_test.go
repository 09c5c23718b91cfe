package events

import (
	"fmt"
	"testing"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/outbox"
)

// With delivery workers, every change reaches the subscriber, each
// tracker's in the order they were published, even through queues so
// short that the publishers wait for room; after Close the hub delivers
// on the publisher's goroutine again.
func TestAsyncDeliveryOrderedAndComplete(t *testing.T) {
	f := newFixture(t, Options{AsyncShards: 2, AsyncDepth: 1, SoftQueue: 1 << 20, Outbox: outbox.Limits{MaxMessages: 1 << 20}})
	u, hash := f.user("ada", "UTC")
	const trackers, rounds = 5, 200
	var ids []int64
	for i := 0; i < trackers; i++ {
		ids = append(ids, f.tracker(u.ID, fmt.Sprintf("q%d", i)).ID)
	}
	c := f.hub.NewClient()
	send(c, sub(hash, map[string]any{"type": "state", "trackers": ids}))
	drain(t, c)
	done := make(chan struct{})
	for i := 0; i < trackers; i++ {
		dev := fmt.Sprintf("q%d", i)
		go func() {
			defer func() { done <- struct{}{} }()
			for r := 1; r <= rounds; r++ {
				f.fix(dev, float64(r))
			}
		}()
	}
	for i := 0; i < trackers; i++ {
		<-done
	}
	f.hub.Close()
	got := map[int64][]float64{}
	for _, m := range drain(t, c) {
		d := m["data"].(map[string]any)
		src := int64(d["source_id"].(float64))
		got[src] = append(got[src], d["gps"].(map[string]any)["location"].(map[string]any)["lat"].(float64))
	}
	if len(got) != trackers {
		t.Fatalf("states of %d trackers, want %d", len(got), trackers)
	}
	for src, lats := range got {
		if len(lats) != rounds {
			t.Errorf("source %d: %d states, want %d", src, len(lats), rounds)
		}
		for i, lat := range lats {
			if lat != float64(i+1) {
				t.Fatalf("source %d: state %d has lat %v, want %d (out of order or lost)", src, i, lat, i+1)
			}
		}
	}
	if n := f.hub.Queued(); n != 0 {
		t.Errorf("%d changes still queued after Close", n)
	}
	f.fix("q0", 1000)
	if msgs := drain(t, c); len(msgs) != 1 {
		t.Fatalf("after Close: %d messages for one fix, want 1 delivered at once", len(msgs))
	}
}

// A change still on its way when a client subscribes (queued for a
// delivery worker) is not sent after the subscription's first state,
// which is as new or newer; the changes after it are.
func TestNoStaleStateAfterInitial(t *testing.T) {
	f := newFixture(t, Options{AsyncShards: 1})
	u, hash := f.user("eve", "UTC")
	tr := f.tracker(u.ID, "e1")
	f.fix("e1", 1)
	s1, _ := f.reg.State(tr.ID)
	f.fix("e1", 2)
	s2, _ := f.reg.State(tr.ID)
	c := f.hub.NewClient()
	send(c, sub(hash, map[string]any{"type": "state", "trackers": []int64{tr.ID}}))
	if msgs := drain(t, c); len(msgs) != 2 {
		t.Fatalf("subscribe: %d messages, want the response and the first state", len(msgs))
	}
	for _, s := range []*fleet.State{s1, s2} {
		f.hub.HandleBus(&bus.Message{Kind: bus.KindState, UserID: u.ID, TrackerID: tr.ID, SourceID: tr.SourceID, Seq: s.Seq, State: s})
	}
	f.hub.Close() // the workers deliver what is queued, and later changes at once
	if msgs := drain(t, c); len(msgs) != 0 {
		t.Fatalf("changes up to the first state were sent after it: %v", msgs)
	}
	f.fix("e1", 3)
	msgs := drain(t, c)
	if len(msgs) != 1 {
		t.Fatalf("%d messages for a new fix, want 1", len(msgs))
	}
	if lat := msgs[0]["data"].(map[string]any)["gps"].(map[string]any)["location"].(map[string]any)["lat"]; lat != 3.0 {
		t.Errorf("lat %v, want 3", lat)
	}
}

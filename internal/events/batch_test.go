package events

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/outbox"
)

// decode is one queued message, decoded, as a one-element list.
func decode(t *testing.T, raw []byte) []map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("message is not JSON: %q: %v", raw, err)
	}
	return []map[string]any{m}
}

// batchLats collects, from state_batch messages, each source's latitude
// (the last one seen wins) and counts the entries.
func batchLats(t *testing.T, msgs []map[string]any, into map[int64]float64) (entries int) {
	t.Helper()
	for _, m := range msgs {
		if m["event"] != TypeStateBatch {
			continue
		}
		for _, e := range m["data"].([]any) {
			st := e.(map[string]any)
			id := int64(st["source_id"].(float64))
			entries++
			loc, _ := st["gps"].(map[string]any)["location"].(map[string]any)
			if loc == nil {
				continue // no position yet
			}
			into[id] = loc["lat"].(float64)
		}
	}
	return entries
}

// A client that does not take its batches never has more than one batch
// queued: a due batch waits for the client to take the one before, and
// then carries the latest state of every tracker that changed meanwhile.
// The queue never fills, so the client is never closed with 1013.
func TestStateBatchSupersedesUntaken(t *testing.T) {
	f := newFixture(t, Options{Outbox: outbox.Limits{MaxMessages: 4}, SoftQueue: 64})
	u, hash := f.user("sue", "UTC")
	const n = 20
	for i := 0; i < n; i++ {
		f.tracker(u.ID, fmt.Sprintf("s%02d", i))
	}
	c := f.hub.NewClient()
	send(c, sub(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}, "rate_limit": "10ms"}))
	// The response and the (empty-state) initial batch stay queued.
	for round := 1; round <= 50; round++ {
		for i := 0; i < n; i++ {
			f.fix(fmt.Sprintf("s%02d", i), float64(round))
		}
		f.advance(20 * time.Millisecond)
		c.flush(*f.now.Load(), nil)
		if closed, code, reason := c.Outbox().Closed(); closed {
			t.Fatalf("round %d: client closed %d %q", round, code, reason)
		}
	}
	if q := c.Outbox().Len(); q > 2 {
		t.Fatalf("%d messages queued for a client that takes none, want the response and one batch", q)
	}
	lats := map[int64]float64{}
	batchLats(t, drain(t, c), lats)
	f.advance(20 * time.Millisecond)
	c.flush(*f.now.Load(), nil)
	msgs := drain(t, c)
	if got := batchLats(t, msgs, lats); got != n {
		t.Fatalf("batch after taking the queue has %d entries, want %d", got, n)
	}
	for id, lat := range lats {
		if lat != 50 {
			t.Errorf("tracker %d: lat %v, want the latest (50)", id, lat)
		}
	}
	if len(lats) != n {
		t.Errorf("%d trackers delivered, want %d", len(lats), n)
	}
}

// The answer to a subscription of more trackers than fit in one message
// streams in pieces of MaxBatch as the client takes them, instead of
// filling its queue at once; changes made while it streams follow it.
func TestInitialStateBatchStreams(t *testing.T) {
	f := newFixture(t, Options{MaxBatch: 5, Outbox: outbox.Limits{MaxMessages: 4}})
	u, hash := f.user("sam", "UTC")
	const n = 47
	for i := 0; i < n; i++ {
		dev := fmt.Sprintf("m%02d", i)
		f.tracker(u.ID, dev)
		f.fix(dev, 1)
	}
	c := f.hub.NewClient()
	send(c, sub(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}, "rate_limit": "10ms"}))
	lats := map[int64]float64{}
	pieces := 0
	for step := 0; step < 100 && len(lats) < n; step++ {
		if q := c.Outbox().Len(); q > 3 {
			t.Fatalf("%d messages queued while streaming, want the response and at most %d pieces", q, streamInFlight)
		}
		// Take one message at a time, as a slow socket would.
		for _, e := range c.Outbox().Drain(nil, 1) {
			msgs := decode(t, e.Data)
			if msgs[0]["event"] == TypeStateBatch {
				pieces++
				if got := batchLats(t, msgs, lats); got > 5 {
					t.Fatalf("piece of %d states, want at most MaxBatch 5", got)
				}
			}
		}
		if step == 3 {
			f.fix("m00", 2) // streamed already: follows in the next batch
			f.fix(fmt.Sprintf("m%02d", n-1), 2)
		}
		f.advance(10 * time.Millisecond)
		c.flush(*f.now.Load(), nil)
		if closed, code, reason := c.Outbox().Closed(); closed {
			t.Fatalf("client closed %d %q", code, reason)
		}
	}
	if len(lats) != n {
		t.Fatalf("%d of %d trackers streamed", len(lats), n)
	}
	if pieces < 10 {
		t.Errorf("initial batch in %d pieces, want at least 10 of 5", pieces)
	}
	for step := 0; step < 10; step++ {
		batchLats(t, drain(t, c), lats)
		f.advance(10 * time.Millisecond)
		c.flush(*f.now.Load(), nil)
	}
	batchLats(t, drain(t, c), lats)
	for _, dev := range []string{"m00", fmt.Sprintf("m%02d", n-1)} {
		tr, _ := f.reg.TrackerByDevice(dev)
		if lats[tr.SourceID] != 2 {
			t.Errorf("%s: the change made while streaming was not delivered (lat %v)", dev, lats[tr.SourceID])
		}
	}
}

// Two hub ticks can fall on the same grid index (a late tick and the next
// one): a client handled in the first and due again in the second still
// gets its next batch. The clock stands still while the hub ticks, as it
// does between two ticks that read the same time.
func TestStateBatchDueInRepeatedTick(t *testing.T) {
	f := newFixture(t, Options{MinRateLimit: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); _ = f.hub.Run(ctx) }()
	defer func() { cancel(); <-done }()

	u, hash := f.user("tia", "UTC")
	f.tracker(u.ID, "t1")
	c := f.hub.NewClient()
	send(c, sub(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}, "rate_limit": "50ms"}))
	drain(t, c) // the response and the initial batch

	// want waits, with the clock standing still, for a batch with lat.
	want := func(lat float64) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			lats := map[int64]float64{}
			batchLats(t, drain(t, c), lats)
			for _, got := range lats {
				if got == lat {
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("no state_batch with lat %v within 3s", lat)
	}
	f.advance(time.Second)
	f.fix("t1", 1)
	want(1)
	// Due again while the clock still reads the tick that sent the batch.
	f.fix("t1", 2)
	time.Sleep(50 * time.Millisecond) // several ticks at the same time
	f.advance(time.Second)
	want(2)
}

package server

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/fleetwire/fleetwire/internal/events"
	"github.com/fleetwire/fleetwire/internal/outbox"
)

// TestStateBatchStreamsOverSocket subscribes a WebSocket client to the
// state_batch of a fleet that needs many more messages than the client's
// queue holds: the answer streams in pieces of MaxBatch as the socket
// takes them, the client is never closed for a full queue, and a later
// round of fixes for the whole fleet, made while the client does not
// read, still reaches it as the latest state of every tracker.
func TestStateBatchStreamsOverSocket(t *testing.T) {
	const n, per = 40, 4
	h := startServer(t, func(c *Config) {
		c.Events = events.Options{MaxBatch: per, Outbox: outbox.Limits{MaxMessages: 6}}
	})
	uid := h.createUser("stream@example.com", "secret-1", "UTC")
	bySource := map[int64]string{}
	for i := 0; i < n; i++ {
		tr := h.createTracker(uid, fmt.Sprintf("Van %d", i), fmt.Sprintf("stream-%02d", i))
		bySource[tr.sourceID] = tr.device
		h.fix(tr.device, 10.5, 13.25, 10)
	}
	hash := h.login("stream@example.com", "secret-1")
	c := h.dialEvents(nil)
	c.send(subscribeMsg(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}, "rate_limit": "10ms", "format": "compact"}))
	c.await(wait, "response", func(m map[string]any) bool { return m["type"] == "response" })

	lats := map[int64]float64{}
	// readUntil reads state_batch messages until every tracker's latest
	// latitude is lat; it returns the number of messages read.
	readUntil := func(lat float64) int {
		t.Helper()
		msgs := 0
		done := func() bool {
			for src := range bySource {
				if lats[src] != lat {
					return false
				}
			}
			return true
		}
		for !done() {
			m := c.await(wait, "state_batch", isEvent("state_batch"))
			msgs++
			entries := m["data"].([]any)
			if len(entries) > per {
				t.Fatalf("state_batch of %d states, want at most MaxBatch %d", len(entries), per)
			}
			for _, e := range entries {
				st := e.(map[string]any)
				src := int64(st["source_id"].(float64))
				if _, ok := bySource[src]; !ok {
					t.Fatalf("state of source %d, not one of the user's trackers", src)
				}
				lats[src] = st["gps"].(map[string]any)["location"].(map[string]any)["lat"].(float64)
			}
		}
		return msgs
	}
	if got := readUntil(10.5); got < n/per {
		t.Fatalf("initial batch of %d trackers in %d messages, want at least %d", n, got, n/per)
	}
	// Not reading meanwhile: batches the client has not taken are
	// superseded by later ones, never piled up to a full queue.
	for round := 1; round <= 3; round++ {
		for _, dev := range bySource {
			h.fix(dev, 10.5+float64(round), 13.25, 10)
		}
	}
	readUntil(13.5)
}

// TestDeliveryWorkers runs the server with --delivery-workers -1: every
// fix of a tracker still reaches a state subscriber, once and in order,
// and the hub's workers have nothing left queued afterwards.
func TestDeliveryWorkers(t *testing.T) {
	h := startServer(t, func(c *Config) { c.Events = events.Options{AsyncShards: -1} })
	if w := h.srv.Hub.Workers(); w != runtime.GOMAXPROCS(0) {
		t.Fatalf("%d delivery workers, want one per CPU (%d)", w, runtime.GOMAXPROCS(0))
	}
	uid := h.createUser("workers@example.com", "secret-1", "UTC")
	tr := h.createTracker(uid, "Van", "workers-01")
	h.fix(tr.device, 10, 13.25, 10)
	hash := h.login("workers@example.com", "secret-1")
	c := h.dialEvents(nil)
	c.send(subscribeMsg(hash, map[string]any{"type": "state", "trackers": []int64{tr.id}}))
	c.await(wait, "initial state", isEvent("state"))
	const n = 50
	for i := 1; i <= n; i++ {
		h.fix(tr.device, 10+float64(i)*1e-3, 13.25, 10)
	}
	last := 10.0
	for last < 10+n*1e-3-1e-9 {
		m := c.await(wait, "state", isEvent("state"))
		lat := m["data"].(map[string]any)["gps"].(map[string]any)["location"].(map[string]any)["lat"].(float64)
		if lat <= last {
			t.Fatalf("state at lat %v after %v: out of order or repeated", lat, last)
		}
		last = lat
	}
	if q := h.srv.Hub.Queued(); q != 0 {
		t.Fatalf("%d changes still queued for the delivery workers", q)
	}
}

package events

import (
	bytes2 "bytes"
	"fmt"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/outbox"
	"github.com/fleetwire/fleetwire/internal/state"
)

// BenchmarkFanOutState measures one state change delivered to 10,000
// clients subscribed to that tracker's state events (full format): the
// work HandleBus does per ingested fix.
func BenchmarkFanOutState(b *testing.B) {
	f := newFixture(b, Options{Outbox: outbox.Limits{MaxMessages: 1 << 20}, SoftQueue: 1 << 20})
	u, hash := f.user("bench", "Europe/Berlin")
	tr := f.tracker(u.ID, "bench-1")
	f.fix("bench-1", 1)
	clients := make([]*Client, 10000)
	for i := range clients {
		clients[i] = f.hub.NewClient()
		send(clients[i], sub(hash, map[string]any{"type": "state", "trackers": []int64{tr.ID}}))
		clients[i].Outbox().Drain(nil, 0)
	}
	s, _ := f.reg.State(tr.ID)
	m := &bus.Message{Kind: bus.KindState, UserID: u.ID, TrackerID: tr.ID, SourceID: tr.SourceID, State: s}
	var sink []outbox.Entry
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		f.hub.HandleBus(m)
		b.StopTimer()
		for _, c := range clients {
			sink = c.Outbox().Drain(sink[:0], 0)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(len(clients))*float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkStateBatch10k measures building one compact state_batch of
// 10,000 changed trackers for one client.
func BenchmarkStateBatch10k(b *testing.B) {
	for _, compact := range []bool{true, false} {
		b.Run(fmt.Sprintf("compact=%v", compact), func(b *testing.B) {
			f := newFixture(b, Options{})
			u, hash := f.user("bench", "UTC")
			ids := make([]int64, 10000)
			for i := range ids {
				dev := fmt.Sprintf("b-%05d", i)
				ids[i] = f.tracker(u.ID, dev).ID
				speed := 40.0
				if _, err := f.reg.Apply(f.ctx, &state.Fix{DeviceID: dev, Location: &fleet.Location{Lat: 52 + float64(i)*1e-5, Lng: 13}, Speed: &speed}); err != nil {
					b.Fatal(err)
				}
			}
			format := "full"
			if compact {
				format = "compact"
			}
			c := f.hub.NewClient()
			send(c, sub(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}, "format": format}))
			c.Outbox().Drain(nil, 0)
			now := f.hub.opts.Now()
			var bytes int
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				c.mu.Lock()
				c.pushStateBatch(ids, compact, now, false, nil)
				c.mu.Unlock()
				for _, m := range c.Outbox().Drain(nil, 0) {
					bytes += len(m.Data)
				}
			}
			b.ReportMetric(float64(len(ids))*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
			b.ReportMetric(float64(bytes)/float64(b.N)/float64(len(ids)), "B/entry")
		})
	}
}

// BenchmarkFleetTick measures one hub tick for 1,000 clients in 10 fleets
// of 100 trackers, each client following its fleet with state_batch and
// every tracker changed: with the tick's shared batch cache (the server's
// path) and without it (one encoding per client, as before sharing).
func BenchmarkFleetTick(b *testing.B) {
	for _, shared := range []bool{false, true} {
		b.Run(fmt.Sprintf("shared=%v", shared), func(b *testing.B) {
			f := newFixture(b, Options{Outbox: outbox.Limits{MaxMessages: 1 << 20, MaxBytes: 1 << 30}, SoftQueue: 1 << 20})
			var clients []*Client
			var devs []string
			for fl := 0; fl < 10; fl++ {
				u, hash := f.user(fmt.Sprintf("fleet%d", fl), "UTC")
				for i := 0; i < 100; i++ {
					dev := fmt.Sprintf("f%d-%03d", fl, i)
					f.tracker(u.ID, dev)
					devs = append(devs, dev)
				}
				for i := 0; i < 100; i++ {
					c := f.hub.NewClient()
					send(c, sub(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}, "rate_limit": "10ms"}))
					c.Outbox().Drain(nil, 0)
					clients = append(clients, c)
				}
			}
			at := f.now.Load().Add(time.Hour)
			cache := newBatchCache()
			var sink []outbox.Entry
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				f.moveAll(b, devs, 1e-4)
				at = at.Add(time.Second)
				cache.reset()
				b.StartTimer()
				for _, c := range clients {
					if shared {
						c.flush(at, cache)
					} else {
						c.flush(at, nil)
					}
				}
				b.StopTimer()
				for _, c := range clients {
					sink = c.Outbox().Drain(sink[:0], 0)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(len(clients)*100)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

var sourceKey = []byte(`{"source_id":`)

// BenchmarkStateBatchStream100k measures one state_batch of 100,000
// changed trackers (compact) to one client, every state new since the
// last batch, so every entry is encoded: streamed in pieces of MaxBatch
// as the client takes them (the hub's path since batches stream), and
// queued whole (the path before, which needs a queue of 30 MB).
func BenchmarkStateBatchStream100k(b *testing.B) {
	for _, streamed := range []bool{false, true} {
		b.Run(fmt.Sprintf("streamed=%v", streamed), func(b *testing.B) {
			f := newFixture(b, Options{Outbox: outbox.Limits{MaxMessages: 1 << 20, MaxBytes: 1 << 30}})
			u, hash := f.user("bench", "UTC")
			const n = 100000
			devs := make([]string, n)
			ids := make([]int64, n)
			for i := range devs {
				devs[i] = fmt.Sprintf("s-%06d", i)
				ids[i] = f.tracker(u.ID, devs[i]).ID
			}
			c := f.hub.NewClient()
			send(c, sub(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}, "format": "compact", "rate_limit": "10ms"}))
			c.Outbox().Drain(nil, 0)
			at := f.now.Load().Add(time.Hour)
			var sink []outbox.Entry
			entries, bytes := 0, 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				f.moveAll(b, devs, 1e-5)
				at = at.Add(time.Second)
				b.StartTimer()
				if streamed {
					for {
						c.flush(at, nil)
						sink = c.Outbox().Drain(sink[:0], 1)
						if len(sink) == 0 {
							break
						}
						bytes += len(sink[0].Data)
						entries += bytes2.Count(sink[0].Data, sourceKey)
					}
				} else {
					c.mu.Lock()
					c.pushStateBatch(ids, true, at, false, nil)
					clear(c.batches[kindState].pending)
					c.mu.Unlock()
					for _, m := range c.Outbox().Drain(sink[:0], 0) {
						bytes += len(m.Data)
						entries += bytes2.Count(m.Data, sourceKey)
					}
				}
			}
			b.ReportMetric(float64(entries)/b.Elapsed().Seconds(), "entries/s")
			b.ReportMetric(float64(bytes)/float64(entries), "B/entry")
		})
	}
}

// BenchmarkApplyFleet measures what a device's fix costs its publisher
// (the ingest request) when 100 clients follow the tracker's fleet with
// state_batch: delivered on the publisher's goroutine (async=false, as
// before) or handed to the delivery workers (async=true, the single-node
// server's default).
func BenchmarkApplyFleet(b *testing.B) {
	for _, async := range []bool{false, true} {
		b.Run(fmt.Sprintf("async=%v", async), func(b *testing.B) {
			opts := Options{Outbox: outbox.Limits{MaxMessages: 1 << 20, MaxBytes: 1 << 30}, SoftQueue: 1 << 20}
			if async {
				opts.AsyncShards = 2
			}
			f := newFixture(b, opts)
			u, hash := f.user("bench", "UTC")
			var devs []string
			for i := 0; i < 100; i++ {
				devs = append(devs, fmt.Sprintf("a-%03d", i))
				f.tracker(u.ID, devs[i])
			}
			for i := 0; i < 100; i++ {
				c := f.hub.NewClient()
				send(c, sub(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}, "rate_limit": "10ms"}))
				c.Outbox().Drain(nil, 0)
			}
			speed := 40.0
			i := 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				i++
				if _, err := f.reg.Apply(f.ctx, &state.Fix{DeviceID: devs[i%len(devs)], Location: &fleet.Location{Lat: float64(i) * 1e-6, Lng: 13}, Speed: &speed}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			f.hub.Close()
		})
	}
}

// moveAll reports a moving fix for every device, device i at latitude
// i·step.
func (f *fixture) moveAll(b *testing.B, devs []string, step float64) {
	b.Helper()
	speed := 40.0
	for i, d := range devs {
		if _, err := f.reg.Apply(f.ctx, &state.Fix{DeviceID: d, Location: &fleet.Location{Lat: float64(i) * step, Lng: 13}, Speed: &speed}); err != nil {
			b.Fatal(err)
		}
	}
}

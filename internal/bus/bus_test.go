package bus

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/fleet"
)

// collector gathers delivered messages.
type collector struct {
	mu   sync.Mutex
	msgs []*Message
}

func (c *collector) add(m *Message) { c.mu.Lock(); c.msgs = append(c.msgs, m); c.mu.Unlock() }

func (c *collector) wait(t *testing.T, n int) []*Message {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		if len(c.msgs) >= n {
			out := append([]*Message(nil), c.msgs...)
			c.mu.Unlock()
			return out
		}
		c.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("got %d messages, want %d", len(c.msgs), n)
	return nil
}

func sample(i int) *Message {
	lvl := 80
	return &Message{
		Kind: KindState, UserID: 7, TrackerID: int64(i),
		State: &fleet.State{
			TrackerID: int64(i), SourceID: 1000 + int64(i), ConnectionStatus: fleet.Active,
			GPS:          fleet.GPS{Updated: time.Unix(1700000000, 0).UTC(), Location: &fleet.Location{Lat: 52.5, Lng: 13.4}, Speed: i},
			BatteryLevel: &lvl,
		},
	}
}

// TestMemory checks the in-process bus: every subscriber gets every
// message in publish order, numbered upwards from what Advance set, and a
// cancelled subscriber gets no more.
func TestMemory(t *testing.T) {
	b := NewMemory()
	b.Advance(41)
	var c1, c2 collector
	cancel1 := b.Subscribe(c1.add)
	b.Subscribe(c2.add)
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		if err := b.Publish(ctx, sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, got := range [][]*Message{c1.wait(t, 100), c2.wait(t, 100)} {
		for i, m := range got {
			if m.TrackerID != int64(i) || m.State.GPS.Speed != i || m.Seq != uint64(42+i) || m.State.Seq != m.Seq || !m.Local {
				t.Fatalf("message %d: %+v", i, m)
			}
		}
	}
	cancel1()
	if err := b.Publish(ctx, sample(100)); err != nil {
		t.Fatal(err)
	}
	c2.wait(t, 101)
	if n := len(c1.wait(t, 100)); n != 100 {
		t.Fatalf("cancelled subscriber got %d messages", n)
	}
	if err := b.Healthy(); err != nil {
		t.Fatal(err)
	}
}

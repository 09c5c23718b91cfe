package bus

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/fleet"
)

func natsURL() string {
	if u := os.Getenv("FLEETWIRE_TEST_NATS_URL"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

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

// testBus checks the contract every Bus keeps: all subscribers get every
// message in publish order, and a cancelled subscriber gets no more.
func testBus(t *testing.T, a, b Bus) {
	var c1, c2 collector
	cancel1 := a.Subscribe(c1.add)
	b.Subscribe(c2.add)
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		if err := a.Publish(ctx, sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, got := range [][]*Message{c1.wait(t, 100), c2.wait(t, 100)} {
		for i, m := range got {
			if m.TrackerID != int64(i) || m.State.GPS.Speed != i || *m.State.BatteryLevel != 80 || m.State.GPS.Location.Lat != 52.5 {
				t.Fatalf("message %d: %+v", i, m)
			}
		}
	}
	cancel1()
	if err := a.Publish(ctx, sample(100)); err != nil {
		t.Fatal(err)
	}
	c2.wait(t, 101)
	if n := len(c1.wait(t, 100)); n != 100 {
		t.Fatalf("cancelled subscriber got %d messages", n)
	}
}

func TestMemory(t *testing.T) {
	b := NewMemory()
	testBus(t, b, b)
}

// TestNATS runs the same contract across two connections to the real NATS
// server, as two fleetwire nodes would use it.
func TestNATS(t *testing.T) {
	subject := fmt.Sprintf("fleetwire.test.%d", time.Now().UnixNano())
	a, err := NewNATS(natsURL(), subject, nil)
	if err != nil {
		t.Fatalf("nats (set FLEETWIRE_TEST_NATS_URL): %v", err)
	}
	defer a.Close()
	b, err := NewNATS(natsURL(), subject, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	testBus(t, a, b)
}

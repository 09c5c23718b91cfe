package jetstream

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/natstest"
)

// feed publishes a chain of states of one tracker from node pub until
// ctx ends, sending again what is refused, and returns the sequence
// numbers the log confirmed.
func feed(ctx context.Context, pub *Bus, user, tracker int64) []uint64 {
	var accepted []uint64
	var prev uint64
	for speed := 1; ctx.Err() == nil; speed++ {
		m := stateMsg(user, tracker, speed, prev)
		err := pub.Publish(context.Background(), m)
		var stale *bus.StaleError
		switch {
		case err == nil:
			accepted = append(accepted, m.Seq)
			prev = m.Seq
		case errors.As(err, &stale):
			// A publish reported failed reached the log after all.
			prev = stale.Latest.Seq
		default:
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return accepted
}

// check fails unless got holds every accepted sequence number, no
// sequence number twice, and all in order.
func check(t *testing.T, got []*bus.Message, accepted []uint64) {
	t.Helper()
	seen := map[uint64]bool{}
	var last uint64
	for _, m := range got {
		if seen[m.Seq] {
			t.Errorf("seq %d delivered twice", m.Seq)
		}
		if m.Seq <= last {
			t.Errorf("seq %d after %d", m.Seq, last)
		}
		seen[m.Seq], last = true, m.Seq
	}
	missing := 0
	for _, s := range accepted {
		if !seen[s] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d accepted states missing", missing, len(accepted))
	}
}

// waitSeqs waits up to d for c to hold every sequence number in want.
func waitSeqs(c *collector, want []uint64, d time.Duration) []*bus.Message {
	deadline := time.Now().Add(d)
	for {
		c.mu.Lock()
		have := map[uint64]bool{}
		for _, m := range c.msgs {
			have[m.Seq] = true
		}
		got := append([]*bus.Message(nil), c.msgs...)
		c.mu.Unlock()
		all := true
		for _, s := range want {
			if !have[s] {
				all = false
				break
			}
		}
		if all || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRestartTailsWhileFlowing: the tails get new consumers again and
// again while another node publishes; each restart starts right after the
// last message handed on, so the follower sees every state once, in order.
func TestRestartTailsWhileFlowing(t *testing.T) {
	url := natstest.URL(t)
	prefix := natstest.Prefix(t, url)
	pub := open(t, url, prefix, "pub")
	sub := open(t, url, prefix, "sub")
	var c collector
	sub.Subscribe(func(m *bus.Message) {
		if m.Kind == bus.KindState && m.UserID == 5 && !m.Sync {
			c.add(m)
		}
	})
	release, err := sub.Follow(context.Background(), 5)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var accepted []uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); accepted = feed(ctx, pub, 5, 1) }()
	restarts := 0
	for ctx.Err() == nil {
		before := mRefollows.Value()
		sub.wg.Add(1)
		sub.restarting.Store(true)
		sub.restartTails()
		if mRefollows.Value() != before+1 {
			t.Fatal("restart failed")
		}
		restarts++
		time.Sleep(30 * time.Millisecond)
	}
	wg.Wait()
	got := waitSeqs(&c, accepted, 10*time.Second)
	check(t, got, accepted)
	t.Logf("%d restarts, %d states accepted, %d delivered", restarts, len(accepted), len(got))
	if restarts < 10 || len(accepted) < 50 {
		t.Fatalf("only %d restarts and %d states", restarts, len(accepted))
	}
}

// TestFollowAcrossNATSRestarts: NATS is killed and started again three
// times while a node publishes and another follows the user. After each
// restart the follower gets going again within seconds and, in the end,
// has every state the log confirmed exactly once and in order.
func TestFollowAcrossNATSRestarts(t *testing.T) {
	srv := natstest.Start(t)
	pub := open(t, srv.URL(), "fw", "pub")
	sub := open(t, srv.URL(), "fw", "sub")
	var c collector
	sub.Subscribe(func(m *bus.Message) {
		if m.Kind == bus.KindState && !m.Sync {
			c.add(m)
		}
	})
	release, err := sub.Follow(context.Background(), 9)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	var accepted []uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); accepted = feed(ctx, pub, 9, 1) }()
	count := func() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.msgs) }
	refollows := mRefollows.Value()
	for i := range 3 {
		time.Sleep(300 * time.Millisecond)
		srv.Stop()
		time.Sleep(time.Duration(500+700*i) * time.Millisecond)
		srv.Restart()
		back, n := time.Now(), count()
		for count() == n && time.Since(back) < 8*time.Second {
			time.Sleep(20 * time.Millisecond)
		}
		if count() == n {
			t.Fatalf("restart %d: no new state reached the follower within 8 s of NATS being back", i+1)
		}
		flowing := time.Since(back)
		// Both nodes give their tails new consumers once JetStream
		// answers, while the states flow.
		for mRefollows.Value() < refollows+2 && time.Since(back) < 10*time.Second {
			time.Sleep(20 * time.Millisecond)
		}
		if got := mRefollows.Value() - refollows; got < 2 {
			t.Fatalf("restart %d: %d of 2 nodes followed the log again", i+1, got)
		}
		refollows = mRefollows.Value()
		t.Logf("restart %d: states flow again %v after NATS is back, new consumers after %v", i+1,
			flowing.Round(10*time.Millisecond), time.Since(back).Round(10*time.Millisecond))
	}
	cancel()
	wg.Wait()
	got := waitSeqs(&c, accepted, 10*time.Second)
	check(t, got, accepted)
	t.Logf("%d states accepted, %d delivered", len(accepted), len(got))
}

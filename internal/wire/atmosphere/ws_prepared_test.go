package atmosphere

import (
	"fmt"
	"log/slog"
	"testing"
	"time"
)

// TestPreparedCacheAges: a message's prepared frame is shared while the
// message is being sent, also when asked for again within the age, and
// is gone, with nothing left behind, once nobody asked for it for twice
// the age.
func TestPreparedCacheAges(t *testing.T) {
	const age = 50 * time.Millisecond
	pc := newPreparedCache(age)
	log := slog.Default()
	var msgs [][]byte
	for i := range 100 {
		msgs = append(msgs, []byte(fmt.Sprintf(`{"event":"state","data":{"n":%d}}`, i)))
	}
	first := pc.get(msgs[0], false, log)
	for _, m := range msgs[1:] {
		pc.get(m, true, log)
	}
	if got := pc.len(); got != 100 {
		t.Fatalf("%d entries, want 100", got)
	}
	// Asked for again now and then, msgs[0] stays; the others go.
	for range 6 {
		time.Sleep(age / 2)
		if pc.get(msgs[0], false, log) != first {
			t.Fatal("a message asked for within the age was prepared again")
		}
	}
	if got := pc.len(); got != 1 {
		t.Fatalf("%d entries after %v, want only the one asked for", got, 3*age)
	}
	deadline := time.Now().Add(5 * time.Second)
	for pc.len() != 0 && time.Now().Before(deadline) {
		time.Sleep(age / 2)
	}
	if got := pc.len(); got != 0 {
		t.Fatalf("%d entries left", got)
	}
	for i := range pc.shards {
		sh := &pc.shards[i]
		sh.mu.Lock()
		left := sh.timer != nil || sh.cur != nil || sh.old != nil
		sh.mu.Unlock()
		if left {
			t.Fatalf("shard %d still holds a timer or maps", i)
		}
	}
	// A message asked for after it went is prepared again.
	if again := pc.get(msgs[0], false, log); again == first || string(again.Payload()) != string(msgs[0]) {
		t.Fatal("a message asked for after it went was not prepared again")
	}
}

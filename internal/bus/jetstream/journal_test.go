package jetstream

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/natstest"
)

// TestJournalLostAck: an append that reached the journal but whose
// acknowledgement was lost does not make the writer's next append look
// like a take-over; an entry of another writer does.
func TestJournalLostAck(t *testing.T) {
	url := natstest.URL(t)
	b := open(t, url, natstest.Prefix(t, url), "a")
	ctx := context.Background()
	s, err := b.Sessions(ctx, SessionsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const id = "0f8fad5b-d9cb-469f-a165-70867728950e"
	first := &bus.JournalEntry{First: 1, Count: 1, Writer: "a/1"}
	if err := s.AppendJournal(ctx, id, first, 0); err != nil {
		t.Fatal(err)
	}
	// The writer's second entry is stored, but it never hears so.
	lost := nats.NewMsg(s.subject(id))
	lost.Data = encodeJournal(&bus.JournalEntry{First: 2, Count: 1})
	lost.Header.Set(writerHeader, "a/1")
	if _, err := b.js.PublishMsg(ctx, lost); err != nil {
		t.Fatal(err)
	}
	third := &bus.JournalEntry{First: 3, Count: 1, Writer: "a/1"}
	if err := s.AppendJournal(ctx, id, third, first.Seq); err != nil {
		t.Fatalf("append after a lost acknowledgement: %v", err)
	}
	// Another writer took the session over: the old one is superseded,
	// also when it does not name itself.
	other := &bus.JournalEntry{First: 4, Count: 1, Writer: "b/7"}
	if err := s.AppendJournal(ctx, id, other, third.Seq); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"a/1", ""} {
		err := s.AppendJournal(ctx, id, &bus.JournalEntry{First: 4, Count: 1, Writer: w}, third.Seq)
		if !errors.Is(err, bus.ErrSuperseded) {
			t.Errorf("writer %q appending after a take-over: %v, want ErrSuperseded", w, err)
		}
	}
	got, err := s.ReadJournal(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var firsts []uint64
	for _, e := range got {
		firsts = append(firsts, e.First)
	}
	if len(firsts) != 4 || firsts[0] != 1 || firsts[1] != 2 || firsts[2] != 3 || firsts[3] != 4 {
		t.Fatalf("journal holds entries %v, want 1 2 3 4", firsts)
	}
}

package outbox

import (
	"errors"
	"testing"
)

func TestQueueOrderLimitsAndUnread(t *testing.T) {
	q := New(Limits{MaxMessages: 3, MaxBytes: 10})
	for _, m := range []string{"a", "bb", "ccc"} {
		if err := q.Push([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Push([]byte("d")); !errors.Is(err, ErrFull) {
		t.Fatalf("push past MaxMessages: %v", err)
	}
	select {
	case <-q.Ready():
	default:
		t.Fatal("Ready not signalled after Push")
	}
	got := q.Drain(nil, 2)
	if len(got) != 2 || string(got[0].Data) != "a" || string(got[1].Data) != "bb" || q.Len() != 1 {
		t.Fatalf("drain 2: %q, left %d", got, q.Len())
	}
	q.Unread(got[1:])
	if all := q.Drain(nil, 0); len(all) != 2 || string(all[0].Data) != "bb" || string(all[1].Data) != "ccc" {
		t.Fatalf("after unread: %q", all)
	}
	if err := q.Push(make([]byte, 11)); !errors.Is(err, ErrFull) {
		t.Fatalf("push past MaxBytes: %v", err)
	}
	if pushed, drained := q.Counts(); pushed != 3 || drained != 3 {
		t.Fatalf("counts %d/%d", pushed, drained)
	}
}

func TestQueueClose(t *testing.T) {
	q := New(Limits{})
	_ = q.Push([]byte("last"))
	q.Close(1008, "too slow")
	q.Close(1000, "ignored")
	if err := q.Push([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("push after close: %v", err)
	}
	<-q.Done()
	closed, code, reason := q.Closed()
	if !closed || code != 1008 || reason != "too slow" {
		t.Fatalf("closed %v %d %q", closed, code, reason)
	}
	if got := q.Drain(nil, 0); len(got) != 1 || string(got[0].Data) != "last" {
		t.Fatalf("queued message lost on close: %q", got)
	}
}

func TestNotifyOnPushUnreadClose(t *testing.T) {
	q := New(Limits{})
	calls := 0
	q.SetNotify(func() {
		calls++
		// The hook runs outside the lock: it may use the queue.
		_ = q.Len()
	})
	if err := q.Push([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("after Push: %d calls, want 1", calls)
	}
	q.Unread(q.Drain(nil, 0))
	if calls != 2 {
		t.Fatalf("after Unread: %d calls, want 2", calls)
	}
	q.Close(1000, "")
	if calls != 3 {
		t.Fatalf("after Close: %d calls, want 3", calls)
	}
	q.SetNotify(nil)
	q.Unread([]Entry{{Data: []byte("b")}})
	if calls != 3 {
		t.Fatalf("after SetNotify(nil): %d calls, want 3", calls)
	}
}

// TestReadyAndDoneAskedLate: a transport that asks for Ready or Done only
// after messages were pushed, or after the queue closed, still sees them
// signalled and closed; one that asked first is signalled by the next
// push and sees Done close with the queue.
func TestReadyAndDoneAskedLate(t *testing.T) {
	q := New(Limits{})
	if err := q.Push([]byte("a")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-q.Ready():
	default:
		t.Fatal("Ready asked for after a push is not signalled")
	}
	q.Drain(nil, 0)
	ready, done := q.Ready(), q.Done()
	select {
	case <-ready:
		t.Fatal("Ready signalled with nothing new")
	case <-done:
		t.Fatal("Done closed before Close")
	default:
	}
	if err := q.Push([]byte("b")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready:
	default:
		t.Fatal("push did not signal the Ready asked for earlier")
	}
	q.Close(1000, "")
	select {
	case <-done:
	default:
		t.Fatal("Close did not close the Done asked for earlier")
	}
	late := New(Limits{})
	late.Close(1001, "bye")
	select {
	case <-late.Done():
	default:
		t.Fatal("Done asked for after Close is not closed")
	}
}

// TestTrim: an empty queue lets go of its array; one holding messages
// keeps them all, in order.
func TestTrim(t *testing.T) {
	q := New(Limits{})
	for _, m := range []string{"a", "b", "c"} {
		if err := q.Push([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	got := q.Drain(nil, 1)
	q.Trim()
	got = q.Drain(got, 0)
	if len(got) != 3 || string(got[0].Data) != "a" || string(got[2].Data) != "c" {
		t.Fatalf("drained %v around a Trim, want a b c", got)
	}
	if cap(q.msgs) == 0 {
		t.Fatal("the drained queue has no array before Trim")
	}
	q.Trim()
	if q.msgs != nil || q.Len() != 0 {
		t.Fatalf("after Trim of an empty queue: cap %d, len %d", cap(q.msgs), q.Len())
	}
	if err := q.Push([]byte("d")); err != nil {
		t.Fatal(err)
	}
	if got := q.Drain(nil, 0); len(got) != 1 || string(got[0].Data) != "d" {
		t.Fatalf("after Trim: drained %v, want d", got)
	}
}

// TestPushSeqBelow: past the soft count nothing is queued and ErrBehind
// says so; below it the push is an ordinary one.
func TestPushSeqBelow(t *testing.T) {
	q := New(Limits{})
	for _, m := range []string{"a", "b"} {
		if _, err := q.PushSeqBelow([]byte(m), nil, 2); err != nil {
			t.Fatalf("push %s below 2: %v", m, err)
		}
	}
	if _, err := q.PushSeqBelow([]byte("c"), nil, 2); !errors.Is(err, ErrBehind) {
		t.Fatalf("third push below 2: %v, want ErrBehind", err)
	}
	if q.Len() != 2 {
		t.Fatalf("Len = %d after a refused push, want 2", q.Len())
	}
	if seq, err := q.PushSeqBelow([]byte("c"), nil, 3); err != nil || seq != 3 {
		t.Fatalf("push below 3: seq %d, %v; want 3, nil", seq, err)
	}
	if _, err := q.PushSeqBelow([]byte("d"), nil, 0); err != nil {
		t.Fatalf("push with no soft count: %v", err)
	}
}

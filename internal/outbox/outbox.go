// Package outbox is the hand-off between the event API, which produces
// encoded messages for a client session, and the transport that currently
// carries that session (a WebSocket, a long-poll, a stream). The producer
// pushes; whichever transport is attached drains. While no transport is
// attached, messages wait here, which is what makes reconnects lossless.
package outbox

import (
	"errors"
	"sync"
)

// ErrFull is returned by Push when the queue is at its hard limit.
var ErrFull = errors.New("outbox: full")

// ErrClosed is returned by Push after Close.
var ErrClosed = errors.New("outbox: closed")

// ErrBehind is returned by PushSeqBelow when the queue already holds the
// number of messages it was given.
var ErrBehind = errors.New("outbox: queue behind")

// Limits bound a queue. Zero values take the defaults.
type Limits struct {
	// MaxMessages is the hard cap on queued messages (default 4096).
	MaxMessages int
	// MaxBytes is the hard cap on queued bytes (default 16 MiB).
	MaxBytes int
}

// Entry is one queued message: its encoded bytes, shared and never
// modified after Push, and what the producer wants to know about it when
// it is delivered (opaque to the queue and the transports).
type Entry struct {
	Data []byte
	Meta any
}

// Queue is an ordered, bounded list of encoded messages for one session.
type Queue struct {
	mu     sync.Mutex
	msgs   []Entry
	head   int
	bytes  int
	limits Limits
	// ready and done are made by the first Ready and Done: a transport
	// that is notified (SetNotify) never waits on them.
	ready   chan struct{}
	notify  func() // called after every signal; see SetNotify
	done    chan struct{}
	reason  string
	pushed  uint64
	drained uint64
	code    int32
	closed  bool
}

// New returns an empty queue.
func New(l Limits) *Queue {
	if l.MaxMessages <= 0 {
		l.MaxMessages = 4096
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 16 << 20
	}
	return &Queue{limits: l}
}

// Push appends msg. It never blocks.
func (q *Queue) Push(msg []byte) error { return q.PushMeta(msg, nil) }

// PushMeta appends msg with its metadata. It never blocks.
func (q *Queue) PushMeta(msg []byte, meta any) error {
	_, err := q.PushSeq(msg, meta)
	return err
}

// PushSeq appends msg with its metadata and returns its sequence number:
// the count of messages ever pushed, this one included. The message has
// left the queue once Drained reaches that number. It never blocks.
func (q *Queue) PushSeq(msg []byte, meta any) (uint64, error) {
	return q.PushSeqBelow(msg, meta, 0)
}

// PushSeqBelow is PushSeq unless the queue already holds at least soft
// messages (soft > 0): then it queues nothing and returns ErrBehind. The
// producer learns that its consumer is behind and appends in one step,
// under one lock.
func (q *Queue) PushSeqBelow(msg []byte, meta any, soft int) (uint64, error) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0, ErrClosed
	}
	if soft > 0 && q.len() >= soft {
		q.mu.Unlock()
		return 0, ErrBehind
	}
	if q.len() >= q.limits.MaxMessages || q.bytes+len(msg) > q.limits.MaxBytes {
		q.mu.Unlock()
		return 0, ErrFull
	}
	q.msgs = append(q.msgs, Entry{Data: msg, Meta: meta})
	q.bytes += len(msg)
	q.pushed++
	seq := q.pushed
	fn, ready := q.notify, q.ready
	q.mu.Unlock()
	signal(ready, fn)
	return seq, nil
}

// Drained is how many messages have left the queue, oldest first, minus
// those put back with Unread: every message whose sequence number (see
// PushSeq) is at most Drained has been taken by a transport.
func (q *Queue) Drained() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.drained
}

// signal signals ready (nil until someone asked for Ready) and calls fn,
// the notify hook; both read under the lock.
func signal(ready chan struct{}, fn func()) {
	select {
	case ready <- struct{}{}:
	default:
	}
	if fn != nil {
		fn()
	}
}

// SetNotify makes fn be called, outside the queue's lock, whenever Ready
// is signalled (after every Push and Unread, and on Close); nil removes
// it. It lets a transport with no goroutine of its own waiting on Ready
// start a writer only when there is something to write. fn must not
// block; it may call the queue.
func (q *Queue) SetNotify(fn func()) {
	q.mu.Lock()
	q.notify = fn
	q.mu.Unlock()
}

func (q *Queue) len() int { return len(q.msgs) - q.head }

// Len is the number of queued messages.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.len()
}

// Bytes is the number of queued bytes.
func (q *Queue) Bytes() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// Limits returns the queue's bounds.
func (q *Queue) Limits() Limits { return q.limits }

// Ready is signalled (edge-triggered, capacity one) after every Push and on
// Close. A transport waits on it, then calls Drain until it returns nothing.
func (q *Queue) Ready() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ready == nil {
		// Signalled at once, in case messages or the close came before.
		q.ready = make(chan struct{}, 1)
		q.ready <- struct{}{}
	}
	return q.ready
}

// Drain moves up to max queued messages (all when max <= 0), in order, onto
// dst and returns it.
func (q *Queue) Drain(dst []Entry, max int) []Entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.len()
	if max > 0 && n > max {
		n = max
	}
	for i := 0; i < n; i++ {
		m := q.msgs[q.head]
		q.msgs[q.head] = Entry{}
		q.head++
		q.bytes -= len(m.Data)
		dst = append(dst, m)
	}
	q.drained += uint64(n)
	if q.head == len(q.msgs) {
		q.msgs = q.msgs[:0]
		q.head = 0
	} else if q.head > 1024 && q.head*2 > len(q.msgs) {
		q.msgs = append(q.msgs[:0], q.msgs[q.head:]...)
		q.head = 0
	}
	return dst
}

// Trim lets go of the memory an empty queue keeps for the next messages,
// for a transport whose connection has been quiet for a while; a queue
// that holds messages is left as it is.
func (q *Queue) Trim() {
	q.mu.Lock()
	if q.len() == 0 {
		q.msgs, q.head = nil, 0
	}
	q.mu.Unlock()
}

// Unread puts msgs back at the front of the queue, in order, for a transport
// that took them but could not deliver them. Limits are not enforced here:
// the messages were already accepted once.
func (q *Queue) Unread(msgs []Entry) {
	if len(msgs) == 0 {
		return
	}
	q.mu.Lock()
	rest := q.msgs[q.head:]
	next := make([]Entry, 0, len(msgs)+len(rest))
	next = append(append(next, msgs...), rest...)
	q.msgs, q.head = next, 0
	for _, m := range msgs {
		q.bytes += len(m.Data)
	}
	q.drained -= uint64(len(msgs))
	fn, ready := q.notify, q.ready
	q.mu.Unlock()
	signal(ready, fn)
}

// Close ends the session from the producer's side. Messages already queued
// stay drainable; the transport should deliver them, then close with code
// and reason. Close is idempotent; the first code wins.
func (q *Queue) Close(code int, reason string) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed, q.code, q.reason = true, int32(code), reason
	if q.done != nil {
		close(q.done)
	}
	fn, ready := q.notify, q.ready
	q.mu.Unlock()
	signal(ready, fn)
}

// Done is closed by Close.
func (q *Queue) Done() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.done == nil {
		q.done = make(chan struct{})
		if q.closed {
			close(q.done)
		}
	}
	return q.done
}

// Each calls fn with every queued entry, oldest first, under the queue's
// lock: fn must not call the queue.
func (q *Queue) Each(fn func(Entry)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range q.msgs[q.head:] {
		fn(e)
	}
}

// Closed reports whether Close was called, with its code and reason.
func (q *Queue) Closed() (closed bool, code int, reason string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed, int(q.code), q.reason
}

// Counts returns how many messages were ever pushed and drained (minus
// those put back), for metrics and tests.
func (q *Queue) Counts() (pushed, drained uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pushed, q.drained
}

package atmosphere

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetwire/fleetwire/internal/outbox"
)

// errGone is returned by attach when the session was removed meanwhile.
var errGone = errors.New("atmosphere: session gone")

// kickAfter is how long a new attachment waits for the one it replaces to
// finish on its own before that one's connection is cut.
const kickAfter = time.Second

// session is one tracking id: the application session, the transport
// attached at the moment, and the numbering and replay ring of the
// messages delivered so far (see "Acknowledged delivery" on Server).
type session struct {
	id      string
	srv     *Server
	app     Session
	q       *outbox.Queue
	binding Binding // what a request must show to use the session

	mu        sync.Mutex
	cur       *attachment
	idleSince int64 // now() when the last transport detached, at least 1; 0 while attached
	removed   bool
	addrHeld  atomic.Bool // the session holds a slot of binding.Addr in srv.perAddr (freeAddr gives it back)
	seq       uint64      // number of the last message delivered
	ring      *ring       // made by keep; nil while nothing is kept

	closeOnce sync.Once
}

// attachment is one transport connection carrying a session.
type attachment struct {
	transport string
	// kick cuts the connection, unblocking a write in progress. May be nil.
	kick func()
	// replay holds the ring messages still to re-send; guarded by the
	// session's mu.
	replay []delivery

	// ev holds evStop (fired by detach), evDone (fired by release, once
	// the transport stopped delivering) and evReleased (release began).
	ev     events
	onStop atomic.Pointer[func()] // called by detach after stop fired
	reason string                 // close reason and code, set before stop fires
	code   int32
	// ack is set when the client acknowledged with X-Fleetwire-Received.
	ack     bool
	counted bool
}

// The events of an attachment.
const (
	evStop = iota
	evDone
	evReleased
)

func newAttachment(transport string, kick func()) *attachment {
	return &attachment{transport: transport, kick: kick}
}

// detach asks the transport to end, with a WebSocket close code and reason.
// The first call wins.
func (a *attachment) detach(code int, reason string) {
	if !a.ev.fire(evStop, func() { a.code, a.reason = int32(code), reason }) {
		return
	}
	if f := a.onStop.Load(); f != nil {
		(*f)()
	}
}

// wait returns once the transport stopped delivering, cutting its
// connection if it does not stop on its own within kickAfter.
func (a *attachment) wait() {
	t := time.NewTimer(kickAfter)
	defer t.Stop()
	done := a.ev.C(evDone)
	select {
	case <-done:
	case <-t.C:
		if a.kick != nil {
			a.kick()
		}
		<-done
	}
}

func (a *attachment) stopped() bool {
	return a.ev.happened(evStop)
}

func newSession(srv *Server, id string, app Session) *session {
	q := app.Outbox()
	return &session{id: id, srv: srv, app: app, q: q, idleSince: idleStamp()}
}

// attach makes a the session's transport, detaching the previous one and
// waiting until it no longer delivers. With an acknowledgement, the
// messages the client missed are queued for re-sending on a.
func (s *session) attach(a *attachment, p params) error {
	s.mu.Lock()
	if s.removed {
		s.mu.Unlock()
		return errGone
	}
	old := s.cur
	s.cur = a
	s.idleSince = 0
	s.mu.Unlock()
	a.counted = true
	connGauge(a.transport).Add(1)
	if old != nil {
		old.detach(1000, "replaced by a newer connection")
		old.wait()
	}
	if p.hasReceived {
		s.mu.Lock()
		a.ack = true
		s.prepareReplay(a, p.received)
		s.mu.Unlock()
	}
	return nil
}

// prepareReplay queues on a the ring messages numbered above n. Callers
// hold s.mu.
func (s *session) prepareReplay(a *attachment, n uint64) {
	log := s.srv.log
	if n > s.seq {
		// A session opened under the client's id (after a restart or
		// expiry) numbers on from the client's count, so that later
		// acknowledgements line up. Anything else is a confused client:
		// take its word for it.
		if s.seq != 0 {
			log.Warn("atmosphere: client acknowledged more messages than were sent",
				"tracking_id", ShortID(s.id), "received", n, "sent", s.seq)
		}
		s.ring.dropThrough(n)
		s.seq = n
	}
	if n < s.seq {
		if first := s.ring.first(); first == 0 || first > n+1 {
			log.Warn("atmosphere: replay ring no longer holds every missed message",
				"tracking_id", ShortID(s.id), "received", n, "sent", s.seq, "oldest_kept", first)
		}
	}
	a.replay = s.ring.after(n)
	s.ring.dropThrough(n)
	if len(a.replay) > 0 {
		mReplayed.Add(uint64(len(a.replay)))
		log.Debug("atmosphere: replaying", "tracking_id", ShortID(s.id), "from", a.replay[0].seq, "count", len(a.replay))
	}
}

// keep puts d in the replay ring, made on first use. Callers hold s.mu
// (or own s, before it is shared).
func (s *session) keep(d delivery) {
	if s.ring == nil {
		s.ring = newRing(s.q.Limits())
	}
	s.ring.push(d)
}

// release ends a's attachment: the transport no longer writes. Only the
// first call counts.
func (s *session) release(a *attachment) {
	if !a.ev.fire(evReleased, nil) {
		return
	}
	s.mu.Lock()
	if s.cur == a {
		s.cur = nil
		s.idleSince = idleStamp()
	}
	s.mu.Unlock()
	if a.counted {
		connGauge(a.transport).Add(-1)
	}
	a.ev.fire(evDone, nil)
}

// take returns the next messages to write on a: pending replays first,
// then up to max (all when max <= 0) messages from the outbox, which are
// numbered and, for an acknowledging client, kept in the ring. A detached
// attachment gets nothing. With a journal, the messages taken from the
// outbox are returned only once the journal has them; when it fails they
// go back to the outbox and err says why (the replays are returned).
func (s *session) take(a *attachment, max int) (out []delivery, err error) {
	s.mu.Lock()
	if a.stopped() {
		s.mu.Unlock()
		return nil, nil
	}
	if len(a.replay) > 0 {
		n := len(a.replay)
		if max > 0 && n > max {
			n = max
		}
		out = append(out, a.replay[:n]...)
		a.replay = a.replay[n:]
		if len(a.replay) == 0 {
			a.replay = nil
		}
		if max > 0 {
			if max -= n; max == 0 {
				s.mu.Unlock()
				return out, nil
			}
		}
	}
	entries := s.q.Drain(nil, max)
	first := s.seq + 1
	for _, e := range entries {
		s.seq++
		d := delivery{seq: s.seq, msg: e.Data, meta: e.Meta}
		if a.ack {
			// Only a client that acknowledges can ask for a replay; for
			// the others the ring would be memory held for nothing.
			s.keep(d)
		}
		out = append(out, d)
	}
	s.mu.Unlock()
	if len(entries) == 0 {
		return out, nil
	}
	j, ok := s.app.(Journal) // the application may keep a journal
	if !ok {
		return out, nil
	}
	if err := j.Deliver(first, entries, a.ack); err != nil {
		taken := out[len(out)-len(entries):]
		s.giveBack(taken)
		return out[:len(out)-len(entries)], err
	}
	return out, nil
}

// giveBack puts taken messages back to the front of the outbox, out of
// the ring, and gives their numbers back.
func (s *session) giveBack(ds []delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ds) == 0 || ds[len(ds)-1].seq != s.seq {
		return
	}
	msgs := make([]outbox.Entry, len(ds))
	for i, d := range ds {
		msgs[i] = outbox.Entry{Data: d.msg, Meta: d.meta}
	}
	s.ring.dropFrom(ds[0].seq)
	s.seq = ds[0].seq - 1
	s.q.Unread(msgs)
}

// undeliver handles messages a took but could not write. With an
// acknowledgement they stay in the ring for the client's next attach;
// otherwise they go back to the front of the outbox and give their
// numbers back.
func (s *session) undeliver(a *attachment, ds []delivery) {
	if a.ack || len(ds) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ds[len(ds)-1].seq != s.seq {
		// Cannot happen while one transport delivers at a time; keep the
		// numbering intact rather than renumber.
		s.srv.log.Error("atmosphere: undelivered messages are not the latest", "tracking_id", ShortID(s.id))
		return
	}
	msgs := make([]outbox.Entry, len(ds))
	for i, d := range ds {
		msgs[i] = outbox.Entry{Data: d.msg, Meta: d.meta}
	}
	s.ring.dropFrom(ds[0].seq)
	s.seq = ds[0].seq - 1
	s.q.Unread(msgs)
}

// ended reports whether the application closed the outbox and everything
// in it was taken.
func (s *session) ended() (bool, int, string) {
	closed, code, reason := s.q.Closed()
	if !closed || s.q.Len() > 0 {
		return false, 0, ""
	}
	return true, code, reason
}

// idleFor reports how long the session has had no transport (0 while one
// is attached).
func (s *session) idleFor(t int64) time.Duration {
	if s.cur != nil || s.idleSince == 0 {
		return 0
	}
	return time.Duration(t - s.idleSince)
}

// idleStamp is now() for idleSince, never 0.
func idleStamp() int64 { return max(now(), 1) }

// closeApp closes the application session once.
func (s *session) closeApp() {
	s.closeOnce.Do(func() {
		s.app.Close()
		mSessions.Add(-1)
		s.freeAddr()
	})
}

func (s *session) freeAddr() {
	if s.addrHeld.Swap(false) {
		s.srv.perAddr.Give(s.binding.Addr)
	}
}

// handoffApp hands the application session off once (closes it if it
// cannot be handed off).
func (s *session) handoffApp() {
	s.closeOnce.Do(func() {
		if h, ok := s.app.(Handoffer); ok {
			h.Handoff()
		} else {
			s.app.Close()
		}
		mSessions.Add(-1)
		s.freeAddr()
	})
}

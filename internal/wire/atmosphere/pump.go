package atmosphere

import (
	"strconv"
	"time"
)

// writer is the transport side of a delivery loop.
type writer interface {
	// write sends ds in order and reports how many were fully written
	// before an error.
	write(ds []delivery) (int, error)
	// heartbeat writes the padding on an idle connection.
	heartbeat() error
}

// journalRetry is how long a delivery loop waits before it tries again to
// journal messages the journal could not keep.
const journalRetry = 250 * time.Millisecond

// end is why a delivery loop stopped.
type end int

const (
	endStopped   end = iota // detached: see the attachment's code and reason
	endClosed               // the application closed the outbox and all was sent
	endGone                 // the connection died or a write failed
	endTimeout              // nothing to send within the poll timeout
	endDelivered            // one batch written (single-shot loops)
)

// loop is one delivery loop's settings.
type loop struct {
	// heartbeat is the idle period before writer.heartbeat (0: never).
	heartbeat time.Duration
	// timeout ends the loop with endTimeout when nothing was sent (0: never).
	timeout time.Duration
	// once ends the loop after the first batch.
	once bool
	// max is the most messages taken per batch (0: all).
	max int
	// noWait ends the loop with endTimeout when there is nothing to send.
	noWait bool
	// dead is closed when the connection is known to be gone.
	dead <-chan struct{}
}

// pump delivers s's messages through w while a is attached.
func (s *session) pump(a *attachment, w writer, l loop) end {
	var hb, to <-chan time.Time
	var hbTimer *time.Timer
	if l.heartbeat > 0 {
		hbTimer = time.NewTimer(l.heartbeat)
		defer hbTimer.Stop()
		hb = hbTimer.C
	}
	if l.timeout > 0 {
		t := time.NewTimer(l.timeout)
		defer t.Stop()
		to = t.C
	}
	var retry <-chan time.Time
	for {
		ds, terr := s.take(a, l.max)
		if len(ds) > 0 {
			n, err := w.write(ds)
			if err != nil {
				s.undeliver(a, ds[n:])
				return endGone
			}
			if l.once {
				return endDelivered
			}
			if hbTimer != nil {
				hbTimer.Reset(l.heartbeat)
			}
			if terr == nil {
				continue
			}
		}
		if terr != nil {
			// The journal could not keep the messages: try again shortly.
			retry = time.After(journalRetry)
		}
		if a.stopped() {
			return endStopped
		}
		if done, _, _ := s.ended(); done {
			return endClosed
		}
		if l.noWait {
			return endTimeout
		}
		ready := s.q.Ready()
		if retry != nil {
			ready = nil
		}
		select {
		case <-retry:
			retry = nil
		case <-ready:
		case <-s.q.Done():
			// Loop: take what is left, then end.
		case <-a.ev.C(evStop):
			return endStopped
		case <-l.dead:
			return endGone
		case <-to:
			return endTimeout
		case <-hb:
			if err := w.heartbeat(); err != nil {
				return endGone
			}
			hbTimer.Reset(l.heartbeat)
		}
	}
}

// handshake is the protocol's first message for a new session:
// `<uuid>|<client heartbeat ms>|X|`.
func (srv *Server) handshake(id string) []byte {
	b := make([]byte, 0, len(id)+16)
	b = append(b, id...)
	b = append(b, '|')
	b = strconv.AppendInt(b, srv.opts.ClientHeartbeat.Milliseconds(), 10)
	return append(b, "|X|"...)
}

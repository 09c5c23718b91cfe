// Package bus carries changes between the parts of fleetwire that make them
// (ingest, status timers, admin actions, sign-out) and the parts that push
// them to clients, and between the nodes of a cluster.
//
// Bus is the interface and bus_memory.go the in-process default for a
// single node; bus/jetstream is the cluster backend on NATS JetStream,
// where the bus is also the log every accepted change is stored in before
// its device is answered.
//
// Every message has a place in the log, its sequence number (Seq), and the
// state messages of one tracker form a chain: each names the state it was
// derived from (Prev), and Publish refuses a state derived from one that
// is no longer the latest (ErrStale). That makes the log, not any node,
// the judge of a tracker's state when several nodes ingest for it.
package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/fleetwire/fleetwire/internal/fleet"
)

// Kind says what a Message reports.
type Kind uint8

// Message kinds.
const (
	// KindState: a tracker's state changed. TrackerID, UserID and State
	// are set; Record when a device message caused the change.
	KindState Kind = iota + 1
	// KindLifecycle: a tracker was blocked, unblocked or deleted. TrackerID,
	// SourceID, UserID and Lifecycle are set.
	KindLifecycle
	// KindLogout: sessions ended. UserID is set; Hashes lists the digests
	// (fleet.CredentialDigest) of the ended credentials, never the
	// credentials, or is empty when every session of the user ended.
	KindLogout
	// KindTracker: a tracker was created or its metadata changed. Tracker is set.
	KindTracker
)

// String names the kind as it appears in subjects and metrics.
func (k Kind) String() string {
	switch k {
	case KindState:
		return "state"
	case KindLifecycle:
		return "lifecycle"
	case KindLogout:
		return "logout"
	case KindTracker:
		return "tracker"
	}
	return fmt.Sprintf("kind%d", uint8(k))
}

// Message is one change. Messages are shared between receivers and must be
// treated as read-only once published.
type Message struct {
	Kind      Kind
	UserID    int64
	TrackerID int64
	SourceID  int64
	State     *fleet.State
	Tracker   *fleet.Tracker
	Lifecycle string
	Hashes    []string
	// Record is the device message behind a state change, as the stream
	// analyzer (iot_monitor) shows it; nil for changes no device message
	// caused (status timers, unblocking).
	Record *fleet.Record

	// Seq is the message's position in the log, set by Publish. Sequence
	// numbers only grow; a tracker's states carry growing numbers.
	Seq uint64
	// Prev, on a state message, is the Seq of the state it was derived
	// from (0 for a tracker's first state).
	Prev uint64
	// Origin names the node that published the message.
	Origin string
	// Local is set on delivery when this node published the message.
	Local bool
	// Sync marks a message delivered to bring a node's view up to date
	// when it starts following a user (Bus.Follow): the latest state of a
	// tracker, or the last lifecycle or logout message, which happened
	// before the node followed. Receivers apply it to their picture of the
	// fleet and never announce it to clients as news.
	Sync bool
}

// ErrUnavailable is returned by Publish when the change could not be
// stored: the device must not be told it was accepted.
var ErrUnavailable = errors.New("bus: log unavailable")

// ErrStale is returned (wrapped in a *StaleError) by Publish for a state
// message whose Prev is not the tracker's latest state in the log.
var ErrStale = errors.New("bus: state derived from a stale state")

// StaleError reports the tracker's latest state message, for the
// publisher to derive its change again. Latest is nil when the log holds
// no state of the tracker.
type StaleError struct {
	Latest *Message
}

func (e *StaleError) Error() string {
	if e.Latest == nil {
		return ErrStale.Error() + " (the log holds no state of the tracker)"
	}
	return fmt.Sprintf("%s (latest is %d)", ErrStale, e.Latest.Seq)
}

// Unwrap makes errors.Is(err, ErrStale) hold.
func (e *StaleError) Unwrap() error { return ErrStale }

// Bus stores changes in the log and delivers them to this node's
// receivers.
type Bus interface {
	// Publish stores m in the log and sets m.Seq (and m.State.Seq), m.Origin
	// and m.Local; then, before
	// returning, it hands m to every receiver of this node. A nil error
	// means the change is kept. It fails with ErrUnavailable when the log
	// cannot store it, and with a *StaleError for a state message whose
	// Prev is no longer the tracker's latest state (nothing is delivered
	// then).
	Publish(ctx context.Context, m *Message) error
	// Subscribe registers fn for the messages this node publishes and the
	// messages other nodes publish about followed users (and tracker
	// metadata, which every node follows), until cancel is called. fn runs
	// on the publisher's or the bus's delivery goroutine and must not
	// block. A tracker's messages reach fn in the order of the log.
	Subscribe(fn func(*Message)) (cancel func())
	// Follow starts the delivery of other nodes' messages about the user
	// to this node's receivers and returns once the node's view is
	// current: the latest state of each of the user's trackers in the log
	// has been delivered (as Sync messages). Every Follow needs its
	// release; delivery stops after the last one.
	Follow(ctx context.Context, userID int64) (release func(), err error)
	// Position is the sequence number up to which every message about the
	// user has reached this node's receivers (0 when the node does not
	// follow the user).
	Position(userID int64) uint64
	// Latest returns the tracker's latest state message in the log, or
	// nil when the log holds none.
	Latest(ctx context.Context, userID, trackerID int64) (*Message, error)
	// Replay calls fn with the user's state, lifecycle and logout messages
	// from sequence number from on, in the order of the log, until the end
	// of the log or until fn returns false. Messages already gone from the
	// log (past retention) are skipped; first is the sequence number of
	// the first message the log still holds for the user from from on (0
	// when none).
	Replay(ctx context.Context, userID int64, from uint64, fn func(*Message) bool) (first uint64, err error)
	// Healthy reports whether the bus can store changes now.
	Healthy() error
	// Close stops delivery.
	Close() error
}

// Package bus carries changes between the parts of fleetwire that make them
// (ingest, admin actions, sign-out) and the parts that push them to clients.
// Bus is the interface; bus_memory.go is the in-process default.
package bus

import (
	"context"

	"github.com/fleetwire/fleetwire/internal/fleet"
)

// Kind says what a Message reports.
type Kind uint8

// Message kinds.
const (
	// KindState: a tracker's state changed. TrackerID, UserID and State are set.
	KindState Kind = iota + 1
	// KindLifecycle: a tracker was blocked, unblocked or deleted. TrackerID,
	// SourceID, UserID and Lifecycle are set.
	KindLifecycle
	// KindLogout: sessions ended. UserID is set; Hashes lists the ended
	// credentials, or is empty when every session of the user ended.
	KindLogout
	// KindTracker: a tracker was created or its metadata changed. Tracker is set.
	KindTracker
)

// Message is one change. Messages are shared between receivers and must be
// treated as read-only.
type Message struct {
	Kind      Kind
	UserID    int64
	TrackerID int64
	SourceID  int64
	State     *fleet.State
	Tracker   *fleet.Tracker
	Lifecycle string
	Hashes    []string
}

// Bus delivers every published message to every subscriber, in publish order
// per publisher.
type Bus interface {
	// Publish sends m to all subscribers.
	Publish(ctx context.Context, m *Message) error
	// Subscribe registers fn for every message until cancel is called. fn
	// runs on the publisher's goroutine and must not block.
	Subscribe(fn func(*Message)) (cancel func())
	// Close stops delivery.
	Close() error
}

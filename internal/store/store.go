// Package store persists users, sessions, API keys, trackers and the last
// known state of each tracker. It holds the Store interface, its errors and
// the state document codec, and links no database driver: the backends are
// store/sqlite (the embedded default) and store/postgres (scale-out), both
// over the shared SQL code in store/sqlstore; store/open picks one from a DSN.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/fleetwire/fleetwire/internal/fleet"
)

// ErrNotFound is returned when the addressed row does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrConflict is returned when a unique value (login, device id) is taken.
var ErrConflict = errors.New("store: already exists")

// Store is everything fleetwire keeps on disk. Implementations are safe for
// concurrent use. Methods wrap ErrNotFound / ErrConflict where they apply.
type Store interface {
	// CreateUser inserts u (ID is ignored) and returns the new id.
	CreateUser(ctx context.Context, u *fleet.User) (int64, error)
	// User returns the user with id.
	User(ctx context.Context, id int64) (*fleet.User, error)
	// UserByLogin returns the user with login.
	UserByLogin(ctx context.Context, login string) (*fleet.User, error)
	// Users lists every user, ordered by id.
	Users(ctx context.Context) ([]*fleet.User, error)
	// SetPasswordHash replaces a user's password hash.
	SetPasswordHash(ctx context.Context, userID int64, hash string) error
	// UpdateUser replaces the title, time zone and profile of the user
	// with u.ID (login, password, blocked and creation stay).
	UpdateUser(ctx context.Context, u *fleet.User) error

	// CreateSession stores a session or an API key.
	CreateSession(ctx context.Context, s *fleet.Session) error
	// Session returns the session or API key with hash, expired or not.
	Session(ctx context.Context, hash string) (*fleet.Session, error)
	// Sessions lists a user's credentials of one kind, ordered by creation.
	Sessions(ctx context.Context, userID int64, kind fleet.SessionKind) ([]*fleet.Session, error)
	// DeleteSession removes one credential.
	DeleteSession(ctx context.Context, hash string) error
	// DeleteSessions removes every credential of kind for a user and returns
	// the hashes removed.
	DeleteSessions(ctx context.Context, userID int64, kind fleet.SessionKind) ([]string, error)
	// DeleteExpiredSessions removes sessions that expired before now.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)

	// CreateTracker inserts t (ID and SourceID are assigned) and returns it.
	CreateTracker(ctx context.Context, t *fleet.Tracker) (*fleet.Tracker, error)
	// Tracker returns the tracker with id, deleted or not.
	Tracker(ctx context.Context, id int64) (*fleet.Tracker, error)
	// Trackers lists every tracker (userID 0) or a user's, deleted ones
	// excluded, ordered by id.
	Trackers(ctx context.Context, userID int64) ([]*fleet.Tracker, error)
	// SetTrackerBlocked blocks or unblocks a tracker.
	SetTrackerBlocked(ctx context.Context, id int64, blocked bool) error
	// DeleteTracker marks a tracker deleted (corrupted); its device id is freed.
	DeleteTracker(ctx context.Context, id int64) error
	// SetDeviceSecret stores the digest of a tracker's MQTT device secret
	// ("" removes it); a deleted or unknown tracker is ErrNotFound.
	SetDeviceSecret(ctx context.Context, trackerID int64, digest string) error
	// DeviceSecret returns the digest of the MQTT device secret of the
	// tracker, not deleted, with deviceID; ErrNotFound when there is no
	// such tracker or it has no secret.
	DeviceSecret(ctx context.Context, deviceID string) (string, error)

	// SaveStates upserts the last known state of each tracker in states,
	// all or none. A state never replaces a stored one with a higher Seq.
	SaveStates(ctx context.Context, states []*fleet.State) error
	// States returns every saved state, Seq included.
	States(ctx context.Context) ([]*fleet.State, error)

	// Close releases the store.
	Close() error
}

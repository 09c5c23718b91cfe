package sqlstore

import (
	"context"
	"fmt"

	"github.com/fleetwire/fleetwire/internal/fleet"
)

const trackerCols = `id, label, user_id, source_id, device_id, model, phone, blocked, deleted, created_at`

func (s *Store) scanTracker(r rowScanner) (*fleet.Tracker, error) {
	var t fleet.Tracker
	if err := r.Scan(&t.ID, &t.Label, &t.UserID, &t.SourceID, &t.DeviceID, &t.Model, &t.Phone,
		&t.Blocked, &t.Deleted, s.time(&t.CreatedAt)); err != nil {
		return nil, err
	}
	return &t, nil
}

// CreateTracker inserts t and returns a copy with ID, SourceID and CreatedAt
// (now, when zero) filled in. A device id held by another tracker that is
// not deleted is store.ErrConflict; an unknown user is store.ErrNotFound.
func (s *Store) CreateTracker(ctx context.Context, t *fleet.Tracker) (*fleet.Tracker, error) {
	c := *t
	c.CreatedAt = createdAt(t.CreatedAt)
	// One statement, so the source id is taken atomically.
	err := s.w.QueryRowContext(ctx, s.q(`INSERT INTO trackers
		(label, user_id, source_id, device_id, model, phone, blocked, deleted, created_at)
		VALUES (?, ?, `+s.d.NextSourceID+`, ?, ?, ?, ?, ?, ?)
		RETURNING id, source_id`),
		c.Label, c.UserID, c.DeviceID, c.Model, c.Phone, c.Blocked, c.Deleted, s.d.EncodeTime(c.CreatedAt),
	).Scan(&c.ID, &c.SourceID)
	if err != nil {
		return nil, s.err(fmt.Sprintf("create tracker %q", t.DeviceID), err)
	}
	return &c, nil
}

// Tracker returns the tracker with id, deleted or not.
func (s *Store) Tracker(ctx context.Context, id int64) (*fleet.Tracker, error) {
	t, err := s.scanTracker(s.r.QueryRowContext(ctx, s.q(`SELECT `+trackerCols+` FROM trackers WHERE id = ?`), id))
	if err != nil {
		return nil, s.err(fmt.Sprintf("tracker %d", id), err)
	}
	return t, nil
}

// Trackers lists every tracker (userID 0) or a user's, deleted ones
// excluded, ordered by id.
func (s *Store) Trackers(ctx context.Context, userID int64) ([]*fleet.Tracker, error) {
	query, args := `SELECT `+trackerCols+` FROM trackers WHERE deleted = FALSE`, []any(nil)
	if userID != 0 {
		query, args = query+` AND user_id = ?`, append(args, userID)
	}
	rows, err := s.r.QueryContext(ctx, s.q(query+` ORDER BY id`), args...)
	return collect(s, fmt.Sprintf("list trackers of user %d", userID), rows, err, s.scanTracker)
}

// SetTrackerBlocked blocks or unblocks a tracker; an unknown id is
// store.ErrNotFound.
func (s *Store) SetTrackerBlocked(ctx context.Context, id int64, blocked bool) error {
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE trackers SET blocked = ? WHERE id = ?`), blocked, id)
	return s.requireRow(fmt.Sprintf("set tracker %d blocked", id), res, err)
}

// DeleteTracker marks a tracker deleted, which frees its device id. An
// unknown id is store.ErrNotFound; deleting a deleted tracker does nothing.
func (s *Store) DeleteTracker(ctx context.Context, id int64) error {
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE trackers SET deleted = TRUE WHERE id = ?`), id)
	return s.requireRow(fmt.Sprintf("delete tracker %d", id), res, err)
}

// SetDeviceSecret stores the digest of a tracker's MQTT device secret; a
// deleted or unknown tracker is store.ErrNotFound.
func (s *Store) SetDeviceSecret(ctx context.Context, trackerID int64, digest string) error {
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE trackers SET device_secret = ? WHERE id = ? AND deleted = FALSE`), digest, trackerID)
	return s.requireRow(fmt.Sprintf("set device secret of tracker %d", trackerID), res, err)
}

// DeviceSecret returns the secret digest of the live tracker with
// deviceID; store.ErrNotFound when there is none or it has no secret.
func (s *Store) DeviceSecret(ctx context.Context, deviceID string) (string, error) {
	var d string
	err := s.r.QueryRowContext(ctx, s.q(`SELECT device_secret FROM trackers
		WHERE device_id = ? AND deleted = FALSE AND device_secret <> ''`), deviceID).Scan(&d)
	if err != nil {
		return "", s.err(fmt.Sprintf("device secret of %q", deviceID), err)
	}
	return d, nil
}

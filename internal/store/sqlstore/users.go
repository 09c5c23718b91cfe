package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fleetwire/fleetwire/internal/fleet"
)

// profileCols are the users columns of fleet.UserProfile, in the order
// profileFields lists the fields.
var profileCols = []string{
	"phone", "locale", "demo", "unverified", "legal_type", "default_geocoder", "route_provider",
	"measurement_system", "date_format", "hour_mode", "tin", "iec",
	"post_country", "post_region", "post_index", "post_city", "post_street_address",
	"registered_country", "registered_region", "registered_index", "registered_city", "registered_street_address",
	"first_name", "middle_name", "last_name", "legal_name",
}

// profileFields points at p's fields in the order of profileCols.
func profileFields(p *fleet.UserProfile) []any {
	return []any{
		&p.Phone, &p.Locale, &p.Demo, &p.Unverified, &p.LegalType, &p.DefaultGeocoder, &p.RouteProvider,
		&p.MeasurementSystem, &p.DateFormat, &p.HourMode, &p.TIN, &p.IEC,
		&p.PostCountry, &p.PostRegion, &p.PostIndex, &p.PostCity, &p.PostStreetAddress,
		&p.RegisteredCountry, &p.RegisteredRegion, &p.RegisteredIndex, &p.RegisteredCity, &p.RegisteredStreetAddress,
		&p.FirstName, &p.MiddleName, &p.LastName, &p.LegalName,
	}
}

// profileValues is p's fields as query arguments, in the order of
// profileCols.
func profileValues(p *fleet.UserProfile) []any {
	fields := profileFields(p)
	out := make([]any, len(fields))
	for i, f := range fields {
		switch v := f.(type) {
		case *string:
			out[i] = *v
		case *bool:
			out[i] = *v
		}
	}
	return out
}

var userCols = `id, login, password_hash, title, time_zone, blocked, created_at, ` + strings.Join(profileCols, ", ")

func (s *Store) scanUser(r rowScanner) (*fleet.User, error) {
	var u fleet.User
	dest := append([]any{&u.ID, &u.Login, &u.PasswordHash, &u.Title, &u.TimeZone, &u.Blocked, s.time(&u.CreatedAt)},
		profileFields(&u.Profile)...)
	if err := r.Scan(dest...); err != nil {
		return nil, err
	}
	return &u, nil
}

// CreateUser inserts u (ID is ignored; a zero CreatedAt becomes now) and
// returns the new id. A taken login is store.ErrConflict.
func (s *Store) CreateUser(ctx context.Context, u *fleet.User) (int64, error) {
	var id int64
	args := append([]any{u.Login, u.PasswordHash, u.Title, u.TimeZone, u.Blocked, s.d.EncodeTime(createdAt(u.CreatedAt))},
		profileValues(&u.Profile)...)
	err := s.w.QueryRowContext(ctx, s.q(`INSERT INTO users (login, password_hash, title, time_zone, blocked, created_at, `+
		strings.Join(profileCols, ", ")+`) VALUES (?, ?, ?, ?, ?, ?`+strings.Repeat(", ?", len(profileCols))+`) RETURNING id`),
		args...).Scan(&id)
	if err != nil {
		return 0, s.err(fmt.Sprintf("create user %q", u.Login), err)
	}
	return id, nil
}

// UpdateUser replaces the title, time zone and profile of the user with
// u.ID; an unknown id is store.ErrNotFound.
func (s *Store) UpdateUser(ctx context.Context, u *fleet.User) error {
	args := append([]any{u.Title, u.TimeZone}, profileValues(&u.Profile)...)
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE users SET title = ?, time_zone = ?, `+
		strings.Join(profileCols, " = ?, ")+` = ? WHERE id = ?`), append(args, u.ID)...)
	return s.requireRow(fmt.Sprintf("update user %d", u.ID), res, err)
}

// User returns the user with id.
func (s *Store) User(ctx context.Context, id int64) (*fleet.User, error) {
	u, err := s.scanUser(s.r.QueryRowContext(ctx, s.q(`SELECT `+userCols+` FROM users WHERE id = ?`), id))
	if err != nil {
		return nil, s.err(fmt.Sprintf("user %d", id), err)
	}
	return u, nil
}

// UserByLogin returns the user with login (compared exactly).
func (s *Store) UserByLogin(ctx context.Context, login string) (*fleet.User, error) {
	u, err := s.scanUser(s.r.QueryRowContext(ctx, s.q(`SELECT `+userCols+` FROM users WHERE login = ?`), login))
	if err != nil {
		return nil, s.err(fmt.Sprintf("user %q", login), err)
	}
	return u, nil
}

// Users lists every user, ordered by id.
func (s *Store) Users(ctx context.Context) ([]*fleet.User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY id`)
	return collect(s, "list users", rows, err, s.scanUser)
}

// SetPasswordHash replaces a user's password hash.
func (s *Store) SetPasswordHash(ctx context.Context, userID int64, hash string) error {
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE users SET password_hash = ? WHERE id = ?`), hash, userID)
	return s.requireRow(fmt.Sprintf("set password of user %d", userID), res, err)
}

// ---- sessions and API keys

const sessionCols = `hash, user_id, kind, title, created_at, expires_at`

func (s *Store) scanSession(r rowScanner) (*fleet.Session, error) {
	var x fleet.Session
	var kind string
	if err := r.Scan(&x.Hash, &x.UserID, &kind, &x.Title, s.time(&x.CreatedAt), s.time(&x.ExpiresAt)); err != nil {
		return nil, err
	}
	x.Kind = fleet.SessionKind(kind)
	return &x, nil
}

// CreateSession stores a session or an API key. A taken hash is
// store.ErrConflict, an unknown user store.ErrNotFound.
func (s *Store) CreateSession(ctx context.Context, x *fleet.Session) error {
	if x.Kind != fleet.KindSession && x.Kind != fleet.KindAPIKey {
		return fmt.Errorf("create session: unknown kind %q", x.Kind)
	}
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO sessions (`+sessionCols+`) VALUES (?, ?, ?, ?, ?, ?)`),
		x.Hash, x.UserID, string(x.Kind), x.Title, s.d.EncodeTime(createdAt(x.CreatedAt)), s.d.EncodeTime(x.ExpiresAt))
	if err != nil {
		return s.err(fmt.Sprintf("create %s for user %d", x.Kind, x.UserID), err)
	}
	return nil
}

// Session returns the session or API key with hash, expired or not.
func (s *Store) Session(ctx context.Context, hash string) (*fleet.Session, error) {
	x, err := s.scanSession(s.r.QueryRowContext(ctx, s.q(`SELECT `+sessionCols+` FROM sessions WHERE hash = ?`), hash))
	if err != nil {
		return nil, s.err("session", err)
	}
	return x, nil
}

// Sessions lists a user's credentials of one kind, ordered by creation.
func (s *Store) Sessions(ctx context.Context, userID int64, kind fleet.SessionKind) ([]*fleet.Session, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+sessionCols+` FROM sessions
		WHERE user_id = ? AND kind = ? ORDER BY created_at, hash`), userID, string(kind))
	return collect(s, fmt.Sprintf("list %s of user %d", kind, userID), rows, err, s.scanSession)
}

// DeleteSession removes one credential; an unknown hash is
// store.ErrNotFound.
func (s *Store) DeleteSession(ctx context.Context, hash string) error {
	res, err := s.w.ExecContext(ctx, s.q(`DELETE FROM sessions WHERE hash = ?`), hash)
	return s.requireRow("delete session", res, err)
}

// DeleteSessions removes every credential of kind for a user and returns the
// hashes removed (none is not an error).
func (s *Store) DeleteSessions(ctx context.Context, userID int64, kind fleet.SessionKind) ([]string, error) {
	rows, err := s.w.QueryContext(ctx, s.q(`DELETE FROM sessions WHERE user_id = ? AND kind = ? RETURNING hash`), userID, string(kind))
	return collect(s, fmt.Sprintf("delete %s of user %d", kind, userID), rows, err, func(r rowScanner) (string, error) {
		var h string
		err := r.Scan(&h)
		return h, err
	})
}

// DeleteExpiredSessions removes credentials whose expiry is at or before
// now (the instant fleet.Session.Expired starts reporting true).
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, s.q(`DELETE FROM sessions WHERE expires_at IS NOT NULL AND expires_at <= ?`),
		s.d.EncodeTime(now))
	if err != nil {
		return 0, s.err("delete expired sessions", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return int(n), nil
}

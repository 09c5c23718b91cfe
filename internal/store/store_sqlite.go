package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/fleetwire/fleetwire/internal/fleet"
)

// sqliteMigrations is the SQLite schema, one entry per version; entry i
// brings the database to version i+1. Entries are never edited once
// released: a change is a new entry at the end.
//
// Times are INTEGER microseconds since the Unix epoch (UTC), NULL for the
// zero time, so both backends keep the same precision.
var sqliteMigrations = []string{
	// 1: users, credentials, trackers and last known states.
	`
CREATE TABLE users (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	login         TEXT    NOT NULL UNIQUE,
	password_hash TEXT    NOT NULL,
	title         TEXT    NOT NULL DEFAULT '',
	time_zone     TEXT    NOT NULL DEFAULT '',
	blocked       INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
	hash       TEXT    PRIMARY KEY,
	user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	kind       TEXT    NOT NULL CHECK (kind IN ('session', 'api_key')),
	title      TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	expires_at INTEGER
) STRICT;
CREATE INDEX sessions_user_kind ON sessions (user_id, kind, created_at);
CREATE INDEX sessions_expires_at ON sessions (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE trackers (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	label      TEXT    NOT NULL,
	user_id    INTEGER NOT NULL REFERENCES users(id),
	source_id  INTEGER NOT NULL UNIQUE,
	device_id  TEXT    NOT NULL,
	model      TEXT    NOT NULL DEFAULT '',
	phone      TEXT    NOT NULL DEFAULT '',
	blocked    INTEGER NOT NULL DEFAULT 0,
	deleted    INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX trackers_device_id ON trackers (device_id) WHERE deleted = 0 AND device_id <> '';
CREATE INDEX trackers_user_id ON trackers (user_id);

CREATE TABLE states (
	tracker_id INTEGER PRIMARY KEY REFERENCES trackers(id),
	state      TEXT    NOT NULL
) STRICT;
`,
}

// firstSourceID is the source id of the first tracker; later trackers count
// up from it. It differs from tracker ids so clients cannot confuse the two.
const firstSourceID = 100001

// SQLite is the embedded Store: one database file, in WAL mode, written
// through a single connection and read through a small pool.
type SQLite struct {
	w *sql.DB // exactly one connection: SQLite has one writer at a time
	r *sql.DB // readers; the same pool as w for an in-memory database
}

var _ Store = (*SQLite)(nil)

// sqliteBusyTimeout is how long a statement waits for a lock held by another
// process before failing with SQLITE_BUSY.
const sqliteBusyTimeout = 10 * time.Second

// OpenSQLite opens (creating if needed) the database file at path and brings
// its schema up to date. path ":memory:" opens a private in-memory database.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	if path == "" {
		return nil, errors.New("open sqlite: empty path")
	}
	pragmas := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)",
		sqliteBusyTimeout.Milliseconds())
	memory := path == ":memory:"
	var name string
	if memory {
		name = "file::memory:?" + pragmas
	} else {
		name = "file:" + escapeSQLitePath(path) + "?" + pragmas + "&_pragma=journal_mode(WAL)"
	}
	w, err := sql.Open("sqlite", name+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	s := &SQLite{w: w, r: w}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if !memory {
		r, err := sql.Open("sqlite", name)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		n := max(4, runtime.GOMAXPROCS(0))
		r.SetMaxOpenConns(n)
		r.SetMaxIdleConns(n)
		if err := r.PingContext(ctx); err != nil {
			r.Close()
			w.Close()
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		s.r = r
	}
	return s, nil
}

// escapeSQLitePath makes path safe inside a "file:" URI.
func escapeSQLitePath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

// migrate applies the migrations the database has not seen, all in one
// transaction, so a failed upgrade leaves the previous schema intact.
func (s *SQLite) migrate(ctx context.Context) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if current > len(sqliteMigrations) {
		return fmt.Errorf("migrate: database schema version %d is newer than this program's %d", current, len(sqliteMigrations))
	}
	for i := current; i < len(sqliteMigrations); i++ {
		if _, err := tx.ExecContext(ctx, sqliteMigrations[i]); err != nil {
			return fmt.Errorf("migrate: version %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
			i+1, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("migrate: record version %d: %w", i+1, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// SchemaVersion returns the schema version the database is at.
func (s *SQLite) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

// Close closes both connection pools.
func (s *SQLite) Close() error {
	err := s.w.Close()
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

// sqliteErr maps constraint failures onto ErrConflict / ErrNotFound and
// wraps err with what was being done.
func sqliteErr(what string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%s: %w (%v)", what, ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%s: referenced row: %w (%v)", what, ErrNotFound, err)
		}
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// requireRow turns "no row changed" into ErrNotFound.
func requireRow(what string, res sql.Result, err error) error {
	if err != nil {
		return sqliteErr(what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

// micros encodes t for a time column: microseconds since the epoch, NULL
// for the zero time.
func micros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

// fromMicros decodes a time column.
func fromMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMicro(n.Int64).UTC()
}

// createdAt is t, or now when t is zero.
func createdAt(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Truncate(time.Microsecond)
}

// ---- users

const userCols = `id, login, password_hash, title, time_zone, blocked, created_at`

type rowScanner interface{ Scan(dest ...any) error }

func scanSQLiteUser(r rowScanner) (*fleet.User, error) {
	var u fleet.User
	var created sql.NullInt64
	if err := r.Scan(&u.ID, &u.Login, &u.PasswordHash, &u.Title, &u.TimeZone, &u.Blocked, &created); err != nil {
		return nil, err
	}
	u.CreatedAt = fromMicros(created)
	return &u, nil
}

// CreateUser inserts u (ID is ignored; a zero CreatedAt becomes now) and
// returns the new id. A taken login is ErrConflict.
func (s *SQLite) CreateUser(ctx context.Context, u *fleet.User) (int64, error) {
	var id int64
	err := s.w.QueryRowContext(ctx, `INSERT INTO users (login, password_hash, title, time_zone, blocked, created_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		u.Login, u.PasswordHash, u.Title, u.TimeZone, u.Blocked, micros(createdAt(u.CreatedAt))).Scan(&id)
	if err != nil {
		return 0, sqliteErr(fmt.Sprintf("create user %q", u.Login), err)
	}
	return id, nil
}

// User returns the user with id.
func (s *SQLite) User(ctx context.Context, id int64) (*fleet.User, error) {
	u, err := scanSQLiteUser(s.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if err != nil {
		return nil, sqliteErr(fmt.Sprintf("user %d", id), err)
	}
	return u, nil
}

// UserByLogin returns the user with login (compared exactly).
func (s *SQLite) UserByLogin(ctx context.Context, login string) (*fleet.User, error) {
	u, err := scanSQLiteUser(s.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE login = ?`, login))
	if err != nil {
		return nil, sqliteErr(fmt.Sprintf("user %q", login), err)
	}
	return u, nil
}

// Users lists every user, ordered by id.
func (s *SQLite) Users(ctx context.Context) ([]*fleet.User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY id`)
	if err != nil {
		return nil, sqliteErr("list users", err)
	}
	defer rows.Close()
	var out []*fleet.User
	for rows.Next() {
		u, err := scanSQLiteUser(rows)
		if err != nil {
			return nil, sqliteErr("list users", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, sqliteErr("list users", err)
	}
	return out, nil
}

// SetPasswordHash replaces a user's password hash.
func (s *SQLite) SetPasswordHash(ctx context.Context, userID int64, hash string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, hash, userID)
	return requireRow(fmt.Sprintf("set password of user %d", userID), res, err)
}

// ---- sessions and API keys

const sessionCols = `hash, user_id, kind, title, created_at, expires_at`

func scanSQLiteSession(r rowScanner) (*fleet.Session, error) {
	var x fleet.Session
	var kind string
	var created, expires sql.NullInt64
	if err := r.Scan(&x.Hash, &x.UserID, &kind, &x.Title, &created, &expires); err != nil {
		return nil, err
	}
	x.Kind = fleet.SessionKind(kind)
	x.CreatedAt = fromMicros(created)
	x.ExpiresAt = fromMicros(expires)
	return &x, nil
}

// CreateSession stores a session or an API key. A taken hash is
// ErrConflict, an unknown user ErrNotFound.
func (s *SQLite) CreateSession(ctx context.Context, x *fleet.Session) error {
	if x.Kind != fleet.KindSession && x.Kind != fleet.KindAPIKey {
		return fmt.Errorf("create session: unknown kind %q", x.Kind)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO sessions (`+sessionCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
		x.Hash, x.UserID, string(x.Kind), x.Title, micros(createdAt(x.CreatedAt)), micros(x.ExpiresAt))
	if err != nil {
		return sqliteErr(fmt.Sprintf("create %s for user %d", x.Kind, x.UserID), err)
	}
	return nil
}

// Session returns the session or API key with hash, expired or not.
func (s *SQLite) Session(ctx context.Context, hash string) (*fleet.Session, error) {
	x, err := scanSQLiteSession(s.r.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM sessions WHERE hash = ?`, hash))
	if err != nil {
		return nil, sqliteErr("session", err)
	}
	return x, nil
}

// Sessions lists a user's credentials of one kind, ordered by creation.
func (s *SQLite) Sessions(ctx context.Context, userID int64, kind fleet.SessionKind) ([]*fleet.Session, error) {
	what := fmt.Sprintf("list %s of user %d", kind, userID)
	rows, err := s.r.QueryContext(ctx, `SELECT `+sessionCols+` FROM sessions
		WHERE user_id = ? AND kind = ? ORDER BY created_at, hash`, userID, string(kind))
	if err != nil {
		return nil, sqliteErr(what, err)
	}
	defer rows.Close()
	var out []*fleet.Session
	for rows.Next() {
		x, err := scanSQLiteSession(rows)
		if err != nil {
			return nil, sqliteErr(what, err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, sqliteErr(what, err)
	}
	return out, nil
}

// DeleteSession removes one credential; an unknown hash is ErrNotFound.
func (s *SQLite) DeleteSession(ctx context.Context, hash string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE hash = ?`, hash)
	return requireRow("delete session", res, err)
}

// DeleteSessions removes every credential of kind for a user and returns the
// hashes removed (none is not an error).
func (s *SQLite) DeleteSessions(ctx context.Context, userID int64, kind fleet.SessionKind) ([]string, error) {
	what := fmt.Sprintf("delete %s of user %d", kind, userID)
	rows, err := s.w.QueryContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND kind = ? RETURNING hash`, userID, string(kind))
	if err != nil {
		return nil, sqliteErr(what, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, sqliteErr(what, err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, sqliteErr(what, err)
	}
	return out, nil
}

// DeleteExpiredSessions removes credentials whose expiry is at or before
// now (the instant fleet.Session.Expired starts reporting true).
func (s *SQLite) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at IS NOT NULL AND expires_at <= ?`, now.UnixMicro())
	if err != nil {
		return 0, sqliteErr("delete expired sessions", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return int(n), nil
}

// ---- trackers

const trackerCols = `id, label, user_id, source_id, device_id, model, phone, blocked, deleted, created_at`

func scanSQLiteTracker(r rowScanner) (*fleet.Tracker, error) {
	var t fleet.Tracker
	var created sql.NullInt64
	if err := r.Scan(&t.ID, &t.Label, &t.UserID, &t.SourceID, &t.DeviceID, &t.Model, &t.Phone,
		&t.Blocked, &t.Deleted, &created); err != nil {
		return nil, err
	}
	t.CreatedAt = fromMicros(created)
	return &t, nil
}

// CreateTracker inserts t and returns a copy with ID, SourceID and CreatedAt
// (now, when zero) filled in. A device id held by another tracker that is
// not deleted is ErrConflict; an unknown user is ErrNotFound.
func (s *SQLite) CreateTracker(ctx context.Context, t *fleet.Tracker) (*fleet.Tracker, error) {
	c := *t
	c.CreatedAt = createdAt(t.CreatedAt)
	// One statement, so the source id is read and taken atomically.
	err := s.w.QueryRowContext(ctx, `INSERT INTO trackers
		(label, user_id, source_id, device_id, model, phone, blocked, deleted, created_at)
		VALUES (?, ?, (SELECT COALESCE(MAX(source_id) + 1, ?) FROM trackers), ?, ?, ?, ?, ?, ?)
		RETURNING id, source_id`,
		c.Label, c.UserID, firstSourceID, c.DeviceID, c.Model, c.Phone, c.Blocked, c.Deleted, micros(c.CreatedAt),
	).Scan(&c.ID, &c.SourceID)
	if err != nil {
		return nil, sqliteErr(fmt.Sprintf("create tracker %q", t.DeviceID), err)
	}
	return &c, nil
}

// Tracker returns the tracker with id, deleted or not.
func (s *SQLite) Tracker(ctx context.Context, id int64) (*fleet.Tracker, error) {
	t, err := scanSQLiteTracker(s.r.QueryRowContext(ctx, `SELECT `+trackerCols+` FROM trackers WHERE id = ?`, id))
	if err != nil {
		return nil, sqliteErr(fmt.Sprintf("tracker %d", id), err)
	}
	return t, nil
}

// Trackers lists every tracker (userID 0) or a user's, deleted ones
// excluded, ordered by id.
func (s *SQLite) Trackers(ctx context.Context, userID int64) ([]*fleet.Tracker, error) {
	what := fmt.Sprintf("list trackers of user %d", userID)
	rows, err := s.r.QueryContext(ctx, `SELECT `+trackerCols+` FROM trackers
		WHERE deleted = 0 AND (? = 0 OR user_id = ?) ORDER BY id`, userID, userID)
	if err != nil {
		return nil, sqliteErr(what, err)
	}
	defer rows.Close()
	var out []*fleet.Tracker
	for rows.Next() {
		t, err := scanSQLiteTracker(rows)
		if err != nil {
			return nil, sqliteErr(what, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, sqliteErr(what, err)
	}
	return out, nil
}

// SetTrackerBlocked blocks or unblocks a tracker; an unknown id is
// ErrNotFound.
func (s *SQLite) SetTrackerBlocked(ctx context.Context, id int64, blocked bool) error {
	res, err := s.w.ExecContext(ctx, `UPDATE trackers SET blocked = ? WHERE id = ?`, blocked, id)
	return requireRow(fmt.Sprintf("set tracker %d blocked", id), res, err)
}

// DeleteTracker marks a tracker deleted, which frees its device id. An
// unknown id is ErrNotFound; deleting a deleted tracker does nothing.
func (s *SQLite) DeleteTracker(ctx context.Context, id int64) error {
	res, err := s.w.ExecContext(ctx, `UPDATE trackers SET deleted = 1 WHERE id = ?`, id)
	return requireRow(fmt.Sprintf("delete tracker %d", id), res, err)
}

// ---- states

// SaveStates upserts the last known state of each tracker in states, all
// or none. A state of an unknown tracker is ErrNotFound.
func (s *SQLite) SaveStates(ctx context.Context, states []*fleet.State) error {
	if len(states) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return sqliteErr("save states", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO states (tracker_id, state) VALUES (?, ?)
		ON CONFLICT (tracker_id) DO UPDATE SET state = excluded.state`)
	if err != nil {
		return sqliteErr("save states", err)
	}
	defer stmt.Close()
	for _, st := range states {
		if st == nil {
			continue
		}
		doc, err := EncodeState(st)
		if err != nil {
			return fmt.Errorf("save states: %w", err)
		}
		if _, err := stmt.ExecContext(ctx, st.TrackerID, string(doc)); err != nil {
			return sqliteErr(fmt.Sprintf("save state of tracker %d", st.TrackerID), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return sqliteErr("save states", err)
	}
	return nil
}

// States returns every saved state, ordered by tracker id.
func (s *SQLite) States(ctx context.Context) ([]*fleet.State, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT tracker_id, state FROM states ORDER BY tracker_id`)
	if err != nil {
		return nil, sqliteErr("load states", err)
	}
	defer rows.Close()
	var out []*fleet.State
	for rows.Next() {
		var id int64
		var doc string
		if err := rows.Scan(&id, &doc); err != nil {
			return nil, sqliteErr("load states", err)
		}
		st, err := DecodeState(id, []byte(doc))
		if err != nil {
			return nil, fmt.Errorf("load states: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, sqliteErr("load states", err)
	}
	return out, nil
}

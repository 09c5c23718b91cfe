// Package sqlite is the embedded store: one SQLite database file (pure Go,
// modernc.org/sqlite) in WAL mode, written through a single connection and
// read through a small pool, over the shared SQL in store/sqlstore.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/store"
	"github.com/fleetwire/fleetwire/internal/store/sqlstore"
)

// migrations is the SQLite schema, one entry per version; entry i brings
// the database to version i+1. Entries are never edited once released: a
// change is a new entry at the end.
//
// Times are INTEGER microseconds since the Unix epoch (UTC), NULL for the
// zero time, so both backends keep the same precision.
var migrations = []string{
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
	// 2: the bus sequence number of each state, so an older state never
	// replaces a newer one.
	`ALTER TABLE states ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;`,
	// 3: the user object's profile: contact, preferences, legal and
	// address details; '' is "not set", and existing users are verified.
	`
ALTER TABLE users ADD COLUMN phone TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN locale TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN demo INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN unverified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN legal_type TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN default_geocoder TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN route_provider TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN measurement_system TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN date_format TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN hour_mode TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN tin TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN iec TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN post_country TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN post_region TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN post_index TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN post_city TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN post_street_address TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN registered_country TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN registered_region TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN registered_index TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN registered_city TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN registered_street_address TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN first_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN middle_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN last_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN legal_name TEXT NOT NULL DEFAULT '';
`,
	// 4: position history. positions holds the recent fixes, a row each,
	// clustered by tracker and time; closed hours are packed into
	// position_blocks, one row per tracker and hour (see sqlstore's
	// history). t and start are microseconds since the epoch; lat and lng
	// 1e-7 degrees.
	`
CREATE TABLE positions (
	tracker_id INTEGER NOT NULL,
	t          INTEGER NOT NULL,
	lat        INTEGER NOT NULL,
	lng        INTEGER NOT NULL,
	alt        INTEGER NOT NULL,
	speed      INTEGER NOT NULL,
	heading    INTEGER NOT NULL,
	satellites INTEGER NOT NULL,
	precision  INTEGER NOT NULL,
	flags      INTEGER NOT NULL,
	PRIMARY KEY (tracker_id, t)
) STRICT, WITHOUT ROWID;
CREATE TABLE position_blocks (
	tracker_id INTEGER NOT NULL,
	start      INTEGER NOT NULL,
	points     INTEGER NOT NULL,
	data       BLOB    NOT NULL,
	PRIMARY KEY (tracker_id, start)
) STRICT, WITHOUT ROWID;
`,
	// 5: the digest of each tracker's MQTT device secret.
	`ALTER TABLE trackers ADD COLUMN device_secret TEXT NOT NULL DEFAULT '';`,
	// 6: sessions and API keys are kept as the SHA-256 digests of their
	// hashes (fleet.CredentialDigest), never the hashes themselves.
	`UPDATE sessions SET hash = ` + sha256Func + `(hash);`,
}

// sha256Func is the SQL function the migrations use for
// fleet.CredentialDigest; SQLite has none of its own.
const sha256Func = "fleetwire_sha256_hex"

func init() {
	err := sqlite.RegisterDeterministicScalarFunction(sha256Func, 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		s, ok := args[0].(string)
		if !ok {
			return nil, fmt.Errorf("%s: argument is %T, want text", sha256Func, args[0])
		}
		return fleet.CredentialDigest(s), nil
	})
	if err != nil {
		panic(fmt.Sprintf("register %s: %v", sha256Func, err))
	}
}

// firstSourceID is the source id of the first tracker; later trackers count
// up from it. It differs from tracker ids so clients cannot confuse the two.
const firstSourceID = 100001

// dialect is SQLite's SQL.
var dialect = &sqlstore.Dialect{
	Migrations: migrations,
	MigrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`,
	// Read and taken in the INSERT itself, which holds the only writer.
	NextSourceID: fmt.Sprintf(`(SELECT COALESCE(MAX(source_id) + 1, %d) FROM trackers)`, firstSourceID),
	EncodeTime:   encodeTime,
	DecodeTime:   decodeTime,
	Classify:     classify,
}

// busyTimeout is how long a statement waits for a lock held by another
// process before failing with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Open opens (creating if needed) the database file at path and brings its
// schema up to date. path ":memory:" opens a private in-memory database.
// The file and its WAL companions are readable by their owner only (0600):
// a new file is created so, an existing one is tightened.
func Open(ctx context.Context, path string) (*sqlstore.Store, error) {
	return open(ctx, path, dialect)
}

// open is Open with the dialect, so tests can make databases of an older
// schema version.
func open(ctx context.Context, path string, d *sqlstore.Dialect) (*sqlstore.Store, error) {
	if path == "" {
		return nil, errors.New("open sqlite: empty path")
	}
	if path != ":memory:" {
		if err := ownerOnly(path); err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
	}
	writer, reader := dsns(path)
	w, err := sql.Open("sqlite", writer)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1) // SQLite has one writer at a time
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	r := w // an in-memory database exists on its one connection only
	if reader != "" {
		if r, err = sql.Open("sqlite", reader); err != nil {
			w.Close()
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		n := max(4, runtime.GOMAXPROCS(0))
		r.SetMaxOpenConns(n)
		r.SetMaxIdleConns(n)
	}
	s, err := sqlstore.New(ctx, d, w, r)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return s, nil
}

// fileMode is the mode of the database file; SQLite gives its -wal and
// -shm files the mode of the database file.
const fileMode = 0o600

// ownerOnly creates the database file at path with fileMode, or sets that
// mode on it and on the WAL files it already has.
func ownerOnly(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, fileMode); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restrict database file: %w", err)
		}
	}
	return nil
}

// dsns returns the driver's names for the writer and the readers of the
// database at path; reader is "" for ":memory:", which has no readers of
// its own.
func dsns(path string) (writer, reader string) {
	pragmas := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=cache_size(-32768)",
		busyTimeout.Milliseconds())
	if path == ":memory:" {
		return "file::memory:?" + pragmas + "&_txlock=immediate", ""
	}
	reader = "file:" + escapePath(path) + "?" + pragmas + "&_pragma=journal_mode(WAL)"
	return reader + "&_txlock=immediate", reader
}

// escapePath makes path safe inside a "file:" URI.
func escapePath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

// encodeTime stores t as microseconds since the epoch, NULL for the zero
// time.
func encodeTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// decodeTime reads a column written by encodeTime.
func decodeTime(src any) (time.Time, error) {
	switch v := src.(type) {
	case nil:
		return time.Time{}, nil
	case int64:
		return time.UnixMicro(v).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("time column holds %T, want microseconds", src)
}

// classify maps constraint failures onto store.ErrConflict / ErrNotFound.
func classify(err error) (detail string, kind error) {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return err.Error(), store.ErrConflict
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return err.Error(), store.ErrNotFound
		}
	}
	return "", nil
}

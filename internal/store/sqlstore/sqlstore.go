// Package sqlstore is the SQL code the store backends share: every query,
// every scan and the migration runner, written once over database/sql. A
// Dialect carries what differs between databases; store/sqlite and
// store/postgres each hold one, with their driver and their migrations.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fleetwire/fleetwire/internal/store"
)

// Dialect is what one database does differently from another.
type Dialect struct {
	// NumberedParams writes the placeholders of a query $1, $2, ... (as
	// PostgreSQL wants) instead of the ? the shared queries are written in.
	NumberedParams bool

	// Migrations is the schema, one entry per version: entry i brings the
	// database to version i+1. Entries are never edited once released; a
	// change is a new entry at the end.
	Migrations []string
	// MigrationsTable creates the schema_migrations table (version,
	// applied_at) if it does not exist.
	MigrationsTable string
	// MigrationLock, when not empty, is run first in the migration
	// transaction to keep other processes out until it commits.
	MigrationLock string
	// TrackerLock, when not empty, is run in a transaction that rewrites a
	// tracker's history (packing its closed hours), with the tracker id as
	// its argument, to keep the other nodes of a cluster out of the same
	// tracker until it commits.
	TrackerLock string

	// NextSourceID is the SQL expression that gives a new tracker its source
	// id, in the INSERT that creates the tracker.
	NextSourceID string

	// EncodeTime turns a time into a query argument; the zero time is NULL.
	EncodeTime func(t time.Time) any
	// DecodeTime turns a scanned time column back into a time in UTC; NULL
	// (nil) is the zero time.
	DecodeTime func(src any) (time.Time, error)

	// Classify tells which store error a failed statement is: store.ErrConflict
	// for a unique violation, store.ErrNotFound for a missing referenced row,
	// nil for anything else; detail names the constraint for the message.
	Classify func(err error) (detail string, kind error)
}

// Store is a store.Store over one database.
type Store struct {
	d *Dialect
	w *sql.DB // writes and migrations
	r *sql.DB // reads; may be w

	points pointStatements // prepared on first use
}

var _ store.Store = (*Store)(nil)

// New brings the schema of the database behind w up to date and returns a
// Store that writes through w and reads through r (r may be w). The Store
// owns both pools: they are closed by Close, and by New when it fails.
func New(ctx context.Context, d *Dialect, w, r *sql.DB) (*Store, error) {
	s := &Store{d: d, w: w, r: r}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if r != w {
		if err := r.PingContext(ctx); err != nil {
			s.Close()
			return nil, fmt.Errorf("connect readers: %w", err)
		}
	}
	return s, nil
}

// SchemaVersion returns the schema version the database is at.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

// Close closes the connection pools.
func (s *Store) Close() error {
	for _, st := range s.points.stmts {
		st.Close()
	}
	err := s.w.Close()
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

// q rewrites query's ? placeholders in the dialect's style.
func (s *Store) q(query string) string { return s.d.Query(query) }

// Query rewrites query's ? placeholders in the dialect's style.
func (d *Dialect) Query(query string) string {
	if !d.NumberedParams {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] != '?' {
			b.WriteByte(query[i])
			continue
		}
		n++
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// err maps constraint failures onto store.ErrConflict / store.ErrNotFound,
// and a missing row onto store.ErrNotFound, and wraps err with what was
// being done.
func (s *Store) err(what string, err error) error {
	switch detail, kind := s.d.Classify(err); kind {
	case nil:
	case store.ErrNotFound:
		return fmt.Errorf("%s: referenced row: %w (%s)", what, kind, detail)
	default:
		return fmt.Errorf("%s: %w (%s)", what, kind, detail)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// requireRow turns "no row changed" into store.ErrNotFound.
func (s *Store) requireRow(what string, res sql.Result, err error) error {
	if err != nil {
		return s.err(what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// timeCol scans a time column through the dialect.
type timeCol struct {
	d *Dialect
	t *time.Time
}

// Scan implements sql.Scanner.
func (c timeCol) Scan(src any) error {
	t, err := c.d.DecodeTime(src)
	if err != nil {
		return err
	}
	*c.t = t
	return nil
}

// time returns a scan destination that decodes a time column into t.
func (s *Store) time(t *time.Time) timeCol { return timeCol{d: s.d, t: t} }

// createdAt is t, or now when t is zero, in UTC at the microsecond
// precision both backends keep.
func createdAt(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Truncate(time.Microsecond)
}

// rowScanner is a *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(dest ...any) error }

// collect scans every row of a query with scan; what names the query in
// errors.
func collect[T any](s *Store, what string, rows *sql.Rows, err error, scan func(rowScanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, s.err(what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, s.err(what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.err(what, err)
	}
	return out, nil
}

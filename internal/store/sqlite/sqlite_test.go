package sqlite

import (
	"database/sql"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/store"
	"github.com/fleetwire/fleetwire/internal/store/sqlstore"
	"github.com/fleetwire/fleetwire/internal/store/storetest"
)

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) (store.Store, error) {
		return Open(t.Context(), filepath.Join(t.TempDir(), "fleetwire.db"))
	})
}

// TestUpgrade opens a database file made at schema version 1.
func TestUpgrade(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "fleet.db")
	storetest.RunUpgrade(t, dialect, func(d *sqlstore.Dialect) (store.Store, error) {
		return open(t.Context(), path, d)
	}, func(t *testing.T, query string, args ...any) {
		if _, err := rawDB(t, "file:"+path).ExecContext(t.Context(), query, args...); err != nil {
			t.Fatalf("write at version 1: %v", err)
		}
	})
}

// rawDB opens a database by its driver name, beside the store.
func rawDB(t *testing.T, name string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestReopen shows that data, including states, survives closing and
// reopening the file, that migrations are not applied twice, and that odd
// characters in the path are not read as URI syntax.
func TestReopen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sub dir", "fleet?#%.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	u := storetest.MustUser(t, st, "alice")
	tr := storetest.MustTracker(t, st, u.ID, "dev-1")
	full := storetest.FullState(tr.ID, tr.SourceID)
	if err := st.SaveStates(ctx, []*fleet.State{full}); err != nil {
		t.Fatalf("SaveStates: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file not at the given path: %v", err)
	}

	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	v, err := s2.SchemaVersion(ctx)
	if err != nil || v != len(migrations) {
		t.Fatalf("SchemaVersion = %d, %v", v, err)
	}
	// The file itself is in WAL mode, and the readers' connections have the
	// settings Open gives them.
	var mode string
	if err := rawDB(t, "file:"+escapePath(path)).QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v", mode, err)
	}
	_, reader := dsns(path)
	db := rawDB(t, reader)
	var rows int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&rows); err != nil || rows != len(migrations) {
		t.Fatalf("schema_migrations rows = %d, %v", rows, err)
	}
	var fk int
	if err := db.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys = %d, %v", fk, err)
	}
	var busy int
	if err := db.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil || busy != int(busyTimeout.Milliseconds()) {
		t.Fatalf("busy_timeout = %d, %v", busy, err)
	}
	states, err := s2.States(ctx)
	if err != nil {
		t.Fatalf("States: %v", err)
	}
	if len(states) != 1 || !reflect.DeepEqual(states[0], storetest.InUTC(full)) {
		t.Fatalf("state after reopen = %+v", states)
	}
	if got, err := s2.UserByLogin(ctx, "alice"); err != nil || got.ID != u.ID {
		t.Fatalf("user after reopen = %+v, %v", got, err)
	}
	// Source ids continue after reopen.
	if t2 := storetest.MustTracker(t, s2, u.ID, "dev-2"); t2.SourceID != tr.SourceID+1 {
		t.Fatalf("source id after reopen = %d, want %d", t2.SourceID, tr.SourceID+1)
	}
}

// TestNewerSchema: a binary refuses a database migrated by a newer one.
func TestNewerSchema(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "fleet.db")
	st, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := rawDB(t, "file:"+path).ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	if s2, err := Open(ctx, path); err == nil || !strings.Contains(err.Error(), "newer") {
		if s2 != nil {
			s2.Close()
		}
		t.Fatalf("Open on a newer schema: %v", err)
	}
}

func TestMemory(t *testing.T) {
	t.Parallel()
	st, err := Open(t.Context(), ":memory:")
	if err != nil {
		t.Fatalf("Open(:memory:): %v", err)
	}
	defer st.Close()
	u := storetest.MustUser(t, st, "alice")
	if got, err := st.User(t.Context(), u.ID); err != nil || got.Login != "alice" {
		t.Fatalf("User = %+v, %v", got, err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	if _, err := Open(ctx, ""); err == nil {
		t.Fatal(`Open("") succeeded`)
	}
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "missing", "dir", "x.db")); err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
}

// BenchmarkSaveStates measures one flush of 1000 full states.
func BenchmarkSaveStates(b *testing.B) {
	st, err := Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	storetest.BenchSaveStates(b, st)
}

func TestHistory(t *testing.T) {
	t.Parallel()
	storetest.RunHistory(t, func(t *testing.T) (storetest.History, error) {
		return Open(t.Context(), filepath.Join(t.TempDir(), "fleetwire.db"))
	})
}

func openBench(b *testing.B) storetest.History {
	st, err := Open(b.Context(), filepath.Join(b.TempDir(), "fleetwire.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkAppendPoints is history write throughput.
func BenchmarkAppendPoints(b *testing.B) { storetest.BenchAppendPoints(b, openBench(b)) }

// BenchmarkDayTrack reads back a day's track of one tracker.
func BenchmarkDayTrack(b *testing.B) { storetest.BenchDayTrack(b, openBench(b)) }

// TestFileMode: a new database file and its WAL files are the owner's
// alone (0600), and an existing file readable by others is tightened.
func TestFileMode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh.db")
	st, err := Open(t.Context(), fresh)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(t.Context(), &fleet.User{Login: "u", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fresh, fresh + "-wal", fresh + "-shm"} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", filepath.Base(p), fi.Mode().Perm(), err)
		}
	}
	st.Close()

	loose := filepath.Join(dir, "loose.db")
	if err := os.WriteFile(loose, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(loose, 0o644) // whatever the umask
	st, err = Open(t.Context(), loose)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if fi, err := os.Stat(loose); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("existing 0644 file after Open: %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

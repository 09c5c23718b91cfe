package postgres

import (
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/fleetwire/fleetwire/internal/store"
	"github.com/fleetwire/fleetwire/internal/store/postgres/pgtest"
	"github.com/fleetwire/fleetwire/internal/store/sqlstore"
	"github.com/fleetwire/fleetwire/internal/store/storetest"
)

func TestContract(t *testing.T) {
	t.Parallel()
	pgtest.Skip(t)
	// Run closes each store before the schema's cleanup, registered first,
	// drops it.
	storetest.Run(t, func(t *testing.T) (store.Store, error) {
		return Open(t.Context(), pgtest.SchemaDSN(t))
	})
}

// TestUpgrade opens a schema made at schema version 1.
func TestUpgrade(t *testing.T) {
	t.Parallel()
	dsn := pgtest.SchemaDSN(t)
	storetest.RunUpgrade(t, dialect, func(d *sqlstore.Dialect) (store.Store, error) {
		return open(t.Context(), dsn, d)
	}, func(t *testing.T, query string, args ...any) {
		c, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(t.Context())
		if _, err := c.Exec(t.Context(), query, args...); err != nil {
			t.Fatalf("write at version 1: %v", err)
		}
	})
}

// TestReopen covers re-running migrations on an up-to-date schema, by two
// nodes starting together.
func TestReopen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dsn := pgtest.SchemaDSN(t)
	st, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	u := storetest.MustUser(t, st, "alice")
	st.Close()

	var wg sync.WaitGroup
	stores := make([]*Store, 2)
	errs := make([]error, 2)
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = Open(ctx, dsn) })
	}
	wg.Wait()
	for i, p := range stores {
		if errs[i] != nil {
			t.Fatalf("reopen %d: %v", i, errs[i])
		}
		defer p.Close()
		if v, err := p.SchemaVersion(ctx); err != nil || v != len(migrations) {
			t.Fatalf("SchemaVersion = %d, %v", v, err)
		}
		if got, err := p.User(ctx, u.ID); err != nil || got.Login != "alice" {
			t.Fatalf("User after reopen = %+v, %v", got, err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := Open(ctx, "postgres://nobody:secret@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	if err == nil {
		st.Close()
		t.Fatal("Open of an unreachable PostgreSQL succeeded")
	}
	if _, err := Open(ctx, "postgres://%zz"); err == nil || strings.Contains(err.Error(), "%zz") {
		t.Fatalf("bad DSN error = %v", err)
	}
}

// BenchmarkSaveStates measures one flush of 1000 full states.
func BenchmarkSaveStates(b *testing.B) {
	st, err := Open(b.Context(), pgtest.SchemaDSN(b))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	storetest.BenchSaveStates(b, st)
}

func TestHistory(t *testing.T) {
	t.Parallel()
	storetest.RunHistory(t, func(t *testing.T) (storetest.History, error) {
		return Open(t.Context(), pgtest.SchemaDSN(t))
	})
}

func openBench(b *testing.B) storetest.History {
	st, err := Open(b.Context(), pgtest.SchemaDSN(b))
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

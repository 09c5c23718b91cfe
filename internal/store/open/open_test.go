package storeopen

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetwire/fleetwire/internal/store/postgres"
	"github.com/fleetwire/fleetwire/internal/store/postgres/pgtest"
	"github.com/fleetwire/fleetwire/internal/store/sqlstore"
)

func TestOpenSQLite(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{
		filepath.Join(t.TempDir(), "plain.db"),
		"sqlite:" + filepath.Join(t.TempDir(), "prefixed.db"),
		":memory:",
	} {
		st, err := Open(t.Context(), dsn)
		if err != nil {
			t.Fatalf("Open(%q): %v", dsn, err)
		}
		if _, ok := st.(*sqlstore.Store); !ok {
			t.Errorf("Open(%q) = %T, want the SQLite store", dsn, st)
		}
		st.Close()
	}
}

func TestOpenPostgres(t *testing.T) {
	t.Parallel()
	dsn := pgtest.SchemaDSN(t)
	if !strings.HasPrefix(dsn, "postgres://") {
		t.Skip("dispatch needs a URL DSN")
	}
	for _, dsn := range []string{dsn, strings.Replace(dsn, "postgres://", "postgresql://", 1)} {
		st, err := Open(t.Context(), dsn)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if _, ok := st.(*postgres.Store); !ok {
			t.Errorf("Open(%q) = %T, want the PostgreSQL store", dsn, st)
		}
		st.Close()
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	if _, err := Open(ctx, ""); err == nil {
		t.Fatal(`Open("") succeeded`)
	}
	st, err := Open(ctx, "postgres://nobody:secret@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	if err == nil {
		st.Close()
		t.Fatal("Open of an unreachable PostgreSQL succeeded")
	}
	if st != nil {
		t.Fatalf("Open returned a non-nil Store %T with an error", st)
	}
}

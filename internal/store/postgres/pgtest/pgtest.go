// Package pgtest gives tests a PostgreSQL schema of their own on the server
// $FLEETWIRE_TEST_POSTGRES names.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// defaultDSN is the server tests use when $FLEETWIRE_TEST_POSTGRES is unset.
const defaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Skip skips t when $FLEETWIRE_TEST_POSTGRES is "off".
func Skip(t testing.TB) {
	t.Helper()
	if baseDSN() == "off" {
		t.Skip("FLEETWIRE_TEST_POSTGRES=off")
	}
}

func baseDSN() string {
	if v := os.Getenv("FLEETWIRE_TEST_POSTGRES"); v != "" {
		return v
	}
	return defaultDSN
}

// SchemaDSN creates a fresh schema and returns a DSN whose connections use
// it; the schema is dropped when t ends, so parallel tests never see each
// other. It skips t when $FLEETWIRE_TEST_POSTGRES is "off".
func SchemaDSN(t testing.TB) string {
	t.Helper()
	Skip(t)
	base := baseDSN()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to PostgreSQL (set FLEETWIRE_TEST_POSTGRES=off to skip): %v", err)
	}
	defer admin.Close(context.Background())
	b := make([]byte, 8)
	rand.Read(b)
	schema := "fw_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatalf("parse FLEETWIRE_TEST_POSTGRES: %v", err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return base + " search_path=" + schema
}

// Package storeopen opens the store a DSN names. It is the one package that
// links both database drivers; everything else uses store.Store.
package storeopen

import (
	"context"
	"strings"

	"github.com/fleetwire/fleetwire/internal/store"
	"github.com/fleetwire/fleetwire/internal/store/postgres"
	"github.com/fleetwire/fleetwire/internal/store/sqlite"
)

// Open opens the store dsn names: a "postgres://" or "postgresql://" URL
// opens PostgreSQL, anything else is the path of a SQLite file, optionally
// written "sqlite:path".
func Open(ctx context.Context, dsn string) (store.Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		p, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, err
		}
		return p, nil
	}
	s, err := sqlite.Open(ctx, strings.TrimPrefix(dsn, "sqlite:"))
	if err != nil {
		return nil, err
	}
	return s, nil
}

package store

import (
	"context"
	"strings"
)

// Open opens the store dsn names: a "postgres://" or "postgresql://" URL
// opens PostgreSQL, anything else is the path of a SQLite file, optionally
// written "sqlite:path".
func Open(ctx context.Context, dsn string) (Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		p, err := OpenPostgres(ctx, dsn)
		if err != nil {
			return nil, err
		}
		return p, nil
	}
	s, err := OpenSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"))
	if err != nil {
		return nil, err
	}
	return s, nil
}

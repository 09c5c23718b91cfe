package sqlstore

import (
	"context"
	"fmt"
	"time"
)

// migrate applies the migrations the database has not seen, all in one
// transaction, so a failed upgrade leaves the previous schema intact.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if s.d.MigrationLock != "" {
		if _, err := tx.ExecContext(ctx, s.d.MigrationLock); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.d.MigrationsTable); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if current > len(s.d.Migrations) {
		return fmt.Errorf("migrate: database schema version %d is newer than this program's %d", current, len(s.d.Migrations))
	}
	for i := current; i < len(s.d.Migrations); i++ {
		if _, err := tx.ExecContext(ctx, s.d.Migrations[i]); err != nil {
			return fmt.Errorf("migrate: version %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`),
			i+1, s.d.EncodeTime(time.Now())); err != nil {
			return fmt.Errorf("migrate: record version %d: %w", i+1, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

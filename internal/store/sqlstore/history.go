package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/fleetwire/fleetwire/internal/store"
)

// Position history is two tables. positions takes every fix as a row of
// its own, clustered by tracker and time: appends are plain inserts,
// grouped into few transactions by the caller. CompactPoints then moves
// each closed hour of a tracker into one row of position_blocks, packed
// (see encodeBlock), so that a day's track is 24 rows to read instead of
// 86,400. Reads merge both tables.

var _ store.History = (*Store)(nil)

// pointStatementSizes are the row counts of the prepared point inserts,
// largest first (ten parameters a row): a batch is written with as few
// statements as these sizes allow, without parsing SQL each time.
var pointStatementSizes = []int{400, 100, 25, 5, 1}

// Point flags, the flags column.
const (
	flagGSMLBS   = 1 << 0
	flagBuffered = 1 << 1
)

const insertPointsSQL = `INSERT INTO positions (tracker_id, t, lat, lng, alt, speed, heading, satellites, precision, flags) VALUES `

const pointColumns = `t, lat, lng, alt, speed, heading, satellites, precision, flags`

// pointStatements are the prepared appends, one per size.
type pointStatements struct {
	once        sync.Once
	stmts       []*sql.Stmt // by pointStatementSizes
	prepareFail error
}

func (s *Store) pointStatements(ctx context.Context) (*pointStatements, error) {
	ps := &s.points
	ps.once.Do(func() {
		for _, n := range pointStatementSizes {
			query := insertPointsSQL + strings.Repeat(`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?), `, n-1) +
				`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tracker_id, t) DO NOTHING`
			st, err := s.w.PrepareContext(ctx, s.q(query))
			if err != nil {
				ps.prepareFail = err
				return
			}
			ps.stmts = append(ps.stmts, st)
		}
	})
	if ps.prepareFail != nil {
		return nil, s.err("prepare point inserts", ps.prepareFail)
	}
	return ps, nil
}

// pointTime is a point's time as stored: the millisecond.
func pointTime(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func degrees(v float64) int64 { return int64(math.Round(v * 1e7)) }

func clamp(v, lo, hi int) int { return min(max(v, lo), hi) }

// pointArgs appends a point's column values, clamped to what the
// narrowest columns (PostgreSQL's smallint) hold, so that one odd fix
// cannot fail a batch.
func (s *Store) pointArgs(args []any, p store.Point) []any {
	return append(args, p.TrackerID, s.d.EncodeTime(pointTime(p.Time)), degrees(p.Lat), degrees(p.Lng),
		clamp(p.Alt, -1e6, 1e6), clamp(p.Speed, 0, 32767), clamp(p.Heading, 0, 360), clamp(p.Satellites, 0, 255),
		clamp(p.Precision, 0, 1e9), flagsOf(p))
}

// AppendPoints writes points in one transaction; a point at a millisecond
// its tracker already has in positions is skipped.
func (s *Store) AppendPoints(ctx context.Context, points []store.Point) error {
	if len(points) == 0 {
		return nil
	}
	ps, err := s.pointStatements(ctx)
	if err != nil {
		return err
	}
	// A context that is never done: the driver would watch a
	// cancellable one with a goroutine per statement.
	ctx = context.WithoutCancel(ctx)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.err("append points", err)
	}
	defer tx.Rollback()
	args := make([]any, 0, 10*pointStatementSizes[0])
	rest := points
	for i, n := range pointStatementSizes {
		if len(rest) < n {
			continue
		}
		st := tx.StmtContext(ctx, ps.stmts[i])
		for len(rest) >= n {
			args = args[:0]
			for _, p := range rest[:n] {
				args = s.pointArgs(args, p)
			}
			rest = rest[n:]
			if _, err := st.ExecContext(ctx, args...); err != nil {
				return s.err("append points", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return s.err("append points", err)
	}
	return nil
}

// querier is a *sql.DB or *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// rowPoints reads a tracker's rows of positions with from < t < to.
func (s *Store) rowPoints(ctx context.Context, q querier, trackerID int64, from, to time.Time, limit int) ([]store.Point, error) {
	rows, err := q.QueryContext(ctx, s.q(`SELECT `+pointColumns+` FROM positions
		WHERE tracker_id = ? AND t > ? AND t < ? ORDER BY t LIMIT ?`),
		trackerID, s.d.EncodeTime(pointTime(from)), s.d.EncodeTime(pointTime(to)), limit)
	return collect(s, "read points", rows, err, func(r rowScanner) (store.Point, error) {
		p := store.Point{TrackerID: trackerID}
		var lat, lng int64
		var flags int
		if err := r.Scan(s.time(&p.Time), &lat, &lng, &p.Alt, &p.Speed, &p.Heading, &p.Satellites, &p.Precision, &flags); err != nil {
			return p, err
		}
		p.Lat, p.Lng = float64(lat)/1e7, float64(lng)/1e7
		p.GSMLBS, p.Buffered = flags&flagGSMLBS != 0, flags&flagBuffered != 0
		return p, nil
	})
}

// blockPoints reads the points of a tracker's blocks that overlap
// (from, to).
func (s *Store) blockPoints(ctx context.Context, q querier, trackerID int64, from, to time.Time) ([]store.Point, error) {
	rows, err := q.QueryContext(ctx, s.q(`SELECT start, points, data FROM position_blocks
		WHERE tracker_id = ? AND start >= ? AND start < ? ORDER BY start`),
		trackerID, s.d.EncodeTime(blockHour(from)), s.d.EncodeTime(pointTime(to)))
	type block struct {
		start time.Time
		data  []byte
	}
	var total int
	blocks, err := collect(s, "read point blocks", rows, err, func(r rowScanner) (block, error) {
		var b block
		var n int
		err := r.Scan(s.time(&b.start), &n, &b.data)
		total += n
		return b, err
	})
	if err != nil || len(blocks) == 0 {
		return nil, err
	}
	out := make([]store.Point, 0, total)
	for _, b := range blocks {
		if out, err = decodeBlock(out, trackerID, b.start, b.data, from, to); err != nil {
			return nil, fmt.Errorf("read point blocks of tracker %d at %v: %w", trackerID, b.start, err)
		}
	}
	return out, nil
}

// Points returns a tracker's points strictly between from and to, oldest
// first, at most limit, from its blocks and its rows.
func (s *Store) Points(ctx context.Context, trackerID int64, from, to time.Time, limit int) ([]store.Point, error) {
	if limit <= 0 || !from.Before(to) {
		return nil, nil
	}
	packed, err := s.blockPoints(ctx, s.r, trackerID, from, to)
	if err != nil {
		return nil, err
	}
	rows, err := s.rowPoints(ctx, s.r, trackerID, from, to, limit)
	if err != nil {
		return nil, err
	}
	out := mergePoints(packed, rows)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// trackerIDs lists every tracker id, deleted trackers included (their
// history stays until it ages out).
func (s *Store) trackerIDs(ctx context.Context, what string) ([]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM trackers ORDER BY id`)
	return collect(s, what, rows, err, func(r rowScanner) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	})
}

// CompactPoints packs the rows of every hour that ended before before
// into blocks, tracker by tracker, each in a transaction of its own so
// that appends go on between them.
func (s *Store) CompactPoints(ctx context.Context, before time.Time) (int64, error) {
	ids, err := s.trackerIDs(ctx, "compact points")
	if err != nil {
		return 0, err
	}
	cut := blockHour(before)
	var n int64
	for _, id := range ids {
		k, err := s.compactTracker(ctx, id, cut)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (s *Store) compactTracker(ctx context.Context, id int64, cut time.Time) (int64, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, s.err("compact points", err)
	}
	defer tx.Rollback()
	if s.d.TrackerLock != "" {
		if _, err := tx.ExecContext(ctx, s.q(s.d.TrackerLock), id); err != nil {
			return 0, s.err("compact points: lock", err)
		}
	}
	rows, err := s.rowPoints(ctx, tx, id, time.Unix(0, 0), cut, math.MaxInt32)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	for len(rows) > 0 {
		start := blockHour(rows[0].Time)
		end := 0
		for end < len(rows) && blockHour(rows[end].Time).Equal(start) {
			end++
		}
		hour := rows[:end]
		rows = rows[end:]
		// A block written before keeps its points; late ones join it.
		old, err := s.blockPoints(ctx, tx, id, start.Add(-time.Millisecond), start.Add(time.Hour))
		if err != nil {
			return 0, err
		}
		merged := mergePoints(old, hour)
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO position_blocks (tracker_id, start, points, data) VALUES (?, ?, ?, ?)
			ON CONFLICT (tracker_id, start) DO UPDATE SET points = excluded.points, data = excluded.data`),
			id, s.d.EncodeTime(start), len(merged), encodeBlock(start, merged)); err != nil {
			return 0, s.err("compact points", err)
		}
	}
	res, err := tx.ExecContext(ctx, s.q(`DELETE FROM positions WHERE tracker_id = ? AND t < ?`), id, s.d.EncodeTime(cut))
	if err != nil {
		return 0, s.err("compact points", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, s.err("compact points", err)
	}
	k, _ := res.RowsAffected()
	return k, nil
}

// PrunePoints removes the blocks of hours that ended before before, and
// rows older than it, tracker by tracker.
func (s *Store) PrunePoints(ctx context.Context, before time.Time) (int64, error) {
	ids, err := s.trackerIDs(ctx, "prune points")
	if err != nil {
		return 0, err
	}
	var n int64
	lastBlock := s.d.EncodeTime(blockHour(before).Add(-time.Hour))
	cut := s.d.EncodeTime(pointTime(before))
	for _, id := range ids {
		var points sql.NullInt64
		if err := s.r.QueryRowContext(ctx, s.q(`SELECT SUM(points) FROM position_blocks WHERE tracker_id = ? AND start <= ?`), id, lastBlock).Scan(&points); err != nil {
			return n, s.err("prune points", err)
		}
		if _, err := s.w.ExecContext(ctx, s.q(`DELETE FROM position_blocks WHERE tracker_id = ? AND start <= ?`), id, lastBlock); err != nil {
			return n, s.err("prune points", err)
		}
		res, err := s.w.ExecContext(ctx, s.q(`DELETE FROM positions WHERE tracker_id = ? AND t < ?`), id, cut)
		if err != nil {
			return n, s.err("prune points", err)
		}
		k, _ := res.RowsAffected()
		n += k + points.Int64
	}
	return n, nil
}

package sqlstore

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/store"
)

// statesPerStatement is how many states one INSERT carries: few round trips
// per flush, and far below either database's limit on parameters.
const statesPerStatement = 500

// savedState is one row of the states table, as written.
type savedState struct {
	trackerID int64
	doc       string
	seq       int64
}

// SaveStates upserts the last known state of each tracker in states, all
// or none. A stored state is replaced only by one whose Seq is at least
// its own; when a tracker appears twice, the later state wins unless its
// Seq is lower. A state of an unknown tracker is store.ErrNotFound.
func (s *Store) SaveStates(ctx context.Context, states []*fleet.State) error {
	rows := make([]savedState, 0, len(states))
	at := make(map[int64]int, len(states))
	for _, st := range states {
		if st == nil {
			continue
		}
		if st.Seq > math.MaxInt64 {
			return fmt.Errorf("save state of tracker %d: seq %d does not fit a database integer", st.TrackerID, st.Seq)
		}
		doc, err := store.EncodeState(st)
		if err != nil {
			return fmt.Errorf("save states: %w", err)
		}
		row := savedState{trackerID: st.TrackerID, doc: string(doc), seq: int64(st.Seq)}
		// ON CONFLICT cannot touch a row twice in one statement, so the batch
		// is reduced to what saving its states one by one would leave.
		if i, ok := at[st.TrackerID]; ok {
			if row.seq >= rows[i].seq {
				rows[i] = row
			}
			continue
		}
		at[st.TrackerID] = len(rows)
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.err("save states", err)
	}
	defer tx.Rollback()
	for len(rows) > 0 {
		chunk := rows[:min(len(rows), statesPerStatement)]
		rows = rows[len(chunk):]
		args := make([]any, 0, 3*len(chunk))
		for _, r := range chunk {
			args = append(args, r.trackerID, r.doc, r.seq)
		}
		query := `INSERT INTO states (tracker_id, state, seq) VALUES ` +
			strings.Repeat(`(?, ?, ?), `, len(chunk)-1) + `(?, ?, ?)
			ON CONFLICT (tracker_id) DO UPDATE SET state = excluded.state, seq = excluded.seq
			WHERE states.seq <= excluded.seq`
		if _, err := tx.ExecContext(ctx, s.q(query), args...); err != nil {
			return s.err("save states", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.err("save states", err)
	}
	return nil
}

// States returns every saved state, ordered by tracker id.
func (s *Store) States(ctx context.Context) ([]*fleet.State, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT tracker_id, state, seq FROM states ORDER BY tracker_id`)
	return collect(s, "load states", rows, err, func(r rowScanner) (*fleet.State, error) {
		var id, seq int64
		var doc []byte
		if err := r.Scan(&id, &doc, &seq); err != nil {
			return nil, err
		}
		st, err := store.DecodeState(id, doc)
		if err != nil {
			return nil, err
		}
		st.Seq = uint64(seq)
		return st, nil
	})
}

package sqlstore

import (
	"context"
	"fmt"
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
}

// SaveStates upserts the last known state of each tracker in states, all
// or none; when a tracker appears twice the later state wins. A state of an
// unknown tracker is store.ErrNotFound.
func (s *Store) SaveStates(ctx context.Context, states []*fleet.State) error {
	rows := make([]savedState, 0, len(states))
	at := make(map[int64]int, len(states))
	for _, st := range states {
		if st == nil {
			continue
		}
		doc, err := store.EncodeState(st)
		if err != nil {
			return fmt.Errorf("save states: %w", err)
		}
		// ON CONFLICT cannot touch a row twice in one statement.
		if i, ok := at[st.TrackerID]; ok {
			rows[i].doc = string(doc)
			continue
		}
		at[st.TrackerID] = len(rows)
		rows = append(rows, savedState{trackerID: st.TrackerID, doc: string(doc)})
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
		args := make([]any, 0, 2*len(chunk))
		for _, r := range chunk {
			args = append(args, r.trackerID, r.doc)
		}
		query := `INSERT INTO states (tracker_id, state) VALUES ` +
			strings.Repeat(`(?, ?), `, len(chunk)-1) + `(?, ?)
			ON CONFLICT (tracker_id) DO UPDATE SET state = excluded.state`
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
	rows, err := s.r.QueryContext(ctx, `SELECT tracker_id, state FROM states ORDER BY tracker_id`)
	return collect(s, "load states", rows, err, func(r rowScanner) (*fleet.State, error) {
		var id int64
		var doc []byte
		if err := r.Scan(&id, &doc); err != nil {
			return nil, err
		}
		return store.DecodeState(id, doc)
	})
}

package jetstream

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/store"
)

// wireVersion is the "v" of the messages this node writes. A node reads
// every version up to its own and ignores fields it does not know, so
// nodes of two adjacent versions interoperate during a rolling upgrade;
// a message of a newer version is still read for the fields it shares.
const wireVersion = 1

// wireMsg is a bus message as it is stored in the log: JSON with
// explicit field names, independent of the Go types.
type wireMsg struct {
	V         int             `json:"v"`
	Kind      string          `json:"kind"`
	UserID    int64           `json:"user_id"`
	TrackerID int64           `json:"tracker_id,omitempty"`
	SourceID  int64           `json:"source_id,omitempty"`
	Origin    string          `json:"origin,omitempty"`
	Prev      uint64          `json:"prev,omitempty"`
	State     json.RawMessage `json:"state,omitempty"`
	Record    *wireRecord     `json:"record,omitempty"`
	Lifecycle string          `json:"lifecycle,omitempty"`
	Hashes    []string        `json:"hashes,omitempty"`
	Tracker   *wireTracker    `json:"tracker,omitempty"`
}

type wireRecord struct {
	MsgTime time.Time   `json:"msg_time"`
	SrvTime time.Time   `json:"srv_time"`
	Fields  []wireField `json:"fields,omitempty"`
}

type wireField struct {
	Name  string          `json:"n"`
	Value json.RawMessage `json:"v"`
}

type wireTracker struct {
	ID        int64     `json:"id"`
	Label     string    `json:"label"`
	UserID    int64     `json:"user_id"`
	SourceID  int64     `json:"source_id"`
	DeviceID  string    `json:"device_id"`
	Model     string    `json:"model,omitempty"`
	Phone     string    `json:"phone,omitempty"`
	Blocked   bool      `json:"blocked,omitempty"`
	Deleted   bool      `json:"deleted,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

var kinds = map[string]bus.Kind{
	"state":     bus.KindState,
	"lifecycle": bus.KindLifecycle,
	"logout":    bus.KindLogout,
	"tracker":   bus.KindTracker,
}

// encode renders m for the log.
func encode(m *bus.Message, origin string) ([]byte, error) {
	w := wireMsg{
		V: wireVersion, Kind: m.Kind.String(), UserID: m.UserID, TrackerID: m.TrackerID, SourceID: m.SourceID,
		Origin: origin, Prev: m.Prev, Lifecycle: m.Lifecycle, Hashes: m.Hashes,
	}
	if m.State != nil {
		doc, err := store.EncodeState(m.State)
		if err != nil {
			return nil, fmt.Errorf("encode state: %w", err)
		}
		w.State = doc
	}
	if r := m.Record; r != nil {
		wr := &wireRecord{MsgTime: r.MsgTime.UTC(), SrvTime: r.SrvTime.UTC(), Fields: make([]wireField, len(r.Fields))}
		for i, f := range r.Fields {
			wr.Fields[i] = wireField{Name: f.Name, Value: f.Value}
		}
		w.Record = wr
	}
	if t := m.Tracker; t != nil {
		w.Tracker = &wireTracker{ID: t.ID, Label: t.Label, UserID: t.UserID, SourceID: t.SourceID, DeviceID: t.DeviceID,
			Model: t.Model, Phone: t.Phone, Blocked: t.Blocked, Deleted: t.Deleted, CreatedAt: t.CreatedAt.UTC()}
	}
	b, err := json.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("encode %s message: %w", w.Kind, err)
	}
	return b, nil
}

// decode reads a message of the log stored at seq.
func decode(data []byte, seq uint64) (*bus.Message, error) {
	var w wireMsg
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("decode bus message %d: %w", seq, err)
	}
	if w.V < 1 {
		return nil, fmt.Errorf("decode bus message %d: no version", seq)
	}
	k, ok := kinds[w.Kind]
	if !ok {
		return nil, fmt.Errorf("decode bus message %d: unknown kind %q", seq, w.Kind)
	}
	m := &bus.Message{
		Kind: k, UserID: w.UserID, TrackerID: w.TrackerID, SourceID: w.SourceID, Origin: w.Origin,
		Prev: w.Prev, Lifecycle: w.Lifecycle, Hashes: w.Hashes, Seq: seq,
	}
	if len(w.State) > 0 {
		s, err := store.DecodeState(w.TrackerID, w.State)
		if err != nil {
			return nil, fmt.Errorf("decode bus message %d: %w", seq, err)
		}
		s.SourceID = w.SourceID
		s.Seq = seq
		m.State = s
	}
	if k == bus.KindState && m.State == nil {
		return nil, fmt.Errorf("decode bus message %d: state message without a state", seq)
	}
	if wr := w.Record; wr != nil {
		r := &fleet.Record{MsgTime: wr.MsgTime, SrvTime: wr.SrvTime, Fields: make([]fleet.Field, len(wr.Fields))}
		for i, f := range wr.Fields {
			r.Fields[i] = fleet.Field{Name: f.Name, Value: []byte(f.Value)}
		}
		m.Record = r
	}
	if wt := w.Tracker; wt != nil {
		m.Tracker = &fleet.Tracker{ID: wt.ID, Label: wt.Label, UserID: wt.UserID, SourceID: wt.SourceID, DeviceID: wt.DeviceID,
			Model: wt.Model, Phone: wt.Phone, Blocked: wt.Blocked, Deleted: wt.Deleted, CreatedAt: wt.CreatedAt}
	}
	if k == bus.KindTracker && m.Tracker == nil {
		return nil, fmt.Errorf("decode bus message %d: tracker message without a tracker", seq)
	}
	return m, nil
}

// subjects names the subjects of one installation:
//
//	<prefix>.state.<user>.<tracker>      a tracker's states (a chain, see bus.Message.Prev)
//	<prefix>.lifecycle.<user>.<tracker>  block, unblock, corrupt
//	<prefix>.logout.<user>.0             ended sessions of a user
//	<prefix>.tracker.<user>.<tracker>    tracker metadata, followed by every node
//
// so a node follows a user with the one filter <prefix>.*.<user>.* and the
// store writer reads <prefix>.state.>. The stream takes <prefix>.*.*.*:
// every other subject of the installation has another number of tokens
// (the session journal <prefix>.journal.<id>, node requests
// <prefix>.node.<node>.<op>.req).
type subjects struct{ prefix string }

func (s subjects) of(m *bus.Message) string {
	key := m.TrackerID
	if m.Kind == bus.KindLogout {
		key = 0
	}
	return s.prefix + "." + m.Kind.String() + "." + strconv.FormatInt(m.UserID, 10) + "." + strconv.FormatInt(key, 10)
}

func (s subjects) state(userID, trackerID int64) string {
	return s.prefix + ".state." + strconv.FormatInt(userID, 10) + "." + strconv.FormatInt(trackerID, 10)
}

func (s subjects) user(userID int64) string {
	return s.prefix + ".*." + strconv.FormatInt(userID, 10) + ".*"
}

func (s subjects) all() []string { return []string{s.prefix + ".*.*.*"} }

func (s subjects) trackers() string { return s.prefix + ".tracker.*.*" }
func (s subjects) states() string   { return s.prefix + ".state.*.*" }

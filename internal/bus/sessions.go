package bus

import (
	"context"
	"errors"
	"time"
)

// A cluster keeps every client session where every node can find it, so
// that a client reconnecting to another node (after a cut, the death of
// its node, or a rolling restart) carries on there:
//
//   - the session record (SessionRecord): who the client is, what it
//     subscribed to, which node holds it now;
//   - the session journal (JournalEntry): every delivery of messages to
//     the client, written before the messages are, with the log positions
//     of the changes they carried;
//   - requests between nodes (Nodes): hand a session over, pass a client
//     message or a close request on to the node holding the session.

// ErrNoSession is returned for a session no node keeps.
var ErrNoSession = errors.New("bus: no such session")

// ErrSuperseded is returned by SaveSession and AppendJournal when another
// node has written the session since this one last did: it has taken the
// session over, and this node must let go of it.
var ErrSuperseded = errors.New("bus: session taken over by another node")

// ErrNoNode is returned by Nodes.Ask when the node does not answer (it is
// gone).
var ErrNoNode = errors.New("bus: node not reachable")

// SessionRecord is what a node needs to take a client session over.
type SessionRecord struct {
	// ID is the session's tracking id.
	ID string
	// Node is the node holding the session; empty once it was handed off
	// with nobody to take it yet.
	Node string
	// Addr and Secret are what the session is bound to (see the
	// atmosphere package's Binding).
	Addr   string
	Secret [32]byte
	// UserID is the user the session is bound to (0 before it subscribed)
	// and Hashes the credentials it subscribed with.
	UserID int64
	Hashes []string
	// State maps the trackers of state subscriptions to their format
	// (true: compact).
	State map[int64]bool
	// Batches are the rate-limited subscriptions.
	Batches []BatchRecord
	// Last is the number of the last message journaled when the record
	// was saved, and From the log position a node taking the session over
	// reads from to rebuild what was not journaled (see JournalEntry.From).
	Last, From uint64
	// Updated is when the record was saved.
	Updated time.Time
	// Rev is the record's revision in the store: set by LoadSession and
	// SaveSession. SaveSession of a record with a non-zero Rev succeeds only
	// if nobody saved it since.
	Rev uint64
}

// BatchRecord is one rate-limited subscription of a session.
type BatchRecord struct {
	// Type is the request type: state_batch, readings_batch, iot_monitor.
	Type string
	// All is set for target "all"; IDs lists the selected trackers.
	All bool
	IDs []int64
	// Compact is the format (state_batch).
	Compact bool
	// Every is the rate limit.
	Every time.Duration
	// SensorType and IncludeComponents filter readings_batch.
	SensorType        string
	IncludeComponents bool
}

// Pos names one change of the log a message carried: the subject (by
// kind and key: the tracker, or the user for a logout) and its sequence
// number.
type Pos struct {
	Kind Kind
	Key  int64
	Seq  uint64
}

// JournalEntry is one delivery of messages to a client.
type JournalEntry struct {
	// First is the number of the first message; Count how many there are.
	First uint64
	Count int
	// Msgs are the messages themselves, kept for a client that
	// acknowledges (it may ask for them again); nil otherwise.
	Msgs [][]byte
	// Pos are the changes the messages carried.
	Pos []Pos
	// From is the log position from which every change for the client not
	// yet journaled can be found: a node taking the session over reads the
	// log from there and skips the changes the journal shows delivered.
	From uint64
	// Seq is the entry's position in the journal (set by AppendJournal and
	// ReadJournal).
	Seq uint64
	// Writer names who appends: the node and the session's stay on it.
	// An append that finds, after its own last entry, one more of its own
	// writer (written, but its acknowledgement was lost with the
	// connection) goes on after that one instead of failing with
	// ErrSuperseded.
	Writer string
}

// Sessions stores session records and journals.
type Sessions interface {
	// SaveSession stores rec, replacing the session's record, and sets
	// rec.Rev. With a non-zero rec.Rev it fails with ErrSuperseded when the
	// record was saved by someone else since.
	SaveSession(ctx context.Context, rec *SessionRecord) error
	// LoadSession returns the session's record, or ErrNoSession.
	LoadSession(ctx context.Context, id string) (*SessionRecord, error)
	// DeleteSession removes the session's record and journal.
	DeleteSession(ctx context.Context, id string) error
	// AppendJournal adds one delivery to the session's journal and sets
	// e.Seq. With after non-zero it fails with ErrSuperseded unless the
	// journal's last entry is the one at after (the node's own last) or a
	// later one of e.Writer's.
	AppendJournal(ctx context.Context, id string, e *JournalEntry, after uint64) error
	// ReadJournal returns the session's journal, oldest delivery first.
	ReadJournal(ctx context.Context, id string) ([]*JournalEntry, error)
}

// Nodes carries requests about sessions between the nodes of a cluster.
type Nodes interface {
	// Ask sends op about session id (with body) to node and returns
	// whether that node held the session. It fails with ErrNoNode when the
	// node does not answer.
	Ask(ctx context.Context, node, op, id string, body []byte) (held bool, err error)
	// Serve answers this node's requests with fn until stop is called.
	Serve(fn func(op, id string, body []byte) (held bool)) (stop func(), err error)
}

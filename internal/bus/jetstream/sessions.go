package jetstream

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fleetwire/fleetwire/internal/bus"
)

// Sessions keeps the installation's client sessions: the records in the
// key-value bucket <prefix>_sessions (one key per tracking id, expiring
// after SessionTTL without a save), the journals in the stream
// <prefix>_journal (subject <prefix>.journal.<tracking id>, one message
// per delivery, kept as long as the records). Node requests go over core
// NATS on <prefix>.node.<node>.<op>.req.
type Sessions struct {
	b       *Bus
	kv      jetstream.KeyValue
	journal jetstream.Stream
	ttl     time.Duration
}

// SessionsOptions configure the session store.
type SessionsOptions struct {
	// TTL is how long a record lives after its last save (default 2m):
	// a session whose node died is taken over within it or not at all.
	TTL time.Duration
	// JournalEntries bounds the deliveries kept per session (default 4096).
	JournalEntries int64
	// JournalBytes bounds the size of all journals (default 1 GiB).
	JournalBytes int64
}

// Sessions opens (or creates) the installation's session bucket and
// journal stream.
func (b *Bus) Sessions(ctx context.Context, opts SessionsOptions) (*Sessions, error) {
	if opts.TTL <= 0 {
		opts.TTL = 2 * time.Minute
	}
	if opts.JournalEntries <= 0 {
		opts.JournalEntries = 4096
	}
	if opts.JournalBytes <= 0 {
		opts.JournalBytes = 1 << 30
	}
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      b.opts.Prefix + "_sessions",
		Description: "fleetwire client sessions, by tracking id",
		TTL:         opts.TTL,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    b.opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("session bucket: %w", err)
	}
	js, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              b.opts.Prefix + "_journal",
		Description:       "fleetwire session journals: what each client was delivered",
		Subjects:          []string{b.opts.Prefix + ".journal.*"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxAge:            opts.TTL,
		MaxMsgsPerSubject: opts.JournalEntries,
		MaxBytes:          opts.JournalBytes,
		Replicas:          b.opts.Replicas,
		AllowDirect:       true,
	})
	if err != nil {
		return nil, fmt.Errorf("journal stream: %w", err)
	}
	return &Sessions{b: b, kv: kv, journal: js, ttl: opts.TTL}, nil
}

// recordVersion is the "v" of the session records this node writes.
const recordVersion = 1

type wireSession struct {
	V       int            `json:"v"`
	ID      string         `json:"id"`
	Node    string         `json:"node,omitempty"`
	Addr    string         `json:"addr,omitempty"`
	Secret  string         `json:"secret,omitempty"`
	UserID  int64          `json:"user_id,omitempty"`
	Hashes  []string       `json:"hashes,omitempty"`
	State   map[int64]bool `json:"state,omitempty"`
	Batches []wireBatch    `json:"batches,omitempty"`
	Last    uint64         `json:"last,omitempty"`
	From    uint64         `json:"from,omitempty"`
	Updated time.Time      `json:"updated"`
}

type wireBatch struct {
	Type              string  `json:"type"`
	All               bool    `json:"all,omitempty"`
	IDs               []int64 `json:"ids,omitempty"`
	Compact           bool    `json:"compact,omitempty"`
	EveryMS           int64   `json:"every_ms"`
	SensorType        string  `json:"sensor_type,omitempty"`
	IncludeComponents bool    `json:"include_components,omitempty"`
}

func encodeRecord(r *bus.SessionRecord) ([]byte, error) {
	w := wireSession{V: recordVersion, ID: r.ID, Node: r.Node, Addr: r.Addr, UserID: r.UserID, Hashes: r.Hashes,
		State: r.State, Last: r.Last, From: r.From, Updated: r.Updated.UTC()}
	if r.Secret != [32]byte{} {
		w.Secret = hex.EncodeToString(r.Secret[:])
	}
	for _, b := range r.Batches {
		w.Batches = append(w.Batches, wireBatch{Type: b.Type, All: b.All, IDs: b.IDs, Compact: b.Compact,
			EveryMS: b.Every.Milliseconds(), SensorType: b.SensorType, IncludeComponents: b.IncludeComponents})
	}
	data, err := json.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("encode session record: %w", err)
	}
	return data, nil
}

func decodeRecord(data []byte) (*bus.SessionRecord, error) {
	var w wireSession
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("decode session record: %w", err)
	}
	if w.V < 1 || w.ID == "" {
		return nil, errors.New("decode session record: no version or id")
	}
	r := &bus.SessionRecord{ID: w.ID, Node: w.Node, Addr: w.Addr, UserID: w.UserID, Hashes: w.Hashes,
		State: w.State, Last: w.Last, From: w.From, Updated: w.Updated}
	if w.Secret != "" {
		s, err := hex.DecodeString(w.Secret)
		if err != nil || len(s) != 32 {
			return nil, errors.New("decode session record: bad secret digest")
		}
		copy(r.Secret[:], s)
	}
	for _, b := range w.Batches {
		r.Batches = append(r.Batches, bus.BatchRecord{Type: b.Type, All: b.All, IDs: b.IDs, Compact: b.Compact,
			Every: time.Duration(b.EveryMS) * time.Millisecond, SensorType: b.SensorType, IncludeComponents: b.IncludeComponents})
	}
	return r, nil
}

// SaveSession stores the session's record.
func (s *Sessions) SaveSession(ctx context.Context, rec *bus.SessionRecord) error {
	data, err := encodeRecord(rec)
	if err != nil {
		return err
	}
	var rev uint64
	if rec.Rev == 0 {
		rev, err = s.kv.Put(ctx, rec.ID, data)
	} else {
		rev, err = s.kv.Update(ctx, rec.ID, data, rec.Rev)
		if isWrongSequence(err) {
			return bus.ErrSuperseded
		}
	}
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	rec.Rev = rev
	return nil
}

// isWrongSequence tells a failed compare-and-set.
func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// LoadSession returns the session's record, or bus.ErrNoSession.
func (s *Sessions) LoadSession(ctx context.Context, id string) (*bus.SessionRecord, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, bus.ErrNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	r, err := decodeRecord(e.Value())
	if err != nil {
		return nil, err
	}
	r.Rev = e.Revision()
	return r, nil
}

// DeleteSession removes the session's record and journal.
func (s *Sessions) DeleteSession(ctx context.Context, id string) error {
	if err := s.kv.Purge(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete session: %w", err)
	}
	if err := s.journal.Purge(ctx, jetstream.WithPurgeSubject(s.subject(id))); err != nil {
		return fmt.Errorf("delete session journal: %w", err)
	}
	return nil
}

func (s *Sessions) subject(id string) string { return s.b.opts.Prefix + ".journal." + id }

// writerHeader carries a journal entry's Writer.
const writerHeader = "Fleetwire-Writer"

// AppendJournal adds one delivery to the session's journal.
//
// A publish whose acknowledgement was lost (NATS went away after storing
// it) leaves an entry the writer does not know of, and its next append,
// expecting its own last entry at after, is refused. The writer's name on
// each entry tells such an entry from one written by a node that took the
// session over: after its own, the append is made again.
func (s *Sessions) AppendJournal(ctx context.Context, id string, e *bus.JournalEntry, after uint64) error {
	msg := nats.NewMsg(s.subject(id))
	msg.Data = encodeJournal(e)
	if e.Writer != "" {
		msg.Header.Set(writerHeader, e.Writer)
	}
	for range 3 {
		var opts []jetstream.PublishOpt
		if after != 0 {
			opts = append(opts, jetstream.WithExpectLastSequencePerSubject(after))
		}
		ack, err := s.b.js.PublishMsg(ctx, msg, opts...)
		if err == nil {
			e.Seq = ack.Sequence
			return nil
		}
		if !isWrongSequence(err) {
			return fmt.Errorf("append journal: %w", err)
		}
		last, lerr := s.journal.GetLastMsgForSubject(ctx, msg.Subject)
		if lerr != nil {
			return fmt.Errorf("append journal: read its last entry: %w", lerr)
		}
		if e.Writer == "" || last.Header.Get(writerHeader) != e.Writer || last.Sequence <= after {
			return bus.ErrSuperseded
		}
		after = last.Sequence
	}
	return bus.ErrSuperseded
}

// ReadJournal returns the session's journal, oldest delivery first.
func (s *Sessions) ReadJournal(ctx context.Context, id string) ([]*bus.JournalEntry, error) {
	cons, err := s.journal.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.subject(id)}, InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	if cons.CachedInfo().NumPending == 0 {
		return nil, nil
	}
	var out []*bus.JournalEntry
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return out, fmt.Errorf("read journal: %w", err)
		}
		n, done := 0, false
		for msg := range batch.Messages() {
			n++
			e, err := decodeJournal(msg.Data())
			if err != nil {
				return out, fmt.Errorf("read journal: %w", err)
			}
			out = append(out, e)
			if md, err := msg.Metadata(); err == nil {
				e.Seq = md.Sequence.Stream
				if md.NumPending == 0 {
					done = true
					break
				}
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return out, fmt.Errorf("read journal: %w", err)
		}
		if done || n == 0 {
			return out, nil
		}
	}
}

// journalVersion is the first byte of a journal entry.
const journalVersion = 1

// encodeJournal writes e compactly: a version byte, then uvarints First,
// Count, From, the messages (count, then length and bytes each) and the
// positions (count, then kind byte, key varint and seq uvarint each).
func encodeJournal(e *bus.JournalEntry) []byte {
	n := 1 + 4*binary.MaxVarintLen64
	for _, m := range e.Msgs {
		n += binary.MaxVarintLen64 + len(m)
	}
	n += len(e.Pos) * (1 + 2*binary.MaxVarintLen64)
	b := make([]byte, 0, n)
	b = append(b, journalVersion)
	b = binary.AppendUvarint(b, e.First)
	b = binary.AppendUvarint(b, uint64(e.Count))
	b = binary.AppendUvarint(b, e.From)
	b = binary.AppendUvarint(b, uint64(len(e.Msgs)))
	for _, m := range e.Msgs {
		b = binary.AppendUvarint(b, uint64(len(m)))
		b = append(b, m...)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Pos)))
	for _, p := range e.Pos {
		b = append(b, byte(p.Kind))
		b = binary.AppendVarint(b, p.Key)
		b = binary.AppendUvarint(b, p.Seq)
	}
	return b
}

var errJournal = errors.New("malformed journal entry")

// decodeJournal reads an entry encodeJournal wrote.
func decodeJournal(b []byte) (*bus.JournalEntry, error) {
	if len(b) == 0 || b[0] != journalVersion {
		return nil, errJournal
	}
	b = b[1:]
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	e := &bus.JournalEntry{}
	var count, nmsg, npos uint64
	var ok bool
	if e.First, ok = uv(); !ok {
		return nil, errJournal
	}
	if count, ok = uv(); !ok || count > 1<<20 {
		return nil, errJournal
	}
	e.Count = int(count)
	if e.From, ok = uv(); !ok {
		return nil, errJournal
	}
	if nmsg, ok = uv(); !ok || nmsg > count || nmsg > uint64(len(b)) {
		return nil, errJournal
	}
	for range nmsg {
		l, ok := uv()
		if !ok || l > uint64(len(b)) {
			return nil, errJournal
		}
		e.Msgs = append(e.Msgs, b[:l:l])
		b = b[l:]
	}
	if npos, ok = uv(); !ok || npos > uint64(len(b)) {
		return nil, errJournal
	}
	e.Pos = make([]bus.Pos, 0, npos)
	for range npos {
		if len(b) == 0 {
			return nil, errJournal
		}
		k := bus.Kind(b[0])
		b = b[1:]
		key, n := binary.Varint(b)
		if n <= 0 {
			return nil, errJournal
		}
		b = b[n:]
		seq, ok := uv()
		if !ok {
			return nil, errJournal
		}
		e.Pos = append(e.Pos, bus.Pos{Kind: k, Key: key, Seq: seq})
	}
	if len(b) != 0 {
		return nil, errJournal
	}
	return e, nil
}

// Key returns the installation's secret named name (32 random bytes made
// by the first node that asks), kept in the bucket <prefix>_config.
func (b *Bus) Key(ctx context.Context, name string) ([]byte, error) {
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: b.opts.Prefix + "_config", Description: "fleetwire installation settings",
		History: 1, Storage: jetstream.FileStorage, Replicas: b.opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("config bucket: %w", err)
	}
	if e, err := kv.Get(ctx, name); err == nil {
		return e.Value(), nil
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if _, err := kv.Create(ctx, name, key); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	// Whoever created it first, this is the key.
	e, err := kv.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return e.Value(), nil
}

// Ask sends op about session id to node and returns whether it held the
// session.
func (s *Sessions) Ask(ctx context.Context, node, op, id string, body []byte) (bool, error) {
	payload := binary.AppendUvarint(nil, uint64(len(id)))
	payload = append(append(payload, id...), body...)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	reply, err := s.b.nc.RequestWithContext(ctx, s.nodeSubject(node, op), payload)
	if errors.Is(err, nats.ErrNoResponders) {
		return false, bus.ErrNoNode
	}
	if err != nil {
		return false, fmt.Errorf("ask node %s to %s: %w", node, op, err)
	}
	return len(reply.Data) == 1 && reply.Data[0] == '1', nil
}

func (s *Sessions) nodeSubject(node, op string) string {
	return s.b.opts.Prefix + ".node." + node + "." + op + ".req"
}

// Serve answers this node's requests with fn.
func (s *Sessions) Serve(fn func(op, id string, body []byte) bool) (func(), error) {
	sub, err := s.b.nc.Subscribe(s.nodeSubject(s.b.opts.Node, "*"), func(m *nats.Msg) {
		op := tokenAt(m.Subject, 3)
		l, n := binary.Uvarint(m.Data)
		if n <= 0 || l > uint64(len(m.Data)-n) {
			_ = m.Respond([]byte{'0'})
			return
		}
		id := string(m.Data[n : n+int(l)])
		held := fn(op, id, m.Data[n+int(l):])
		ans := byte('0')
		if held {
			ans = '1'
		}
		_ = m.Respond([]byte{ans})
	})
	if err != nil {
		return nil, fmt.Errorf("serve node requests: %w", err)
	}
	if err := s.b.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("serve node requests: %w", err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// tokenAt returns the i-th dot-separated token of subject.
func tokenAt(subject string, i int) string {
	start := 0
	for j := 0; j < len(subject); j++ {
		if subject[j] == '.' {
			if i == 0 {
				return subject[start:j]
			}
			i--
			start = j + 1
		}
	}
	if i == 0 {
		return subject[start:]
	}
	return ""
}

var (
	_ bus.Sessions = (*Sessions)(nil)
	_ bus.Nodes    = (*Sessions)(nil)
)

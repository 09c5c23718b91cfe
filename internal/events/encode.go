package events

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/state"
)

// Messages are built by appending to byte slices: every subscriber that
// gets the same event in the same format and time zone shares one encoding.

func appendEventHead(dst []byte, event string, now time.Time, loc *time.Location) []byte {
	dst = append(dst, `{"type":"event","event":"`...)
	dst = append(dst, event...)
	dst = append(dst, `","user_time":`...)
	dst = fleet.AppendDateTime(dst, now, loc)
	return append(dst, `,"data":`...)
}

// encodeState is a state event for s.
func encodeState(s *fleet.State, now time.Time, loc *time.Location, compact bool) []byte {
	b := make([]byte, 0, 768)
	b = appendEventHead(b, TypeState, now, loc)
	b = fleet.AppendState(b, s, loc, compact)
	return append(b, '}')
}

// encodeLifecycle is a lifecycle event.
func encodeLifecycle(sourceID int64, kind string) []byte {
	b := make([]byte, 0, 96)
	b = append(b, `{"type":"event","event":"lifecycle","data":{"source_id":`...)
	b = strconv.AppendInt(b, sourceID, 10)
	b = append(b, `,"lifecycle_event":`...)
	b = fleet.AppendString(b, kind)
	return append(b, `}}`...)
}

// ResetNotice is the first message of an event session opened because
// the client's tracking id could not be honoured (its session ended or
// expired, or the request did not show what the session is bound to): an
// error in the API's format (code 4, session ended) telling the client to
// subscribe again.
var ResetNotice = []byte(`{"type":"error","action":null,"status":{"code":4,"description":"User or API key not found or session ended: the event session was not resumed, subscribe again"},"data":null}`)

var logoutEvent = []byte(`{"type":"event","event":"logout","data":"session closed"}`)

// encodeError is an error message in the API's shape. action "" is null.
func encodeError(action string, e *apierr.Error, data json.RawMessage) []byte {
	b := make([]byte, 0, 128+len(data))
	b = append(b, `{"type":"error","action":`...)
	if action == "" {
		b = append(b, "null"...)
	} else {
		b = fleet.AppendString(b, action)
	}
	b = append(b, `,"status":{"code":`...)
	b = strconv.AppendInt(b, int64(e.Code), 10)
	b = append(b, `,"description":`...)
	b = fleet.AppendString(b, e.Description)
	b = append(b, '}')
	if len(data) > 0 && json.Valid(data) {
		// The echo goes out in a text frame, which must be UTF-8;
		// invalid bytes can only sit inside JSON strings.
		if !utf8.Valid(data) {
			data = bytes.ToValidUTF8(data, []byte("\uFFFD"))
		}
		b = append(b, `,"data":`...)
		b = append(b, data...)
	}
	return append(b, '}')
}

// subResult is one entry of a response's data map.
type subResult struct {
	typ    string
	err    *apierr.Error
	status map[int64]string // tracker id → normal | blocked | unknown | disallowed
}

// encodeResponse is the response to a subscribe or unsubscribe action.
func encodeResponse(action string, results []subResult) []byte {
	b := make([]byte, 0, 256)
	b = append(b, `{"type":"response","action":`...)
	b = fleet.AppendString(b, action)
	b = append(b, `,"events":[`...)
	for i, r := range results {
		if i > 0 {
			b = append(b, ',')
		}
		b = fleet.AppendString(b, r.typ)
	}
	b = append(b, `],"data":{`...)
	for i, r := range results {
		if i > 0 {
			b = append(b, ',')
		}
		b = fleet.AppendString(b, r.typ)
		if r.err != nil {
			b = append(b, `:{"success":false,"status":{"code":`...)
			b = strconv.AppendInt(b, int64(r.err.Code), 10)
			b = append(b, `,"description":`...)
			b = fleet.AppendString(b, r.err.Description)
			b = append(b, `}}`...)
			continue
		}
		b = append(b, `:{"success":true,"value":{`...)
		ids := make([]int64, 0, len(r.status))
		for id := range r.status {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for j, id := range ids {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = strconv.AppendInt(b, id, 10)
			b = append(b, `":"`...)
			b = append(b, r.status[id]...)
			b = append(b, '"')
		}
		b = append(b, `}}`...)
	}
	return append(b, `}}`...)
}

// stateEncoder caches the encodings of one published state, one per
// format and time zone it is delivered in.
type stateEncoder struct {
	s   *fleet.State
	now time.Time

	mu       sync.Mutex
	variants []variant
}

type variant struct {
	zone    string
	compact bool
	b       []byte
}

func (e *stateEncoder) event(loc *time.Location, zone string, compact bool) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, v := range e.variants {
		if v.compact == compact && v.zone == zone {
			return v.b
		}
	}
	b := encodeState(e.s, e.now, loc, compact)
	e.variants = append(e.variants, variant{zone: zone, compact: compact, b: b})
	return b
}

// entryCache keeps, per tracker, the encoded state of its latest state in
// each format and zone, for building batches without encoding a state
// twice. A tracker's buffers are reused when its state changes, so a
// fleet that moves all the time costs no allocation per entry; readers
// copy an entry under its shard's lock.
type entryCache struct {
	shards [64]entryShard
}

type entryShard struct {
	mu sync.Mutex
	m  map[int64]*entries
}

// entries are one tracker's encodings, one per format and zone it has
// been delivered in; an encoding of an older state is stale and is
// rewritten in place when next asked for.
type entries struct {
	variants []entryVariant
}

type entryVariant struct {
	s *fleet.State // the state b encodes
	variant
}

// appendEntry appends the encoding of s (the current state of tracker id)
// to dst.
func (c *entryCache) appendEntry(dst []byte, id int64, s *fleet.State, loc *time.Location, zone string, compact bool) []byte {
	sh := &c.shards[uint64(id)%uint64(len(c.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m == nil {
		sh.m = make(map[int64]*entries)
	}
	e := sh.m[id]
	if e == nil {
		e = &entries{}
		sh.m[id] = e
	}
	var v *entryVariant
	for i := range e.variants {
		if e.variants[i].compact == compact && e.variants[i].zone == zone {
			v = &e.variants[i]
			break
		}
	}
	if v == nil {
		e.variants = append(e.variants, entryVariant{variant: variant{zone: zone, compact: compact}})
		v = &e.variants[len(e.variants)-1]
	} else if v.s == s {
		return append(dst, v.b...)
	}
	start := len(dst)
	dst = fleet.AppendState(dst, s, loc, compact)
	v.s = s
	v.b = append(v.b[:0], dst[start:]...)
	return dst
}

func (c *entryCache) forget(id int64) {
	sh := &c.shards[uint64(id)%uint64(len(c.shards))]
	sh.mu.Lock()
	delete(sh.m, id)
	sh.mu.Unlock()
}

// appendIoT appends one iot_last_values entry: the attributes of a
// tracker's last messages (newest first), as two queues per attribute:
// nonnull_fields holds only the messages that carried it, all_fields one
// entry per message with null where it was missing.
func appendIoT(dst []byte, id int64, msgs []state.Message) []byte {
	dst = append(dst, `{"tracker_id":`...)
	dst = strconv.AppendInt(dst, id, 10)
	var names []string
	for _, m := range msgs {
		for _, f := range m.Fields {
			if !slices.Contains(names, f.Name) {
				names = append(names, f.Name)
			}
		}
	}
	slices.Sort(names)
	value := func(m *state.Message, name string) []byte {
		for _, f := range m.Fields {
			if f.Name == name {
				return f.Value
			}
		}
		return nil
	}
	entry := func(dst []byte, m *state.Message, v []byte) []byte {
		dst = append(dst, `{"msg_time":"`...)
		dst = m.MsgTime.UTC().AppendFormat(dst, time.RFC3339)
		dst = append(dst, `","srv_time":"`...)
		dst = m.SrvTime.UTC().AppendFormat(dst, time.RFC3339)
		dst = append(dst, `","value":`...)
		if v == nil {
			v = []byte("null")
		}
		dst = append(dst, v...)
		return append(dst, '}')
	}
	for _, gaps := range []bool{false, true} {
		if gaps {
			dst = append(dst, `,"all_fields":{`...)
		} else {
			dst = append(dst, `,"nonnull_fields":{`...)
		}
		for i, name := range names {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = fleet.AppendString(dst, name)
			dst = append(dst, `:[`...)
			n := 0
			for j := range msgs {
				v := value(&msgs[j], name)
				if v == nil && !gaps {
					continue
				}
				if n > 0 {
					dst = append(dst, ',')
				}
				dst = entry(dst, &msgs[j], v)
				n++
			}
			dst = append(dst, ']')
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// batchCache holds the state_batch messages built in one hub tick, keyed
// by the trackers they carry, format and zone.
// It is safe for concurrent use; two clients missing the same batch at
// once may both build it, which costs time, not correctness.
type batchCache struct {
	mu sync.Mutex
	m  map[batchKey][]*cachedBatch
}

type batchKey struct {
	hash    uint64
	n       int
	compact bool
	zone    string
}

type cachedBatch struct {
	ids     []int64
	key     batchKey
	msgs    [][]byte
	entries []int
	pos     [][]bus.Pos // per message, in a cluster
}

func newBatchCache() *batchCache { return &batchCache{m: map[batchKey][]*cachedBatch{}} }

func (bc *batchCache) reset() {
	bc.mu.Lock()
	clear(bc.m)
	bc.mu.Unlock()
}

// lookup finds the batch for ids (sorted); on a miss it returns an empty
// entry for the caller to fill and store.
func (bc *batchCache) lookup(ids []int64, compact bool, zone string) (*cachedBatch, bool) {
	h := uint64(14695981039346656037)
	for _, id := range ids {
		h ^= uint64(id)
		h *= 1099511628211
	}
	k := batchKey{hash: h, n: len(ids), compact: compact, zone: zone}
	bc.mu.Lock()
	defer bc.mu.Unlock()
	for _, cb := range bc.m[k] {
		if slices.Equal(cb.ids, ids) {
			return cb, true
		}
	}
	return &cachedBatch{ids: ids, key: k}, false
}

func (bc *batchCache) store(cb *cachedBatch) {
	bc.mu.Lock()
	bc.m[cb.key] = append(bc.m[cb.key], cb)
	bc.mu.Unlock()
}

package events

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/outbox"
	"github.com/fleetwire/fleetwire/internal/readings"
)

// Subscription statuses of a tracker in a response.
const (
	StatusNormal     = "normal"
	StatusBlocked    = "blocked"
	StatusUnknown    = "unknown"
	StatusDisallowed = "disallowed"
)

// Close codes the hub ends a session with.
const (
	CloseNormal    = 1000
	CloseGoingAway = 1001
	CloseTooSlow   = 1008
	CloseQueueFull = 1013
)

// Client is one event API session. It implements the Atmosphere session
// contract: the transport drains Outbox and feeds Receive.
type Client struct {
	hub *Hub
	out *outbox.Queue

	mu        sync.Mutex
	closed    bool
	followed  bool // holds the hub's follow of user
	handedOff bool
	uid       int64 // the user the client is bound to; 0 until its first subscription
	loc       *time.Location
	zone      string
	hashes    []string

	state   map[int64]bool     // tracker id → compact format
	batches [3]*batchSub       // by batch kind: state_batch, readings_batch, iot_monitor
	lag     map[int64]struct{} // trackers with merged state events to send
	// since holds, for a tracker whose state event went out as a
	// subscription's first state, that state's log position: changes up
	// to it, still on their way to the client, are not sent after it.
	since map[int64]uint64

	overSince   int64 // unix nanoseconds since the queue has been over the soft limit without draining; 0 while not
	overDrained uint64

	tick int64 // the count of the hub tick that last handled the client; Run's alone

	id      string        // tracking id
	lagFrom uint64        // the oldest change merged into c.lag
	cl      *clusterState // in a cluster only (hub.opts.Sessions set and a tracking id)
}

// clusterState is what a client keeps in a cluster only (see cluster.go),
// apart so that a single node's clients do not carry it.
type clusterState struct {
	writer        string // names this node's stay of the session in its journal
	rec           bus.SessionRecord
	lastJournaled uint64
	journalSeq    uint64            // the journal's last entry, as this node wrote or read it
	catching      bool              // replaying the log after a take-over
	replayedTo    uint64            // while catching up: the log is replayed up to here
	droppedMax    uint64            // the newest live change dropped while catching up
	liveFrom      uint64            // live changes up to here were replayed
	delivered     map[posKey]uint64 // while catching up: what the journal shows delivered
}

// Batch kinds, indexes into Client.batches.
const (
	kindState = iota
	kindReadings
	kindIoT
)

// batchKind is the batch kind of subscription type typ; false for a type
// that is not a batch.
func batchKind(typ string) (uint8, bool) {
	switch typ {
	case TypeStateBatch:
		return kindState, true
	case TypeReadingsBatch:
		return kindReadings, true
	case TypeIoTMonitor:
		return kindIoT, true
	}
	return 0, false
}

// batchSub is a rate-limited subscription: state_batch, readings_batch or
// iot_monitor. Changed trackers accumulate in pending and go out together
// at most once per every.
type batchSub struct {
	kind       uint8 // kindState, kindReadings or kindIoT
	all        bool
	compact    bool
	streamInit bool // state_batch: the stream answers a subscription and has sent nothing yet
	ids        map[int64]struct{}
	every      time.Duration
	pending    map[int64]struct{}
	next       time.Time
	// pendingFrom is the oldest change behind pending (in a cluster).
	pendingFrom uint64

	// state_batch only: a batch larger than one message goes out in
	// pieces as the client takes them (see streamStateBatch).
	stream     []int64  // trackers of the batch being streamed, not yet encoded
	streamFrom uint64   // the oldest change behind stream (in a cluster)
	inflight   []uint64 // outbox sequence numbers of this batch's queued messages

	// rd is what readings_batch alone keeps; nil for the other kinds.
	rd *readingsSub
}

// readingsSub is the rest of a readings_batch subscription: its filter and
// when each tracker's readings last went out. It lives apart so that the
// other batches, the most of them, do not carry it.
type readingsSub struct {
	filter   readings.Filter // Since is taken from lastSent per tracker
	lastSent map[int64]time.Time
}

func newReadingsSub(sensorType string, includeComponents bool) *readingsSub {
	return &readingsSub{
		filter:   readings.Filter{SensorType: sensorType, ExcludeComponents: !includeComponents},
		lastSent: map[int64]time.Time{},
	}
}

// sensorFilter is the subscription's sensor type and whether it includes
// composite sensors' parts, as the request gave them (none and all for the
// kinds without a filter).
func (b *batchSub) sensorFilter() (sensorType string, includeComponents bool) {
	if b.rd == nil {
		return "", true
	}
	return b.rd.filter.SensorType, !b.rd.filter.ExcludeComponents
}

func (b *batchSub) includes(id int64) bool {
	if b.all {
		return true
	}
	_, ok := b.ids[id]
	return ok
}

// Bound reports whether the client has subscribed with a valid credential
// (atmosphere.Binder).
func (c *Client) Bound() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.uid != 0
}

// Outbox is the queue of encoded messages for the transport.
func (c *Client) Outbox() *outbox.Queue { return c.out }

// Receive handles one client message.
func (c *Client) Receive(msg []byte) {
	msg = bytes.TrimSpace(msg)
	if len(msg) == 0 || string(msg) == "X" {
		return
	}
	if len(msg) > c.hub.opts.MaxFrame {
		c.sendError("", apierr.TooLarge.With("message exceeds the frame limit"), nil)
		return
	}
	a, err := ParseAction(msg)
	if err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			c.sendError(pe.Action, pe.Err, pe.Data)
		} else {
			c.sendError("", apierr.WrongRequestFormat, nil)
		}
		return
	}
	action := ActionName(a.Name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	user, _, err := c.hub.auth.Resolve(ctx, a.Hash)
	if err != nil {
		c.sendError(action, apierr.From(err), a.Raw)
		return
	}
	c.mu.Lock()
	bound := c.uid != 0
	c.mu.Unlock()
	if !bound {
		// The first subscription binds the client to its user: make the
		// picture of the user's trackers current before answering it.
		if err := c.hub.follow(ctx, user.ID); err != nil {
			c.hub.opts.Logger.Warn("events: follow user", "user", user.ID, "err", err)
			c.sendError(action, apierr.Unexpected.With("the fleet's state is unavailable, try again"), a.Raw)
			return
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !bound {
		if c.closed || c.uid != 0 {
			// Closed, or bound by a concurrent message, meanwhile.
			c.hub.unfollow(user.ID)
		} else {
			c.followed = true
		}
	}
	if c.closed {
		return
	}
	if c.uid != 0 && c.uid != user.ID {
		c.sendErrorLocked(action, apierr.AccessDenied.With("this connection belongs to another user"), a.Raw)
		return
	}
	if c.uid == 0 {
		c.uid = user.ID
		c.loc = user.Location()
		c.zone = c.loc.String()
	}
	if !slices.Contains(c.hashes, a.Hash) {
		c.hashes = append(c.hashes, a.Hash)
	}
	if a.Name == ActionSubscribe {
		c.subscribe(a)
	} else {
		c.unsubscribe(a)
	}
}

func (c *Client) sendError(action string, e *apierr.Error, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sendErrorLocked(action, e, data)
}

func (c *Client) sendErrorLocked(action string, e *apierr.Error, data []byte) {
	mErrors.Inc()
	c.push(encodeError(action, e, data))
}

// push queues msg; a full queue closes the client. Callers hold c.mu.
func (c *Client) push(msg []byte) bool { return c.pushPos(msg, nil) }

// pushPos queues msg with the log positions of the changes it carries
// (kept only in a cluster, for the session journal).
func (c *Client) pushPos(msg []byte, pos []bus.Pos) bool {
	_, ok := c.pushSeq(msg, pos)
	return ok
}

// pushSeq is pushPos that also returns the message's outbox sequence
// number.
func (c *Client) pushSeq(msg []byte, pos []bus.Pos) (uint64, bool) {
	seq, err := c.pushSeqBelow(msg, pos, 0)
	return seq, err == nil
}

// pushBelow is pushPos unless the client's queue holds soft messages or
// more: then nothing is queued and behind is true.
func (c *Client) pushBelow(msg []byte, pos []bus.Pos, soft int) (pushed, behind bool) {
	_, err := c.pushSeqBelow(msg, pos, soft)
	return err == nil, errors.Is(err, outbox.ErrBehind)
}

// pushSeqBelow queues msg unless the queue holds soft messages or more
// (soft > 0). A full queue closes the client.
func (c *Client) pushSeqBelow(msg []byte, pos []bus.Pos, soft int) (uint64, error) {
	if c.closed {
		return 0, outbox.ErrClosed
	}
	var meta any
	if pos != nil {
		meta = pos
	}
	seq, err := c.out.PushSeqBelow(msg, meta, soft)
	if errors.Is(err, outbox.ErrBehind) {
		return 0, err
	}
	if err != nil {
		mDropped.Inc()
		if errors.Is(err, outbox.ErrFull) {
			c.closeLocked(CloseQueueFull, "client queue full")
		}
		return 0, err
	}
	return seq, nil
}

func (c *Client) status(id int64) string {
	t, ok := c.hub.dir.Tracker(id)
	switch {
	case !ok || t.Deleted || t.UserID != c.uid:
		return StatusUnknown
	case t.Blocked:
		return StatusBlocked
	}
	return StatusNormal
}

// selected is the set of explicitly selected trackers, which the hub
// indexes per tracker.
func (c *Client) selected() map[int64]struct{} {
	set := make(map[int64]struct{}, len(c.state))
	for id := range c.state {
		set[id] = struct{}{}
	}
	for _, b := range c.batches {
		if b != nil && !b.all {
			for id := range b.ids {
				set[id] = struct{}{}
			}
		}
	}
	return set
}

// anyAll reports whether a batch subscription targets all trackers.
func (c *Client) anyAll() bool {
	for _, b := range c.batches {
		if b != nil && b.all {
			return true
		}
	}
	return false
}

func (c *Client) hasBatch() bool {
	for _, b := range c.batches {
		if b != nil {
			return true
		}
	}
	return false
}

// reindex brings the hub's indexes in line after a change from before.
func (c *Client) reindex(before map[int64]struct{}, hadState, hadBatch bool) {
	after := c.selected()
	var add, remove []int64
	for id := range after {
		if _, ok := before[id]; !ok {
			add = append(add, id)
		}
	}
	for id := range before {
		if _, ok := after[id]; !ok {
			remove = append(remove, id)
		}
	}
	c.hub.index(c, c.uid, add, remove, c.anyAll(), !c.closed)
	gauge(mSubsState, hadState, len(c.state) > 0)
	gauge(mSubsBatch, hadBatch, c.hasBatch())
}

func gauge(g interface{ Add(int64) }, before, after bool) {
	switch {
	case !before && after:
		g.Add(1)
	case before && !after:
		g.Add(-1)
	}
}

func (c *Client) subscribe(a *Action) {
	before, hadState, hadBatch := c.selected(), len(c.state) > 0, c.hasBatch()
	now := c.hub.opts.Now()
	var results []subResult
	var initState []int64
	var stateCompact map[int64]bool
	var initBatch [3]bool
	for _, r := range a.Requests {
		res := subResult{typ: r.Type, status: map[int64]string{}}
		switch r.Type {
		case TypeState:
			if c.state == nil {
				c.state = make(map[int64]bool, len(r.Trackers))
			}
			if stateCompact == nil {
				stateCompact = make(map[int64]bool)
			}
			for _, id := range r.Trackers {
				st := c.status(id)
				res.status[id] = st
				if st == StatusUnknown {
					continue
				}
				c.state[id] = r.Compact
				if st == StatusNormal {
					if _, seen := stateCompact[id]; !seen {
						initState = append(initState, id)
					}
					stateCompact[id] = r.Compact
				}
			}
		case TypeStateBatch, TypeReadingsBatch, TypeIoTMonitor:
			kind, _ := batchKind(r.Type)
			b := &batchSub{kind: kind, all: r.Target.All, compact: r.Compact, every: c.rate(r.RateLimit)}
			if b.kind == kindReadings {
				b.rd = newReadingsSub(r.SensorType, r.IncludeComponents)
			}
			ids := r.Target.TrackerIDs
			if b.all {
				ids = ids[:0:0]
				for _, t := range c.hub.dir.Trackers(c.uid) {
					ids = append(ids, t.ID)
				}
			}
			for _, id := range ids {
				st := c.status(id)
				res.status[id] = st
				if st != StatusUnknown && !b.all {
					b.ids = addID(b.ids, id)
				}
			}
			c.batches[b.kind] = b
			initBatch[b.kind] = true
		default:
			res.err = apierr.NotSupported.With(r.Type + " subscriptions are not available on this server")
		}
		results = mergeResult(results, res)
	}
	c.reindex(before, hadState, hadBatch)
	// In a cluster the record is saved before the answer goes out: a node
	// taking the session over must know what the client was told.
	c.saveLocked()
	if !c.push(encodeResponse(ActionName(ActionSubscribe), results)) {
		return
	}
	for _, id := range initState {
		if s, ok := c.hub.dir.State(id); ok {
			// An initial state is a snapshot, not the delivery of a change:
			// it carries no position, so a node taking the session over
			// still delivers the changes it skipped.
			if c.push(encodeState(s, now, c.loc, stateCompact[id])) {
				mEventsState.Inc()
				// Only behind delivery workers (a single node): in a
				// cluster a first state is a snapshot, and the changes
				// before it are still delivered (see Client.from).
				if s.Seq > 0 && c.hub.async != nil {
					if c.since == nil {
						c.since = make(map[int64]uint64)
					}
					c.since[id] = s.Seq
				}
			}
		}
	}
	for kind, init := range initBatch {
		b := c.batches[kind]
		if !init || b == nil {
			continue
		}
		ids := c.batchIDs(b)
		// A state_batch answer larger than one message streams in pieces
		// as the client takes them. In a cluster the answer goes out whole:
		// a snapshot's rest could not be found again by a node taking the
		// session over.
		if kind == kindState && len(ids) > c.hub.opts.MaxBatch && c.cl == nil {
			b.stream, b.streamFrom, b.streamInit = ids, 0, true
			c.streamStateBatch(b, now)
			if len(b.stream) > 0 {
				c.hub.markDue(c)
			}
		} else if kind == kindState {
			b.inflight = c.pushStateBatch(ids, b.compact, now, true, b.inflight[:0])
		} else {
			c.pushBatch(b, ids, now, true)
		}
		clear(b.pending)
		b.next = nextBatch(now, b.every, c.hub.opts.MinRateLimit)
	}
}

// batchIDs lists the trackers b covers, in order.
func (c *Client) batchIDs(b *batchSub) []int64 {
	ids := make([]int64, 0, len(b.ids))
	if b.all {
		for _, t := range c.hub.dir.Trackers(c.uid) {
			ids = append(ids, t.ID)
		}
		return ids
	}
	for id := range b.ids {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (c *Client) rate(d time.Duration) time.Duration {
	if d == 0 {
		return c.hub.opts.DefaultRateLimit
	}
	return max(d, c.hub.opts.MinRateLimit)
}

// mergeResult adds r to results, merging it into an earlier entry of the
// same type.
func mergeResult(results []subResult, r subResult) []subResult {
	for i := range results {
		if results[i].typ == r.typ {
			if r.err != nil {
				results[i].err = r.err
			}
			for id, st := range r.status {
				results[i].status[id] = st
			}
			return results
		}
	}
	return append(results, r)
}

func (c *Client) unsubscribe(a *Action) {
	before, hadState, hadBatch := c.selected(), len(c.state) > 0, c.hasBatch()
	var results []subResult
	for _, r := range a.Requests {
		res := subResult{typ: r.Type, status: map[int64]string{}}
		switch r.Type {
		case TypeState:
			for _, id := range r.Trackers {
				res.status[id] = c.status(id)
				delete(c.state, id)
				delete(c.lag, id)
				delete(c.since, id)
			}
		case TypeStateBatch, TypeReadingsBatch, TypeIoTMonitor:
			kind, _ := batchKind(r.Type)
			b := c.batches[kind]
			if r.Target.All {
				for _, t := range c.hub.dir.Trackers(c.uid) {
					res.status[t.ID] = c.status(t.ID)
				}
				c.batches[kind] = nil
				break
			}
			for _, id := range r.Target.TrackerIDs {
				res.status[id] = c.status(id)
				if b != nil && !b.all {
					delete(b.ids, id)
					delete(b.pending, id)
				}
			}
			if b != nil && !b.all && len(b.ids) == 0 {
				c.batches[kind] = nil
			}
		default:
			res.err = apierr.NotSupported.With(r.Type + " subscriptions are not available on this server")
		}
		results = mergeResult(results, res)
	}
	c.reindex(before, hadState, hadBatch)
	c.saveLocked()
	c.push(encodeResponse(ActionName(ActionUnsubscribe), results))
}

func (c *Client) onState(m *bus.Message, enc *stateEncoder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.skipLive(m) {
		return
	}
	c.takeState(m, enc)
}

// takeState handles a state change for the client. Callers hold c.mu.
func (c *Client) takeState(m *bus.Message, enc *stateEncoder) {
	id := m.TrackerID
	compact, ok := c.state[id]
	if seq, seen := c.since[id]; ok && seen {
		if m.Seq <= seq {
			ok = false // the client has this state, or a newer one, already
		} else {
			delete(c.since, id)
		}
	}
	if ok {
		// Behind: states merged earlier wait, or the queue is past the
		// soft limit (learnt by the push itself, under the queue's one lock).
		behind := len(c.lag) > 0
		if !behind {
			var pushed bool
			pushed, behind = c.pushBelow(enc.event(c.loc, c.zone, compact), c.posOf(bus.KindState, id, m.Seq), c.hub.opts.SoftQueue)
			if pushed {
				mEventsState.Inc()
				observe(enc.now, m.State)
			}
		}
		if behind {
			if c.lag == nil {
				c.lag = make(map[int64]struct{})
			}
			if len(c.lag) == 0 || m.Seq < c.lagFrom {
				c.lagFrom = m.Seq
			}
			c.lag[id] = struct{}{}
			mMerged.Inc()
			c.hub.markDue(c)
		}
	}
	for _, b := range c.batches {
		if b != nil && b.includes(id) {
			if len(b.pending) == 0 {
				c.hub.markDue(c)
				b.pendingFrom = m.Seq
			} else if m.Seq < b.pendingFrom {
				b.pendingFrom = m.Seq
			}
			b.pending = addID(b.pending, id)
		}
	}
}

func observe(now time.Time, s *fleet.State) {
	if !s.IngestedAt.IsZero() {
		mLatency.Observe(now.Sub(s.IngestedAt).Seconds())
	}
}

func (c *Client) onLifecycle(m *bus.Message, msg []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.skipLive(m) {
		return
	}
	c.takeLifecycle(m, msg)
}

// takeLifecycle handles a lifecycle event for the client. Callers hold c.mu.
func (c *Client) takeLifecycle(m *bus.Message, msg []byte) {
	id := m.TrackerID
	_, inState := c.state[id]
	b := c.batches[kindState]
	r := c.batches[kindReadings]
	if inState || (b != nil && b.includes(id)) || (r != nil && r.includes(id)) {
		if c.pushPos(msg, c.posOf(bus.KindLifecycle, id, m.Seq)) {
			mEventsLifecycle.Inc()
		}
	}
}

// onLogout ends the client if one of hashes is the digest
// (fleet.CredentialDigest) of its credential (every session of the user
// when hashes is empty). m is the logout message, or
// nil when the hub found the session ended.
func (c *Client) onLogout(m *bus.Message, hashes []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m != nil && c.skipLive(m) {
		return
	}
	if c.closed || c.uid == 0 {
		return
	}
	c.takeLogout(m, hashes)
}

// takeLogout handles a logout for the client. Callers hold c.mu.
func (c *Client) takeLogout(m *bus.Message, hashes []string) {
	ended := len(hashes) == 0
	// A logout names credentials by their digests.
	for _, h := range c.hashes {
		if slices.Contains(hashes, fleet.CredentialDigest(h)) {
			ended = true
			break
		}
	}
	if !ended {
		return
	}
	var pos []bus.Pos
	if m != nil {
		pos = c.posOf(bus.KindLogout, m.UserID, m.Seq)
	}
	if c.pushPos(logoutEvent, pos) {
		mEventsLogout.Inc()
	}
	c.closeLocked(CloseNormal, "session closed")
}

func (c *Client) hashList() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.hashes)
}

// flush sends merged states and due batches. It reports whether the
// client still has something waiting.
func (c *Client) flush(now time.Time, cache *batchCache) (wake time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return time.Time{}
	}
	soft := c.hub.opts.SoftQueue
	retry := now.Add(c.hub.opts.MinRateLimit)
	later := func(t time.Time) {
		if wake.IsZero() || t.Before(wake) {
			wake = t
		}
	}
	if len(c.lag) > 0 {
		if c.out.Len() <= soft/2 {
			ids := make([]int64, 0, len(c.lag))
			for id := range c.lag {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			// Dropped rather than cleared: a map's header is one more
			// cache miss in every delivery that checks it (len).
			c.lag = nil
			for _, id := range ids {
				compact, ok := c.state[id]
				s, live := c.hub.dir.State(id)
				if !ok || !live || c.status(id) != StatusNormal {
					continue
				}
				if c.pushPos(encodeState(s, now, c.loc, compact), c.posOf(bus.KindState, id, s.Seq)) {
					mEventsState.Inc()
					observe(now, s)
				}
			}
		} else {
			later(retry)
		}
	}
	for _, b := range c.batches {
		if b != nil && b.kind == kindState {
			c.flushStateBatch(b, now, cache, later, retry)
			continue
		}
		if b == nil || len(b.pending) == 0 {
			continue
		}
		if now.Before(b.next) {
			later(b.next)
			continue
		}
		if c.out.Len() >= soft {
			later(retry)
			continue
		}
		ids := make([]int64, 0, len(b.pending))
		for id := range b.pending {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		clear(b.pending)
		b.pendingFrom = 0
		c.pushBatch(b, ids, now, false)
		b.next = nextBatch(now, b.every, c.hub.opts.MinRateLimit)
	}
	if c.closed {
		return time.Time{}
	}
	if c.out.Len() >= soft {
		_, drained := c.out.Counts()
		if c.overSince == 0 || drained != c.overDrained {
			c.overSince, c.overDrained = now.UnixNano(), drained
		} else if time.Duration(now.UnixNano()-c.overSince) >= c.hub.opts.StuckAfter {
			mSlowClosed.Inc()
			c.closeLocked(CloseTooSlow, "client too slow")
			return time.Time{}
		}
		later(retry)
	} else {
		c.overSince = 0
	}
	return wake
}

// flushStateBatch sends state_batch b's next message if one is due. A
// batch is held back while the previous one is still queued: the changes
// keep accumulating in b.pending and the next batch carries the states
// current when it is encoded, so a batch the client has not taken yet is
// superseded by a later one instead of piling up behind it. A batch of
// more than MaxBatch trackers streams in pieces, each encoded when the
// client has taken all but one of the pieces before it. Callers hold c.mu.
func (c *Client) flushStateBatch(b *batchSub, now time.Time, cache *batchCache, later func(time.Time), retry time.Time) {
	b.inflight = taken(b.inflight, c.out.Drained())
	if len(b.stream) > 0 {
		c.streamStateBatch(b, now)
		if len(b.stream) > 0 || len(b.pending) > 0 {
			later(retry)
		}
		return
	}
	if len(b.pending) == 0 {
		return
	}
	if now.Before(b.next) {
		later(b.next)
		return
	}
	if len(b.inflight) > 0 || c.out.Len() >= c.hub.opts.SoftQueue {
		mBatchHeld.Inc()
		later(retry)
		return
	}
	ids := make([]int64, 0, len(b.pending))
	for id := range b.pending {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	clear(b.pending)
	from := b.pendingFrom
	b.pendingFrom = 0
	b.next = nextBatch(now, b.every, c.hub.opts.MinRateLimit)
	if len(ids) > c.hub.opts.MaxBatch {
		b.stream, b.streamFrom, b.streamInit = ids, from, false
		c.streamStateBatch(b, now)
		if len(b.stream) > 0 {
			later(retry)
		}
		return
	}
	b.inflight = c.pushStateBatchCached(ids, b.compact, now, cache, b.inflight)
}

// taken drops from seqs the outbox sequence numbers at most drained.
func taken(seqs []uint64, drained uint64) []uint64 {
	n := 0
	for _, s := range seqs {
		if s > drained {
			seqs[n] = s
			n++
		}
	}
	return seqs[:n]
}

// streamInFlight is how many pieces of a streamed state_batch may wait in
// the outbox at once: one being written, one ready behind it.
const streamInFlight = 2

// streamStateBatch queues the next pieces of b's streamed batch, each of
// at most MaxBatch trackers, while fewer than streamInFlight of them wait
// in the outbox. Callers hold c.mu.
func (c *Client) streamStateBatch(b *batchSub, now time.Time) {
	for len(b.stream) > 0 && len(b.inflight) < streamInFlight && !c.closed {
		n := min(len(b.stream), c.hub.opts.MaxBatch)
		piece := b.stream[:n]
		b.stream = b.stream[n:]
		before := len(b.inflight)
		b.inflight = c.pushStateBatch(piece, b.compact, now, false, b.inflight)
		if len(b.inflight) > before {
			b.streamInit = false
		}
	}
	if len(b.stream) > 0 {
		return
	}
	b.stream, b.streamFrom = nil, 0
	if b.streamInit {
		// Every tracker was blocked or gone: the subscription still gets
		// its (empty) answer.
		b.streamInit = false
		b.inflight = c.pushStateBatch(nil, b.compact, now, true, b.inflight)
	}
}

// nextBatch is when the batch after one sent at sent may go: every after
// sent, less slack, rounded up to a whole hub tick (tick since the Unix
// epoch). The hub handles a tick up to one tick late, and without the
// slack a batch sent a little late would push the next one a tick
// further. So batches are never closer than every - slack (slack is the
// tick, at most a tenth of every), a change waits at most every and a
// tick, and the subscribers that got a batch in the same tick are due
// again in the same tick, where those with the same trackers, format and
// zone share one encoding. (A grid of every itself would also line up
// subscribers that got out of step, but a change could wait twice every.)
func nextBatch(sent time.Time, every, tick time.Duration) time.Time {
	slack := min(tick, every/10)
	t := sent.Add(every - slack)
	if tick <= 0 {
		return t
	}
	r := t.UnixNano() % int64(tick)
	if r < 0 {
		r += int64(tick)
	}
	if r != 0 {
		t = t.Add(tick - time.Duration(r))
	}
	return t
}

// pushStateBatchCached is pushStateBatch for the hub's tick: clients due
// in the same tick with the same changed trackers, format and zone get
// the same messages, encoded once. It appends the messages' outbox
// sequence numbers to seqs.
func (c *Client) pushStateBatchCached(ids []int64, compact bool, now time.Time, cache *batchCache, seqs []uint64) []uint64 {
	if cache == nil {
		return c.pushStateBatch(ids, compact, now, false, seqs)
	}
	key, hit := cache.lookup(ids, compact, c.zone)
	if !hit {
		key.msgs, key.entries, key.pos = c.buildStateBatch(ids, compact, now)
		cache.store(key)
	}
	for i, m := range key.msgs {
		if seq, ok := c.pushSeq(m, posAt(key.pos, i)); ok {
			seqs = append(seqs, seq)
			mEventsBatch.Inc()
			mBatchEntries.Add(uint64(key.entries[i]))
		}
	}
	return seqs
}

// pushBatch queues the events of batch subscription b for trackers ids.
// always sends one (possibly empty) message even when nothing qualifies,
// as the answer to a new subscription.
func (c *Client) pushBatch(b *batchSub, ids []int64, now time.Time, always bool) {
	switch b.kind {
	case kindState:
		b.inflight = c.pushStateBatch(ids, b.compact, now, always, b.inflight)
	case kindReadings:
		c.pushReadings(b, ids, now, always)
	case kindIoT:
		c.pushIoT(ids, always)
	}
}

// pushStateBatch queues state_batch events with the current states of
// ids, skipping blocked and deleted trackers, split into messages of at
// most MaxBatch states. always sends one (possibly empty) message even
// when no state qualifies, as the answer to a new subscription. It
// appends the messages' outbox sequence numbers to seqs.
func (c *Client) pushStateBatch(ids []int64, compact bool, now time.Time, always bool, seqs []uint64) []uint64 {
	msgs, counts, pos := c.buildStateBatch(ids, compact, now)
	if len(msgs) == 0 && always {
		b := appendEventHead(nil, TypeStateBatch, now, c.loc)
		msgs, counts = [][]byte{append(b, "[]}"...)}, []int{0}
	}
	for i, m := range msgs {
		if seq, ok := c.pushSeq(m, posAt(pos, i)); ok {
			seqs = append(seqs, seq)
			mEventsBatch.Inc()
			mBatchEntries.Add(uint64(counts[i]))
		}
	}
	return seqs
}

// buildStateBatch encodes the state_batch messages for ids, the number
// of states in each and, in a cluster, the positions of those states.
func (c *Client) buildStateBatch(ids []int64, compact bool, now time.Time) (msgs [][]byte, counts []int, pos [][]bus.Pos) {
	max := c.hub.opts.MaxBatch
	var buf []byte
	var ps []bus.Pos
	n := 0
	end := func() {
		msgs = append(msgs, append(buf, "]}"...))
		counts = append(counts, n)
		if c.cl != nil {
			pos = append(pos, ps)
		}
		buf, n, ps = nil, 0, nil
	}
	for _, id := range ids {
		t, s, ok := c.hub.snapshot(id)
		if !ok || t.Blocked || t.UserID != c.uid {
			continue
		}
		if buf == nil {
			per := 512 // a full state is about 460 bytes, a compact one 290
			if compact {
				per = 320
			}
			buf = make([]byte, 0, 64+min(len(ids), max)*per)
			buf = appendEventHead(buf, TypeStateBatch, now, c.loc)
			buf = append(buf, '[')
		} else {
			buf = append(buf, ',')
		}
		buf = c.hub.entries.appendEntry(buf, id, s, c.loc, c.zone, compact)
		if c.cl != nil {
			ps = append(ps, bus.Pos{Kind: bus.KindState, Key: id, Seq: s.Seq})
		}
		observe(now, s)
		n++
		if n >= max {
			end()
		}
	}
	if buf != nil {
		end()
	}
	return msgs, counts, pos
}

// pushReadings queues a readings_batch event: data is an array holding
// one readings batch object, tracker id → readings changed since the last
// event sent to this client. The answer to a new subscription (always)
// holds every non-blocked tracker, with empty lists where it has no
// readings, as tracker/readings/batch_list does.
func (c *Client) pushReadings(b *batchSub, ids []int64, now time.Time, always bool) {
	buf := appendEventHead(make([]byte, 0, 512), TypeReadingsBatch, now, c.loc)
	buf = append(buf, `[{`...)
	n := 0
	var pos []bus.Pos
	for _, id := range ids {
		if c.status(id) != StatusNormal {
			continue
		}
		s, ok := c.hub.dir.State(id)
		if !ok && !always {
			continue
		}
		f := b.rd.filter
		f.Since = b.rd.lastSent[id]
		r := readings.Of(id, s, f)
		if r.Empty() && !always {
			continue
		}
		if ok {
			b.rd.lastSent[id] = latest(s)
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '"')
		buf = strconv.AppendInt(buf, id, 10)
		buf = append(buf, `":`...)
		buf = r.AppendJSON(buf, c.loc)
		pos = append(pos, c.posOf(bus.KindState, id, s.Seq)...)
		n++
	}
	if n == 0 && !always {
		return
	}
	buf = append(buf, `}]}`...)
	if c.pushPos(buf, pos) {
		mEventsReadings.Inc()
	}
}

// latest is the newest update time among s's readings.
func latest(s *fleet.State) time.Time {
	t := s.ReadingsUpdate
	if s.IgnitionUpdate.After(t) {
		t = s.IgnitionUpdate
	}
	return t
}

// pushIoT queues an iot_monitor event with the last messages of ids.
func (c *Client) pushIoT(ids []int64, always bool) {
	buf := make([]byte, 0, 1024)
	buf = append(buf, `{"type":"event","event":"iot_monitor","data":{"iot_last_values":[`...)
	n := 0
	var pos []bus.Pos
	for _, id := range ids {
		if c.status(id) != StatusNormal {
			continue
		}
		msgs := c.hub.history(id)
		if len(msgs) == 0 && !always {
			continue
		}
		if st, ok := c.hub.dir.State(id); ok {
			pos = append(pos, c.posOf(bus.KindState, id, st.Seq)...)
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		buf = appendIoT(buf, id, msgs)
		n++
	}
	if n == 0 && !always {
		return
	}
	buf = append(buf, `]}}`...)
	if c.pushPos(buf, pos) {
		mEventsIoT.Inc()
	}
}

// closeLocked ends the session from the hub's side: the transport sends
// what is queued, then closes with code. Callers hold c.mu.
func (c *Client) closeLocked(code int, reason string) {
	if c.closed {
		return
	}
	before, hadState, hadBatch := c.selected(), len(c.state) > 0, c.hasBatch()
	c.closed = true
	c.state, c.batches, c.lag, c.since = nil, [3]*batchSub{}, nil, nil
	if c.uid != 0 {
		c.reindex(before, hadState, hadBatch)
	}
	c.out.Close(code, reason)
	c.hub.remove(c)
	if c.followed {
		c.followed = false
		c.hub.unfollow(c.uid)
	}
	if !c.handedOff {
		c.forget()
	}
}

// Close releases the session: the client disconnected for good.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(CloseNormal, "")
}

// addID adds id to the set s, making the set on its first member, and
// returns it: a subscription's sets cost nothing until they hold an id.
func addID(s map[int64]struct{}, id int64) map[int64]struct{} {
	if s == nil {
		s = make(map[int64]struct{}, 1)
	}
	s[id] = struct{}{}
	return s
}

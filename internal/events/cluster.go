package events

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/outbox"
)

// Sessions across the nodes of a cluster.
//
// A client's session is kept where every node finds it (bus.Sessions): its
// record (user, credentials, subscriptions) is saved whenever the
// subscriptions change, and every delivery of messages is journaled before
// the transport writes it, with the log positions of the changes the
// messages carried and the position From the log must be read from to
// find every change for the client that is not journaled yet.
//
// A node taking the session over (Hub.Restore) rebuilds the subscriptions
// from the record, and reads the log from From: every change for the
// client the journal does not show delivered is handled as if it had just
// happened, in the order of the log; meanwhile the live changes wait
// (they are read from the log too), and once the log is read to its end
// the client carries on live. So a state subscriber gets every change of
// the gap exactly once and in order; a batch subscriber gets the trackers
// changed in the gap in its next batch, with their latest states.

// errHandedOff refuses a delivery of a session that left this node.
var errHandedOff = errors.New("events: session handed off to another node")

// posKey names a subject of the log: a tracker's states or lifecycle, or
// a user's logouts.
type posKey struct {
	kind bus.Kind
	key  int64
}

func keyOf(m *bus.Message) posKey {
	if m.Kind == bus.KindLogout {
		return posKey{bus.KindLogout, m.UserID}
	}
	return posKey{m.Kind, m.TrackerID}
}

// posOf is the position of one change, kept only in a cluster.
func (c *Client) posOf(kind bus.Kind, key int64, seq uint64) []bus.Pos {
	if c.cl == nil || seq == 0 {
		return nil
	}
	return []bus.Pos{{Kind: kind, Key: key, Seq: seq}}
}

func posAt(pos [][]bus.Pos, i int) []bus.Pos {
	if i < len(pos) {
		return pos[i]
	}
	return nil
}

// skipLive reports whether a live change is not for the client now: it is
// closed or unbound, it is catching up (the change is replayed from the
// log instead), or the change was replayed already. Callers hold c.mu.
func (c *Client) skipLive(m *bus.Message) bool {
	if c.closed || c.uid == 0 {
		return true
	}
	if c.cl == nil {
		return false
	}
	if c.cl.catching {
		c.cl.droppedMax = max(c.cl.droppedMax, m.Seq)
		return true
	}
	return m.Seq != 0 && m.Seq <= c.cl.liveFrom
}

// from is the log position from which every change for the client not yet
// journaled can be found: the oldest change behind a message still queued,
// a pending batch or a merged state, and at most one past what the node
// has received of the user's changes. Callers hold c.mu.
func (c *Client) from() uint64 {
	if c.uid == 0 {
		return 0
	}
	low := c.hub.position(c.uid) + 1
	c.out.Each(func(e outbox.Entry) {
		if ps, ok := e.Meta.([]bus.Pos); ok {
			for _, p := range ps {
				low = min(low, p.Seq)
			}
		}
	})
	for _, b := range c.batches {
		if b != nil && len(b.pending) > 0 && b.pendingFrom > 0 {
			low = min(low, b.pendingFrom)
		}
		if b != nil && len(b.stream) > 0 && b.streamFrom > 0 {
			low = min(low, b.streamFrom)
		}
	}
	if len(c.lag) > 0 && c.lagFrom > 0 {
		low = min(low, c.lagFrom)
	}
	if c.cl != nil && c.cl.catching {
		// Not caught up yet: the changes the replay has not reached.
		low = min(low, c.cl.replayedTo+1)
	}
	return low
}

// Deliver journals messages first, first+1, … before the transport
// writes them (atmosphere.Journal). On a single node it does nothing.
func (c *Client) Deliver(first uint64, msgs []outbox.Entry, acked bool) error {
	if c.cl == nil || len(msgs) == 0 {
		return nil
	}
	c.mu.Lock()
	if c.handedOff {
		c.mu.Unlock()
		return errHandedOff
	}
	e := &bus.JournalEntry{First: first, Count: len(msgs), Writer: c.cl.writer}
	for _, m := range msgs {
		if ps, ok := m.Meta.([]bus.Pos); ok {
			e.Pos = append(e.Pos, ps...)
		}
		if acked {
			e.Msgs = append(e.Msgs, m.Data)
		}
	}
	e.From = c.from()
	after := c.cl.journalSeq
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.hub.opts.Sessions.AppendJournal(ctx, c.id, e, after)
	if errors.Is(err, bus.ErrSuperseded) {
		c.superseded()
		return errHandedOff
	}
	if err != nil {
		mJournalFailed.Inc()
		return fmt.Errorf("journal session: %w", err)
	}
	c.mu.Lock()
	c.cl.journalSeq = e.Seq
	c.cl.lastJournaled = max(c.cl.lastJournaled, first+uint64(len(msgs))-1)
	c.cl.rec.From = e.From
	c.mu.Unlock()
	return nil
}

// superseded lets go of a session another node has taken over meanwhile
// (it wrote the session's journal or record since this node did): the
// client is closed here, its record left to that node.
func (c *Client) superseded() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	mSuperseded.Inc()
	c.hub.opts.Logger.Info("events: session taken over by another node", "session", shortID(c.id))
	c.handedOff = true
	c.closeLocked(CloseGoingAway, "session moved to another node")
}

// store saves rec (whose Rev is this node's last), telling a conflict with
// a save of this node's own (a touch meeting a subscribe) from a take-over
// by another node. On a conflict of its own, a fresh record (fresh) is
// saved over the other; a touch's is not (the other save is newer).
func (c *Client) store(ctx context.Context, rec *bus.SessionRecord, fresh bool) error {
	for range 3 {
		err := c.hub.opts.Sessions.SaveSession(ctx, rec)
		if !errors.Is(err, bus.ErrSuperseded) {
			return err
		}
		cur, lerr := c.hub.opts.Sessions.LoadSession(ctx, rec.ID)
		if lerr != nil {
			return lerr
		}
		if cur.Node != c.hub.opts.Node {
			return bus.ErrSuperseded
		}
		if !fresh {
			rec.Rev = cur.Rev
			return nil
		}
		rec.Rev = cur.Rev
	}
	return bus.ErrSuperseded
}

// record is the client's session record. Callers hold c.mu.
func (c *Client) record() *bus.SessionRecord {
	r := c.cl.rec
	r.ID, r.Node = c.id, c.hub.opts.Node
	if c.uid != 0 {
		r.UserID = c.uid
	}
	r.Hashes = append([]string(nil), c.hashes...)
	r.State = maps.Clone(c.state)
	r.Batches = nil
	for _, b := range c.batches {
		if b == nil {
			continue
		}
		br := bus.BatchRecord{Type: batchType(b.kind), All: b.all, Compact: b.compact, Every: b.every}
		br.SensorType, br.IncludeComponents = b.sensorFilter()
		for id := range b.ids {
			br.IDs = append(br.IDs, id)
		}
		r.Batches = append(r.Batches, br)
	}
	r.Last = c.cl.lastJournaled
	if r.From == 0 || !c.cl.catching {
		r.From = c.from()
	}
	r.Updated = c.hub.opts.Now()
	return &r
}

func batchType(kind uint8) string {
	switch kind {
	case kindReadings:
		return TypeReadingsBatch
	case kindIoT:
		return TypeIoTMonitor
	}
	return TypeStateBatch
}

// saveLocked stores the client's record, in a cluster. Callers hold c.mu.
func (c *Client) saveLocked() {
	if c.cl == nil || c.closed || c.id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec := c.record()
	switch err := c.store(ctx, rec, true); {
	case err == nil:
		c.cl.rec.Rev = rec.Rev
	case errors.Is(err, bus.ErrSuperseded):
		mSuperseded.Inc()
		c.hub.opts.Logger.Info("events: session taken over by another node", "session", shortID(c.id))
		c.handedOff = true
		c.closeLocked(CloseGoingAway, "session moved to another node")
	default:
		mSaveFailed.Inc()
		c.hub.opts.Logger.Warn("events: save session", "session", shortID(c.id), "err", err)
	}
}

// forget removes the record of a session that ended. Callers hold c.mu.
func (c *Client) forget() {
	if c.cl == nil || c.id == "" {
		return
	}
	sess, id, log := c.hub.opts.Sessions, c.id, c.hub.opts.Logger
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := sess.DeleteSession(ctx, id); err != nil {
			log.Warn("events: delete session", "session", shortID(id), "err", err)
		}
	}()
}

// Handoff releases the session on this node without ending it
// (atmosphere.Handoffer): its record and journal stay for the node that
// takes it over. On a single node it is Close.
func (c *Client) Handoff() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cl != nil {
		c.handedOff = true
	}
	c.closeLocked(CloseGoingAway, "session moved to another node")
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8] + "…"
	}
	return id
}

// position is how far the node has received the user's changes.
func (h *Hub) position(uid int64) uint64 {
	if p, ok := h.dir.(Positioner); ok {
		return p.Position(uid)
	}
	return 0
}

// Positioner is implemented by directories that tell how far the log's
// changes about a user have reached them.
type Positioner interface {
	Position(userID int64) uint64
}

// Replayer is implemented by directories that read the log again.
type Replayer interface {
	Replay(ctx context.Context, userID int64, from uint64, fn func(*bus.Message) bool) (uint64, error)
}

// Restore takes over a session another node held: rec is its record,
// journal its deliveries. The client is bound and subscribed as rec says,
// and catches up from the log in the background.
func (h *Hub) Restore(ctx context.Context, rec *bus.SessionRecord, journal []*bus.JournalEntry) (*Client, error) {
	c := h.open(rec.ID, rec.Addr, rec.Secret)
	if rec.UserID == 0 {
		return c, nil
	}
	var user *fleet.User
	var valid []string
	for _, hash := range rec.Hashes {
		u, _, err := h.auth.Resolve(ctx, hash)
		switch {
		case err == nil && u.ID == rec.UserID:
			user = u
			valid = append(valid, hash)
		case err != nil && !errors.Is(err, apierr.SessionNotFound) && !errors.Is(err, apierr.WrongHash):
			c.Close()
			return nil, fmt.Errorf("restore session: %w", err)
		}
	}
	c.mu.Lock()
	c.cl.lastJournaled = rec.Last
	c.cl.rec.From, c.cl.rec.Rev = rec.From, rec.Rev
	for _, e := range journal {
		c.cl.lastJournaled = max(c.cl.lastJournaled, e.First+uint64(e.Count)-1)
	}
	if len(journal) > 0 {
		last := journal[len(journal)-1]
		c.cl.rec.From, c.cl.journalSeq = last.From, last.Seq
	}
	c.mu.Unlock()
	if user == nil {
		// Every credential it subscribed with ended while it moved.
		c.mu.Lock()
		c.uid = rec.UserID
		c.loc, c.zone = time.UTC, "UTC"
		c.takeLogout(nil, nil)
		c.mu.Unlock()
		return c, nil
	}
	if err := h.follow(ctx, user.ID); err != nil {
		c.Close()
		return nil, fmt.Errorf("restore session: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.followed = true
	c.uid, c.loc = user.ID, user.Location()
	c.zone = c.loc.String()
	c.hashes = valid
	before, hadState, hadBatch := c.selected(), len(c.state) > 0, c.hasBatch()
	c.state = maps.Clone(rec.State)
	now := h.opts.Now()
	for _, br := range rec.Batches {
		kind, ok := batchKind(br.Type)
		if !ok {
			continue
		}
		b := &batchSub{kind: kind, all: br.All, compact: br.Compact, every: c.rate(br.Every), next: now}
		for _, id := range br.IDs {
			b.ids = addID(b.ids, id)
		}
		if kind == kindReadings {
			b.rd = newReadingsSub(br.SensorType, br.IncludeComponents)
		}
		c.batches[kind] = b
	}
	c.cl.delivered = map[posKey]uint64{}
	for _, e := range journal {
		for _, p := range e.Pos {
			k := posKey{p.Kind, p.Key}
			c.cl.delivered[k] = max(c.cl.delivered[k], p.Seq)
		}
	}
	c.cl.catching = true
	c.cl.replayedTo = c.cl.rec.From - min(c.cl.rec.From, 1)
	h.opts.Logger.Debug("events: session restored", "session", shortID(c.id), "from", c.cl.rec.From,
		"last", c.cl.lastJournaled, "journal", len(journal), "delivered", fmt.Sprint(c.cl.delivered))
	c.reindex(before, hadState, hadBatch)
	c.saveLocked()
	go c.catchUp(c.cl.rec.From)
	mRestored.Inc()
	return c, nil
}

// catchUp reads the user's changes from the log from from on and hands
// them to the client, until it has read every change that reached it live
// meanwhile; then the client carries on live.
func (c *Client) catchUp(from uint64) {
	rp, ok := c.hub.dir.(Replayer)
	c.mu.Lock()
	uid := c.uid
	c.mu.Unlock()
	last := from - min(from, 1)
	for attempt := 0; ; attempt++ {
		if ok && from > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, err := rp.Replay(ctx, uid, from, func(m *bus.Message) bool {
				last = max(last, m.Seq)
				return c.replay(m)
			})
			cancel()
			if err != nil {
				c.hub.opts.Logger.Warn("events: catch up session", "session", shortID(c.id), "from", from, "err", err)
				time.Sleep(min(time.Duration(attempt+1)*200*time.Millisecond, 2*time.Second))
				c.mu.Lock()
				gone := c.closed
				c.mu.Unlock()
				if gone {
					return
				}
				continue
			}
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		if !ok || from == 0 || last >= c.cl.droppedMax {
			c.cl.catching = false
			c.cl.liveFrom = max(last, c.cl.droppedMax)
			c.cl.delivered = nil
			c.hub.opts.Logger.Debug("events: session caught up", "session", shortID(c.id), "from", c.cl.rec.From, "live_from", c.cl.liveFrom)
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		from = last + 1
	}
}

// replay hands one change read from the log to the client, unless the
// journal shows it delivered. It reports whether to read on.
func (c *Client) replay(m *bus.Message) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.cl.replayedTo = max(c.cl.replayedTo, m.Seq-1)
	defer func() { c.cl.replayedTo = max(c.cl.replayedTo, m.Seq) }()
	if c.cl.delivered[keyOf(m)] >= m.Seq {
		return true
	}
	switch m.Kind {
	case bus.KindState:
		if m.State == nil {
			return true
		}
		t, ok := c.hub.dir.Tracker(m.TrackerID)
		if !ok || t.Blocked || t.UserID != c.uid {
			return true
		}
		c.takeState(m, &stateEncoder{s: m.State, now: c.hub.opts.Now()})
	case bus.KindLifecycle:
		c.takeLifecycle(m, encodeLifecycle(m.SourceID, m.Lifecycle))
	case bus.KindLogout:
		c.takeLogout(m, m.Hashes)
	}
	return !c.closed
}

// Package events is the tracker event API behind /event/subscription: it
// parses subscribe and unsubscribe actions, answers with response and error
// messages, and pushes state, state_batch, lifecycle and logout events to
// each client session's outbox. It encodes each event once per format and
// time zone and shares the bytes between subscribers.
//
// Slow clients: every client has a bounded outbox. Past Options.SoftQueue
// queued messages a client is lagging: its state events are merged (the
// latest state per tracker is kept and sent when the queue has drained to
// half), and its state_batch events wait, accumulating changed trackers, so
// a batch always carries current states. A state_batch is also held while
// the client has not taken the previous one (the newer batch supersedes
// it), and one of more than Options.MaxBatch trackers — the answer to a
// subscription of a large fleet, or a period in which most of it moved —
// streams in pieces as the client takes them, so a fast-moving fleet never
// fills a client's queue. A client whose queue stays past
// the soft limit without draining for Options.StuckAfter is closed with
// code 1008.
package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/metrics"
	"github.com/fleetwire/fleetwire/internal/outbox"
	"github.com/fleetwire/fleetwire/internal/state"
)

// Authenticator resolves the hash a client subscribes with.
type Authenticator interface {
	Resolve(ctx context.Context, hash string) (*fleet.User, *fleet.Session, error)
}

// Directory is the live fleet the hub reads trackers and states from.
type Directory interface {
	Tracker(id int64) (*fleet.Tracker, bool)
	Trackers(userID int64) []*fleet.Tracker
	State(id int64) (*fleet.State, bool)
}

// Snapshotter is implemented by directories that return a tracker and
// its state under one lock.
type Snapshotter interface {
	Snapshot(id int64) (*fleet.Tracker, *fleet.State, bool)
}

// snapshot returns tracker id and its current state.
func (h *Hub) snapshot(id int64) (*fleet.Tracker, *fleet.State, bool) {
	if sn, ok := h.dir.(Snapshotter); ok {
		return sn.Snapshot(id)
	}
	t, ok := h.dir.Tracker(id)
	if !ok {
		return nil, nil, false
	}
	s, ok := h.dir.State(id)
	return t, s, ok
}

// Follower is implemented by directories whose picture of a user's
// trackers is kept current only on request (a cluster node): the hub
// follows every user with a client bound on it, and the registry returns
// from Follow once its picture is current.
type Follower interface {
	Follow(ctx context.Context, userID int64) (release func(), err error)
}

// userFollow is the hub's hold on one user's follow, shared by that
// user's clients.
type userFollow struct {
	refs    int
	release func()
}

// follow holds the directory's follow of user uid for one more client.
func (h *Hub) follow(ctx context.Context, uid int64) error {
	f, ok := h.dir.(Follower)
	if !ok {
		return nil
	}
	h.fmu.Lock()
	if uf := h.follows[uid]; uf != nil {
		uf.refs++
		h.fmu.Unlock()
		return nil
	}
	h.fmu.Unlock()
	release, err := f.Follow(ctx, uid)
	if err != nil {
		return err
	}
	h.fmu.Lock()
	defer h.fmu.Unlock()
	if uf := h.follows[uid]; uf != nil {
		// Another client of the user got there meanwhile.
		uf.refs++
		go release()
		return nil
	}
	h.follows[uid] = &userFollow{refs: 1, release: release}
	return nil
}

// unfollow drops one client's hold on user uid's follow.
func (h *Hub) unfollow(uid int64) {
	h.fmu.Lock()
	defer h.fmu.Unlock()
	uf := h.follows[uid]
	if uf == nil {
		return
	}
	if uf.refs--; uf.refs == 0 {
		delete(h.follows, uid)
		// Not under any client's lock: stopping the delivery may wait for
		// a message being handed to a client.
		go uf.release()
	}
}

// Historian is implemented by directories that keep each tracker's last
// messages for the stream analyzer (iot_monitor).
type Historian interface {
	History(id int64) []state.Message
}

func (h *Hub) history(id int64) []state.Message {
	if hs, ok := h.dir.(Historian); ok {
		return hs.History(id)
	}
	return nil
}

// Options tune the hub. Zero values take the defaults noted.
type Options struct {
	// MaxFrame is the largest client message accepted (default 128 KiB,
	// room for some 14,000 tracker ids);
	// larger ones get error 9.
	MaxFrame int
	// SoftQueue is the queued-message count past which a client is lagging
	// (default 1024).
	SoftQueue int
	// StuckAfter is how long a lagging client may go without draining
	// anything before it is closed (default 60s).
	StuckAfter time.Duration
	// DefaultRateLimit is the state_batch period when the client gives none
	// (default 1s).
	DefaultRateLimit time.Duration
	// MinRateLimit is the shortest rate_limit honoured; shorter ones are
	// raised to it (default 10ms).
	MinRateLimit time.Duration
	// MaxBatch is the most states in one state_batch message; more are
	// split over several messages (default 10000).
	MaxBatch int
	// Outbox bounds each client's queue.
	Outbox outbox.Limits
	// Sessions keeps the client sessions where every node of a cluster
	// finds them (nil on a single node; see cluster.go).
	Sessions bus.Sessions
	// Node names this node, in the session records it saves.
	Node string
	// TouchEvery is how often, in a cluster, every session's record is
	// saved again, so that its expiry starts over while the session lives
	// (default 15s).
	TouchEvery time.Duration
	// AsyncShards, when positive, delivers state, lifecycle and tracker
	// changes on that many workers instead of the publisher's goroutine
	// (see HandleBus); 0 delivers synchronously. Single node only: with
	// Sessions set it is ignored.
	AsyncShards int
	// AsyncDepth bounds each worker's queue of changes (default 4096).
	AsyncDepth int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives warnings (default slog.Default()).
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.MaxFrame <= 0 {
		o.MaxFrame = 128 << 10
	}
	if o.SoftQueue <= 0 {
		o.SoftQueue = 1024
	}
	if o.StuckAfter <= 0 {
		o.StuckAfter = time.Minute
	}
	if o.DefaultRateLimit <= 0 {
		o.DefaultRateLimit = time.Second
	}
	if o.MinRateLimit <= 0 {
		o.MinRateLimit = 10 * time.Millisecond
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 10000
	}
	if o.TouchEvery <= 0 {
		o.TouchEvery = 15 * time.Second
	}
	if o.AsyncDepth <= 0 {
		o.AsyncDepth = 4096
	}
	if o.Sessions != nil {
		o.AsyncShards = 0
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

var (
	mEventsState     = metrics.Default.NewCounter("fleetwire_events_out_total", "Event messages queued to clients.", `event="state"`)
	mEventsBatch     = metrics.Default.NewCounter("fleetwire_events_out_total", "Event messages queued to clients.", `event="state_batch"`)
	mEventsLifecycle = metrics.Default.NewCounter("fleetwire_events_out_total", "Event messages queued to clients.", `event="lifecycle"`)
	mEventsLogout    = metrics.Default.NewCounter("fleetwire_events_out_total", "Event messages queued to clients.", `event="logout"`)
	mEventsReadings  = metrics.Default.NewCounter("fleetwire_events_out_total", "Event messages queued to clients.", `event="readings_batch"`)
	mEventsIoT       = metrics.Default.NewCounter("fleetwire_events_out_total", "Event messages queued to clients.", `event="iot_monitor"`)
	mBatchEntries    = metrics.Default.NewCounter("fleetwire_state_batch_entries_total", "States delivered inside state_batch events.", "")
	mBatchHeld       = metrics.Default.NewCounter("fleetwire_state_batch_held_total", "Times a due state_batch waited for the client to take the previous one, gathering later changes.", "")
	mMerged          = metrics.Default.NewCounter("fleetwire_events_merged_total", "State events merged into a later state for a lagging client.", "")
	mDropped         = metrics.Default.NewCounter("fleetwire_events_dropped_total", "Messages refused by a full client queue.", "")
	mAsyncWaits      = metrics.Default.NewCounter("fleetwire_events_handoff_waits_total", "Changes whose publisher waited for room in a full delivery queue.", "")
	mSlowClosed      = metrics.Default.NewCounter("fleetwire_slow_clients_closed_total", "Clients closed for not draining their queue.", "")
	mErrors          = metrics.Default.NewCounter("fleetwire_client_errors_total", "Error messages sent to clients.", "")
	mLatency         = metrics.Default.NewHistogram("fleetwire_delivery_latency_seconds", "Time from ingest to the event being queued for a client.", "", metrics.LatencyBuckets)
	mClients         = metrics.Default.NewGauge("fleetwire_event_clients", "Open event API client sessions.", "")
	mSubsState       = metrics.Default.NewGauge("fleetwire_subscriptions", "Active subscriptions (client, type).", `type="state"`)
	mSubsBatch       = metrics.Default.NewGauge("fleetwire_subscriptions", "Active subscriptions (client, type).", `type="state_batch"`)
	mJournalFailed   = metrics.Default.NewCounter("fleetwire_session_journal_failures_total", "Deliveries the session journal could not keep (written later).", "")
	mSaveFailed      = metrics.Default.NewCounter("fleetwire_session_save_failures_total", "Session records that could not be saved.", "")
	mRestored        = metrics.Default.NewCounter("fleetwire_sessions_restored_total", "Sessions taken over from another node.", "")
	mSuperseded      = metrics.Default.NewCounter("fleetwire_sessions_superseded_total", "Sessions let go of because another node took them over meanwhile.", "")
)

// Hub routes changes from the bus to subscribed clients.
type Hub struct {
	auth Authenticator
	dir  Directory
	opts Options

	mu        sync.RWMutex
	byTracker map[int64]map[*Client]struct{} // explicitly selected trackers
	allByUser map[int64]map[*Client]struct{} // state_batch target all
	byUser    map[int64]map[*Client]struct{} // every bound client
	clients   map[*Client]struct{}

	dueMu sync.Mutex
	due   map[*Client]struct{} // clients with batches or merged states to send

	fmu     sync.Mutex
	follows map[int64]*userFollow

	entries entryCache

	async *asyncDelivery // nil: changes are delivered on the publisher's goroutine
}

// NewHub returns a hub resolving hashes with a and reading the fleet from d.
func NewHub(a Authenticator, d Directory, opts Options) *Hub {
	opts.defaults()
	h := &Hub{
		auth: a, dir: d, opts: opts,
		byTracker: make(map[int64]map[*Client]struct{}),
		allByUser: make(map[int64]map[*Client]struct{}),
		byUser:    make(map[int64]map[*Client]struct{}),
		clients:   make(map[*Client]struct{}),
		due:       make(map[*Client]struct{}),
		follows:   make(map[int64]*userFollow),
	}
	if opts.AsyncShards > 0 {
		h.async = newAsyncDelivery(h, opts.AsyncShards, opts.AsyncDepth)
	}
	return h
}

// Close delivers the changes still queued for the delivery workers and
// stops them; changes published later are delivered on the publisher's
// goroutine. Run calls it when it returns.
func (h *Hub) Close() {
	if h.async != nil {
		h.async.stop()
	}
}

// Workers is the number of delivery workers (0: changes are delivered on
// the publisher's goroutine).
func (h *Hub) Workers() int {
	if h.async == nil {
		return 0
	}
	return len(h.async.shards)
}

// Queued is the number of changes waiting for a delivery worker.
func (h *Hub) Queued() int {
	if h.async == nil {
		return 0
	}
	return h.async.queued()
}

// NewClient starts a client session of a single node.
func (h *Hub) NewClient() *Client { return h.open("", "", [32]byte{}) }

func (h *Hub) open(id, addr string, secret [32]byte) *Client {
	c := &Client{hub: h, out: outbox.New(h.opts.Outbox), id: id}
	if id != "" && h.opts.Sessions != nil {
		var b [8]byte
		_, _ = rand.Read(b[:])
		c.cl = &clusterState{writer: h.opts.Node + "/" + hex.EncodeToString(b[:])}
		c.cl.rec.Addr, c.cl.rec.Secret = addr, secret
	}
	h.mu.Lock()
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	mClients.Add(1)
	return c
}

// Open starts the client session of tracking id, bound to the client's
// address and resume secret; in a cluster its record is saved at once, so
// that every node can reach the session from its first request on.
func (h *Hub) Open(id, addr string, secret [32]byte) *Client {
	c := h.open(id, addr, secret)
	c.mu.Lock()
	c.saveLocked()
	c.mu.Unlock()
	return c
}

// Clients is the number of open client sessions.
func (h *Hub) Clients() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.clients)
}

func (h *Hub) remove(c *Client) {
	h.mu.Lock()
	if _, ok := h.clients[c]; ok {
		delete(h.clients, c)
		mClients.Add(-1)
	}
	h.mu.Unlock()
}

// HandleBus delivers one change to the clients it concerns. It never
// blocks on a client. With Options.AsyncShards it only queues state,
// lifecycle and tracker changes for the delivery worker of their tracker
// (in order per tracker; it waits only while that worker's queue is
// full) and returns; logouts are delivered at once.
func (h *Hub) HandleBus(m *bus.Message) {
	if h.async != nil && m.Kind != bus.KindLogout && h.async.send(m) {
		return
	}
	h.deliver(m)
}

// deliver hands one change to the clients it concerns.
func (h *Hub) deliver(m *bus.Message) {
	switch m.Kind {
	case bus.KindState:
		if m.State == nil {
			return
		}
		cs := h.interested(m.TrackerID, m.UserID)
		if len(cs) == 0 {
			return
		}
		enc := &stateEncoder{s: m.State, now: h.opts.Now()}
		for _, c := range cs {
			c.onState(m, enc)
		}
		putClients(cs)
	case bus.KindLifecycle:
		cs := h.interested(m.TrackerID, m.UserID)
		if len(cs) == 0 {
			return
		}
		msg := encodeLifecycle(m.SourceID, m.Lifecycle)
		for _, c := range cs {
			c.onLifecycle(m, msg)
		}
		putClients(cs)
	case bus.KindLogout:
		h.mu.RLock()
		cs := getClients()
		for c := range h.byUser[m.UserID] {
			cs = append(cs, c)
		}
		h.mu.RUnlock()
		for _, c := range cs {
			c.onLogout(m, m.Hashes)
		}
		putClients(cs)
	case bus.KindTracker:
		if m.Tracker != nil && m.Tracker.Deleted {
			h.entries.forget(m.TrackerID)
		}
	}
}

// interested lists the clients subscribed to tracker id of user uid. The
// slice comes from a pool: return it with putClients.
func (h *Hub) interested(id, uid int64) []*Client {
	h.mu.RLock()
	sel, all := h.byTracker[id], h.allByUser[uid]
	if len(sel) == 0 && len(all) == 0 {
		h.mu.RUnlock()
		return nil
	}
	cs := getClients()
	for c := range sel {
		cs = append(cs, c)
	}
	for c := range all {
		if _, dup := sel[c]; !dup {
			cs = append(cs, c)
		}
	}
	h.mu.RUnlock()
	return cs
}

var clientPool = sync.Pool{New: func() any { s := make([]*Client, 0, 64); return &s }}

func getClients() []*Client { return (*clientPool.Get().(*[]*Client))[:0] }

func putClients(cs []*Client) {
	if cap(cs) > 1<<16 {
		return
	}
	clear(cs)
	cs = cs[:0]
	clientPool.Put(&cs)
}

// index moves c between the per-tracker and per-user indexes.
func (h *Hub) index(c *Client, uid int64, add, remove []int64, all, bound bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range remove {
		if set := h.byTracker[id]; set != nil {
			delete(set, c)
			if len(set) == 0 {
				delete(h.byTracker, id)
			}
		}
	}
	for _, id := range add {
		set := h.byTracker[id]
		if set == nil {
			set = make(map[*Client]struct{}, 1)
			h.byTracker[id] = set
		}
		set[c] = struct{}{}
	}
	setMember(h.allByUser, uid, c, all)
	setMember(h.byUser, uid, c, bound)
}

func setMember(m map[int64]map[*Client]struct{}, key int64, c *Client, in bool) {
	set := m[key]
	if in {
		if set == nil {
			set = make(map[*Client]struct{}, 1)
			m[key] = set
		}
		set[c] = struct{}{}
		return
	}
	if set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(m, key)
		}
	}
}

func (h *Hub) markDue(c *Client) {
	h.dueMu.Lock()
	h.due[c] = struct{}{}
	h.dueMu.Unlock()
}

// Run sends due batches and merged states, closes stuck clients and ends
// clients whose sessions expired, until ctx is cancelled.
//
// Clients wait in buckets by the tick they are next due at; each tick
// handles the clients that became due (a first change after a batch) and
// the buckets whose time came. A batch's next time is a whole tick (see
// nextBatch), so the clients that got a batch in the same tick, following
// the same trackers with the same rate limit, are due in the same tick
// again and share one encoding.
func (h *Hub) Run(ctx context.Context) error {
	defer h.Close()
	step := h.opts.MinRateLimit
	tick := time.NewTicker(step)
	defer tick.Stop()
	check := time.NewTicker(30 * time.Second)
	defer check.Stop()
	touch := time.NewTicker(h.opts.TouchEvery)
	defer touch.Stop()
	var (
		work    []*Client
		wakes   []time.Time
		buckets = map[int64][]*Client{}
		cache   = newBatchCache()
		tickN   int64 // ticks handled
	)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-check.C:
			h.checkSessions(ctx)
			continue
		case <-touch.C:
			if h.opts.Sessions != nil {
				go h.touchSessions()
			}
			continue
		case <-tick.C:
		}
		now := h.opts.Now()
		idx := now.UnixNano() / int64(step)
		h.dueMu.Lock()
		for c := range h.due {
			work = append(work, c)
		}
		clear(h.due)
		h.dueMu.Unlock()
		for k, cs := range buckets {
			if k <= idx {
				work = append(work, cs...)
				delete(buckets, k)
			}
		}
		cache.reset()
		// A client may be both due and in a bucket: handle it once. Ticks
		// are counted, not told apart by their grid index: a late tick and
		// the next one can fall on the same index, and a client handled in
		// the first and due again in the second must not be skipped (it
		// would wait for good: it is due only once per batch).
		tickN++
		n := 0
		for _, c := range work {
			if c.tick != tickN {
				c.tick = tickN
				work[n] = c
				n++
			}
		}
		clear(work[n:])
		work = work[:n]
		wakes = flushAll(work, now, cache, wakes[:0])
		for i, c := range work {
			if wakes[i].IsZero() {
				continue
			}
			k := (wakes[i].UnixNano() + int64(step) - 1) / int64(step)
			if k <= idx {
				k = idx + 1
			}
			buckets[k] = append(buckets[k], c)
		}
		clear(work)
		work = work[:0]
	}
}

// flushAll flushes the clients of one tick, spread over the CPUs when
// there are many, and returns when each wants to be handled again.
func flushAll(work []*Client, now time.Time, cache *batchCache, wakes []time.Time) []time.Time {
	wakes = slices.Grow(wakes, len(work))[:len(work)]
	workers := min(runtime.GOMAXPROCS(0), len(work)/256)
	if workers <= 1 {
		for i, c := range work {
			wakes[i] = c.flush(now, cache)
		}
		return wakes
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := w*len(work)/workers, (w+1)*len(work)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				wakes[i] = work[i].flush(now, cache)
			}
		}()
	}
	wg.Wait()
	return wakes
}

// touchSessions saves every client's record again, in a cluster, so that
// the records of live sessions do not expire.
func (h *Hub) touchSessions() {
	h.mu.RLock()
	cs := make([]*Client, 0, len(h.clients))
	for c := range h.clients {
		cs = append(cs, c)
	}
	h.mu.RUnlock()
	for _, c := range cs {
		c.mu.Lock()
		if c.closed || c.cl == nil || c.id == "" {
			c.mu.Unlock()
			continue
		}
		rec := c.record()
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.store(ctx, rec, false)
		cancel()
		switch {
		case err == nil:
			c.mu.Lock()
			c.cl.rec.Rev = max(c.cl.rec.Rev, rec.Rev)
			c.mu.Unlock()
		case errors.Is(err, bus.ErrSuperseded):
			c.superseded()
		default:
			mSaveFailed.Inc()
			h.opts.Logger.Warn("events: touch session", "session", shortID(rec.ID), "err", err)
		}
	}
}

// checkSessions ends the subscriptions of clients whose hash stopped
// resolving (a session expired without a logout being published).
func (h *Hub) checkSessions(ctx context.Context) {
	h.mu.RLock()
	cs := make([]*Client, 0, len(h.clients))
	for c := range h.clients {
		cs = append(cs, c)
	}
	h.mu.RUnlock()
	for _, c := range cs {
		for _, hash := range c.hashList() {
			_, _, err := h.auth.Resolve(ctx, hash)
			if err == nil || errors.Is(err, context.Canceled) {
				continue
			}
			if errors.Is(err, apierr.SessionNotFound) {
				c.onLogout(nil, []string{fleet.CredentialDigest(hash)})
				break
			}
		}
	}
}

// Package jetstream is the cluster Bus: NATS JetStream is the log of every
// accepted change and carries the changes between fleetwire nodes.
//
// One stream per installation, <prefix>_events, holds every message on a
// subject by kind and owner (see subjects); a change is in the stream,
// on file, before Publish returns, so a device is answered only for what
// the cluster keeps. A tracker's states are a chain: each is published
// with the expected last sequence of its subject, so when two nodes
// derive a state from the same predecessor, the second is refused and
// derives again from the first (bus.ErrStale).
//
// A node receives only what it needs: its own messages (delivered locally
// without a round trip), the tracker metadata of the installation, and the
// messages of the users it follows (an ordered consumer per followed user,
// started with the latest message of each subject so the node's picture
// is current before its first client is served; see tail for how these
// consumers survive a restarted NATS). Sessions that resume on
// any node, the store writer and the node-to-node requests are in
// sessions.go, store.go and node.go.
package jetstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/metrics"
)

// Options configure the cluster bus. Zero values take the defaults noted.
type Options struct {
	// URL is the NATS server URL; several, comma-separated, for a NATS
	// cluster.
	URL string
	// Prefix namespaces the subjects, streams and buckets of one
	// installation (default "fleetwire"), so that installations sharing a
	// NATS never see each other's messages. Letters, digits, - and _.
	Prefix string
	// Node names this node in messages, metrics and session ownership
	// (default: the host name and a random suffix). Letters, digits, - and _.
	Node string
	// Retention bounds the age of the log (default 24h).
	Retention time.Duration
	// MaxBytes bounds the size of the log (default 1 GiB).
	MaxBytes int64
	// Replicas is the number of JetStream replicas of the streams and
	// buckets (default 1; 3 on a 3-node NATS cluster for HA).
	Replicas int
	// PublishTimeout bounds the wait for the log to confirm a change
	// (default 5s).
	PublishTimeout time.Duration
	// Logger receives the bus's logs (default slog.Default()).
	Logger *slog.Logger
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (o *Options) defaults() error {
	if o.Prefix == "" {
		o.Prefix = "fleetwire"
	}
	if !validName.MatchString(o.Prefix) {
		return fmt.Errorf("bus prefix %q: use 1 to 64 letters, digits, - or _", o.Prefix)
	}
	if o.Node == "" {
		o.Node = DefaultNode()
	}
	if !validName.MatchString(o.Node) {
		return fmt.Errorf("node name %q: use 1 to 64 letters, digits, - or _", o.Node)
	}
	if o.Retention <= 0 {
		o.Retention = 24 * time.Hour
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 30
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// DefaultNode is the node name used when none is given: the host name and
// four random hex digits.
func DefaultNode() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, host)
	if host == "" {
		host = "node"
	}
	if len(host) > 40 {
		host = host[:40]
	}
	var b [2]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

var (
	mOut = map[bus.Kind]*metrics.Counter{}
	mIn  = map[bus.Kind]*metrics.Counter{}
)

func init() {
	for _, k := range []bus.Kind{bus.KindState, bus.KindLifecycle, bus.KindLogout, bus.KindTracker} {
		mOut[k] = metrics.Default.NewCounter("fleetwire_bus_messages_total", "Bus messages this node published (out) and received from other nodes (in).", `direction="out",kind="`+k.String()+`"`)
		mIn[k] = metrics.Default.NewCounter("fleetwire_bus_messages_total", "Bus messages this node published (out) and received from other nodes (in).", `direction="in",kind="`+k.String()+`"`)
	}
}

var (
	mBytesOut      = metrics.Default.NewCounter("fleetwire_bus_bytes_total", "Bytes of bus messages published (out) and received (in, including the node's own when it follows a user).", `direction="out"`)
	mBytesIn       = metrics.Default.NewCounter("fleetwire_bus_bytes_total", "Bytes of bus messages published (out) and received (in, including the node's own when it follows a user).", `direction="in"`)
	mPublishFailed = metrics.Default.NewCounter("fleetwire_bus_publish_failures_total", "Changes the log could not store (the device was told to send again).", "")
	mStale         = metrics.Default.NewCounter("fleetwire_bus_stale_total", "States refused because another node published a newer one first.", "")
	mDisconnects   = metrics.Default.NewCounter("fleetwire_bus_disconnects_total", "Times the NATS connection was lost.", "")
	mReconnects    = metrics.Default.NewCounter("fleetwire_bus_reconnects_total", "Times the NATS connection was restored.", "")
	mConnected     = metrics.Default.NewGauge("fleetwire_bus_connected", "1 while the bus can store changes.", "")
	mFollowed      = metrics.Default.NewGauge("fleetwire_bus_followed_users", "Users this node follows on the bus.", "")
	mUndecodable   = metrics.Default.NewCounter("fleetwire_bus_undecodable_total", "Bus messages that could not be read.", "")
	mRefollows     = metrics.Default.NewCounter("fleetwire_bus_refollows_total", "Times the node gave its consumers of the log new ones after the connection came back.", "")
)

// Bus is the JetStream bus of one node.
type Bus struct {
	opts   Options
	log    *slog.Logger
	subj   subjects
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	name   string // stream name

	msgID  atomic.Uint64
	idBase string

	smu  sync.Mutex
	subs atomic.Pointer[[]*subscriber]

	fmu     sync.Mutex
	follows map[int64]*follow

	pmu  sync.Mutex
	pubs map[string]*publishing // by message id

	trackers *tail
	health   atomic.Pointer[error]
	// refollow is set when the connection was lost: once JetStream
	// answers again, every tail gets a new consumer (see tail).
	refollow   atomic.Bool
	restarting atomic.Bool
	wg         sync.WaitGroup // restarts of the tails in progress
	quit       chan struct{}
	done       chan struct{}
	closed     atomic.Bool
}

type subscriber struct{ fn func(*bus.Message) }

// follow is the delivery of one user's messages to this node.
type follow struct {
	refs  int
	ready chan struct{} // closed once the first sync is done (or failed)
	err   error
	tail  *tail // set before ready is closed; nil when the follow failed
}

// publishing is one of this node's publishes between its request and the
// end of its local delivery. A follow's consumer that meets the message
// waits for it: the message counts as delivered on this node only once
// its local delivery is done, and one whose publish was reported failed
// but reached the log is delivered by the consumer.
type publishing struct {
	done   chan struct{}
	failed bool
	at     time.Time
}

// Open connects to NATS, makes sure the installation's stream exists with
// the configured bounds, and starts following tracker metadata.
func Open(ctx context.Context, opts Options) (*Bus, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	b := &Bus{
		opts: opts, log: opts.Logger.With("component", "bus", "node", opts.Node), subj: subjects{opts.Prefix},
		name: opts.Prefix + "_events", follows: map[int64]*follow{}, pubs: map[string]*publishing{},
		quit: make(chan struct{}), done: make(chan struct{}),
	}
	var nb [6]byte
	_, _ = rand.Read(nb[:])
	b.idBase = opts.Node + "-" + hex.EncodeToString(nb[:]) + "-"
	b.subs.Store(&[]*subscriber{})
	nc, err := nats.Connect(opts.URL,
		nats.Name("fleetwire "+opts.Node),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.RetryOnFailedConnect(false),
		// While disconnected, publishing fails at once instead of being
		// buffered: the device is told to send again, and no change the
		// node reported as failed reaches the log later.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			mDisconnects.Inc()
			mConnected.Set(0)
			b.log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			mReconnects.Inc()
			b.refollow.Store(true)
			b.log.Info("nats reconnected", "server", c.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			b.log.Warn("nats error", "subject", subject, "err", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	b.nc = nc
	if b.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	cfg := jetstream.StreamConfig{
		Name:        b.name,
		Description: "fleetwire changes: states, lifecycle, logouts, trackers",
		Subjects:    b.subj.all(),
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      opts.Retention,
		MaxBytes:    opts.MaxBytes,
		Replicas:    opts.Replicas,
		Duplicates:  2 * time.Minute,
		AllowDirect: true,
	}
	if b.stream, err = b.js.CreateOrUpdateStream(ctx, cfg); err != nil {
		nc.Close()
		return nil, fmt.Errorf("create stream %s: %w", b.name, err)
	}
	info, err := b.stream.Info(ctx)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("stream %s: %w", b.name, err)
	}
	// Tracker metadata from now on; what came before is in the store,
	// which the registry loads after Open.
	b.trackers = newTail(b, b.subj.trackers(), info.State.LastSeq, 0)
	if _, err := b.trackers.start(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{b.subj.trackers()}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq: info.State.LastSeq + 1, InactiveThreshold: time.Minute,
	}); err != nil {
		nc.Close()
		return nil, fmt.Errorf("follow trackers: %w", err)
	}
	var ok error
	b.health.Store(&ok)
	mConnected.Set(1)
	go b.watch()
	return b, nil
}

// Node is this node's name.
func (b *Bus) Node() string { return b.opts.Node }

// Prefix is the installation's prefix.
func (b *Bus) Prefix() string { return b.opts.Prefix }

// Conn is the NATS connection, for the other cluster services of the node.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream is the JetStream context of the connection.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Shared reports that the bus is shared with other nodes.
func (b *Bus) Shared() bool { return true }

// Publish stores m in the log, then delivers it to this node's receivers.
func (b *Bus) Publish(ctx context.Context, m *bus.Message) error {
	if b.closed.Load() {
		return fmt.Errorf("%w: bus closed", bus.ErrUnavailable)
	}
	data, err := encode(m, b.opts.Node)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(b.subj.of(m))
	msg.Data = data
	id := b.idBase + strconv.FormatUint(b.msgID.Add(1), 36)
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(id)}
	if m.Kind == bus.KindState {
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(m.Prev))
	}
	p := &publishing{done: make(chan struct{}), at: time.Now()}
	b.pmu.Lock()
	b.pubs[id] = p
	b.pmu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, b.opts.PublishTimeout)
	defer cancel()
	ack, err := b.js.PublishMsg(pctx, msg, opts...)
	if err != nil {
		// A failed publish may still have reached the log: a consumer that
		// meets it delivers it.
		b.pmu.Lock()
		p.failed = true
		b.pmu.Unlock()
		close(p.done)
	}
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			mStale.Inc()
			latest, lerr := b.Latest(ctx, m.UserID, m.TrackerID)
			if lerr != nil {
				mPublishFailed.Inc()
				return fmt.Errorf("%w: read latest state of tracker %d: %w", bus.ErrUnavailable, m.TrackerID, lerr)
			}
			return &bus.StaleError{Latest: latest}
		}
		mPublishFailed.Inc()
		return fmt.Errorf("%w: publish %s: %w", bus.ErrUnavailable, msg.Subject, err)
	}
	mOut[m.Kind].Inc()
	mBytesOut.Add(uint64(len(data)))
	m.Seq, m.Origin, m.Local = ack.Sequence, b.opts.Node, true
	if m.State != nil {
		m.State.Seq = ack.Sequence
	}
	b.deliver(m)
	close(p.done)
	b.pmu.Lock()
	delete(b.pubs, id)
	b.pmu.Unlock()
	return nil
}

// ownDelivered waits until this node's publish of a message its consumer
// met has been delivered locally, and reports whether it was (false: the
// publish was reported failed, so the consumer must deliver it).
func (b *Bus) ownDelivered(msg jetstream.Msg) bool {
	id := msg.Headers().Get(jetstream.MsgIDHeader)
	b.pmu.Lock()
	p := b.pubs[id]
	b.pmu.Unlock()
	if p == nil {
		return true
	}
	select {
	case <-p.done:
	case <-time.After(b.opts.PublishTimeout):
	}
	b.pmu.Lock()
	defer b.pmu.Unlock()
	if p.failed {
		delete(b.pubs, id)
		return false
	}
	return true
}

func (b *Bus) deliver(m *bus.Message) {
	for _, s := range *b.subs.Load() {
		s.fn(m)
	}
}

// receive decodes a message from a consumer and delivers it. Messages at
// or below syncTo are Sync messages; this node's own messages (already
// delivered when they were published) are delivered again only as such.
func (b *Bus) receive(msg jetstream.Msg, md *jetstream.MsgMetadata, syncTo uint64) {
	seq := md.Sequence.Stream
	m, err := decode(msg.Data(), seq)
	if err != nil {
		mUndecodable.Inc()
		b.log.Warn("undecodable bus message", "subject", msg.Subject(), "seq", seq, "err", err)
		return
	}
	m.Sync = seq <= syncTo
	if m.Origin == b.opts.Node && !m.Sync && b.ownDelivered(msg) {
		return
	}
	mIn[m.Kind].Inc()
	mBytesIn.Add(uint64(len(msg.Data())))
	b.deliver(m)
}

// Subscribe adds fn; the returned func removes it.
func (b *Bus) Subscribe(fn func(*bus.Message)) (cancel func()) {
	s := &subscriber{fn: fn}
	b.smu.Lock()
	old := *b.subs.Load()
	next := append(append(make([]*subscriber, 0, len(old)+1), old...), s)
	b.subs.Store(&next)
	b.smu.Unlock()
	return func() {
		b.smu.Lock()
		defer b.smu.Unlock()
		cur := *b.subs.Load()
		next := make([]*subscriber, 0, len(cur))
		for _, x := range cur {
			if x != s {
				next = append(next, x)
			}
		}
		b.subs.Store(&next)
	}
}

// Follow starts the delivery of the user's messages from other nodes and
// returns once the latest message of each of the user's subjects has been
// delivered (as Sync messages).
func (b *Bus) Follow(ctx context.Context, userID int64) (func(), error) {
	b.fmu.Lock()
	f := b.follows[userID]
	if f == nil {
		f = &follow{ready: make(chan struct{})}
		b.follows[userID] = f
		mFollowed.Add(1)
		go b.startFollow(userID, f)
	}
	f.refs++
	b.fmu.Unlock()
	select {
	case <-f.ready:
	case <-ctx.Done():
		b.unfollow(userID, f)
		return nil, fmt.Errorf("follow user %d: %w", userID, ctx.Err())
	}
	if f.err != nil {
		b.unfollow(userID, f)
		return nil, f.err
	}
	var once sync.Once
	return func() { once.Do(func() { b.unfollow(userID, f) }) }, nil
}

func (b *Bus) unfollow(userID int64, f *follow) {
	b.fmu.Lock()
	f.refs--
	last := f.refs == 0
	if last && b.follows[userID] == f {
		delete(b.follows, userID)
		mFollowed.Add(-1)
	}
	b.fmu.Unlock()
	if last {
		<-f.ready
		if f.tail != nil {
			f.tail.stop()
		}
	}
}

// followPull are the pull options of the ordered consumers a node follows
// the log with. After a reconnect the bus gives every tail a new consumer
// itself (see tail); a consumer lost without one is noticed by its
// missing heartbeats and recreated by the library from the last message
// delivered. The library's default heartbeat (15 s, noticed after 30 s)
// would leave the node's clients without events for that long.
var followPull = []jetstream.PullConsumeOpt{jetstream.PullExpiry(10 * time.Second), jetstream.PullHeartbeat(2 * time.Second)}

// startFollow creates the user's ordered consumer: the latest message of
// each subject first, then every new one.
func (b *Bus) startFollow(userID int64, f *follow) {
	defer close(f.ready)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := b.stream.Info(ctx)
	if err != nil {
		f.err = fmt.Errorf("%w: follow user %d: %w", bus.ErrUnavailable, userID, err)
		return
	}
	head := info.State.LastSeq
	t := newTail(b, b.subj.user(userID), head, head)
	synced := make(chan struct{})
	var syncOnce sync.Once
	t.seen = func(md *jetstream.MsgMetadata) {
		if md.NumPending == 0 {
			syncOnce.Do(func() { close(synced) })
		}
	}
	cons, err := t.start(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{b.subj.user(userID)}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		t.stop()
		f.err = fmt.Errorf("%w: follow user %d: %w", bus.ErrUnavailable, userID, err)
		return
	}
	if cons.CachedInfo().NumPending == 0 {
		syncOnce.Do(func() { close(synced) })
	}
	select {
	case <-synced:
		f.tail = t
	case <-ctx.Done():
		t.stop()
		f.err = fmt.Errorf("%w: follow user %d: no sync within 10s", bus.ErrUnavailable, userID)
	}
}

// Position is the sequence number up to which the user's messages have
// reached this node (0 when it does not follow the user).
func (b *Bus) Position(userID int64) uint64 {
	b.fmu.Lock()
	f := b.follows[userID]
	b.fmu.Unlock()
	if f == nil {
		return 0
	}
	select {
	case <-f.ready:
	default:
		return 0
	}
	if f.tail == nil {
		return 0
	}
	return f.tail.pos.Load()
}

// Latest returns the tracker's latest state message, or nil.
func (b *Bus) Latest(ctx context.Context, userID, trackerID int64) (*bus.Message, error) {
	raw, err := b.stream.GetLastMsgForSubject(ctx, b.subj.state(userID, trackerID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("latest state of tracker %d: %w", trackerID, err)
	}
	m, err := decode(raw.Data, raw.Sequence)
	if err != nil {
		return nil, err
	}
	m.Sync = true
	return m, nil
}

// Replay reads the user's messages from seq from to the end of the log.
func (b *Bus) Replay(ctx context.Context, userID int64, from uint64, fn func(*bus.Message) bool) (uint64, error) {
	if from == 0 {
		from = 1
	}
	cons, err := b.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{b.subj.user(userID)}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq: from, InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return 0, fmt.Errorf("replay user %d from %d: %w", userID, from, err)
	}
	if cons.CachedInfo().NumPending == 0 {
		return 0, nil
	}
	var first uint64
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return first, fmt.Errorf("replay user %d: %w", userID, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				continue
			}
			m, err := decode(msg.Data(), md.Sequence.Stream)
			if err != nil {
				mUndecodable.Inc()
				continue
			}
			if first == 0 {
				first = m.Seq
			}
			if !fn(m) || md.NumPending == 0 {
				return first, nil
			}
		}
		if err := batch.Error(); err != nil {
			return first, fmt.Errorf("replay user %d: %w", userID, err)
		}
		if n == 0 {
			return first, nil
		}
	}
}

// LastSeq is the sequence number of the newest message in the log.
func (b *Bus) LastSeq(ctx context.Context) (uint64, error) {
	info, err := b.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", b.name, err)
	}
	return info.State.LastSeq, nil
}

// Healthy reports whether the connection is up and the stream answers.
func (b *Bus) Healthy() error { return *b.health.Load() }

// watch checks the stream every second and keeps Healthy current.
func (b *Bus) watch() {
	defer close(b.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-b.quit:
			return
		case <-t.C:
		}
		var err error
		if !b.nc.IsConnected() {
			err = fmt.Errorf("%w: nats %s", bus.ErrUnavailable, b.nc.Status())
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, serr := b.stream.Info(ctx)
			cancel()
			if serr != nil {
				err = fmt.Errorf("%w: stream %s: %w", bus.ErrUnavailable, b.name, serr)
			}
		}
		b.pmu.Lock()
		for id, p := range b.pubs {
			if p.failed && time.Since(p.at) > 2*time.Minute {
				delete(b.pubs, id)
			}
		}
		b.pmu.Unlock()
		if err != nil {
			// Ordered consumers may be gone with a restarted NATS.
			b.refollow.Store(true)
		} else if b.refollow.Load() && b.restarting.CompareAndSwap(false, true) {
			b.refollow.Store(false)
			b.wg.Add(1)
			go b.restartTails()
		}
		prev := *b.health.Load()
		if (prev == nil) != (err == nil) {
			if err != nil {
				b.log.Warn("bus unavailable", "err", err)
				mConnected.Set(0)
			} else {
				b.log.Info("bus available again")
				mConnected.Set(1)
			}
		}
		b.health.Store(&err)
	}
}

// restartTails gives every tail a consumer that starts after the last
// message it handed on. When one cannot be restarted, all are tried
// again on the next check.
func (b *Bus) restartTails() {
	defer b.wg.Done()
	defer b.restarting.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		select {
		case <-b.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	tails := []*tail{b.trackers}
	b.fmu.Lock()
	for _, f := range b.follows {
		select {
		case <-f.ready:
			if f.tail != nil {
				tails = append(tails, f.tail)
			}
		default: // still starting, on the connection as it is now
		}
	}
	b.fmu.Unlock()
	start := time.Now()
	for _, t := range tails {
		if err := t.restart(ctx); err != nil {
			b.refollow.Store(true)
			b.log.Warn("follow the log again: will retry", "err", err)
			return
		}
	}
	mRefollows.Inc()
	b.log.Info("following the log again", "consumers", len(tails), "took", time.Since(start).Round(time.Millisecond))
}

// Close stops every follow and closes the connection.
func (b *Bus) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(b.quit)
	<-b.done
	b.wg.Wait()
	b.trackers.stop()
	b.fmu.Lock()
	fs := b.follows
	b.follows = map[int64]*follow{}
	b.fmu.Unlock()
	for _, f := range fs {
		<-f.ready
		if f.tail != nil {
			f.tail.stop()
		}
	}
	if err := b.nc.Drain(); err != nil {
		b.nc.Close()
		return fmt.Errorf("drain nats: %w", err)
	}
	return nil
}

var _ bus.Bus = (*Bus)(nil)

package atmosphere

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fleetwire/fleetwire/internal/netlimit"
	"github.com/fleetwire/fleetwire/internal/wire/readiness"
	"github.com/fleetwire/fleetwire/internal/wire/websocket"
	"github.com/fleetwire/fleetwire/internal/wire/wheel"
)

// closeWait is how long the server waits for the client's close frame
// after sending its own.
const closeWait = time.Second

// wsReadBuffer is each WebSocket's read buffer. Idle connections are most
// connections, and client messages are small; larger ones are read
// straight into the message.
const wsReadBuffer = 512

// wsUpgrader is the WebSocket handshake of the event endpoint: every
// origin admitted, permessage-deflate for messages from
// opts.CompressionThreshold bytes.
func wsUpgrader(srv *Server, opts Options) websocket.Upgrader {
	return websocket.Upgrader{
		Compression:          opts.CompressionThreshold >= 0,
		CompressionThreshold: opts.CompressionThreshold,
		ReadBufferSize:       wsReadBuffer,
		ReadLimit:            maxMessage,
		IdleTimeout:          opts.IdleTimeout,
		WriteTimeout:         opts.WriteTimeout,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason string) {
			srv.fail(w, r, status, reason)
		},
	}
}

// Messages the transport writes on its own.
var (
	// wsHeartbeat is the bare padding: a frame is one message, so it needs
	// no length prefix, and both clients filter it.
	wsHeartbeat = mustPrepare([]byte("X"))
	// wsLegacyPadding is what legacy clients get first on a reattach: they
	// fire onReopen on the first frame, and drop whitespace.
	wsLegacyPadding = mustPrepare([]byte(strings.Repeat(" ", paddingLen)))
)

func mustPrepare(b []byte) *websocket.PreparedMessage {
	m, err := websocket.NewPreparedMessage(websocket.OpText, b)
	if err != nil {
		panic(err)
	}
	return m
}

// wsConn is the WebSocket transport of one attachment.
type wsConn struct {
	conn  *websocket.Conn
	track bool
}

// write sends ds as text frames, all in one write: each message's frame
// (and compressed frame) is shared with every connection that sends it.
// log takes the warning about a message that is not UTF-8.
func (c *wsConn) write(ds []delivery, log *slog.Logger) (int, error) {
	var arr [drainBatch]*websocket.PreparedMessage
	ms := arr[:0]
	for _, d := range ds {
		ms = append(ms, prepared.get(d.msg, c.track, log))
	}
	return c.conn.WritePrepared(ms)
}

func (c *wsConn) send(m *websocket.PreparedMessage) error {
	_, err := c.conn.WritePrepared([]*websocket.PreparedMessage{m})
	return err
}

func (c *wsConn) heartbeat() error { return c.send(wsHeartbeat) }

// closeFrame sends a close frame; only the first one goes out.
func (c *wsConn) closeFrame(code int, reason string) {
	_ = c.conn.WriteClose(code, reason)
}

// serveWebSocket upgrades r and carries the session over it.
func (srv *Server) serveWebSocket(w http.ResponseWriter, r *http.Request, p params) {
	// The run exists from the start, empty, so that the attachment can
	// cut the connection in every phase (see cut).
	rn := &wsRun{}
	a := newAttachment(tWebSocket, rn.cut)
	s, kind, err := srv.attach(r, p, a)
	if err != nil {
		srv.openError(w, r, err)
		return
	}
	handedOver := false
	defer func() {
		if !handedOver {
			s.release(a)
		}
	}()
	created := kind.handshake()
	hdr := http.Header{}
	hdr.Set(hTrackingID, s.id)
	if created {
		hdr.Set(hFirst, "true")
	}
	srv.cors(hdr, r)
	c, err := srv.upgrader.Upgrade(w, r, hdr)
	if err != nil {
		if kind == openedNew {
			srv.remove(s, 1000, "", nil)
		}
		return
	}
	rn.mu.Lock()
	rn.wc.conn = c
	rn.mu.Unlock()
	if a.stopped() {
		// Replaced or removed while upgrading.
		_ = c.Close()
	}
	// The connection lives on without the handler: returning lets
	// net/http release the request, its 4 KiB read and write buffers and
	// the handler's deep stack, which would otherwise stay with every
	// idle connection. From here on it has no goroutine of its own while
	// nothing happens (see wsRun).
	handedOver = true
	srv.initWSRun(rn, s, a, p, created)
	rn.mu.Lock()
	rn.started = true
	rn.mu.Unlock()
	rn.start()
}

// bound reports whether s's client has authenticated.
func (s *session) bound() bool {
	b, ok := s.app.(Binder)
	return !ok || b.Bound()
}

// readState is the reader's state of a wsRun.
type readState uint8

// Reader states of a wsRun.
const (
	readArmed   readState = iota // waiting for readiness on the poller: no goroutine
	readRunning                  // a goroutine reads
	readEnded                    // the connection's reading is over
)

// wsRun carries session s over an upgraded WebSocket with no goroutine of
// its own while the connection is idle:
//
//   - Writing: a push into the outbox (its notify hook), a detach, a
//     heartbeat or a journal retry starts a writer goroutine unless one
//     runs; it drains and writes as the delivery loop (pump) does, one
//     coalesced write per batch, and exits when nothing is left. One
//     writer at a time keeps the order and session.take's journal and
//     ring rules; a slow client holds only its own writer.
//   - Reading: with the shared readiness poller, the socket is armed
//     (epoll, one shot); when it becomes readable a goroutine reads
//     whatever is there without blocking (TryReadMessage), handles the
//     messages and arms the socket again. A goroutine waits in Read only
//     while a frame is partly received. Without the poller
//     (Options.GoroutineReads, other systems, a connection that is not a
//     plain socket) one goroutine reads for the connection's life.
//   - Heartbeats, pings and the idle timeout share one timer, a slot on
//     the process's timing wheel (package wheel: no runtime timer, closure
//     or goroutine of its own); a write or a read only stores a time. The
//     subscription deadline has its own timer until the client subscribes.
type wsRun struct {
	srv       *Server
	s         *session
	a         *attachment
	wc        wsConn
	heartbeat time.Duration
	hello     *websocket.PreparedMessage // sent first by the first writer, if any
	watch     *readiness.Watch           // nil: a reader goroutine

	// tick is the connection's one lasting timer, on the shared wheel:
	// heartbeats, pings and the idle timeout (see ticked); subscribe,
	// retry and linger exist only while needed.
	tick                     wheel.Timer
	subscribe, retry, linger *time.Timer
	lastRead, lastWrite      atomic.Int64 // monotonic nanoseconds (now)
	nextPing                 int64        // owned by tick

	mu       sync.Mutex
	started  bool      // start was called: cut closes through closeConn
	writing  bool      // a writer goroutine runs
	again    bool      // something happened while it ran: it looks again
	hbDue    bool      // the heartbeat period passed without a write
	retrying bool      // the journal failed: take nothing until the retry timer fires
	reading  readState // readArmed, readRunning or readEnded
	ended    bool      // delivery is over (finish ran or runs)
	closed   bool      // the connection was closed
	settled  bool      // everything is over: the server's wait group is done
	authed   bool      // the client authenticated (reader-owned)
}

// wsWheel keeps every WebSocket's tick. Ten milliseconds is far below the
// shortest heartbeat a client can ask for (one second).
var wsWheel = wheel.New(10 * time.Millisecond)

// wsPoller is the process's readiness poller, started on first use.
var wsPoller = sync.OnceValues(readiness.New)

// initWSRun readies r to carry s over its upgraded connection (r.wc.conn,
// set by the caller).
func (srv *Server) initWSRun(r *wsRun, s *session, a *attachment, p params, created bool) {
	c := r.wc.conn
	r.srv, r.s, r.a = srv, s, a
	r.wc.track = p.track
	r.heartbeat = p.heartbeatPeriod(srv.opts.Heartbeat)
	r.mu.Lock()
	r.reading = readRunning
	r.mu.Unlock()
	if created && p.protocol {
		if m, err := websocket.NewPreparedMessage(websocket.OpText, appendMessage(nil, srv.handshake(s.id), p.track)); err == nil {
			r.hello = m
		}
	} else if !created && p.protocol && p.legacy() {
		r.hello = wsLegacyPadding
	}
	if !srv.opts.GoroutineReads {
		if poller, err := wsPoller(); err == nil {
			if sc, ok := c.NetConn().(syscall.Conn); ok {
				if rc, err := sc.SyscallConn(); err == nil {
					r.watch = poller.Watch(rc, r.readable)
				}
			}
		}
	}
}

// cut is the attachment's kick: it cuts the connection, whatever phase
// the run is in — nothing before the upgrade, the bare connection before
// start, the whole run after.
func (r *wsRun) cut() {
	r.mu.Lock()
	c, started := r.wc.conn, r.started
	r.mu.Unlock()
	switch {
	case started:
		r.closeConn()
	case c != nil:
		_ = c.Close()
	}
}

// start sets the timers and hooks and starts the first writer (which
// sends the handshake) and the reader.
func (r *wsRun) start() {
	srv, s := r.srv, r.s
	srv.wg.Add(1)
	if s.bound() {
		r.authenticated()
	} else if d := srv.opts.SubscribeWithin; d > 0 {
		a := r.a
		r.subscribe = time.AfterFunc(d, func() {
			if !s.bound() {
				a.detach(1008, "no subscription within "+d.String())
			}
		})
	}
	t := now()
	r.lastRead.Store(t)
	r.lastWrite.Store(t)
	if r.idle() > 0 || r.heartbeat > 0 {
		r.nextPing = t + int64(r.idle()/3)
		r.tick.Init(r)
		wsWheel.Set(&r.tick, time.Duration(r.next(t)-t))
	}
	// The first writer is counted before the hooks can start one, so
	// there is never more than one.
	r.mu.Lock()
	r.writing = true
	r.mu.Unlock()
	kick := r.kick
	r.a.onStop.Store(&kick)
	s.q.SetNotify(kick)
	go r.writeLoop()

	if r.watch == nil {
		go r.readLoop()
		return
	}
	go r.readSome()
}

// kick makes a writer look at the session: it starts one unless one runs.
func (r *wsRun) kick() {
	r.mu.Lock()
	if r.ended {
		r.mu.Unlock()
		return
	}
	if r.writing {
		r.again = true
		r.mu.Unlock()
		return
	}
	r.writing = true
	r.mu.Unlock()
	writers.run(r.writeLoop)
}

// writeLoop is one writer: it runs steps until there is nothing to do, or
// the delivery ends. Kicked again meanwhile, it goes to the back of the
// writers' line when other connections wait there, gathering what
// arrives until its turn.
func (r *wsRun) writeLoop() {
	for {
		res, over := r.step()
		if over {
			r.finish(res)
			return
		}
		r.mu.Lock()
		if !r.again {
			r.writing = false
			r.mu.Unlock()
			return
		}
		r.again = false
		r.mu.Unlock()
		if writers.waiting() > 0 {
			writers.run(r.writeLoop)
			return
		}
	}
}

// step is one pass of the delivery loop: write what there is to write,
// then report whether the delivery is over and why.
func (r *wsRun) step() (end, bool) {
	s, a := r.s, r.a
	if m := r.hello; m != nil {
		r.hello = nil
		if r.wc.send(m) != nil {
			return endGone, true
		}
	}
	r.mu.Lock()
	retrying := r.retrying
	r.mu.Unlock()
	for !retrying {
		ds, terr := s.take(a, drainBatch)
		if len(ds) > 0 {
			n, err := r.wc.write(ds, r.srv.log)
			if err != nil {
				s.undeliver(a, ds[n:])
				return endGone, true
			}
			r.resetHeartbeat()
		}
		if terr != nil {
			// The journal could not keep the messages: try again shortly.
			r.mu.Lock()
			r.retrying = true
			r.mu.Unlock()
			retrying = true
			if r.retry == nil {
				r.retry = time.AfterFunc(journalRetry, r.retried)
			} else {
				r.retry.Reset(journalRetry)
			}
		}
		if len(ds) == 0 {
			break
		}
	}
	if a.stopped() {
		return endStopped, true
	}
	if done, _, _ := s.ended(); done {
		return endClosed, true
	}
	r.mu.Lock()
	dead, hb := r.reading == readEnded, r.hbDue
	r.hbDue = false
	r.mu.Unlock()
	if dead {
		return endGone, true
	}
	if hb {
		if r.wc.heartbeat() != nil {
			return endGone, true
		}
		r.resetHeartbeat()
	}
	return 0, false
}

// monoStart anchors now.
var monoStart = time.Now()

// now is monotonic nanoseconds since monoStart.
func now() int64 { return int64(time.Since(monoStart)) }

// idle is the server's idle timeout for WebSockets (0: none).
func (r *wsRun) idle() time.Duration { return r.srv.opts.IdleTimeout }

func (r *wsRun) resetHeartbeat() { r.lastWrite.Store(now()) }

// next is when the timer should fire after t: the next ping, the idle
// deadline, the heartbeat, whichever comes first.
func (r *wsRun) next(t int64) int64 {
	next := int64(1<<63 - 1)
	if r.idle() > 0 {
		next = r.nextPing
		if r.watch != nil {
			// A goroutine reader has the read deadline for this.
			next = min(next, r.lastRead.Load()+int64(r.idle()))
		}
	}
	if r.heartbeat > 0 {
		hb := r.lastWrite.Load() + int64(r.heartbeat)
		if hb <= t {
			hb = t + int64(r.heartbeat) // due now: the writer is on it
		}
		next = min(next, hb)
	}
	return max(next, t+int64(time.Millisecond))
}

// Fire is the wheel's call when tick is due. It must not block, and a
// ping is a write: ticked runs on a goroutine of its own, as a runtime
// timer's function would.
func (r *wsRun) Fire() { go r.ticked() }

// ticked is the timer: it closes a connection silent for the idle
// timeout, pings every third of it (every client answers a ping with a
// pong, which counts as the client being alive: a client that only
// listens is not taken for a silent one), and has the writer send a
// heartbeat when nothing was written for the heartbeat period.
func (r *wsRun) ticked() {
	t := now()
	if r.idle() > 0 && r.watch != nil && t-r.lastRead.Load() >= int64(r.idle()) {
		r.closeConn()
		return
	}
	if r.idle() > 0 && t >= r.nextPing {
		if r.wc.conn.WritePing(nil) != nil {
			return
		}
		r.nextPing = t + int64(r.idle()/3)
	}
	if r.heartbeat > 0 && t-r.lastWrite.Load() >= int64(r.heartbeat) {
		r.mu.Lock()
		r.hbDue = true
		r.mu.Unlock()
		r.kick()
	}
	// An idle connection should not keep its queue's array for the next
	// message; ticks are seconds apart, so a busy one pays at most an
	// allocation a tick for it.
	r.s.q.Trim()
	r.mu.Lock()
	if !r.ended {
		wsWheel.Set(&r.tick, time.Duration(r.next(t)-t))
	}
	r.mu.Unlock()
}

func (r *wsRun) retried() {
	r.mu.Lock()
	r.retrying = false
	r.mu.Unlock()
	r.kick()
}

// finish ends the delivery: the attachment is released, the close frame
// sent where there is one to send, and the connection closed once the
// client answered it or closeWait passed.
func (r *wsRun) finish(res end) {
	s, a := r.s, r.a
	r.mu.Lock()
	r.ended = true
	r.mu.Unlock()
	r.mu.Lock()
	sub := r.subscribe
	r.mu.Unlock()
	wsWheel.Stop(&r.tick)
	for _, t := range []*time.Timer{sub, r.retry} {
		if t != nil {
			t.Stop()
		}
	}
	a.onStop.Store(nil)
	// Delivery is over: a replacing attachment may go ahead while this
	// connection says goodbye.
	s.q.SetNotify(nil)
	s.release(a)
	switch res {
	case endStopped:
		r.wc.closeFrame(int(a.code), a.reason)
	case endClosed:
		_, code, reason := s.q.Closed()
		r.wc.closeFrame(code, reason)
		r.srv.remove(s, code, reason, nil)
	default:
		r.closeConn()
		return
	}
	r.mu.Lock()
	readDone := r.reading == readEnded
	if !readDone {
		r.linger = time.AfterFunc(closeWait, r.closeConn)
	}
	r.mu.Unlock()
	if readDone {
		r.closeConn()
	}
}

// closeConn closes the connection (once). A reader waiting for readiness
// ends with it: a closed socket leaves the epoll set without an event.
func (r *wsRun) closeConn() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.settle()
		return
	}
	r.closed = true
	parked := r.reading == readArmed
	if parked {
		r.reading = readEnded
	}
	r.mu.Unlock()
	if r.watch != nil {
		r.watch.Remove()
	}
	_ = r.wc.conn.Close()
	if parked {
		r.readEnded()
	} else {
		r.settle()
	}
}

// readEnded is the reader's end: the writer learns the connection is
// gone; after the delivery ended, the connection is closed.
func (r *wsRun) readEnded() {
	r.mu.Lock()
	ended, linger := r.ended, r.linger
	r.mu.Unlock()
	if !ended {
		r.kick()
		return
	}
	if linger != nil {
		linger.Stop()
	}
	r.closeConn()
	r.settle()
}

// settle marks the connection done with the server once it is closed,
// its reader ended and its delivery finished.
func (r *wsRun) settle() {
	r.mu.Lock()
	if r.settled || !r.closed || !r.ended || r.reading != readEnded {
		r.mu.Unlock()
		return
	}
	r.settled = true
	r.mu.Unlock()
	wsWheel.Stop(&r.tick)
	r.srv.wg.Done()
}

// readable is the poller's callback: the socket has something to read.
func (r *wsRun) readable() {
	r.mu.Lock()
	if r.reading != readArmed {
		r.mu.Unlock()
		return
	}
	r.reading = readRunning
	r.mu.Unlock()
	go r.readSome()
}

// readSome reads and handles what the socket holds, then arms it again.
func (r *wsRun) readSome() {
	r.lastRead.Store(now())
	for {
		op, data, err := r.wc.conn.TryReadMessage()
		if errors.Is(err, websocket.ErrWouldBlock) {
			r.mu.Lock()
			if !r.closed {
				r.reading = readArmed
				if r.watch.Arm() == nil {
					r.mu.Unlock()
					return
				}
			}
			r.reading = readEnded
			r.mu.Unlock()
			r.readEnded()
			return
		}
		if err != nil {
			r.mu.Lock()
			r.reading = readEnded
			r.mu.Unlock()
			r.readEnded()
			return
		}
		r.handle(op, data)
	}
}

// readLoop is the portable reader: one goroutine for the connection's
// life.
func (r *wsRun) readLoop() {
	for {
		op, data, err := r.wc.conn.ReadMessage()
		if err != nil {
			break
		}
		r.handle(op, data)
	}
	r.mu.Lock()
	r.reading = readEnded
	r.mu.Unlock()
	r.readEnded()
}

// handle hands a client's text message to the session. A message that is
// exactly the padding `X` is a client heartbeat and is swallowed.
// Protocol errors, invalid UTF-8 and messages over maxMessage end the
// connection with the RFC's close code before anything reaches the
// session.
func (r *wsRun) handle(op websocket.Opcode, data []byte) {
	if op != websocket.OpText || string(data) == "X" {
		return
	}
	r.s.app.Receive(data)
	if !r.authed && r.s.bound() {
		r.authenticated()
	}
}

// authenticated marks the connection authenticated, and drops the
// subscription deadline.
func (r *wsRun) authenticated() {
	r.authed = true
	netlimit.AuthenticatedConn(r.wc.conn.NetConn())
	r.mu.Lock()
	if r.subscribe != nil {
		r.subscribe.Stop()
		r.subscribe = nil
	}
	r.mu.Unlock()
}

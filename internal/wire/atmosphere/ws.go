package atmosphere

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fleetwire/fleetwire/internal/netlimit"
	"github.com/fleetwire/fleetwire/internal/wire/websocket"
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
	log   *slog.Logger
}

// write sends ds as text frames, all in one write: each message's frame
// (and compressed frame) is shared with every connection that sends it.
func (c *wsConn) write(ds []delivery) (int, error) {
	var arr [drainBatch]*websocket.PreparedMessage
	ms := arr[:0]
	for _, d := range ds {
		ms = append(ms, prepared.get(d.msg, c.track, c.log))
	}
	return c.conn.WritePrepared(ms)
}

func (c *wsConn) send(m *websocket.PreparedMessage) error {
	_, err := c.conn.WritePrepared([]*websocket.PreparedMessage{m})
	return err
}

func (c *wsConn) sendText(b []byte) error {
	m, err := websocket.NewPreparedMessage(websocket.OpText, b)
	if err != nil {
		return err
	}
	return c.send(m)
}

func (c *wsConn) heartbeat() error { return c.send(wsHeartbeat) }

// closeFrame sends a close frame; only the first one goes out.
func (c *wsConn) closeFrame(code int, reason string) {
	_ = c.conn.WriteClose(code, reason)
}

// serveWebSocket upgrades r and carries the session over it.
func (srv *Server) serveWebSocket(w http.ResponseWriter, r *http.Request, p params) {
	var conn *websocket.Conn
	var connMu sync.Mutex
	a := newAttachment(tWebSocket, func() {
		connMu.Lock()
		defer connMu.Unlock()
		if conn != nil {
			_ = conn.Close()
		}
	})
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
	connMu.Lock()
	conn = c
	connMu.Unlock()
	if a.stopped() {
		// Replaced or removed while upgrading.
		_ = c.Close()
	}
	// The connection lives on in a goroutine of its own: returning from
	// the handler lets net/http release the request and its 4 KiB read
	// and write buffers, and the handler's deep stack, which would
	// otherwise stay with every idle connection.
	handedOver = true
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		defer s.release(a)
		defer c.Close()
		srv.runWebSocket(r.Context(), s, a, c, p, created)
	}()
}

// bound reports whether s's client has authenticated.
func (s *session) bound() bool {
	b, ok := s.app.(Binder)
	return !ok || b.Bound()
}

// runWebSocket carries session s over the upgraded connection c until
// either ends.
func (srv *Server) runWebSocket(ctx context.Context, s *session, a *attachment, c *websocket.Conn, p params, created bool) {
	wc := &wsConn{conn: c, track: p.track, log: srv.log}
	if s.bound() {
		netlimit.Authenticated(ctx)
	} else if d := srv.opts.SubscribeWithin; d > 0 {
		t := time.AfterFunc(d, func() {
			if !s.bound() {
				a.detach(1008, "no subscription within "+d.String())
			}
		})
		defer t.Stop()
	}

	if idle := srv.opts.IdleTimeout; idle > 0 {
		// Every client answers a ping with a pong, which counts as the
		// client being alive: a client that only listens is not taken for
		// a silent one.
		ping := time.NewTicker(idle / 3)
		defer ping.Stop()
		stopPing := make(chan struct{})
		defer close(stopPing)
		go func() {
			for {
				select {
				case <-stopPing:
					return
				case <-ping.C:
					if c.WritePing(nil) != nil {
						return
					}
				}
			}
		}()
	}

	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		srv.readWebSocket(ctx, s, wc)
	}()

	ok := true
	if created && p.protocol {
		ok = wc.sendText(appendMessage(nil, srv.handshake(s.id), p.track)) == nil
	} else if !created && p.protocol && p.legacy() {
		ok = wc.send(wsLegacyPadding) == nil
	}
	res := endGone
	if ok {
		res = s.pump(a, wc, loop{
			heartbeat: p.heartbeatPeriod(srv.opts.Heartbeat),
			max:       drainBatch,
			dead:      readDone,
		})
	}
	// Delivery is over: a replacing attachment may go ahead while this
	// connection says goodbye.
	s.release(a)
	switch res {
	case endStopped:
		wc.closeFrame(a.code, a.reason)
	case endClosed:
		_, code, reason := s.q.Closed()
		wc.closeFrame(code, reason)
		srv.remove(s, code, reason, nil)
	default:
		_ = c.Close()
		<-readDone
		return
	}
	t := time.NewTimer(closeWait)
	select {
	case <-readDone:
	case <-t.C:
	}
	t.Stop()
	_ = c.Close()
	<-readDone
}

// readWebSocket hands the client's text messages to the session until
// the connection ends. A message that is exactly the padding `X` is a
// client heartbeat and is swallowed. Protocol errors, invalid UTF-8 and
// messages over maxMessage end the connection with the RFC's close code
// before anything reaches the session.
func (srv *Server) readWebSocket(ctx context.Context, s *session, wc *wsConn) {
	authed := false
	for {
		op, data, err := wc.conn.ReadMessage()
		if err != nil {
			return
		}
		if op != websocket.OpText || string(data) == "X" {
			continue
		}
		s.app.Receive(data)
		if !authed && s.bound() {
			authed = true
			netlimit.Authenticated(ctx)
		}
	}
}

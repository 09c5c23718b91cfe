package atmosphere

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// closeWait is how long the server waits for the client's close frame
// after sending its own.
const closeWait = time.Second

// wsConn is the WebSocket transport of one attachment.
type wsConn struct {
	conn    *websocket.Conn
	track   bool
	timeout time.Duration
	buf     []byte

	closeOnce sync.Once
}

func (c *wsConn) write(ds []delivery) (int, error) {
	for i, d := range ds {
		c.buf = appendMessage(c.buf[:0], d.msg, c.track)
		if err := c.send(c.buf); err != nil {
			return i, err
		}
	}
	return len(ds), nil
}

func (c *wsConn) send(b []byte) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

// heartbeat sends the bare padding: a frame is one message, so it needs no
// length prefix, and both clients filter it.
func (c *wsConn) heartbeat() error { return c.send([]byte("X")) }

// closeFrame sends a close frame once.
func (c *wsConn) closeFrame(code int, reason string) {
	c.closeOnce.Do(func() {
		_ = c.conn.WriteControl(websocket.CloseMessage, closePayload(code, reason), time.Now().Add(c.timeout))
	})
}

// closePayload builds a close frame body with a code a client accepts and
// a reason that fits a control frame.
func closePayload(code int, reason string) []byte {
	switch {
	case code == websocket.CloseNoStatusReceived, code == websocket.CloseAbnormalClosure,
		code == websocket.CloseTLSHandshake, code < 1000, code >= 5000,
		code > 1015 && code < 3000:
		code = websocket.CloseNormalClosure
	}
	const maxReason = 123
	if len(reason) > maxReason {
		reason = reason[:maxReason]
		for !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	return websocket.FormatCloseMessage(code, reason)
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
		srv.runWebSocket(s, a, c, p, created)
	}()
}

// runWebSocket carries session s over the upgraded connection c until
// either ends.
func (srv *Server) runWebSocket(s *session, a *attachment, c *websocket.Conn, p params, created bool) {
	wc := &wsConn{conn: c, track: p.track, timeout: srv.opts.WriteTimeout}

	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		srv.readWebSocket(s, wc)
	}()

	ok := true
	if created && p.protocol {
		ok = wc.send(appendMessage(nil, srv.handshake(s.id), p.track)) == nil
	} else if !created && p.protocol && p.legacy() {
		// Legacy clients fire onReopen on the first frame after a
		// reconnect; whitespace is dropped by them.
		ok = wc.send([]byte(strings.Repeat(" ", paddingLen))) == nil
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

// readWebSocket hands the client's text frames to the session until the
// connection ends. A frame that is exactly the padding `X` is a client
// heartbeat and is swallowed.
func (srv *Server) readWebSocket(s *session, wc *wsConn) {
	c := wc.conn
	c.SetReadLimit(maxMessage)
	idle := srv.opts.IdleTimeout
	alive := func() {
		if idle > 0 {
			_ = c.SetReadDeadline(time.Now().Add(idle))
		}
	}
	alive()
	c.SetPongHandler(func(string) error { alive(); return nil })
	for {
		typ, rd, err := c.NextReader()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				// The library already sent 1009.
				wc.closeOnce.Do(func() {})
			}
			return
		}
		alive()
		data, err := io.ReadAll(io.LimitReader(rd, maxMessage+1))
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				wc.closeOnce.Do(func() {})
			}
			return
		}
		if len(data) > maxMessage {
			// A compressed frame that inflates beyond the limit.
			wc.closeFrame(websocket.CloseMessageTooBig, "")
			return
		}
		if typ != websocket.TextMessage || string(data) == "X" {
			continue
		}
		s.app.Receive(data)
	}
}

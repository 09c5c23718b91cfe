package atmosphere

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
)

// httpConn writes one held HTTP response (long-poll, streaming, SSE,
// JSONP): every write gets a deadline and is flushed at once.
type httpConn struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	track   bool
	sse     bool
	stream  bool   // streaming: heartbeats are framed so they never glue to a message
	jsonp   string // JSONP callback name
	buf     []byte

	// kickMu guards kicking the connection from another goroutine while
	// the handler still owns it.
	kickMu sync.Mutex
	off    bool
}

func newHTTPConn(w http.ResponseWriter, p params, timeout time.Duration) *httpConn {
	return &httpConn{w: w, rc: http.NewResponseController(w), timeout: timeout, track: p.track}
}

// kick makes a blocked write fail at once.
func (c *httpConn) kick() {
	c.kickMu.Lock()
	defer c.kickMu.Unlock()
	if !c.off {
		_ = c.rc.SetWriteDeadline(time.Now())
	}
}

// finish disowns the connection: no more kicks, and the deadline is
// cleared for whatever the server does with it next.
func (c *httpConn) finish() {
	c.kickMu.Lock()
	c.off = true
	c.kickMu.Unlock()
	_ = c.rc.SetWriteDeadline(time.Time{})
}

// send writes b and flushes.
func (c *httpConn) send(b []byte) error {
	_ = c.rc.SetWriteDeadline(time.Now().Add(c.timeout))
	if _, err := c.w.Write(b); err != nil {
		return err
	}
	return c.rc.Flush()
}

// appendPayload appends one message (or the handshake) in the response's
// encoding.
func (c *httpConn) appendPayload(dst, msg []byte) []byte {
	if !c.sse {
		return appendMessage(dst, msg, c.track)
	}
	start := len(dst)
	dst = appendMessage(dst, msg, c.track)
	return appendSSE(dst[:start], dst[start:])
}

// appendSSE appends data as one server-sent event: a `data:` line per line
// of data, then a blank line. data may alias dst's spare capacity, so it
// is copied first.
func appendSSE(dst, data []byte) []byte {
	text := string(data)
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	for line := range strings.SplitSeq(text, "\n") {
		dst = append(dst, "data:"...)
		dst = append(dst, line...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}

func (c *httpConn) write(ds []delivery) (int, error) {
	c.buf = c.buf[:0]
	if c.jsonp != "" {
		var body []byte
		for _, d := range ds {
			body = appendMessage(body, d.msg, c.track)
		}
		c.buf = appendJSONP(c.buf, c.jsonp, body)
	} else {
		for _, d := range ds {
			c.buf = c.appendPayload(c.buf, d.msg)
		}
	}
	if err := c.send(c.buf); err != nil {
		return 0, err
	}
	return len(ds), nil
}

func (c *httpConn) heartbeat() error {
	switch {
	case c.sse:
		return c.send([]byte("data:X\r\n\r\n"))
	case c.stream && c.track:
		return c.send([]byte("1|X"))
	default:
		return c.send([]byte("X"))
	}
}

// appendJSONP wraps body as a call of the client's callback.
func appendJSONP(dst []byte, callback string, body []byte) []byte {
	js, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{string(body)})
	dst = append(dst, callback...)
	dst = append(dst, '(')
	dst = append(dst, js...)
	return append(dst, ");"...)
}

// validCallback reports whether name is a plain JavaScript identifier, the
// only JSONP callback names served.
func validCallback(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == '$', i > 0 && c >= '0' && c <= '9':
		default:
			return false
		}
	}
	return true
}

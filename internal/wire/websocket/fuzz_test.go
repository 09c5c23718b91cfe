package websocket

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// feedConn is a net.Conn that reads from a byte slice and discards what
// is written; the fuzz targets drive the reader with it.
type feedConn struct {
	r       *bytes.Reader
	written int
}

func (c *feedConn) Read(p []byte) (int, error) {
	// Small reads exercise the paths that resume inside a header, a
	// payload and a UTF-8 sequence.
	if len(p) > 7 {
		p = p[:7]
	}
	return c.r.Read(p)
}
func (c *feedConn) Write(p []byte) (int, error)      { c.written += len(p); return len(p), nil }
func (c *feedConn) Close() error                     { return nil }
func (c *feedConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *feedConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *feedConn) SetDeadline(time.Time) error      { return nil }
func (c *feedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *feedConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzReadFrames feeds arbitrary bytes to the frame reader, with and
// without permessage-deflate: it must never panic, return a message over
// the limit or a text message that is not UTF-8, and it must end with a
// peer close, an I/O error or one of the failure kinds.
func FuzzReadFrames(f *testing.F) {
	for _, tc := range abCases() {
		var b []byte
		for _, w := range tc.send {
			b = append(b, w.b...)
		}
		f.Add(b, false)
	}
	f.Add(compressed(true, OpText, []byte(strings.Repeat("abc", 200))).b, true)
	f.Add(compressed(true, OpBinary, make([]byte, 1<<16)).b, true)
	f.Fuzz(func(t *testing.T, in []byte, deflate bool) {
		const limit = 1 << 12
		fc := &feedConn{r: bytes.NewReader(in)}
		c := &Conn{nc: fc, rbuf: make([]byte, minReadBuffer), readLimit: limit, inflate: deflate, takeover: deflate, deflate: deflate, threshold: 64}
		for range 1000 {
			op, msg, err := c.ReadMessage()
			if err != nil {
				var ce *CloseError
				if !errors.As(err, &ce) && !errors.Is(err, io.EOF) && !errors.Is(err, ErrProtocol) &&
					!errors.Is(err, ErrInvalidUTF8) && !errors.Is(err, ErrMessageTooBig) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(msg) > limit {
				t.Fatalf("message of %d bytes over the limit", len(msg))
			}
			if op == OpText && !utf8.Valid(msg) {
				t.Fatalf("text message is not UTF-8: %q", msg)
			}
			if op != OpText && op != OpBinary {
				t.Fatalf("opcode %#x returned", byte(op))
			}
		}
	})
}

// FuzzNegotiateDeflate: the offer parser never panics, and an accepted
// offer's answer is itself a well-formed offer the server would accept
// with the same result.
func FuzzNegotiateDeflate(f *testing.F) {
	for _, s := range []string{"permessage-deflate", "permessage-deflate; client_max_window_bits",
		"permessage-deflate; server_max_window_bits=10, permessage-deflate", `foo; a="x, \"y"; b, permessage-deflate`,
		`permessage-deflate; server_max_window_bits="15"; client_no_context_takeover`} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, takeover bool) {
		offers := parseExtensions([]string{s})
		a, ok := negotiateDeflate(offers, takeover)
		if !ok {
			return
		}
		again := parseExtensions([]string{a.response})
		if len(again) != 1 || again[0].bad {
			t.Fatalf("answer %q does not parse as one offer", a.response)
		}
		b, ok := negotiateDeflate(again, takeover)
		if !ok || b.response != a.response {
			t.Fatalf("answer %q is not accepted as itself (%q, %v)", a.response, b.response, ok)
		}
		if !strings.Contains(a.response, "server_no_context_takeover") {
			t.Fatalf("answer %q without server_no_context_takeover", a.response)
		}
	})
}

// FuzzUTF8State: validating in pieces agrees with utf8.Valid on the whole,
// and fails no later than the first piece after which no continuation can
// make the text valid.
func FuzzUTF8State(f *testing.F) {
	f.Add([]byte(validUTF8), uint8(3))
	f.Add([]byte(invalidKosm), uint8(1))
	f.Add([]byte("ab\xe2\x82"), uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		n := int(step%8) + 1
		var s utf8State
		ok := true
		for i := 0; i < len(b) && ok; i += n {
			piece := b[i:min(i+n, len(b))]
			ok = s.feed(piece)
			if !ok && canComplete(b[:i+len(piece)]) {
				t.Fatalf("failed on %q, which can still be completed", b[:i+len(piece)])
			}
		}
		if got := ok && s.complete(); got != utf8.Valid(b) {
			t.Fatalf("pieces of %d say %v, utf8.Valid %v for %q", n, got, !got, b)
		}
	})
}

// canComplete reports whether some suffix makes p valid UTF-8.
func canComplete(p []byte) bool {
	for _, tail := range []string{"", "\x80", "\x80\x80", "\x80\x80\x80", "\xa0", "\xa0\x80", "\x90", "\x90\x80", "\x90\x80\x80", "\x8f", "\x8f\x80", "\x8f\x80\x80", "\x9f", "\x9f\x80"} {
		if utf8.Valid(append(bytes.Clone(p), tail...)) {
			return true
		}
	}
	return false
}

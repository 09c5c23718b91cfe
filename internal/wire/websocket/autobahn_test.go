package websocket

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// echoServer serves an Upgrader that echoes every message; the error that
// ended each connection is sent on errs.
func echoServer(t *testing.T, u *Upgrader) (*httptest.Server, chan error) {
	t.Helper()
	return echoServerWith(t, u, (*Conn).ReadMessage)
}

// echoServerWith is echoServer reading with read.
func echoServerWith(t *testing.T, u *Upgrader, read func(*Conn) (Opcode, []byte, error)) (*httptest.Server, chan error) {
	t.Helper()
	errs := make(chan error, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			op, msg, err := read(c)
			if err != nil {
				errs <- err
				return
			}
			if err := c.WriteMessage(op, msg); err != nil {
				errs <- err
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv, errs
}

// Frame builders for the table: client frames, masked.
func fr(op Opcode, p string) wire   { return wire{b: frameBytes(true, 0, op, []byte(p), true)} }
func frag(op Opcode, p string) wire { return wire{b: frameBytes(false, 0, op, []byte(p), true)} }
func rsv(r byte, op Opcode, p string) wire {
	return wire{b: frameBytes(true, r, op, []byte(p), true)}
}
func chunked(w wire, n int) wire { w.chunk = n; return w }
func closeFr(code int, reason string) wire {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return fr(OpClose, string(p)+reason)
}
func raw(b ...byte) wire { return wire{b: b} }
func cat(ws ...wire) wire {
	var b []byte
	for _, w := range ws {
		b = append(b, w.b...)
	}
	return wire{b: b}
}

// bytewise splits a text message into one fragment per byte.
func bytewise(s string) []wire {
	var out []wire
	for i := 0; i < len(s); i++ {
		op := OpContinuation
		if i == 0 {
			op = OpText
		}
		out = append(out, wire{b: frameBytes(i == len(s)-1, 0, op, []byte{s[i]}, true)})
	}
	return out
}

// partialFrame is the header of a masked frame announcing n bytes and the
// first bytes of its payload only.
func partialFrame(op Opcode, n int, first string) wire {
	full := frameBytes(true, 0, op, append([]byte(first), make([]byte, n-len(first))...), true)
	return wire{b: full[:len(full)-(n-len(first))]}
}

type want struct {
	op Opcode
	p  string
}

func echo(p string) want    { return want{OpText, p} }
func pong(p string) want    { return want{OpPong, p} }
func echoBin(p string) want { return want{OpBinary, p} }

// abCase is one case modelled on the Autobahn|Testsuite: what the client
// sends, what it must get back, and the close code that ends it (0: the
// server stays open and the test closes cleanly with 1000).
type abCase struct {
	name  string
	send  []wire
	want  []want
	close int
	// byPeer: the close code is the client's own, echoed.
	byPeer bool
}

const (
	kosme       = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
	validUTF8   = "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"
	invalidKosm = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"
)

func abCases() []abCase {
	s125 := strings.Repeat("*", 125)
	cases := []abCase{
		// 1 framing
		{name: "1.1.1 text empty", send: []wire{fr(OpText, "")}, want: []want{echo("")}},
		{name: "1.2.1 binary empty", send: []wire{fr(OpBinary, "")}, want: []want{echoBin("")}},
		{name: "1.1.8 text 65535 in chunks of 997", send: []wire{chunked(fr(OpText, strings.Repeat("*", 65535)), 997)},
			want: []want{echo(strings.Repeat("*", 65535))}},
		// 2 pings and pongs
		{name: "2.1 ping empty", send: []wire{fr(OpPing, "")}, want: []want{pong("")}},
		{name: "2.2 ping text", send: []wire{fr(OpPing, "Hello, world!")}, want: []want{pong("Hello, world!")}},
		{name: "2.3 ping binary", send: []wire{fr(OpPing, "\x00\xff\xfe\xfd\xfc\xfb\x00\xff")}, want: []want{pong("\x00\xff\xfe\xfd\xfc\xfb\x00\xff")}},
		{name: "2.4 ping 125", send: []wire{fr(OpPing, s125)}, want: []want{pong(s125)}},
		{name: "2.5 ping 126", send: []wire{fr(OpPing, s125+"*")}, close: 1002},
		{name: "2.6 ping 125 bytewise", send: []wire{chunked(fr(OpPing, s125), 1)}, want: []want{pong(s125)}},
		{name: "2.7 unsolicited pong empty", send: []wire{fr(OpPong, "")}},
		{name: "2.8 unsolicited pong payload", send: []wire{fr(OpPong, "unsolicited")}},
		{name: "2.9 unsolicited pong then ping", send: []wire{fr(OpPong, "x"), fr(OpPing, "y")}, want: []want{pong("y")}},
		{name: "2.10 ten pings", send: repeat(fr(OpPing, "p"), 10), want: repeatWant(pong("p"), 10)},
		{name: "2.11 ten pings bytewise", send: repeat(chunked(fr(OpPing, "p"), 1), 10), want: repeatWant(pong("p"), 10)},
		// 3 reserved bits
		{name: "3.1 text RSV2", send: []wire{rsv(rsv2Bit, OpText, "x")}, close: 1002},
		{name: "3.2 text, text RSV2, ping", send: []wire{fr(OpText, "ok"), rsv(rsv2Bit, OpText, "x"), fr(OpPing, "")}, want: []want{echo("ok")}, close: 1002},
		{name: "3.3 RSV1|RSV2", send: []wire{rsv(rsv1Bit|rsv2Bit, OpText, "x")}, close: 1002},
		{name: "3.4 RSV3 bytewise", send: []wire{chunked(rsv(rsv3Bit, OpText, "x"), 1)}, close: 1002},
		{name: "3.5 binary RSV1|RSV3", send: []wire{rsv(rsv1Bit|rsv3Bit, OpBinary, "x")}, close: 1002},
		{name: "3.6 ping RSV2|RSV3", send: []wire{rsv(rsv2Bit|rsv3Bit, OpPing, "x")}, close: 1002},
		{name: "3.7 close all RSV", send: []wire{{b: frameBytes(true, rsv1Bit|rsv2Bit|rsv3Bit, OpClose, []byte{3, 232}, true)}}, close: 1002},
		{name: "3.8 text RSV1 without permessage-deflate", send: []wire{rsv(rsv1Bit, OpText, "x")}, close: 1002},
		// 5 fragmentation
		{name: "5.1 fragmented ping", send: []wire{frag(OpPing, "a"), fr(OpContinuation, "b")}, close: 1002},
		{name: "5.2 fragmented pong", send: []wire{frag(OpPong, "a"), fr(OpContinuation, "b")}, close: 1002},
		{name: "5.3 text in 2 fragments", send: []wire{frag(OpText, "frag"), fr(OpContinuation, "ment")}, want: []want{echo("fragment")}},
		{name: "5.4 text in 2 fragments bytewise", send: []wire{chunked(frag(OpText, "frag"), 1), chunked(fr(OpContinuation, "ment"), 1)}, want: []want{echo("fragment")}},
		{name: "5.6 ping between fragments", send: []wire{frag(OpText, "frag"), fr(OpPing, "p"), fr(OpContinuation, "ment")}, want: []want{pong("p"), echo("fragment")}},
		{name: "5.7 ping between fragments, one write", send: []wire{cat(frag(OpText, "frag"), fr(OpPing, "p"), fr(OpContinuation, "ment"))}, want: []want{pong("p"), echo("fragment")}},
		{name: "5.9 continuation without start", send: []wire{fr(OpContinuation, "x"), fr(OpText, "y")}, close: 1002},
		{name: "5.12 unfinished continuation without start", send: []wire{frag(OpContinuation, "x")}, close: 1002},
		{name: "5.15 text, continuation, new text", send: []wire{frag(OpText, "a"), fr(OpContinuation, "b"), frag(OpContinuation, "c"), fr(OpText, "d")}, want: []want{echo("ab")}, close: 1002},
		{name: "5.18 text start, then new text", send: []wire{frag(OpText, "a"), fr(OpText, "b")}, close: 1002},
		{name: "5.19 pings between five fragments", send: []wire{frag(OpText, "1"), frag(OpContinuation, "2"), fr(OpPing, "a"), frag(OpContinuation, "3"), fr(OpPing, "b"), fr(OpContinuation, "4")},
			want: []want{pong("a"), pong("b"), echo("1234")}},
		{name: "5.21 binary in 3 fragments", send: []wire{frag(OpBinary, "\x00"), frag(OpContinuation, "\xff"), fr(OpContinuation, "\xfe")}, want: []want{echoBin("\x00\xff\xfe")}},
		{name: "5.22 empty fragments", send: []wire{frag(OpText, ""), frag(OpContinuation, ""), fr(OpContinuation, "")}, want: []want{echo("")}},
		{name: "5.23 close between fragments", send: []wire{frag(OpText, "a"), closeFr(1000, ""), fr(OpContinuation, "b")}, close: 1000},
		// 6 UTF-8
		{name: "6.2.1 valid UTF-8 one frame", send: []wire{fr(OpText, validUTF8)}, want: []want{echo(validUTF8)}},
		{name: "6.2.2 valid UTF-8 split on a rune boundary", send: []wire{frag(OpText, validUTF8[:8]), fr(OpContinuation, validUTF8[8:])}, want: []want{echo(validUTF8)}},
		{name: "6.2.3 valid UTF-8 bytewise frames", send: bytewise(validUTF8), want: []want{echo(validUTF8)}},
		{name: "6.2.4 valid UTF-8 one frame bytewise chunks", send: []wire{chunked(fr(OpText, kosme), 1)}, want: []want{echo(kosme)}},
		{name: "6.3.1 invalid UTF-8 (surrogate) one frame", send: []wire{fr(OpText, invalidKosm)}, close: 1007},
		{name: "6.3.2 invalid UTF-8 bytewise frames", send: bytewise(invalidKosm), close: 1007},
		{name: "6.4.1 fail fast on the invalid fragment", send: []wire{frag(OpText, kosme), frag(OpContinuation, "\xf4\x90\x80\x80")}, close: 1007},
		{name: "6.4.2 fail fast inside a rune across fragments", send: []wire{frag(OpText, kosme+"\xf4"), frag(OpContinuation, "\x90")}, close: 1007},
		{name: "6.4.3 fail fast inside one frame", send: []wire{partialFrame(OpText, 64, kosme+"\xf4\x90")}, close: 1007},
		{name: "6.4.4 fail fast on a bad lead byte inside one frame", send: []wire{partialFrame(OpText, 64, kosme+"\xff")}, close: 1007},
		{name: "6.6 kosme bytewise", send: bytewise(kosme), want: []want{echo(kosme)}},
		{name: "6.20 truncated sequence at the end", send: []wire{fr(OpText, "ab\xe2\x82")}, close: 1007},
		{name: "6.21 truncated across the last fragment", send: []wire{frag(OpText, "ab\xf0\x9f"), fr(OpContinuation, "\x98")}, close: 1007},
		{name: "6.22 noncharacters are valid", send: []wire{fr(OpText, "\xef\xbf\xbe\xef\xbf\xbf\xf4\x8f\xbf\xbf")}, want: []want{echo("\xef\xbf\xbe\xef\xbf\xbf\xf4\x8f\xbf\xbf")}},
		{name: "6.23 replacement character is valid", send: []wire{fr(OpText, "\xef\xbf\xbd")}, want: []want{echo("\xef\xbf\xbd")}},
		{name: "6.x invalid text after a valid message", send: []wire{fr(OpText, "ok"), fr(OpText, "\xc0\xaf")}, want: []want{echo("ok")}, close: 1007},
		{name: "6.x binary may hold any bytes", send: []wire{fr(OpBinary, "\xff\xfe\xc0")}, want: []want{echoBin("\xff\xfe\xc0")}},
		// 7 close handling
		{name: "7.1.1 echo then close", send: []wire{fr(OpText, "Hello"), closeFr(1000, "")}, want: []want{echo("Hello")}, close: 1000},
		{name: "7.1.2 close twice", send: []wire{closeFr(1000, ""), closeFr(1000, "")}, close: 1000},
		{name: "7.1.3 ping after close", send: []wire{closeFr(1000, ""), fr(OpPing, "x")}, close: 1000},
		{name: "7.1.4 text after close", send: []wire{closeFr(1000, ""), fr(OpText, "x")}, close: 1000},
		{name: "7.3.1 close without payload", send: []wire{fr(OpClose, "")}, close: CloseNoStatus},
		{name: "7.3.2 close with a 1-byte payload", send: []wire{fr(OpClose, "a")}, close: 1002},
		{name: "7.3.3 close 1000", send: []wire{closeFr(1000, "")}, close: 1000},
		{name: "7.3.4 close 1000 with reason", send: []wire{closeFr(1000, "Hello World!")}, close: 1000},
		{name: "7.3.5 close with a 123-byte reason", send: []wire{closeFr(1000, strings.Repeat("*", 123))}, close: 1000},
		{name: "7.3.6 close with a 124-byte reason", send: []wire{closeFr(1000, strings.Repeat("*", 124))}, close: 1002},
		{name: "7.5.1 close reason not UTF-8", send: []wire{closeFr(1000, invalidKosm)}, close: 1007},
		// 9-style limits and frame encoding
		{name: "limit: 64-bit length with the top bit set", send: []wire{raw(0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4)}, close: 1002},
		{name: "limit: 16-bit length not minimal", send: []wire{raw(0x81, 0xfe, 0, 5, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o')}, close: 1002},
		{name: "limit: 64-bit length not minimal", send: []wire{raw(0x81, 0xff, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o')}, close: 1002},
		{name: "limit: unmasked client frame", send: []wire{{b: frameBytes(true, 0, OpText, []byte("x"), false)}}, close: 1002},
		{name: "limit: unmasked ping", send: []wire{{b: frameBytes(true, 0, OpPing, nil, false)}}, close: 1002},
		{name: "limit: message at the read limit", send: []wire{fr(OpBinary, strings.Repeat("b", 4096))}, want: []want{echoBin(strings.Repeat("b", 4096))}},
		{name: "limit: message over the read limit", send: []wire{fr(OpBinary, strings.Repeat("b", 4097))}, close: 1009},
		{name: "limit: announced length over the read limit, no payload sent", send: []wire{partialFrame(OpBinary, 1<<20, "x")}, close: 1009},
		{name: "limit: fragments summing over the read limit", send: []wire{frag(OpText, strings.Repeat("a", 3000)), fr(OpContinuation, strings.Repeat("a", 1097))}, close: 1009},
	}
	for _, op := range []byte{3, 4, 5, 6, 7, 11, 12, 13, 14, 15} {
		cases = append(cases,
			abCase{name: "4 reserved opcode " + itoa(int(op)), send: []wire{{b: frameBytes(true, 0, Opcode(op), []byte("x"), true)}}, close: 1002},
			abCase{name: "4 reserved opcode after a message " + itoa(int(op)), send: []wire{fr(OpText, "ok"), {b: frameBytes(true, 0, Opcode(op), nil, true)}, fr(OpPing, "")}, want: []want{echo("ok")}, close: 1002})
	}
	for _, n := range []int{125, 126, 127, 128, 65535, 65536} {
		p := strings.Repeat("*", n)
		cases = append(cases,
			abCase{name: "1.1 text of " + itoa(n), send: []wire{fr(OpText, p)}, want: []want{echo(p)}},
			abCase{name: "1.2 binary of " + itoa(n), send: []wire{fr(OpBinary, p)}, want: []want{echoBin(p)}})
	}
	for _, s := range []string{"\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf", "\xee\x80\x80"} {
		cases = append(cases, abCase{name: "6.5 valid boundary " + hex(s), send: bytewise(s), want: []want{echo(s)}})
	}
	for _, s := range []string{"\x80", "\xbf", "\x80\xbf", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xe0\x9f\xbf", "\xf0\x80\x80\xaf", "\xf0\x8f\xbf\xbf",
		"\xed\xa0\x80", "\xed\xbf\xbf", "\xed\xa0\x80\xed\xb0\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80", "\xfe", "\xff", "\xfe\xfe\xff\xff",
		"\xc2", "\xe0\xa0", "\xf0\x90\x80", "a\xc2b", "\xc2\xc2\x80"} {
		cases = append(cases,
			abCase{name: "6.x invalid " + hex(s), send: []wire{fr(OpText, "ok"+s)}, close: 1007},
			abCase{name: "6.x invalid bytewise " + hex(s), send: bytewise("ok" + s), close: 1007})
	}
	for _, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		cases = append(cases, abCase{name: "7.7 valid close code " + itoa(code), send: []wire{closeFr(code, "")}, close: code, byPeer: true})
	}
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, abCase{name: "7.9 invalid close code " + itoa(code), send: []wire{closeFr(code, "")}, close: 1002})
	}
	return cases
}

func repeat(w wire, n int) []wire {
	out := make([]wire, n)
	for i := range out {
		out[i] = w
	}
	return out
}

func repeatWant(w want, n int) []want {
	out := make([]want, n)
	for i := range out {
		out[i] = w
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

func hex(s string) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteByte(digits[s[i]>>4])
		b.WriteByte(digits[s[i]&15])
	}
	return b.String()
}

// errFor is the error the server's ReadMessage must report for a close
// code it sent.
func errFor(code int) error {
	switch code {
	case 1002:
		return ErrProtocol
	case 1007:
		return ErrInvalidUTF8
	case 1009:
		return ErrMessageTooBig
	}
	return nil
}

func runCase(t *testing.T, srv *httptest.Server, errs chan error, tc abCase, lines ...string) {
	t.Helper()
	c := dialRaw(t, srv, lines...)
	if c.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake status %d", c.resp.StatusCode)
	}
	runCaseOn(t, c, errs, tc)
}

// runCaseOn runs a case on a connected client. The server's error for
// the connection is taken from errs even when the case fails early, so
// that the next case on the same server reads its own.
func runCaseOn(t *testing.T, c *rawClient, errs chan error, tc abCase) {
	t.Helper()
	taken := false
	defer func() {
		if taken {
			return
		}
		c.nc.Close()
		select {
		case <-errs:
		case <-time.After(10 * time.Second):
			t.Error("the server never ended the connection")
		}
	}()
	for _, w := range tc.send {
		c.send(w)
	}
	for _, w := range tc.want {
		f, err := c.read()
		if err != nil {
			t.Fatalf("reading %#x %q: %v", byte(w.op), trunc([]byte(w.p)), err)
		}
		if f.op != w.op || string(f.payload) != w.p {
			t.Fatalf("got %#x %q, want %#x %q", byte(f.op), trunc(f.payload), byte(w.op), trunc([]byte(w.p)))
		}
	}
	code := tc.close
	if code == 0 {
		c.send(closeFr(1000, "bye"))
		code = 1000
	}
	c.expectClose(code)
	// Close as a client does once it has seen the server's FIN.
	c.nc.Close()
	err := <-errs
	taken = true
	if want := errFor(code); want != nil && !tc.byPeer {
		if !errors.Is(err, want) {
			t.Fatalf("server error %v, want %v", err, want)
		}
		return
	}
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != code {
		t.Fatalf("server error %v, want the peer's close %d", err, code)
	}
}

// TestAutobahnCases runs the table over real sockets against an echo
// server with a 4 KiB read limit.
func TestAutobahnCases(t *testing.T) {
	srv, errs := echoServer(t, &Upgrader{ReadLimit: 65536})
	small, smallErrs := echoServer(t, &Upgrader{ReadLimit: 4096})
	for _, tc := range abCases() {
		t.Run(tc.name, func(t *testing.T) {
			if strings.HasPrefix(tc.name, "limit: ") && strings.Contains(tc.name, "read limit") {
				runCase(t, small, smallErrs, tc)
				return
			}
			runCase(t, srv, errs, tc)
		})
	}
}

// tryRead reads like a readiness-driven server: TryReadMessage, and on
// ErrWouldBlock a wait until the socket is readable. It counts the
// ErrWouldBlock answers and fails the test if the read buffer is still
// held after one.
func tryRead(t *testing.T, blocked *atomic.Int64) func(*Conn) (Opcode, []byte, error) {
	return func(c *Conn) (Opcode, []byte, error) {
		for {
			op, msg, err := c.TryReadMessage()
			if !errors.Is(err, ErrWouldBlock) {
				return op, msg, err
			}
			blocked.Add(1)
			if c.rbuf != nil {
				t.Error("read buffer held by an idle connection")
			}
			rc, err := c.nc.(syscall.Conn).SyscallConn()
			if err != nil {
				return 0, nil, err
			}
			// Wait until a byte (or the peer's end) is there. The check
			// must look at the socket itself: the poller forgets
			// readiness that came before this wait began.
			if err := rc.Read(func(fd uintptr) bool {
				var b [1]byte
				n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
				return n > 0 || !errors.Is(err, syscall.EAGAIN)
			}); err != nil {
				return 0, nil, err
			}
		}
	}
}

// TestAutobahnCasesTryRead runs the table against an echo server that
// reads with TryReadMessage: a reader that gives up its buffer and waits
// for readiness between frames keeps every check of ReadMessage.
func TestAutobahnCasesTryRead(t *testing.T) {
	var blocked atomic.Int64
	srv, errs := echoServerWith(t, &Upgrader{ReadLimit: 65536}, tryRead(t, &blocked))
	small, smallErrs := echoServerWith(t, &Upgrader{ReadLimit: 4096}, tryRead(t, &blocked))
	for _, tc := range abCases() {
		t.Run(tc.name, func(t *testing.T) {
			if strings.HasPrefix(tc.name, "limit: ") && strings.Contains(tc.name, "read limit") {
				runCase(t, small, smallErrs, tc)
				return
			}
			runCase(t, srv, errs, tc)
		})
	}
	if blocked.Load() == 0 {
		t.Fatal("TryReadMessage never found the socket empty: the non-blocking path was not exercised")
	}
}

// compressed builds a compressed client frame (RSV1 on the first frame).
func compressed(fin bool, op Opcode, p []byte) wire {
	return wire{b: frameBytes(fin, rsv1Bit, op, deflateMessage(nil, nil, p), true)}
}

// TestPermessageDeflateFrames covers RFC 7692 on the wire: compressed
// messages in and out, RSV1 where it may not be, a zip bomb, bad data.
func TestPermessageDeflateFrames(t *testing.T) {
	srv, errs := echoServer(t, &Upgrader{Compression: true, ReadLimit: 1 << 20})
	offer := "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
	big := strings.Repeat("fleetwire state ", 100)
	zc := deflateMessage(nil, nil, []byte(big))
	cases := []abCase{
		{name: "12 compressed text", send: []wire{compressed(true, OpText, []byte(big))}, want: []want{echo(big)}},
		{name: "12 compressed binary", send: []wire{compressed(true, OpBinary, []byte(big))}, want: []want{echoBin(big)}},
		{name: "12 compressed small", send: []wire{compressed(true, OpText, []byte("tiny"))}, want: []want{echo("tiny")}},
		{name: "12 plain text on a compressing connection", send: []wire{fr(OpText, "plain")}, want: []want{echo("plain")}},
		{name: "12 compressed message in two frames", send: []wire{{b: frameBytes(false, rsv1Bit, OpText, zc[:10], true)}, {b: frameBytes(true, 0, OpContinuation, zc[10:], true)}}, want: []want{echo(big)}},
		{name: "12 RSV1 on a continuation", send: []wire{{b: frameBytes(false, rsv1Bit, OpText, zc[:10], true)}, {b: frameBytes(true, rsv1Bit, OpContinuation, zc[10:], true)}}, close: 1002},
		{name: "12 RSV1 on a ping", send: []wire{rsv(rsv1Bit, OpPing, "x")}, close: 1002},
		{name: "12 RSV1 on a close", send: []wire{{b: frameBytes(true, rsv1Bit, OpClose, []byte{3, 232}, true)}}, close: 1002},
		{name: "12 RSV2 on a compressed frame", send: []wire{{b: frameBytes(true, rsv1Bit|rsv2Bit, OpText, zc, true)}}, close: 1002},
		{name: "12 zip bomb", send: []wire{compressed(true, OpBinary, make([]byte, 8<<20))}, close: 1009},
		{name: "12 compressed invalid UTF-8", send: []wire{compressed(true, OpText, []byte("ok"+invalidKosm))}, close: 1007},
		{name: "12 corrupt deflate data", send: []wire{{b: frameBytes(true, rsv1Bit, OpText, []byte{0xff, 0xff, 0xff, 0xff}, true)}}, close: 1007},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runCase(t, srv, errs, tc, offer) })
	}

	t.Run("large replies are compressed, small ones not", func(t *testing.T) {
		c := dialRaw(t, srv, offer)
		if got := c.resp.Header.Get("Sec-WebSocket-Extensions"); got != "permessage-deflate; server_no_context_takeover; client_no_context_takeover" {
			t.Fatalf("extensions %q", got)
		}
		c.send(fr(OpText, big))
		c.send(fr(OpText, "short"))
		for _, w := range []struct {
			p          string
			compressed bool
		}{{big, true}, {"short", false}} {
			f, err := c.read()
			if err != nil || string(f.payload) != w.p || f.compressed != w.compressed {
				t.Fatalf("got %q compressed=%v err=%v, want %q compressed=%v", trunc(f.payload), f.compressed, err, trunc([]byte(w.p)), w.compressed)
			}
		}
	})
}

// TestClientContextTakeover: with ClientContextTakeover the server
// inflates messages that refer back to earlier ones.
func TestClientContextTakeover(t *testing.T) {
	srv, _ := echoServer(t, &Upgrader{Compression: true, ClientContextTakeover: true})
	c := dialRaw(t, srv, "Sec-WebSocket-Extensions: permessage-deflate")
	if got := c.resp.Header.Get("Sec-WebSocket-Extensions"); got != "permessage-deflate; server_no_context_takeover" {
		t.Fatalf("extensions %q", got)
	}
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	msg := strings.Repeat("the same long sentence, again and again. ", 20)
	first := deflateMessage(fw, &buf, []byte(msg))
	second := deflateMessage(fw, &buf, []byte(msg))
	if len(second) >= len(first)/2 {
		t.Fatalf("the second message (%d bytes) does not refer back to the first (%d)", len(second), len(first))
	}
	c.send(wire{b: frameBytes(true, rsv1Bit, OpText, first, true)})
	c.send(wire{b: frameBytes(true, rsv1Bit, OpText, second, true)})
	for range 2 {
		if f, err := c.read(); err != nil || string(f.payload) != msg {
			t.Fatalf("got %q, %v", trunc(f.payload), err)
		}
	}
}

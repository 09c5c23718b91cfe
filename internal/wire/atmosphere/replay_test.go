package atmosphere

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/outbox"
)

// TestReplayWebSocketAfterCut cuts the connection from the server side
// while a burst is in flight, several times, each time after the server
// has written messages that never reach the client, and checks that the
// client reattaching with X-Fleetwire-Received gets every message exactly
// once, in order.
func TestReplayWebSocketAfterCut(t *testing.T) {
	e := newEnv(t, Options{})
	const total = 3000
	c := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7", hReceived, "0")
	id := splitHandshake(t, read(t, c), "0")
	s := e.nextOpened()
	replayedBefore := mReplayed.Value()
	pushed := 0
	push := func(n int) {
		for ; n > 0; n-- {
			pushed++
			s.Push(t, fmt.Sprintf("m%d", pushed))
		}
	}
	push(1500)
	var got []string
	conns, onConn := 1, 0 // connections made, messages read on the last
	for len(got) < total {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, b, err := c.ReadMessage()
		if err != nil {
			// Cut: come back with what was received.
			c = e.dial(hTrackingID, id, hTransport, "websocket", hFramework, "5.0.7", hReceived, strconv.Itoa(len(got)))
			conns, onConn = conns+1, 0
			continue
		}
		got = append(got, string(b))
		if onConn++; onConn == 200 && conns <= 3 {
			// What the server writes now is lost in flight; the reset
			// comes once it has taken all of it.
			e.ln.loseWrites()
			push(500)
			waitDrainedBeyond(t, s, uint64(pushed-1))
			e.ln.cut()
		}
	}
	checkSequence(t, got, total)
	// Nothing more arrives.
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, b, err := c.ReadMessage(); err == nil {
		t.Fatalf("extra message %q", b)
	}
	if s.isClosed() {
		t.Fatal("session closed by the cuts")
	}
	if n := mReplayed.Value() - replayedBefore; n < 3*500 {
		t.Fatalf("%d messages replayed, want at least the %d lost in flight", n, 3*500)
	} else {
		t.Logf("replayed %d messages", n)
	}
}

// waitDrainedBeyond waits until the server has taken more than n messages
// of s's outbox for writing.
func waitDrainedBeyond(t *testing.T, s *echoSession, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, drained := s.q.Counts(); drained > n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server took no message beyond the %d read", n)
		}
		time.Sleep(time.Millisecond)
	}
}

func checkSequence(t *testing.T, got []string, total int) {
	t.Helper()
	if len(got) != total {
		t.Fatalf("got %d messages, want %d", len(got), total)
	}
	for i, m := range got {
		if want := fmt.Sprintf("m%d", i+1); m != want {
			t.Fatalf("message %d is %q, want %q", i+1, m, want)
		}
	}
}

// TestReplayStreamingAfterCut does the same over streaming with
// trackMessageLength.
func TestReplayStreamingAfterCut(t *testing.T) {
	e := newEnv(t, Options{})
	const total = 2000
	args := []string{hTransport, "streaming", hTrackSize, "true", hFramework, "5.0.7"}
	_, r := e.stream(append(args, hTrackingID, "0", hProtocol, "true", hReceived, "0")...)
	id := splitHandshake(t, readN(t, r, 44)[3:], "0")
	s := e.h.session(id)
	for i := 1; i <= total; i++ {
		s.Push(t, fmt.Sprintf("m%d", i))
	}
	var got []string
	var p jsParser
	buf := make([]byte, 512)
	cut := false
	for len(got) < total {
		n, err := r.Read(buf)
		msgs, perr := p.feed(jsString(buf[:n]))
		if perr != nil {
			t.Fatal(perr)
		}
		got = append(got, msgs...)
		if !cut && len(got) > 700 {
			cut = true
			e.ln.cut()
		}
		if err != nil {
			p = jsParser{} // a partial message is dropped with its connection
			_, r = e.stream(append(args, hTrackingID, id, hReceived, strconv.Itoa(len(got)))...)
		}
	}
	checkSequence(t, got, total)
}

// TestReplayLongPollLostResponse drops a long-poll response as if it never
// reached the client; the next poll acknowledges the old count and gets
// the same messages again, then the rest.
func TestReplayLongPollLostResponse(t *testing.T) {
	e := newEnv(t, Options{})
	args := []string{hTransport, "long-polling", hTrackSize, "true"}
	_, body := e.get(append(args, hTrackingID, "0", hProtocol, "true", hReceived, "0")...)
	id := splitHandshake(t, body[3:], "0")
	s := e.h.session(id)
	s.Push(t, "m1")
	s.Push(t, "m2")
	if _, body = e.get(append(args, hTrackingID, id, hReceived, "0")...); body != "2|m12|m2" {
		t.Fatalf("poll 1 %q", body)
	}
	// That response is lost; m3 is pushed meanwhile.
	s.Push(t, "m3")
	if _, body = e.get(append(args, hTrackingID, id, hReceived, "0")...); body != "2|m12|m22|m3" {
		t.Fatalf("poll 2 %q", body)
	}
	s.Push(t, "m4")
	if _, body = e.get(append(args, hTrackingID, id, hReceived, "3")...); body != "2|m4" {
		t.Fatalf("poll 3 %q", body)
	}
	// Acknowledged messages leave the ring.
	s2 := e.srv.lookup(id)
	s2.mu.Lock()
	n := s2.ring.len()
	s2.mu.Unlock()
	if n != 1 {
		t.Fatalf("ring holds %d", n)
	}
}

// TestPlainFailedWriteGoesBack checks the plain (unacknowledged) path: a
// message whose write failed goes back to the outbox and keeps its place.
func TestPlainFailedWriteGoesBack(t *testing.T) {
	srv := NewServer(newEchoHandler(), Options{Logger: quietLogger()})
	defer srv.Shutdown(t.Context())
	app, _ := srv.h.Open(nil, "t1", Binding{})
	s := newSession(srv, "t1", app)
	q := app.Outbox()
	for _, m := range []string{"a", "b", "c", "d"} {
		_ = q.Push([]byte(m))
	}
	a := newAttachment(tWebSocket, nil)
	if err := s.attach(a, params{}); err != nil {
		t.Fatal(err)
	}
	ds, _ := s.take(a, 3)
	if len(ds) != 3 || ds[2].seq != 3 {
		t.Fatalf("took %v", ds)
	}
	s.undeliver(a, ds[1:]) // "a" was written, "b" and "c" were not
	// Without an acknowledgement nothing is kept for replay.
	if s.seq != 1 || s.ring.len() != 0 || q.Len() != 3 {
		t.Fatalf("seq %d ring %d queue %d", s.seq, s.ring.len(), q.Len())
	}
	s.release(a)

	// A client that starts acknowledging later gets the rest, numbered
	// on; "a", written before it acknowledged anything, is not replayed.
	a2 := newAttachment(tWebSocket, nil)
	if err := s.attach(a2, params{hasReceived: true, received: 0}); err != nil {
		t.Fatal(err)
	}
	var got []string
	ds, _ = s.take(a2, 0)
	for _, d := range ds {
		got = append(got, fmt.Sprintf("%d:%s", d.seq, d.msg))
	}
	if strings.Join(got, " ") != "2:b 3:c 4:d" {
		t.Fatalf("got %v", got)
	}
	// With an acknowledgement nothing goes back to the outbox.
	_ = q.Push([]byte("e"))
	ds, _ = s.take(a2, 0)
	s.undeliver(a2, ds)
	if q.Len() != 0 || s.seq != 5 {
		t.Fatalf("queue %d seq %d", q.Len(), s.seq)
	}
	s.release(a2)
}

func TestRing(t *testing.T) {
	g := newRing(outbox.Limits{MaxMessages: 3, MaxBytes: 10})
	for i := uint64(1); i <= 5; i++ {
		g.push(delivery{seq: i, msg: []byte{'x'}})
	}
	if g.len() != 3 || g.first() != 3 {
		t.Fatalf("len %d first %d", g.len(), g.first())
	}
	if d := g.after(3); len(d) != 2 || d[0].seq != 4 {
		t.Fatalf("after(3) %v", d)
	}
	g.push(delivery{seq: 6, msg: []byte("123456789")}) // bytes bound
	if g.len() != 2 || g.first() != 5 || g.bytes != 10 {
		t.Fatalf("len %d first %d bytes %d", g.len(), g.first(), g.bytes)
	}
	g.push(delivery{seq: 7})
	g.dropFrom(6)
	if g.len() != 1 || g.bytes != 1 {
		t.Fatalf("dropFrom: len %d", g.len())
	}
	g.dropThrough(5)
	if g.len() != 0 || g.first() != 0 || g.bytes != 0 {
		t.Fatalf("dropThrough: len %d bytes %d", g.len(), g.bytes)
	}
}

// TestReplayRingOverrun: the client acknowledges less than the ring still
// holds; it gets what the ring has.
// A session that never kept a message has no ring; reading it, and
// replaying from it for a client that starts to acknowledge, finds it
// empty.
func TestNilRing(t *testing.T) {
	var g *ring
	g.dropThrough(5)
	g.dropFrom(1)
	if g.len() != 0 || g.first() != 0 || g.after(0) != nil {
		t.Fatalf("nil ring: len %d first %d after %v", g.len(), g.first(), g.after(0))
	}
	s := &session{srv: &Server{log: quietLogger()}, q: outbox.New(outbox.Limits{}), seq: 4}
	a := newAttachment(tWebSocket, nil)
	s.prepareReplay(a, 2)
	if a.replay != nil || s.ring != nil {
		t.Fatalf("replay %v ring %v from a session that kept nothing", a.replay, s.ring)
	}
	s.keep(delivery{seq: 5, msg: []byte("m")})
	if s.ring.len() != 1 {
		t.Fatalf("ring holds %d after keep", s.ring.len())
	}
}

func TestReplayRingOverrun(t *testing.T) {
	h := newEchoHandler()
	h.limits = outbox.Limits{MaxMessages: 4}
	srv := NewServer(h, Options{Logger: quietLogger()})
	defer srv.Shutdown(t.Context())
	app, _ := h.Open(nil, "t2", Binding{})
	s := newSession(srv, "t2", app)
	a := newAttachment(tWebSocket, nil)
	_ = s.attach(a, params{hasReceived: true})
	for i := 1; i <= 6; i++ {
		_ = app.Outbox().Push([]byte(strconv.Itoa(i)))
		_, _ = s.take(a, 0)
	}
	s.release(a)
	a2 := newAttachment(tWebSocket, nil)
	_ = s.attach(a2, params{hasReceived: true, received: 1})
	var got []string
	ds, _ := s.take(a2, 0)
	for _, d := range ds {
		got = append(got, string(d.msg))
	}
	if strings.Join(got, ",") != "3,4,5,6" {
		t.Fatalf("got %v", got)
	}
	s.release(a2)
}

// TestReplayNumbersOnAfterRestart: a session opened again under an id the
// server issued before it restarted (same key) numbers on from the
// client's count, after the reset notice.
func TestReplayNumbersOnAfterRestart(t *testing.T) {
	key := []byte("the installation's tracking id key")
	e := newEnv(t, Options{IDKey: key, ResetNotice: []byte("reset")})
	args := []string{hTransport, "long-polling", hTrackSize, "true", hTrackingID, newID(key)}
	if _, b := e.get(append(args, hReceived, "40")...); b != "5|reset" {
		t.Fatalf("first poll %q, want the reset notice", b)
	}
	done := make(chan string, 1)
	go func() {
		_, b := e.get(append(args, hReceived, "41")...)
		done <- b
	}()
	s := e.nextOpened()
	s.Push(t, "m42")
	if b := <-done; b != "3|m42" {
		t.Fatalf("poll %q", b)
	}
	// The response is lost; the client still has 41.
	if _, b := e.get(append(args, hReceived, "41")...); b != "3|m42" {
		t.Fatalf("replay %q", b)
	}
	s.Push(t, "m43")
	if _, b := e.get(append(args, hReceived, "42")...); b != "3|m43" {
		t.Fatalf("next %q", b)
	}
}

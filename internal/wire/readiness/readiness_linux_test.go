//go:build linux

package readiness

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// TestArmReadClose: an armed socket calls back once data arrives and again
// after re-arming; a peer's close calls back too; a closed socket cannot
// be armed.
func TestArmReadClose(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	client, server := pair(t)
	rc, err := server.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{}, 4)
	w := p.Watch(rc, func() { ready <- struct{}{} })
	if err := w.Arm(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	for _, msg := range []string{"one", "two"} {
		if _, err := client.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		<-ready
		n, err := server.Read(buf)
		if err != nil || string(buf[:n]) != msg {
			t.Fatalf("read %q, %v; want %q", buf[:n], err, msg)
		}
		if err := w.Arm(); err != nil {
			t.Fatal(err)
		}
	}
	client.Close()
	<-ready // hung up: readable, and the read says EOF
	if n, err := server.Read(buf); n != 0 || err == nil {
		t.Fatalf("read after the peer closed: %d, %v", n, err)
	}
	server.Close()
	if err := w.Arm(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Arm on a closed socket: %v, want ErrClosed", err)
	}
	w.Remove()
	if p.Len() != 0 {
		t.Fatalf("%d watches after Remove", p.Len())
	}
}

// TestRemovedWatchCannotArm: after Remove, Arm fails even on an open
// socket.
func TestRemovedWatchCannotArm(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	_, server := pair(t)
	var rc syscall.RawConn
	if rc, err = server.SyscallConn(); err != nil {
		t.Fatal(err)
	}
	w := p.Watch(rc, func() { t.Error("callback of a removed watch") })
	if err := w.Arm(); err != nil {
		t.Fatal(err)
	}
	w.Remove()
	if err := w.Arm(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Arm after Remove: %v, want ErrClosed", err)
	}
}

// TestSlotReuse: a removed watch's slot goes to the next watch, and an
// event naming the removed one (fetched late) finds nothing, while the new
// watch gets its own socket's events.
func TestSlotReuse(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	_, s1 := pair(t)
	c2, s2 := pair(t)
	rc1, err := s1.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc2, err := s2.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	old := p.Watch(rc1, func() { t.Error("callback of a removed watch") })
	old.Remove()
	ready := make(chan struct{}, 1)
	w := p.Watch(rc2, func() { ready <- struct{}{} })
	if w.slot != old.slot {
		t.Fatalf("new watch in slot %d, want the freed slot %d", w.slot, old.slot)
	}
	if got := p.lookup(old.slot, old.gen); got != nil {
		t.Fatal("an event of the removed watch finds a watch")
	}
	if got := p.lookup(w.slot, w.gen); got != w {
		t.Fatal("an event of the new watch does not find it")
	}
	if err := w.Arm(); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	<-ready
	if p.Len() != 1 {
		t.Fatalf("Len = %d, want 1", p.Len())
	}
}

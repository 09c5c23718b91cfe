package websocket

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// deadlineConn counts the write deadlines set on it.
type deadlineConn struct {
	net.Conn
	sets atomic.Int64
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.sets.Add(1)
	return c.Conn.SetWriteDeadline(t)
}

// loopbackPair returns both ends of a loopback TCP connection.
func loopbackPair(t testing.TB) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		server.Close()
		client.Close()
	})
	return server, client
}

func timedConn(nc net.Conn, timeout time.Duration) *Conn {
	return &Conn{nc: nc, rbuf: make([]byte, minReadBuffer), readLimit: defaultReadLimit, writeTimeout: timeout}
}

// TestWriteDeadlineMoves: writes spread over several write timeouts all
// succeed (the deadline moves along), and quick writes do not each set it.
func TestWriteDeadlineMoves(t *testing.T) {
	server, client := loopbackPair(t)
	go func() { _, _ = io.Copy(io.Discard, client) }()
	dc := &deadlineConn{Conn: server}
	c := timedConn(dc, 2*time.Second)
	for i := 0; i < 1000; i++ {
		if err := c.WriteMessage(OpText, event); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if n := dc.sets.Load(); n > 10 {
		t.Errorf("1,000 quick writes set the write deadline %d times", n)
	}
	c.writeTimeout = 200 * time.Millisecond
	for i := 0; i < 20; i++ {
		time.Sleep(30 * time.Millisecond) // 600 ms in all: three timeouts
		if err := c.WriteMessage(OpText, event); err != nil {
			t.Fatalf("write %d after a pause: %v", i, err)
		}
	}
}

// TestWriteDeadlineStalledPeer: a peer that reads nothing makes a write
// fail with the deadline, and every write after it fail at once.
func TestWriteDeadlineStalledPeer(t *testing.T) {
	server, _ := loopbackPair(t)
	c := timedConn(server, 200*time.Millisecond)
	big := make([]byte, 256<<10)
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		err = c.WriteMessage(OpBinary, big)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("writes to a peer that reads nothing: %v, want the write deadline", err)
	}
	if err := c.WriteMessage(OpText, event); !errors.Is(err, ErrClosed) {
		t.Errorf("write after a failed one: %v, want ErrClosed", err)
	}
}

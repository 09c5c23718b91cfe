package trackers

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// protocol is what differs between the served protocols.
type protocol interface {
	// name is the protocol's name in logs, metrics and attributes.
	name() string
	// serve runs one TCP connection until it ends.
	serve(ctx context.Context, c *conn) error
	// datagram handles one UDP datagram from addr.
	datagram(ctx context.Context, l *Listener, b []byte, addr net.Addr)
}

// Listener serves one protocol on a TCP and a UDP socket of the same
// address.
type Listener struct {
	proto protocol
	app   Applier
	links *Links
	opts  Options
	log   *slog.Logger

	tcp net.Listener
	udp net.PacketConn

	mu    sync.Mutex
	conns map[*conn]struct{}
	wg    sync.WaitGroup
}

// ListenTeltonika binds the Teltonika listener on addr (TCP and UDP).
func ListenTeltonika(addr string, app Applier, links *Links, opts Options) (*Listener, error) {
	return listen(&teltonikaProto{}, addr, app, links, opts)
}

// ListenGT06 binds the GT06 listener on addr (TCP and UDP).
func ListenGT06(addr string, app Applier, links *Links, opts Options) (*Listener, error) {
	return listen(newGT06Proto(), addr, app, links, opts)
}

func listen(p protocol, addr string, app Applier, links *Links, opts Options) (*Listener, error) {
	opts.defaults()
	if links == nil {
		links = NewLinks()
	}
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s tcp %s: %w", p.name(), addr, err)
	}
	// UDP on the port TCP got, so that ":0" gives one port for both.
	udpAddr := tcp.Addr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		_, port, _ := net.SplitHostPort(udpAddr)
		udpAddr = net.JoinHostPort(host, port)
	}
	udp, err := net.ListenPacket("udp", udpAddr)
	if err != nil {
		tcp.Close()
		return nil, fmt.Errorf("%s udp %s: %w", p.name(), udpAddr, err)
	}
	return &Listener{
		proto: p, app: app, links: links, opts: opts,
		log: opts.Logger.With("protocol", p.name()),
		tcp: tcp, udp: udp,
		conns: make(map[*conn]struct{}),
	}, nil
}

// Addr is the bound TCP address.
func (l *Listener) Addr() string { return l.tcp.Addr().String() }

// UDPAddr is the bound UDP address.
func (l *Listener) UDPAddr() string { return l.udp.LocalAddr().String() }

// Serve accepts connections and datagrams until ctx is cancelled or Close
// is called, then closes every connection and returns once their
// handlers have finished.
func (l *Listener) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.serveUDP(ctx)
	}()
	var err error
	for {
		nc, aerr := l.tcp.Accept()
		if aerr != nil {
			var ne net.Error
			if errors.As(aerr, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if ctx.Err() == nil && !errors.Is(aerr, net.ErrClosed) {
				err = fmt.Errorf("%s accept: %w", l.proto.name(), aerr)
			}
			break
		}
		c, ok := l.track(nc)
		if !ok {
			l.log.Warn("trackers: connection refused, listener full", "remote", nc.RemoteAddr(), "max", l.opts.MaxConns)
			nc.Close()
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer l.untrack(c)
			if err := l.proto.serve(ctx, c); err != nil && ctx.Err() == nil {
				l.log.Debug("trackers: connection closed", "remote", nc.RemoteAddr(), "device", c.deviceID(), "err", err)
			}
		}()
	}
	cancel()
	l.Close()
	l.wg.Wait()
	return err
}

// Close stops the listener and closes every connection.
func (l *Listener) Close() {
	l.tcp.Close()
	l.udp.Close()
	l.mu.Lock()
	for c := range l.conns {
		c.nc.Close()
	}
	l.mu.Unlock()
}

func (l *Listener) track(nc net.Conn) (*conn, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) >= l.opts.MaxConns {
		return nil, false
	}
	c := &conn{l: l, nc: nc, br: bufio.NewReaderSize(nc, 512)}
	l.conns[c] = struct{}{}
	return c, true
}

func (l *Listener) untrack(c *conn) {
	c.nc.Close()
	if id := c.deviceID(); id != "" {
		l.links.remove(id, c)
	}
	c.fail(ErrOffline)
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

func (l *Listener) serveUDP(ctx context.Context) {
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := l.udp.ReadFrom(buf)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				l.log.Warn("trackers: udp read", "err", err)
			}
			return
		}
		if n > l.opts.MaxPacket {
			continue
		}
		l.proto.datagram(ctx, l, buf[:n], addr)
	}
}

// replyUDP answers a datagram.
func (l *Listener) replyUDP(b []byte, addr net.Addr) {
	if _, err := l.udp.WriteTo(b, addr); err != nil {
		l.log.Debug("trackers: udp reply", "remote", addr, "err", err)
	}
}

// conn is one device's TCP connection.
type conn struct {
	l  *Listener
	nc net.Conn
	br *bufio.Reader

	wmu sync.Mutex // serialises writes: answers and commands

	mu      sync.Mutex
	device  string
	waiting chan string // a command's answer, while one waits
	closed  error

	cmdMu sync.Mutex // one command at a time
}

func (c *conn) deviceID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.device
}

func (c *conn) setDevice(id string) {
	c.mu.Lock()
	c.device = id
	c.mu.Unlock()
}

// deadline sets the read deadline d from now.
func (c *conn) deadline(d time.Duration) {
	_ = c.nc.SetReadDeadline(c.l.opts.Now().Add(d))
}

// write sends b within the write timeout.
func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(b)
}

// login makes lk the link of device id and writes the login's answer, both
// under the write lock: whoever learns of the login (the device from the
// answer, a client from the device) finds the link, and a command sent
// through it at once goes out after the answer.
func (c *conn) login(id string, lk *link, answer []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.setDevice(id)
	c.l.links.add(id, lk)
	return c.writeLocked(answer)
}

// writeLocked writes b; c.wmu is held.
func (c *conn) writeLocked(b []byte) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.l.opts.WriteTimeout))
	if _, err := c.nc.Write(b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// command writes pkt and waits for the device's answer, which the
// connection's reader hands over with answer.
func (c *conn) command(ctx context.Context, pkt []byte) (string, error) {
	c.cmdMu.Lock()
	defer c.cmdMu.Unlock()
	ch := make(chan string, 1)
	c.mu.Lock()
	if c.closed != nil {
		c.mu.Unlock()
		return "", c.closed
	}
	c.waiting = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.waiting == ch {
			c.waiting = nil
		}
		c.mu.Unlock()
	}()
	if err := c.write(pkt); err != nil {
		return "", fmt.Errorf("%w: %w", ErrOffline, err)
	}
	t := time.NewTimer(c.l.opts.CommandTimeout)
	defer t.Stop()
	select {
	case a, ok := <-ch:
		if !ok {
			// The connection ended while the command waited.
			c.mu.Lock()
			defer c.mu.Unlock()
			return "", c.closed
		}
		return a, nil
	case <-t.C:
		return "", errNoAnswer
	case <-ctx.Done():
		return "", fmt.Errorf("%w: %w", errNoAnswer, ctx.Err())
	}
}

// answer hands a device's answer to the command waiting for it; it
// reports whether one was waiting.
func (c *conn) answer(text string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waiting == nil {
		return false
	}
	c.waiting <- text
	c.waiting = nil
	return true
}

// fail ends the connection's command channel.
func (c *conn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = err
	if c.waiting != nil {
		close(c.waiting)
		c.waiting = nil
	}
}

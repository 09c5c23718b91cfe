package netlimit

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/metrics"
)

// refusal is the answer to a connection over its address's cap: the API's
// error 15 as a complete HTTP/1.1 response.
var refusal = func() []byte {
	body := `{"success":false,"status":{"code":` + strconv.Itoa(apierr.TooManyRequests.Code) +
		`,"description":"` + apierr.TooManyRequests.Description + `: too many open connections from this address"}}` + "\n"
	return []byte("HTTP/1.1 429 Too Many Requests\r\n" +
		"Content-Type: application/json\r\n" +
		"Retry-After: 1\r\n" +
		"Connection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// maxRefusing bounds the refusals being written at once; past it, excess
// connections are closed without an answer.
const maxRefusing = 256

// refuseLinger is how long a refused connection is given to take the 429
// before it is closed.
const refuseLinger = time.Second

var refusedTotal = metrics.Default.NewCounter("fleetwire_connections_refused_total",
	"Connections refused because their address held too many unauthenticated connections.", "")

// Listener is a net.Listener that admits at most a fixed number of
// unauthenticated connections per source address (see the package
// comment). Its connections are *Conn.
type Listener struct {
	net.Listener
	unauth   *Counter
	refusing atomic.Int32
}

// Listen wraps ln so that each source address (AddrKey) holds at most
// maxUnauthenticated connections not yet marked authenticated; 0 or less
// means no cap.
func Listen(ln net.Listener, maxUnauthenticated int) *Listener {
	return &Listener{Listener: ln, unauth: NewCounter(maxUnauthenticated)}
}

// Unauthenticated is the counter of unauthenticated connections per
// address, for metrics and tests.
func (l *Listener) Unauthenticated() *Counter { return l.unauth }

// Accept returns the next connection within its address's cap; those over
// it are answered with 429 and closed in the background.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.unauth.Take(AddrKey(c.RemoteAddr().String())) {
			nc := &Conn{Conn: c, unauth: l.unauth}
			nc.held.Store(true)
			return nc, nil
		}
		refusedTotal.Inc()
		if l.refusing.Add(1) > maxRefusing {
			l.refusing.Add(-1)
			c.Close()
			continue
		}
		go func() {
			defer l.refusing.Add(-1)
			refuse(c)
		}()
	}
}

// refuse writes the 429, half-closes, and lets the client read it before
// closing (closing with unread input would reset the connection and
// could destroy the answer in flight).
func refuse(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(refuseLinger))
	if _, err := c.Write(refusal); err != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}

// Conn is a connection accepted by a Listener. Until Authenticated is
// called it holds one of its address's unauthenticated slots; Close gives
// the slot back too.
type Conn struct {
	net.Conn
	unauth *Counter
	held   atomic.Bool // the slot is still taken
}

// Authenticated marks the connection as belonging to an authenticated
// client: it no longer counts against its address's cap. Safe to call
// more than once and after Close.
func (c *Conn) Authenticated() { c.giveBack() }

// Close closes the connection and gives back its slot.
func (c *Conn) Close() error {
	c.giveBack()
	return c.Conn.Close()
}

// giveBack returns the connection's unauthenticated slot, once.
func (c *Conn) giveBack() {
	if c.held.Swap(false) {
		// The key is worked out again rather than kept: an idle
		// connection should hold as little as it can.
		c.unauth.Give(AddrKey(c.RemoteAddr().String()))
	}
}

// SyscallConn gives raw access to the underlying connection (a TCP
// socket), for readiness-driven reads; an error where it has none.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("netlimit: the connection gives no raw access")
}

// CloseWrite half-closes the connection where the underlying connection
// can (TCP), as net/http does before closing a connection after an error.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

type connKey struct{}

// ConnContext is an http.Server ConnContext hook that makes the
// connection reachable from a request's context, for Authenticated.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// Authenticated marks the connection that carried the request with
// context ctx as authenticated (see Conn.Authenticated). It does nothing
// when the server has no ConnContext hook or the listener is not a
// Listener. ctx may have ended already (a WebSocket served after its
// handler returned).
func Authenticated(ctx context.Context) {
	if c, ok := ctx.Value(connKey{}).(*Conn); ok {
		c.Authenticated()
	}
}

// AuthenticatedConn marks c as authenticated when it is a Listener's
// connection (see Conn.Authenticated); anything else is left alone. It
// serves connections that outlive their request, without keeping its
// context or a closure.
func AuthenticatedConn(c net.Conn) {
	if nc, ok := c.(*Conn); ok {
		nc.Authenticated()
	}
}

// Package readiness tells when idle sockets become readable without a
// goroutine parked on each: sockets are watched one shot at a time by an
// epoll instance (Linux) and a single poller goroutine calls a socket's
// callback once it has something to read (or was hung up). The callback
// reads what is there without blocking and arms the watch again.
// Elsewhere New returns ErrUnsupported and callers keep a goroutine per
// socket.
package readiness

import "errors"

// ErrUnsupported is returned by New where there is no readiness poller.
var ErrUnsupported = errors.New("readiness: not supported on this system")

// ErrClosed is returned by Arm once the socket was closed or Remove was
// called.
var ErrClosed = errors.New("readiness: watch closed")

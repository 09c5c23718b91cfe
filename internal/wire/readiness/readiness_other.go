//go:build !linux

package readiness

import "syscall"

// Poller watches sockets for readability; there is none on this system.
type Poller struct{}

// Watch is one socket watched by a Poller.
type Watch struct{}

// New returns ErrUnsupported on this system.
func New() (*Poller, error) { return nil, ErrUnsupported }

// Watch is never called here: New gives no Poller.
func (p *Poller) Watch(rc syscall.RawConn, fn func()) *Watch { return &Watch{} }

// Arm fails: there is no poller.
func (w *Watch) Arm() error { return ErrUnsupported }

// Remove does nothing.
func (w *Watch) Remove() {}

// Len is 0.
func (p *Poller) Len() int { return 0 }

//go:build linux

package readiness

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Poller watches sockets for readability.
type Poller struct {
	epfd int

	mu    sync.Mutex
	slots []*Watch // by slot; nil where free
	free  []uint32 // slots to reuse
	gen   uint32   // the last generation given out
	n     int      // watches held
}

// Watch is one socket watched by a Poller. Its callback runs on the
// poller's goroutine and must not block: it should start whatever reads.
type Watch struct {
	p *Poller
	// slot and gen name the watch in its epoll events: the slot is
	// reused once the watch is removed, the generation is not, so an
	// event for a socket closed meanwhile finds no watch.
	slot, gen uint32
	rc        syscall.RawConn
	fn        func()
	added     bool // in the epoll set (guarded by the poller's mu)
}

// New starts a poller and its goroutine, which lives as long as the
// process.
func New() (*Poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("readiness: epoll_create1: %w", err)
	}
	p := &Poller{epfd: fd}
	go p.run()
	return p, nil
}

// Watch registers rc, unarmed; fn is called each time an armed rc becomes
// readable or hung up, once per Arm.
func (p *Poller) Watch(rc syscall.RawConn, fn func()) *Watch {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	w := &Watch{p: p, gen: p.gen, rc: rc, fn: fn}
	if k := len(p.free); k > 0 {
		w.slot = p.free[k-1]
		p.free = p.free[:k-1]
		p.slots[w.slot] = w
	} else {
		w.slot = uint32(len(p.slots))
		p.slots = append(p.slots, w)
	}
	p.n++
	return w
}

// Arm asks for one call of the callback once the socket is readable
// (at once if it already is). It fails with ErrClosed once the socket
// was closed or the watch removed.
func (w *Watch) Arm() error {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slots[w.slot] != w {
		return ErrClosed
	}
	// The event's 64 data bits carry the watch's slot and generation.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT,
		Fd: int32(w.slot), Pad: int32(w.gen)}
	var cerr error
	// Control holds the descriptor: it cannot be closed and reused
	// while it is being armed.
	err := w.rc.Control(func(fd uintptr) {
		op := unix.EPOLL_CTL_MOD
		if !w.added {
			op = unix.EPOLL_CTL_ADD
		}
		cerr = unix.EpollCtl(p.epfd, op, int(fd), &ev)
		if op == unix.EPOLL_CTL_MOD && errors.Is(cerr, unix.ENOENT) {
			cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		}
	})
	if err != nil {
		return ErrClosed
	}
	if cerr != nil {
		return fmt.Errorf("readiness: epoll_ctl: %w", cerr)
	}
	w.added = true
	return nil
}

// Remove forgets the watch: Arm fails from now on, and no event fetched
// after it returns calls the callback (one fetched just before may still
// be running it). The socket leaves the epoll set when it is closed (or now, if
// it is still open).
func (w *Watch) Remove() {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slots[w.slot] != w {
		return
	}
	p.slots[w.slot] = nil
	p.free = append(p.free, w.slot)
	p.n--
	if w.added {
		_ = w.rc.Control(func(fd uintptr) {
			_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
		})
	}
}

// Len is the number of watches, for tests and metrics.
func (p *Poller) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func (p *Poller) run() {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			slog.Error("readiness: epoll_wait failed; the poller stops", "err", err)
			return
		}
		for _, ev := range events[:n] {
			if w := p.lookup(uint32(ev.Fd), uint32(ev.Pad)); w != nil {
				w.fn()
			}
		}
	}
}

// lookup is the watch an event names, nil when its socket was removed
// meanwhile (its slot empty, or held by a newer watch).
func (p *Poller) lookup(slot, gen uint32) *Watch {
	p.mu.Lock()
	defer p.mu.Unlock()
	if int(slot) >= len(p.slots) {
		return nil
	}
	if w := p.slots[slot]; w != nil && w.gen == gen {
		return w
	}
	return nil
}

package atmosphere

import "github.com/fleetwire/fleetwire/internal/outbox"

// delivery is one numbered application message, with the application's
// metadata of it.
type delivery struct {
	seq  uint64
	msg  []byte
	meta any
}

// ring keeps the last messages a session delivered, numbered, bounded in
// count and bytes, for re-sending after a lost connection. A nil ring is
// empty: a session makes one when it first keeps a message.
type ring struct {
	entries []delivery
	head    int
	bytes   int
	limits  outbox.Limits
}

func newRing(l outbox.Limits) *ring {
	if l.MaxMessages <= 0 {
		l.MaxMessages = 4096
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 16 << 20
	}
	return &ring{limits: l}
}

func (g *ring) len() int {
	if g == nil {
		return 0
	}
	return len(g.entries) - g.head
}

// push appends d, evicting the oldest entries beyond the limits.
func (g *ring) push(d delivery) {
	g.entries = append(g.entries, d)
	g.bytes += len(d.msg)
	for g.len() > 0 && (g.len() > g.limits.MaxMessages || g.bytes > g.limits.MaxBytes) {
		g.dropFirst()
	}
}

func (g *ring) dropFirst() {
	g.bytes -= len(g.entries[g.head].msg)
	g.entries[g.head] = delivery{}
	g.head++
	if g.head == len(g.entries) {
		g.entries, g.head = g.entries[:0], 0
	} else if g.head > 1024 && g.head*2 > len(g.entries) {
		g.entries = append(g.entries[:0], g.entries[g.head:]...)
		g.head = 0
	}
}

// first is the number of the oldest entry, 0 when empty.
func (g *ring) first() uint64 {
	if g.len() == 0 {
		return 0
	}
	return g.entries[g.head].seq
}

// after returns a copy of the entries numbered above n, in order.
func (g *ring) after(n uint64) []delivery {
	if g == nil {
		return nil
	}
	var out []delivery
	for _, d := range g.entries[g.head:] {
		if d.seq > n {
			out = append(out, d)
		}
	}
	return out
}

// dropThrough forgets the entries numbered n and below: the client has
// them.
func (g *ring) dropThrough(n uint64) {
	for g.len() > 0 && g.entries[g.head].seq <= n {
		g.dropFirst()
	}
}

// dropFrom forgets the entries numbered n and above: they go back to the
// outbox.
func (g *ring) dropFrom(n uint64) {
	for g.len() > 0 {
		last := len(g.entries) - 1
		if g.entries[last].seq < n {
			return
		}
		g.bytes -= len(g.entries[last].msg)
		g.entries[last] = delivery{}
		g.entries = g.entries[:last]
		if g.head == len(g.entries) {
			g.entries, g.head = g.entries[:0], 0
		}
	}
}

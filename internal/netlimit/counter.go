package netlimit

import "sync"

// Counter counts concurrent holders per key (usually an AddrKey) and
// admits at most Max of them per key. The zero value is not usable; use
// NewCounter.
type Counter struct {
	max int

	mu sync.Mutex
	n  map[string]int
}

// NewCounter returns a Counter admitting max holders per key; max <= 0
// admits every one (the counts are still kept, see Count).
func NewCounter(max int) *Counter {
	return &Counter{max: max, n: make(map[string]int)}
}

// Max is the cap per key, 0 for none.
func (c *Counter) Max() int {
	if c.max < 0 {
		return 0
	}
	return c.max
}

// Take takes a slot for key; it reports false, counting nothing, when the
// key is at its cap. Every Take that succeeded is matched by one Give.
func (c *Counter) Take(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max > 0 && c.n[key] >= c.max {
		return false
	}
	c.n[key]++
	return true
}

// Give gives back a slot Take took for key.
func (c *Counter) Give(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] <= 1 {
		delete(c.n, key)
	} else {
		c.n[key]--
	}
}

// Count returns how many slots key holds.
func (c *Counter) Count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// Keys returns how many keys hold at least one slot.
func (c *Counter) Keys() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.n)
}

package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram buckets latencies in microseconds on a log-linear scale: values
// below subBuckets get a bucket each, above that every power of two is split
// into subBuckets equal parts, so a bucket is at most 1/subBuckets (6.25%)
// wide relative to its value. It is safe for concurrent use.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
}

const (
	subBits     = 4
	subBuckets  = 1 << subBits
	histExp     = 40 // up to 2^40 µs, about 12 days
	histBuckets = (histExp + 1) * subBuckets
)

// bucketOf maps a value in microseconds to its bucket.
func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1 // v >> e is in [subBuckets, 2*subBuckets)
	if e >= histExp {
		return histBuckets - 1
	}
	return (e+1)*subBuckets + int(v>>uint(e)) - subBuckets
}

// bucketUpper is the largest value a bucket holds.
func bucketUpper(b int) uint64 {
	if b < subBuckets {
		return uint64(b)
	}
	e := b/subBuckets - 1
	m := uint64(b%subBuckets + subBuckets)
	return (m+1)<<uint(e) - 1
}

// Record adds one latency; negative values count as zero.
func (h *Histogram) Record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	h.counts[bucketOf(uint64(us))].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			break
		}
	}
}

// Count is how many values were recorded.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max is the largest recorded value.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) * time.Microsecond }

// Quantile returns the upper bound of the bucket holding quantile q (0..1),
// capped at the largest recorded value; zero when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	var seen uint64
	for b := range h.counts {
		seen += h.counts[b].Load()
		if seen >= rank {
			v := time.Duration(bucketUpper(b)) * time.Microsecond
			if m := h.Max(); v > m {
				v = m
			}
			return v
		}
	}
	return h.Max()
}

// Package metrics is a small Prometheus text-format exposition: counters,
// gauges and histograms registered once and written at /metrics. It covers
// what fleetwire reports without pulling in a client library.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Counter only goes up.
type Counter struct{ v atomic.Uint64 }

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Value returns the current count.
func (c *Counter) Value() uint64 { return c.v.Load() }

// Gauge goes up and down.
type Gauge struct{ v atomic.Int64 }

// Add adds n (which may be negative).
func (g *Gauge) Add(n int64) { g.v.Add(n) }

// Set sets the value.
func (g *Gauge) Set(n int64) { g.v.Store(n) }

// Value returns the current value.
func (g *Gauge) Value() int64 { return g.v.Load() }

// Histogram counts observations into fixed buckets.
type Histogram struct {
	bounds []float64
	counts []atomic.Uint64 // len(bounds)+1, last is +Inf
	sum    atomic.Uint64   // float64 bits
	count  atomic.Uint64
}

// Observe records v.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v)
	h.counts[i].Add(1)
	h.count.Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.count.Load() }

// LatencyBuckets are seconds from 100µs to 10s.
var LatencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type entry struct {
	name, help, typ, labels string
	write                   func(w io.Writer, name, labels string)
}

// Registry holds metrics in registration order.
type Registry struct {
	mu      sync.Mutex
	entries []*entry
}

// Default is the registry served by Handler.
var Default = &Registry{}

func (r *Registry) add(e *entry) {
	r.mu.Lock()
	r.entries = append(r.entries, e)
	r.mu.Unlock()
}

// NewCounter registers a counter. labels is the Prometheus label text
// without braces (`protocol="osmand"`), or empty.
func (r *Registry) NewCounter(name, help, labels string) *Counter {
	c := &Counter{}
	r.add(&entry{name: name, help: help, typ: "counter", labels: labels, write: func(w io.Writer, n, l string) {
		fmt.Fprintf(w, "%s%s %d\n", n, wrap(l), c.Value())
	}})
	return c
}

// NewGauge registers a gauge.
func (r *Registry) NewGauge(name, help, labels string) *Gauge {
	g := &Gauge{}
	r.add(&entry{name: name, help: help, typ: "gauge", labels: labels, write: func(w io.Writer, n, l string) {
		fmt.Fprintf(w, "%s%s %d\n", n, wrap(l), g.Value())
	}})
	return g
}

// NewGaugeFunc registers a gauge whose value is read from fn at scrape time.
func (r *Registry) NewGaugeFunc(name, help, labels string, fn func() float64) {
	r.add(&entry{name: name, help: help, typ: "gauge", labels: labels, write: func(w io.Writer, n, l string) {
		fmt.Fprintf(w, "%s%s %g\n", n, wrap(l), fn())
	}})
}

// NewHistogram registers a histogram with the given upper bounds.
func (r *Registry) NewHistogram(name, help, labels string, bounds []float64) *Histogram {
	h := &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
	r.add(&entry{name: name, help: help, typ: "histogram", labels: labels, write: func(w io.Writer, n, l string) {
		var cum uint64
		sep := ""
		if l != "" {
			sep = ","
		}
		for i, b := range h.bounds {
			cum += h.counts[i].Load()
			fmt.Fprintf(w, "%s_bucket{%s%sle=\"%g\"} %d\n", n, l, sep, b, cum)
		}
		cum += h.counts[len(h.bounds)].Load()
		fmt.Fprintf(w, "%s_bucket{%s%sle=\"+Inf\"} %d\n", n, l, sep, cum)
		fmt.Fprintf(w, "%s_sum%s %g\n", n, wrap(l), math.Float64frombits(h.sum.Load()))
		fmt.Fprintf(w, "%s_count%s %d\n", n, wrap(l), h.count.Load())
	}})
	return h
}

func wrap(l string) string {
	if l == "" {
		return ""
	}
	return "{" + l + "}"
}

// WriteTo writes every metric in the text exposition format.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	entries := append([]*entry(nil), r.entries...)
	r.mu.Unlock()
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var b strings.Builder
	seen := map[string]bool{}
	for _, e := range entries {
		if !seen[e.name] {
			seen[e.name] = true
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", e.name, e.help, e.name, e.typ)
		}
		e.write(&b, e.name, e.labels)
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// Handler serves the registry at /metrics.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = r.WriteTo(w)
	})
}

// Package metrics holds fleetwire's counters, gauges and histograms and serves
// them at /metrics in the Prometheus exposition format. It is a thin layer
// over github.com/prometheus/client_golang: every metric name is one
// CounterVec, GaugeVec or HistogramVec, and each registration with its own
// label values is one series of it. Callers register at package init and keep
// the returned *Counter, *Gauge or *Histogram.
package metrics

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
)

// Counter only goes up. It is one series of a CounterVec.
type Counter struct{ c prometheus.Counter }

// Inc adds one.
func (c *Counter) Inc() { c.c.Inc() }

// Add adds n.
func (c *Counter) Add(n uint64) { c.c.Add(float64(n)) }

// Value returns the current count, read from the collector. It is exact up
// to 2^53.
func (c *Counter) Value() uint64 { return uint64(read(c.c).GetCounter().GetValue()) }

// Gauge goes up and down. It is one series of a GaugeVec.
type Gauge struct{ g prometheus.Gauge }

// Add adds n (which may be negative).
func (g *Gauge) Add(n int64) { g.g.Add(float64(n)) }

// Set sets the value.
func (g *Gauge) Set(n int64) { g.g.Set(float64(n)) }

// Value returns the current value, read from the collector. It is exact
// within ±2^53.
func (g *Gauge) Value() int64 { return int64(read(g.g).GetGauge().GetValue()) }

// Histogram counts observations into fixed buckets. It is one series of a
// HistogramVec.
type Histogram struct{ h prometheus.Histogram }

// Observe records v.
func (h *Histogram) Observe(v float64) { h.h.Observe(v) }

// Count returns the number of observations, read from the collector.
func (h *Histogram) Count() uint64 { return read(h.h).GetHistogram().GetSampleCount() }

// read returns m's current sample. Counters, gauges and histograms without
// exemplars never fail to write, so an error leaves the zero sample.
func read(m prometheus.Metric) *dto.Metric {
	var d dto.Metric
	_ = m.Write(&d)
	return &d
}

// LatencyBuckets are seconds from 100µs to 10s.
var LatencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Kinds of family, as the exposition's TYPE line names them (gauge funcs
// apart, since they are collectors of their own).
const (
	kindCounter   = "counter"
	kindGauge     = "gauge"
	kindGaugeFunc = "gauge func"
	kindHistogram = "histogram"
)

// family is everything registered under one metric name.
type family struct {
	kind   string
	help   string
	labels []string  // label names, in the order of the first registration
	bounds []float64 // histogram bucket upper bounds
	vec    *prometheus.MetricVec
}

// Registry holds metrics and the node name they are exported with. The zero
// value is ready to use; a Registry must not be copied.
type Registry struct {
	once sync.Once
	reg  *prometheus.Registry

	mu       sync.Mutex
	families map[string]*family
	runtime  bool // RegisterRuntime has run

	node atomic.Pointer[string]
}

// Default is the registry that fleetwire's packages register with and the
// server serves at /metrics.
var Default = &Registry{}

// prom returns the client_golang registry under r.
func (r *Registry) prom() *prometheus.Registry {
	r.once.Do(func() { r.reg = prometheus.NewRegistry() })
	return r.reg
}

// NewCounter registers a counter. labels is the Prometheus label text
// without braces (`protocol="osmand",result="accepted"`), or empty. Every
// registration of one name must give the same help and label names; each
// set of label values is one series, and registering the same set again
// returns that series. Inconsistent or malformed registrations panic, as
// they are programming errors made at init.
func (r *Registry) NewCounter(name, help, labels string) *Counter {
	m := r.series(kindCounter, name, help, labels, nil, func(o prometheus.Opts, names []string) *prometheus.MetricVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts(o), names).MetricVec
	})
	return &Counter{c: m.(prometheus.Counter)}
}

// NewGauge registers a gauge, under the rules of NewCounter.
func (r *Registry) NewGauge(name, help, labels string) *Gauge {
	m := r.series(kindGauge, name, help, labels, nil, func(o prometheus.Opts, names []string) *prometheus.MetricVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts(o), names).MetricVec
	})
	return &Gauge{g: m.(prometheus.Gauge)}
}

// NewHistogram registers a histogram with the given bucket upper bounds,
// under the rules of NewCounter; every registration of one name must give
// the same bounds.
func (r *Registry) NewHistogram(name, help, labels string, bounds []float64) *Histogram {
	m := r.series(kindHistogram, name, help, labels, bounds, func(o prometheus.Opts, names []string) *prometheus.MetricVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: o.Name, Help: o.Help, Buckets: bounds}, names).MetricVec
	})
	return &Histogram{h: m.(prometheus.Histogram)}
}

// NewGaugeFunc registers a gauge whose value is read from fn at scrape time,
// under the rules of NewCounter except that a set of label values can be
// registered only once.
func (r *Registry) NewGaugeFunc(name, help, labels string, fn func() float64) {
	names, values := mustParseLabels(name, labels)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.family(kindGaugeFunc, name, help, names, nil); err != nil {
		panic(err)
	}
	c := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: zip(names, values)}, fn)
	if err := r.prom().Register(c); err != nil {
		panic(fmt.Errorf("metrics: register %s{%s}: %w", name, labels, err))
	}
}

// series returns the series of name with the label values of labels,
// creating the family's vector with newVec on its first registration.
func (r *Registry) series(kind, name, help, labels string, bounds []float64, newVec func(prometheus.Opts, []string) *prometheus.MetricVec) prometheus.Metric {
	names, values := mustParseLabels(name, labels)
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.family(kind, name, help, names, bounds)
	if err != nil {
		panic(err)
	}
	if f.vec == nil {
		vec := newVec(prometheus.Opts{Name: name, Help: help}, names)
		if err := r.prom().Register(vec); err != nil {
			delete(r.families, name)
			panic(fmt.Errorf("metrics: register %s: %w", name, err))
		}
		f.vec = vec
	}
	m, err := f.vec.GetMetricWithLabelValues(f.order(names, values)...)
	if err != nil {
		panic(fmt.Errorf("metrics: %s{%s}: %w", name, labels, err))
	}
	return m
}

// family returns the family of name, recording it if it is new, or an
// error if it was registered differently. r.mu is held.
func (r *Registry) family(kind, name, help string, names []string, bounds []float64) (*family, error) {
	if !model.LegacyValidation.IsValidMetricName(name) {
		return nil, fmt.Errorf("metrics: invalid metric name %q", name)
	}
	f := r.families[name]
	if f == nil {
		if r.families == nil {
			r.families = map[string]*family{}
		}
		f = &family{kind: kind, help: help, labels: names, bounds: bounds}
		r.families[name] = f
		return f, nil
	}
	switch {
	case f.kind != kind:
		return nil, fmt.Errorf("metrics: %s registered as a %s and as a %s", name, f.kind, kind)
	case f.help != help:
		return nil, fmt.Errorf("metrics: %s registered with help %q and %q", name, f.help, help)
	case len(names) != len(f.labels) || !subset(names, f.labels):
		return nil, fmt.Errorf("metrics: %s registered with labels %q and %q", name, f.labels, names)
	case !slices.Equal(f.bounds, bounds):
		return nil, fmt.Errorf("metrics: %s registered with buckets %v and %v", name, f.bounds, bounds)
	}
	return f, nil
}

// order returns values, given for names, in the order of f's label names.
// names holds the same labels as f.labels.
func (f *family) order(names, values []string) []string {
	out := make([]string, len(f.labels))
	for i, n := range names {
		out[slices.Index(f.labels, n)] = values[i]
	}
	return out
}

// subset reports whether every string of a is in b.
func subset(a, b []string) bool {
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	return true
}

// zip pairs names with values.
func zip(names, values []string) prometheus.Labels {
	l := prometheus.Labels{}
	for i, n := range names {
		l[n] = values[i]
	}
	return l
}

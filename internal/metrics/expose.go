package metrics

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// SetNode makes Default export every series with a node="<name>" label, so
// that the metrics of several cluster nodes are told apart. Empty name
// exports no node label. It may be called at any time; the next scrape
// shows it.
func SetNode(name string) { Default.SetNode(name) }

// SetNode makes r export every series with a node="<name>" label; empty
// name exports none.
func (r *Registry) SetNode(name string) { r.node.Store(&name) }

// Gather returns r's metric families, sorted by name, each series carrying
// the node label if one is set. It implements prometheus.Gatherer.
func (r *Registry) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := r.prom().Gather()
	node := ""
	if p := r.node.Load(); p != nil {
		node = *p
	}
	if node == "" {
		return mfs, err
	}
	name := nodeLabel
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			m.Label = append(m.Label, &dto.LabelPair{Name: &name, Value: &node})
			slices.SortFunc(m.Label, func(a, b *dto.LabelPair) int { return cmp.Compare(a.GetName(), b.GetName()) })
		}
	}
	return mfs, err
}

// WriteTo writes every metric in the text exposition format. If some
// collector fails, it writes the rest and returns the error.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	mfs, gerr := r.Gather()
	var n int64
	for _, mf := range mfs {
		k, err := expfmt.MetricFamilyToText(w, mf)
		n += int64(k)
		if err != nil {
			return n, fmt.Errorf("metrics: write %s: %w", mf.GetName(), err)
		}
	}
	if gerr != nil {
		return n, fmt.Errorf("metrics: gather: %w", gerr)
	}
	return n, nil
}

// Handler serves r at /metrics, in the format the scraper asks for. A
// collector that fails is logged and left out; the rest are served.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r, promhttp.HandlerOpts{
		ErrorLog:      errorLog{},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// errorLog sends promhttp's errors to slog.
type errorLog struct{}

// Println implements promhttp.Logger.
func (errorLog) Println(v ...any) { slog.Error("metrics: serve", "err", fmt.Sprint(v...)) }

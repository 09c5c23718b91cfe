package metrics

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// sample registers one of each kind on a fresh registry and moves them.
func sample(t *testing.T) *Registry {
	t.Helper()
	r := &Registry{}
	accepted := r.NewCounter("t_ingest_total", "Ingested.", `protocol="osmand",result="accepted"`)
	bad := r.NewCounter("t_ingest_total", "Ingested.", `result="bad_request",protocol="osmand"`)
	mqtt := r.NewCounter("t_ingest_total", "Ingested.", `protocol="mqtt",result="accepted"`)
	accepted.Add(3)
	bad.Inc()
	mqtt.Inc()
	mqtt.Inc()
	r.NewGauge("t_clients", "Clients.", "").Set(7)
	r.NewGaugeFunc("t_answer", "The answer.", `kind="func"`, func() float64 { return 42.5 })
	h := r.NewHistogram("t_latency_seconds", "Latency.", "", []float64{0.1, 1})
	for _, v := range []float64{0.05, 0.1, 0.5, 2} {
		h.Observe(v)
	}
	return r
}

// scrape fetches r's Handler over a real socket and parses the text.
func scrape(t *testing.T, r *Registry) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("status %s, content type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, body)
	}
	return string(body), mfs
}

// labels renders m's label pairs as `a="x",b="y"`.
func labels(m *dto.Metric) string {
	var s []string
	for _, l := range m.GetLabel() {
		s = append(s, l.GetName()+"="+`"`+l.GetValue()+`"`)
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}

func checkExposition(t *testing.T, r *Registry, node string) {
	t.Helper()
	prefix := ""
	if node != "" {
		prefix = `node="` + node + `",`
	}
	text, mfs := scrape(t, r)

	ingest := mfs["t_ingest_total"]
	if ingest.GetType() != dto.MetricType_COUNTER || ingest.GetHelp() != "Ingested." || len(ingest.GetMetric()) != 3 {
		t.Fatalf("t_ingest_total: %v", ingest)
	}
	want := map[string]float64{
		prefix + `protocol="mqtt",result="accepted"`:      2,
		prefix + `protocol="osmand",result="accepted"`:    3,
		prefix + `protocol="osmand",result="bad_request"`: 1,
	}
	for _, m := range ingest.GetMetric() {
		if v, ok := want[labels(m)]; !ok || v != m.GetCounter().GetValue() {
			t.Errorf("t_ingest_total{%s} %v, want %v", labels(m), m.GetCounter().GetValue(), want)
		}
	}
	// The series callers' tests look for, written as they look for it.
	if line := `t_ingest_total{` + prefix + `protocol="osmand",result="accepted"} 3` + "\n"; !strings.Contains(text, line) {
		t.Errorf("text lacks %q:\n%s", line, text)
	}

	if g := mfs["t_clients"].GetMetric(); len(g) != 1 || g[0].GetGauge().GetValue() != 7 || labels(g[0]) != strings.TrimSuffix(prefix, ",") {
		t.Errorf("t_clients: %v", g)
	}
	if g := mfs["t_answer"].GetMetric(); len(g) != 1 || g[0].GetGauge().GetValue() != 42.5 || labels(g[0]) != strings.TrimSuffix(`kind="func",`+prefix, ",") {
		t.Errorf("t_answer: %v", g)
	}

	hm := mfs["t_latency_seconds"].GetMetric()
	if len(hm) != 1 || labels(hm[0]) != strings.TrimSuffix(prefix, ",") {
		t.Fatalf("t_latency_seconds: %v", hm)
	}
	h := hm[0].GetHistogram()
	var buckets []uint64
	for _, b := range h.GetBucket() {
		buckets = append(buckets, b.GetCumulativeCount())
	}
	if h.GetSampleCount() != 4 || math.Abs(h.GetSampleSum()-2.65) > 1e-9 || !slices.Equal(buckets, []uint64{2, 3, 4}) {
		t.Errorf("histogram count %d sum %v buckets %v, want 4 2.65 [2 3 4]", h.GetSampleCount(), h.GetSampleSum(), buckets)
	}
	if line := `t_latency_seconds_bucket{` + prefix + `le="+Inf"} 4`; !strings.Contains(text, line) {
		t.Errorf("text lacks %q", line)
	}
}

func TestExposition(t *testing.T) {
	r := sample(t)
	checkExposition(t, r, "")
	text, _ := scrape(t, r)
	if strings.Contains(text, "node=") {
		t.Errorf("node label without SetNode:\n%s", text)
	}
}

func TestExpositionWithNode(t *testing.T) {
	r := sample(t)
	r.SetNode("fw-2")
	checkExposition(t, r, "fw-2")
	// Every sample line carries it, and it is never given twice.
	text, _ := scrape(t, r)
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.Count(line, `node="fw-2"`) != 1 {
			t.Errorf("line %q lacks the node label once", line)
		}
	}
	r.SetNode("")
	checkExposition(t, r, "")
}

// TestWriteTo: WriteTo writes what Handler serves and counts its bytes.
func TestWriteTo(t *testing.T) {
	r := sample(t)
	r.SetNode("a")
	var b strings.Builder
	n, err := r.WriteTo(&b)
	if err != nil || n != int64(b.Len()) {
		t.Fatalf("WriteTo = %d, %v; wrote %d", n, err, b.Len())
	}
	if text, _ := scrape(t, r); text != b.String() {
		t.Errorf("WriteTo:\n%s\nHandler:\n%s", b.String(), text)
	}
}

// TestValues: Value and Count read the collectors exactly, under
// concurrent use.
func TestValues(t *testing.T) {
	r := &Registry{}
	c := r.NewCounter("v_total", "V.", `k="a"`)
	again := r.NewCounter("v_total", "V.", `k="a"`)
	g := r.NewGauge("v_gauge", "G.", "")
	h := r.NewHistogram("v_seconds", "H.", `k="a"`, LatencyBuckets)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				c.Inc()
				g.Add(2)
				g.Add(-1)
				h.Observe(0.003)
			}
		})
	}
	wg.Wait()
	c.Add(1 << 40)
	if c.Value() != 8000+1<<40 || again.Value() != c.Value() {
		t.Errorf("counter %d (again %d), want %d", c.Value(), again.Value(), 8000+1<<40)
	}
	if g.Value() != 8000 {
		t.Errorf("gauge %d, want 8000", g.Value())
	}
	g.Set(-5)
	if g.Value() != -5 {
		t.Errorf("gauge %d after Set(-5)", g.Value())
	}
	if h.Count() != 8000 {
		t.Errorf("histogram count %d, want 8000", h.Count())
	}
}

// TestRegisterRuntime: the Go and process collectors' series, among them
// the ones bench/fwload reads, appear once however often it is called.
func TestRegisterRuntime(t *testing.T) {
	r := &Registry{}
	RegisterRuntime(r)
	RegisterRuntime(r)
	r.SetNode("n1")
	_, mfs := scrape(t, r)
	for _, name := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "go_gc_duration_seconds", "process_start_time_seconds", "process_resident_memory_bytes"} {
		mf := mfs[name]
		if mf == nil || len(mf.GetMetric()) != 1 {
			t.Errorf("%s: %v", name, mf)
			continue
		}
		if l := labels(mf.GetMetric()[0]); !strings.Contains(l, `node="n1"`) {
			t.Errorf("%s labels %s lack node", name, l)
		}
	}
	if v := mfs["go_goroutines"].GetMetric()[0].GetGauge().GetValue(); v < 1 {
		t.Errorf("go_goroutines %v", v)
	}
}

// TestBadRegistrations: inconsistent registrations of one name and
// malformed label text panic with the name in the message.
func TestBadRegistrations(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func(r *Registry)
	}{
		{"kind", func(r *Registry) { r.NewGauge("b_total", "B.", `k="a"`) }},
		{"help", func(r *Registry) { r.NewCounter("b_total", "Other.", `k="b"`) }},
		{"label names", func(r *Registry) { r.NewCounter("b_total", "B.", `j="a"`) }},
		{"label count", func(r *Registry) { r.NewCounter("b_total", "B.", `k="a",j="b"`) }},
		{"buckets", func(r *Registry) { r.NewHistogram("b_seconds", "S.", "", []float64{1, 3}) }},
		{"malformed", func(r *Registry) { r.NewCounter("b_total", "B.", `k=a`) }},
		{"duplicate label", func(r *Registry) { r.NewCounter("c_total", "C.", `k="a",k="b"`) }},
		{"node label", func(r *Registry) { r.NewCounter("c_total", "C.", `node="x"`) }},
		{"line break", func(r *Registry) { r.NewCounter("c_total", "C.", "k=\"a\"} 0\nc_total{k=\"b\"") }},
		{"gauge func twice", func(r *Registry) { r.NewGaugeFunc("b_func", "F.", "", func() float64 { return 0 }) }},
		{"bad name", func(r *Registry) { r.NewCounter("b-total", "B.", "") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Registry{}
			r.NewCounter("b_total", "B.", `k="a"`)
			r.NewHistogram("b_seconds", "S.", "", []float64{1, 2})
			r.NewGaugeFunc("b_func", "F.", "", func() float64 { return 0 })
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
				// The registry still serves what was registered.
				if _, mfs := scrape(t, r); mfs["b_total"] == nil {
					t.Error("b_total gone after a refused registration")
				}
			}()
			tc.fn(r)
		})
	}
}

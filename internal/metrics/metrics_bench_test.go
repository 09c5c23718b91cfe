package metrics

import "testing"

func BenchmarkCounterInc(b *testing.B) {
	c := (&Registry{}).NewCounter("b_total", "B.", `k="a"`)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Inc()
		}
	})
}

func BenchmarkHistogramObserve(b *testing.B) {
	h := (&Registry{}).NewHistogram("b_seconds", "B.", "", LatencyBuckets)
	b.RunParallel(func(pb *testing.PB) {
		v := 0.0
		for pb.Next() {
			h.Observe(v)
			v += 0.0001
		}
	})
}

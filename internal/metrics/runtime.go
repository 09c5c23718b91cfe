package metrics

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"time"
)

var runtimeOnce sync.Once

// RegisterRuntime adds Go runtime gauges to r: goroutines, heap in use and
// process uptime. It registers them once per process.
func RegisterRuntime(r *Registry) {
	runtimeOnce.Do(func() {
		start := time.Now()
		r.NewGaugeFunc("go_goroutines", "Number of goroutines.", "", func() float64 { return float64(runtime.NumGoroutine()) })
		r.NewGaugeFunc("go_memstats_heap_inuse_bytes", "Bytes in in-use heap spans.", "", func() float64 {
			s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
			metrics.Read(s)
			var n float64
			for _, x := range s {
				if x.Value.Kind() == metrics.KindUint64 {
					n += float64(x.Value.Uint64())
				}
			}
			return n
		})
		r.NewGaugeFunc("process_uptime_seconds", "Seconds since the process started serving metrics.", "", func() float64 { return time.Since(start).Seconds() })
	})
}

package metrics

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// RegisterRuntime adds client_golang's Go collector (go_goroutines,
// go_memstats_heap_inuse_bytes, go_gc_duration_seconds, …) and process
// collector (process_cpu_seconds_total, process_resident_memory_bytes,
// process_start_time_seconds, …) to r. Calling it again is a no-op.
func RegisterRuntime(r *Registry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runtime {
		return
	}
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := r.prom().Register(c); err != nil && !errors.As(err, &prometheus.AlreadyRegisteredError{}) {
			panic(fmt.Errorf("metrics: register runtime collector: %w", err))
		}
	}
	r.runtime = true
}

package main

import (
	"strings"
	"testing"
	"time"
)

func TestCountStatesByPhase(t *testing.T) {
	st := &Stats{log: NewSendLog()}
	st.log.start -= int64(time.Second) // the update below predates the log by 3ms
	_, lat := st.log.Next(time.Now().Add(-3 * time.Millisecond))
	frame := []byte(`{"type":"event","event":"state_batch","data":[{"source_id":1,"gps":{"location":{"lat":` +
		FormatLat(lat) + `,"lng":1}}},{"source_id":2,"gps":{"location":{"lat":52.5,"lng":1}}}]}`)

	st.countStates(frame) // current states on subscribe: counted apart, no latency
	if st.setupEntries.Load() != 2 || st.latency.Count() != 0 {
		t.Fatalf("setup: entries %d, latencies %d", st.setupEntries.Load(), st.latency.Count())
	}
	st.phase.Store(phaseIngest)
	st.countStates(frame)
	if st.entries.Load() != 2 || st.messages.Load() != 1 || st.matched.Load() != 1 || st.unmatched.Load() != 1 {
		t.Fatalf("ingest: entries %d messages %d matched %d unmatched %d",
			st.entries.Load(), st.messages.Load(), st.matched.Load(), st.unmatched.Load())
	}
	if p := st.latency.Quantile(0.5); p < 3*time.Millisecond || p > time.Second {
		t.Fatalf("latency %v, want at least the 3ms the update is old", p)
	}
	st.phase.Store(phaseDrain)
	st.countStates(frame)
	if st.drainEntries.Load() != 2 || st.entries.Load() != 2 {
		t.Fatalf("drain: drain %d entries %d", st.drainEntries.Load(), st.entries.Load())
	}

	var r Result
	r.IngestSeconds = 2
	st.expected.Store(5)
	r.fill(st)
	if r.Missing != 3 || r.EntriesPerSec != 1 || r.Matched != 2 {
		t.Fatalf("result: missing %d, entries/s %v, matched %d", r.Missing, r.EntriesPerSec, r.Matched)
	}
}

func TestCompareMarkdown(t *testing.T) {
	a := Result{System: "fleetwire", EntriesPerSec: 600000, P99ms: 20, RSSPerConnKiB: 10, IngestSeconds: 10, Config: Config{Label: "fanout"}}
	b := Result{System: "centrifugo", EntriesPerSec: 200000, P99ms: 40, RSSPerConnKiB: 40, IngestSeconds: 10}
	md := compareMarkdown(a, b)
	for _, want := range []string{"### fanout", "| delivered msgs/s (states) | 600000 | 200000 | 3.00 |", "| latency p99 ms | 20.0 | 40.0 | 0.50 |", "| RSS per conn KiB | 10.00 | 40.00 | 0.25 |"} {
		if !strings.Contains(md, want) {
			t.Fatalf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestRequireLoopback(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:5"} {
		if err := requireLoopback(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://10.0.0.1:8080", "http://192.0.2.7/", "no host"} {
		if err := requireLoopback(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one run, as printed and as written to JSON for comparisons.
type Result struct {
	Config  Config    `json:"config"`
	System  string    `json:"system"`
	Started time.Time `json:"started"`

	Established    int64   `json:"conns_established"`
	HandshakeErrs  int64   `json:"handshake_errors"`
	ConnectSeconds float64 `json:"connect_seconds"`

	IngestSeconds float64 `json:"ingest_seconds"`
	UpdatesSent   int64   `json:"updates_sent"`
	UpdatesPerSec float64 `json:"updates_per_sec"`
	IngestErrs    int64   `json:"ingest_errors"`
	IngestSkipped int64   `json:"ingest_skipped"`

	Messages       int64   `json:"messages"`
	MessagesPerSec float64 `json:"messages_per_sec"`
	Entries        int64   `json:"entries"`
	EntriesPerSec  float64 `json:"entries_per_sec"`
	DrainEntries   int64   `json:"drain_entries"`
	SetupEntries   int64   `json:"setup_entries"`
	Expected       int64   `json:"expected_deliveries"`
	Matched        int64   `json:"matched_deliveries"`
	Missing        int64   `json:"missing_deliveries"`
	Unmatched      int64   `json:"unmatched_entries"`

	LatencyCount uint64  `json:"latency_count"`
	P50ms        float64 `json:"latency_p50_ms"`
	P99ms        float64 `json:"latency_p99_ms"`
	P999ms       float64 `json:"latency_p999_ms"`
	MaxMs        float64 `json:"latency_max_ms"`

	ServerRSSBeforeMiB float64 `json:"server_rss_before_mib"`
	ServerRSSIdleMiB   float64 `json:"server_rss_idle_mib"`
	ServerRSSLoadMiB   float64 `json:"server_rss_load_mib"`
	RSSPerConnKiB      float64 `json:"rss_per_conn_kib"`
	HeapPerConnKiB     float64 `json:"heap_per_conn_kib"`
	HeapMetric         bool    `json:"heap_metric"`
	ServerCPUPercent   float64 `json:"server_cpu_percent"`
	LoadCPUPercent     float64 `json:"load_cpu_percent"`

	Heartbeats     int64              `json:"heartbeats"`
	OtherEvents    int64              `json:"other_events"`
	ErrorFrames    int64              `json:"error_frames"`
	ReadErrs       int64              `json:"read_errors"`
	Errors         int64              `json:"errors"`
	FirstErrors    []string           `json:"first_errors,omitempty"`
	ServerCounters map[string]float64 `json:"server_counters,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *Result) fill(st *Stats) {
	r.Established = st.established.Load()
	r.HandshakeErrs = st.handshakeErrs.Load()
	r.UpdatesSent = st.ingestSent.Load()
	r.IngestErrs = st.ingestErrs.Load()
	r.IngestSkipped = st.ingestSkipped.Load()
	r.Messages = st.messages.Load()
	r.Entries = st.entries.Load()
	r.DrainEntries = st.drainEntries.Load()
	r.SetupEntries = st.setupEntries.Load()
	r.Expected = st.expected.Load()
	r.Matched = st.matched.Load()
	r.Unmatched = st.unmatched.Load()
	if r.Expected > r.Matched {
		r.Missing = r.Expected - r.Matched
	}
	if r.IngestSeconds > 0 {
		r.UpdatesPerSec = float64(r.UpdatesSent) / r.IngestSeconds
		r.MessagesPerSec = float64(r.Messages) / r.IngestSeconds
		r.EntriesPerSec = float64(r.Entries) / r.IngestSeconds
	}
	r.LatencyCount = st.latency.Count()
	r.P50ms = ms(st.latency.Quantile(0.50))
	r.P99ms = ms(st.latency.Quantile(0.99))
	r.P999ms = ms(st.latency.Quantile(0.999))
	r.MaxMs = ms(st.latency.Max())
	r.Heartbeats = st.heartbeats.Load()
	r.OtherEvents = st.otherEvents.Load()
	r.ErrorFrames = st.errorFrames.Load()
	r.ReadErrs = st.readErrs.Load()
	r.Errors = r.HandshakeErrs + r.IngestErrs + r.ErrorFrames + r.ReadErrs
	st.errMu.Lock()
	r.FirstErrors = append([]string(nil), st.firstErr...)
	st.errMu.Unlock()
}

// printTable writes the result for people.
func (r *Result) printTable(w io.Writer) {
	c := r.Config
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	title := r.System
	if c.Label != "" {
		title += " / " + c.Label
	}
	row("system", "%s", title)
	sub := fmt.Sprintf("%s (%s, %s, rate_limit %q)", c.Mode, c.Target, c.Format, c.RateLimit)
	if r.System == "centrifugo" {
		sub = "one channel per fleet"
	}
	row("workload", "%d conns, %d trackers in fleets of %d, %s, %.0f updates/s for %s",
		c.Conns, c.Trackers, c.FleetSize, sub, c.Rate, c.Duration)
	row("conns established", "%d (%d handshake errors, %.1fs)", r.Established, r.HandshakeErrs, r.ConnectSeconds)
	if r.IngestSeconds > 0 {
		row("updates sent", "%d (%.0f/s, %d errors, %d skipped by the pacer)", r.UpdatesSent, r.UpdatesPerSec, r.IngestErrs, r.IngestSkipped)
		row("delivered states/s", "%.0f (%d states in %d messages, %.0f messages/s)", r.EntriesPerSec, r.Entries, r.Messages, r.MessagesPerSec)
		row("latency ingest->client", "p50 %.1f ms  p99 %.1f ms  p999 %.1f ms  max %.1f ms  (%d samples)", r.P50ms, r.P99ms, r.P999ms, r.MaxMs, r.LatencyCount)
		row("deliveries", "expected %d, matched %d, missing %d (coalesced by batching or dropped), %d after stop, %d repeats", r.Expected, r.Matched, r.Missing, r.DrainEntries, r.Unmatched)
	}
	if c.PID > 0 {
		row("server RSS", "%.1f MiB before, %.1f MiB idle with conns, %.1f MiB under load", r.ServerRSSBeforeMiB, r.ServerRSSIdleMiB, r.ServerRSSLoadMiB)
		row("memory per conn", "%.2f KiB RSS%s", r.RSSPerConnKiB, map[bool]string{true: fmt.Sprintf(", %.2f KiB heap in use", r.HeapPerConnKiB)}[r.HeapMetric])
		row("CPU (% of one core)", "server %.0f%%, load tool %.0f%%", r.ServerCPUPercent, r.LoadCPUPercent)
	}
	row("errors", "%d (handshake %d, ingest %d, error frames %d, disconnects %d)", r.Errors, r.HandshakeErrs, r.IngestErrs, r.ErrorFrames, r.ReadErrs)
	for _, k := range sortedKeys(r.ServerCounters) {
		row("  server "+k, "%+.0f", r.ServerCounters[k])
	}
	for _, e := range r.FirstErrors {
		row("  first errors", "%s", e)
	}
	tw.Flush()
}

// runCompare reads two result files and prints A/B ratios of the headline
// numbers.
func runCompare(list, mdOut string) error {
	parts := strings.Split(list, ",")
	if len(parts) != 2 {
		return fmt.Errorf("-compare wants A.json,B.json")
	}
	var rs [2]Result
	for i, p := range parts {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		if err := json.Unmarshal(b, &rs[i]); err != nil {
			return fmt.Errorf("decode %s: %w", p, err)
		}
	}
	md := compareMarkdown(rs[0], rs[1])
	fmt.Print(md)
	if mdOut != "" {
		if err := os.WriteFile(mdOut, []byte(md), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", mdOut, err)
		}
	}
	return nil
}

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// compareMarkdown renders one scenario of two systems side by side.
func compareMarkdown(a, b Result) string {
	var sb strings.Builder
	label := a.Config.Label
	if label == "" {
		label = "run"
	}
	c := a.Config
	fmt.Fprintf(&sb, "### %s\n\n%d conns, %d trackers in fleets of %d, %.0f updates/s for %s; %s uses %s/%s/%s rate_limit %q\n\n",
		label, c.Conns, c.Trackers, c.FleetSize, c.Rate, c.Duration, a.System, c.Mode, c.Target, c.Format, c.RateLimit)
	fmt.Fprintf(&sb, "| metric | %s | %s | %s/%s |\n|---|---:|---:|---:|\n", a.System, b.System, a.System, b.System)
	line := func(name string, x, y float64, format string) {
		fmt.Fprintf(&sb, "| %s | "+format+" | "+format+" | %s |\n", name, x, y, ratio(x, y))
	}
	line("conns established", float64(a.Established), float64(b.Established), "%.0f")
	if a.IngestSeconds > 0 || b.IngestSeconds > 0 {
		line("updates sent/s", a.UpdatesPerSec, b.UpdatesPerSec, "%.0f")
		line("delivered msgs/s (states)", a.EntriesPerSec, b.EntriesPerSec, "%.0f")
		line("frames/s", a.MessagesPerSec, b.MessagesPerSec, "%.0f")
		line("latency p50 ms", a.P50ms, b.P50ms, "%.1f")
		line("latency p99 ms", a.P99ms, b.P99ms, "%.1f")
		line("latency p999 ms", a.P999ms, b.P999ms, "%.1f")
		line("missing deliveries", float64(a.Missing), float64(b.Missing), "%.0f")
		line("server CPU % of a core", a.ServerCPUPercent, b.ServerCPUPercent, "%.0f")
	}
	line("RSS per conn KiB", a.RSSPerConnKiB, b.RSSPerConnKiB, "%.2f")
	if a.HeapMetric && b.HeapMetric {
		line("heap per conn KiB", a.HeapPerConnKiB, b.HeapPerConnKiB, "%.2f")
	}
	line("server RSS idle MiB", a.ServerRSSIdleMiB, b.ServerRSSIdleMiB, "%.1f")
	line("errors", float64(a.Errors), float64(b.Errors), "%.0f")
	sb.WriteString("\n")
	return sb.String()
}

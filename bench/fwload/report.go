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

	Compressed     int64   `json:"conns_compressed"`
	Frames         int64   `json:"frames"`
	FramesPerSec   float64 `json:"frames_per_sec"`
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
	r.Compressed = st.compressed.Load()
	r.Frames = st.frames.Load()
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
		r.FramesPerSec = float64(r.Frames) / r.IngestSeconds
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
	row("conns established", "%d (%d handshake errors, %.1fs; %d compressed, permessage-deflate %s)", r.Established, r.HandshakeErrs, r.ConnectSeconds,
		r.Compressed, map[bool]string{false: "not offered", true: "offered"}[c.Compress])
	if r.IngestSeconds > 0 {
		row("updates sent", "%d (%.0f/s, %d errors, %d skipped by the pacer)", r.UpdatesSent, r.UpdatesPerSec, r.IngestErrs, r.IngestSkipped)
		row("delivered states/s", "%.0f (%d states in %d messages in %d frames; %.0f messages/s, %.0f frames/s)",
			r.EntriesPerSec, r.Entries, r.Messages, r.Frames, r.MessagesPerSec, r.FramesPerSec)
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

// runCompare reads pairs of result files, "A1.json,B1.json;A2.json,B2.json",
// each pair one side-by-side run of the same scenario, and prints the A/B
// ratios of the headline numbers per run with their spread.
func runCompare(list, mdOut string) error {
	var pairs [][2]Result
	for _, pair := range strings.Split(list, ";") {
		parts := strings.Split(strings.TrimSpace(pair), ",")
		if len(parts) != 2 {
			return fmt.Errorf("-compare wants A.json,B.json pairs separated by ';', got %q", pair)
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
		pairs = append(pairs, rs)
	}
	md := compareMarkdown(pairs)
	fmt.Print(md)
	if mdOut != "" {
		if err := os.WriteFile(mdOut, []byte(md), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", mdOut, err)
		}
	}
	return nil
}

func ratio(a, b float64) (float64, bool) {
	if b == 0 {
		return 0, false
	}
	return a / b, true
}

// compareMarkdown renders one scenario of two systems side by side: each
// system's figure in every run, the ratio of each run, and the ratios'
// spread (lowest to highest).
func compareMarkdown(pairs [][2]Result) string {
	var sb strings.Builder
	if len(pairs) == 0 {
		return ""
	}
	a, b := pairs[0][0], pairs[0][1]
	label := a.Config.Label
	if label == "" {
		label = "run"
	}
	c := a.Config
	compress := ""
	if c.Compress {
		compress = "; permessage-deflate offered"
	}
	fmt.Fprintf(&sb, "### %s\n\n%d conns, %d trackers in fleets of %d, %.0f updates/s for %s; %s uses %s/%s/%s rate_limit %q%s; %d run(s) side by side\n\n",
		label, c.Conns, c.Trackers, c.FleetSize, c.Rate, c.Duration, a.System, c.Mode, c.Target, c.Format, c.RateLimit, compress, len(pairs))
	fmt.Fprintf(&sb, "| metric | %s | %s | %s/%s per run | spread |\n|---|---:|---:|---:|---:|\n", a.System, b.System, a.System, b.System)
	line := func(name, format string, get func(*Result) float64) {
		var xs, ys, rs []string
		lo, hi, any := 0.0, 0.0, false
		for _, p := range pairs {
			x, y := get(&p[0]), get(&p[1])
			xs = append(xs, fmt.Sprintf(format, x))
			ys = append(ys, fmt.Sprintf(format, y))
			r, ok := ratio(x, y)
			if !ok {
				rs = append(rs, "n/a")
				continue
			}
			rs = append(rs, fmt.Sprintf("%.2f", r))
			if !any || r < lo {
				lo = r
			}
			if !any || r > hi {
				hi = r
			}
			any = true
		}
		spread := "n/a"
		if any {
			spread = fmt.Sprintf("%.2f–%.2f", lo, hi)
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s |\n", name, strings.Join(xs, " / "), strings.Join(ys, " / "), strings.Join(rs, " / "), spread)
	}
	line("conns established", "%.0f", func(r *Result) float64 { return float64(r.Established) })
	if c.Compress {
		line("conns compressed", "%.0f", func(r *Result) float64 { return float64(r.Compressed) })
	}
	if a.IngestSeconds > 0 || b.IngestSeconds > 0 {
		line("updates sent/s", "%.0f", func(r *Result) float64 { return r.UpdatesPerSec })
		line("delivered msgs/s (states)", "%.0f", func(r *Result) float64 { return r.EntriesPerSec })
		line("messages/s", "%.0f", func(r *Result) float64 { return r.MessagesPerSec })
		line("frames/s", "%.0f", func(r *Result) float64 { return r.FramesPerSec })
		line("latency p50 ms", "%.1f", func(r *Result) float64 { return r.P50ms })
		line("latency p99 ms", "%.1f", func(r *Result) float64 { return r.P99ms })
		line("latency p999 ms", "%.1f", func(r *Result) float64 { return r.P999ms })
		line("missing deliveries", "%.0f", func(r *Result) float64 { return float64(r.Missing) })
		line("server CPU % of a core", "%.0f", func(r *Result) float64 { return r.ServerCPUPercent })
	}
	line("RSS per conn KiB", "%.2f", func(r *Result) float64 { return r.RSSPerConnKiB })
	if a.HeapMetric && b.HeapMetric {
		line("heap per conn KiB", "%.2f", func(r *Result) float64 { return r.HeapPerConnKiB })
	}
	line("server RSS idle MiB", "%.1f", func(r *Result) float64 { return r.ServerRSSIdleMiB })
	line("errors", "%.0f", func(r *Result) float64 { return float64(r.Errors) })
	sb.WriteString("\n")
	return sb.String()
}

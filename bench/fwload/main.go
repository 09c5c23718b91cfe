// Command fwload is the load tool of fleetwire: it opens many event
// connections to a local server, subscribes them, drives device updates at a
// fixed rate and reports delivered states per second, ingest-to-client
// latency, server memory per connection, CPU and errors. The same workload
// runs against Centrifugo for comparison (-system centrifugo).
//
//	fwload -system fleetwire -url http://127.0.0.1:8080 -osmand http://127.0.0.1:5055 \
//	       -admin-key KEY -conns 1000 -trackers 1000 -fleet-size 100 -rate 1000 -duration 20s -pid PID
//	fwload -system centrifugo -url http://127.0.0.1:8000 -api-key KEY -conns 1000 ...
//	fwload -compare fleetwire.json,centrifugo.json[;fleetwire2.json,centrifugo2.json] [-md out.md]
//	fwload teltonika -admin-key KEY -addr 127.0.0.1:5027 -devices 5000 -rate 5000 -duration 20s -pid PID
//
// The teltonika mode simulates Teltonika devices instead: one TCP
// connection each, sending AVL packets and waiting for their
// acknowledgements; it reports fixes per second per server core and the
// server's memory per connected device.
//
// It only talks to loopback addresses and is bounded in connections and time.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Bounds no flag can lift.
const (
	maxConns    = 19500
	maxDuration = 10 * time.Minute
	maxTrackers = 200000
	maxRate     = 2e6
)

// Config is one run's workload.
type Config struct {
	System          string        `json:"system"`
	URL             string        `json:"url"`
	Osmand          string        `json:"osmand,omitempty"`
	AdminKey        string        `json:"-"`
	APIKey          string        `json:"-"`
	Conns           int           `json:"conns"`
	Trackers        int           `json:"trackers"`
	FleetSize       int           `json:"fleet_size"`
	Rate            float64       `json:"rate"`
	Duration        time.Duration `json:"duration_ns"`
	Settle          time.Duration `json:"settle_ns"`
	Drain           time.Duration `json:"drain_ns"`
	Mode            string        `json:"mode"`
	Target          string        `json:"target"`
	Format          string        `json:"format"`
	RateLimit       string        `json:"rate_limit,omitempty"`
	SourceIPs       int           `json:"source_ips"`
	DialConcurrency int           `json:"dial_concurrency"`
	IngestWorkers   int           `json:"ingest_workers"`
	PID             int           `json:"pid,omitempty"`
	Label           string        `json:"label,omitempty"`
	Login           string        `json:"login,omitempty"`
	Password        string        `json:"-"`
	Compress        bool          `json:"compress,omitempty"`
	// Contiguous puts trackers 0…FleetSize-1 in fleet 0 and so on, so
	// that the tracker-by-tracker ingest updates one fleet in a burst and
	// then leaves it alone for a round; by default tracker t is in fleet t
	// mod Fleets, and every fleet's updates are spread over the round as
	// devices report in a real fleet.
	Contiguous bool `json:"contiguous,omitempty"`
}

// Fleets is how many fleets the trackers form.
func (c *Config) Fleets() int { return (c.Trackers + c.FleetSize - 1) / c.FleetSize }

// FleetOf is the fleet of tracker t.
func (c *Config) FleetOf(t int) int {
	if c.Contiguous {
		return t / c.FleetSize
	}
	return t % c.Fleets()
}

// ConnFleet is the fleet connection i subscribes to.
func (c *Config) ConnFleet(i int) int { return i % c.Fleets() }

func main() {
	logOut = os.Stderr
	var err error
	if len(os.Args) > 1 && os.Args[1] == "teltonika" {
		err = runTeltonika(os.Args[2:])
	} else {
		err = run(os.Args[1:])
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "fwload:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg := &Config{}
	fs := flag.NewFlagSet("fwload", flag.ContinueOnError)
	fs.StringVar(&cfg.System, "system", "fleetwire", "server under test: fleetwire or centrifugo")
	fs.StringVar(&cfg.URL, "url", "", "server base URL (default http://127.0.0.1:8080 for fleetwire, :8000 for centrifugo)")
	fs.StringVar(&cfg.Osmand, "osmand", "http://127.0.0.1:5055", "fleetwire OsmAnd ingest URL; several, comma-separated, spread the trackers over a cluster's nodes")
	fs.StringVar(&cfg.AdminKey, "admin-key", os.Getenv("FLEETWIRE_ADMIN_KEY"), "fleetwire admin key (default $FLEETWIRE_ADMIN_KEY)")
	fs.StringVar(&cfg.APIKey, "api-key", os.Getenv("CENTRIFUGO_API_KEY"), "Centrifugo HTTP API key (default $CENTRIFUGO_API_KEY)")
	fs.IntVar(&cfg.Conns, "conns", 100, fmt.Sprintf("client connections (at most %d)", maxConns))
	fs.IntVar(&cfg.Trackers, "trackers", 100, "trackers (fleetwire) or publishing sources (centrifugo)")
	fs.IntVar(&cfg.FleetSize, "fleet-size", 100, "trackers per fleet (user / channel); connection i follows fleet i mod fleets")
	fs.BoolVar(&cfg.Contiguous, "contiguous-fleets", false, "fleet f holds trackers f*fleet-size… (each fleet's updates come in one burst a round); default: tracker t is in fleet t mod fleets, each fleet's updates spread over the round")
	fs.Float64Var(&cfg.Rate, "rate", 100, "updates per second over all trackers (0: idle connections only)")
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, fmt.Sprintf("how long updates are driven (at most %s)", maxDuration))
	fs.DurationVar(&cfg.Settle, "settle", 3*time.Second, "pause after connecting, before the idle memory reading")
	fs.DurationVar(&cfg.Drain, "drain", 2*time.Second, "how long deliveries are awaited after updates stop")
	fs.StringVar(&cfg.Mode, "mode", "state_batch", "fleetwire subscription: state, state_batch or mixed (alternating)")
	fs.StringVar(&cfg.Target, "target", "all", "state_batch target: all, selected or mixed")
	fs.StringVar(&cfg.Format, "format", "compact", "state format: full or compact")
	fs.StringVar(&cfg.RateLimit, "rate-limit", "", "state_batch rate_limit, e.g. 100ms (empty: server default)")
	fs.IntVar(&cfg.SourceIPs, "source-ips", 0, "local addresses to dial from, 127.0.0.2 and up (0: one per 20,000 connections)")
	fs.IntVar(&cfg.DialConcurrency, "dial-concurrency", 64, "connections being opened at once")
	fs.IntVar(&cfg.IngestWorkers, "ingest-workers", 32, "concurrent ingest requests")
	fs.IntVar(&cfg.PID, "pid", 0, "server process id, for RSS and CPU from /proc (0: not sampled)")
	fs.StringVar(&cfg.Label, "label", "", "name of the scenario in reports")
	fs.StringVar(&cfg.Login, "login", "", "fleetwire: follow the trackers of this existing user instead of creating fleets; nothing is ingested, the server's own updates (fleetwire demo) are counted for -duration")
	fs.StringVar(&cfg.Password, "password", "demo", "password of -login")
	fs.BoolVar(&cfg.Compress, "compress", false, "offer permessage-deflate on every connection, as browsers do")
	jsonOut := fs.String("json", "", "also write the result as JSON to this file")
	compare := fs.String("compare", "", "instead of a run: compare result files A.json,B.json, several side-by-side runs separated by ';' (A/B ratios per run and their spread)")
	mdOut := fs.String("md", "", "with -compare: also write the comparison as Markdown to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *compare != "" {
		return runCompare(*compare, *mdOut)
	}
	if err := cfg.check(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration+cfg.Settle+cfg.Drain+10*time.Minute)
	defer cancel()

	var sys system
	if cfg.System == "centrifugo" {
		sys = newCentrifugo(cfg)
	} else {
		sys = newFleetwire(cfg)
	}
	res, err := execute(ctx, cfg, sys)
	if err != nil {
		return err
	}
	res.printTable(os.Stdout)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", *jsonOut, err)
		}
	}
	return nil
}

func (c *Config) check() error {
	switch c.System {
	case "fleetwire":
		if c.URL == "" {
			c.URL = "http://127.0.0.1:8080"
		}
		if c.AdminKey == "" && c.Login == "" {
			return errors.New("fleetwire needs -admin-key to create its users and trackers")
		}
		for _, u := range strings.Split(c.Osmand, ",") {
			if err := requireLoopback(u); err != nil {
				return err
			}
		}
	case "centrifugo":
		if c.URL == "" {
			c.URL = "http://127.0.0.1:8000"
		}
		if c.APIKey == "" {
			return errors.New("centrifugo needs -api-key to publish")
		}
	default:
		return fmt.Errorf("unknown -system %q", c.System)
	}
	if err := requireLoopback(c.URL); err != nil {
		return err
	}
	switch {
	case c.Conns < 1 || c.Conns > maxConns:
		return fmt.Errorf("-conns must be 1..%d", maxConns)
	case c.Trackers < 1 || c.Trackers > maxTrackers:
		return fmt.Errorf("-trackers must be 1..%d", maxTrackers)
	case c.FleetSize < 1:
		return errors.New("-fleet-size must be positive")
	case c.Rate < 0 || c.Rate > maxRate:
		return fmt.Errorf("-rate must be 0..%g", maxRate)
	case c.Duration <= 0 || c.Duration > maxDuration:
		return fmt.Errorf("-duration must be in (0, %s]", maxDuration)
	case c.Mode != "state" && c.Mode != "state_batch" && c.Mode != "mixed":
		return fmt.Errorf("-mode %q: want state, state_batch or mixed", c.Mode)
	case c.Target != "all" && c.Target != "selected" && c.Target != "mixed":
		return fmt.Errorf("-target %q: want all, selected or mixed", c.Target)
	case c.DialConcurrency < 1 || c.IngestWorkers < 1:
		return errors.New("-dial-concurrency and -ingest-workers must be positive")
	}
	if c.SourceIPs == 0 {
		c.SourceIPs = 1 + c.Conns/20000
		if c.Conns > 20000/2 {
			c.SourceIPs = 4
		}
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && uint64(c.Conns+c.IngestWorkers*2+100) > lim.Cur {
		return fmt.Errorf("-conns %d does not fit the open file limit %d of this process", c.Conns, lim.Cur)
	}
	return nil
}

// execute runs the phases: setup, connect, settle (idle memory), drive,
// drain.
func execute(ctx context.Context, cfg *Config, sys system) (*Result, error) {
	st := &Stats{log: NewSendLog()}
	res := &Result{System: sys.Name(), Started: time.Now().UTC()}
	logf("%s: setting up %d trackers in %d fleets", sys.Name(), cfg.Trackers, cfg.Fleets())
	if err := sys.Setup(ctx); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	res.Config = *cfg
	metrics := sys.MetricsURL()
	heapBefore, heapOK := scrapeMetric(ctx, metrics, "go_memstats_heap_inuse_bytes")
	before := sampleProc(cfg.PID)

	var readers sync.WaitGroup
	t0 := time.Now()
	logf("%s: opening %d connections", sys.Name(), cfg.Conns)
	clients := connectAll(ctx, cfg, sys, st, &readers)
	res.ConnectSeconds = time.Since(t0).Seconds()
	logf("%s: %d connections up in %.1fs, %d failed; settling %s", sys.Name(), st.established.Load(), res.ConnectSeconds, st.handshakeErrs.Load(), cfg.Settle)
	sleepCtx(ctx, cfg.Settle)
	idle := sampleProc(cfg.PID)
	heapIdle, heapIdleOK := scrapeMetric(ctx, metrics, "go_memstats_heap_inuse_bytes")
	dropsBefore := sumMetrics(ctx, metrics, "drop", "slow", "overflow", "evict")

	n := st.established.Load()
	if cfg.PID > 0 && before.OK && idle.OK && n > 0 {
		res.ServerRSSBeforeMiB = float64(before.RSSBytes) / (1 << 20)
		res.ServerRSSIdleMiB = float64(idle.RSSBytes) / (1 << 20)
		res.RSSPerConnKiB = float64(idle.RSSBytes-before.RSSBytes) / float64(n) / 1024
	}
	if heapOK && heapIdleOK && n > 0 {
		res.HeapPerConnKiB = (heapIdle - heapBefore) / float64(n) / 1024
		res.HeapMetric = true
	}

	subscribers := make([]int64, cfg.Trackers)
	perFleet := make([]int64, cfg.Fleets())
	for _, c := range clients {
		if c != nil {
			perFleet[cfg.ConnFleet(c.id)]++
		}
	}
	for t := range subscribers {
		subscribers[t] = perFleet[cfg.FleetOf(t)]
	}

	if (cfg.Rate > 0 || cfg.Login != "") && ctx.Err() == nil {
		if cfg.Login != "" {
			logf("%s: counting the server's own updates for %s", sys.Name(), cfg.Duration)
		} else {
			logf("%s: driving %.0f updates/s over %d trackers for %s", sys.Name(), cfg.Rate, cfg.Trackers, cfg.Duration)
		}
		srvA, selfA := sampleProc(cfg.PID), sampleProc(0)
		st.phase.Store(phaseIngest)
		ictx, icancel := context.WithTimeout(ctx, cfg.Duration)
		done := make(chan struct{})
		go func() { defer close(done); progress(ictx, st) }()
		if cfg.Login != "" {
			<-ictx.Done()
		} else {
			drive(ictx, cfg, sys, st, subscribers)
		}
		icancel()
		<-done
		st.phase.Store(phaseDrain)
		srvB, selfB := sampleProc(cfg.PID), sampleProc(0)
		res.IngestSeconds = srvB.At.Sub(srvA.At).Seconds()
		res.ServerCPUPercent = cpuPercent(srvA, srvB)
		res.LoadCPUPercent = cpuPercent(selfA, selfB)
		res.ServerRSSLoadMiB = float64(srvB.RSSBytes) / (1 << 20)
		sleepCtx(ctx, cfg.Drain)
	}
	dropsAfter := sumMetrics(ctx, metrics, "drop", "slow", "overflow", "evict")
	st.stopping.Store(true)
	closeAll(clients)
	readers.Wait()

	res.fill(st)
	for name, v := range dropsAfter {
		if d := v - dropsBefore[name]; d != 0 {
			if res.ServerCounters == nil {
				res.ServerCounters = map[string]float64{}
			}
			res.ServerCounters[name] = d
		}
	}
	return res, nil
}

func progress(ctx context.Context, st *Stats) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e := st.entries.Load()
			logf("delivered %d states (%.0f/s), sent %d updates, p99 so far %s", e, float64(e-last)/5, st.ingestSent.Load(), st.latency.Quantile(0.99))
			last = e
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// sortedKeys lists a map's keys in order, for stable reports.
func sortedKeys(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

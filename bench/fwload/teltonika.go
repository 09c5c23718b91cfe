package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fleetwire/fleetwire/internal/ingest/teltonika"
)

// telConfig is a Teltonika device simulation: devices connections over
// TCP, each sending AVL packets and waiting for their acknowledgement.
type telConfig struct {
	URL             string        `json:"url"`
	Addr            string        `json:"addr"`
	AdminKey        string        `json:"-"`
	Devices         int           `json:"devices"`
	Rate            float64       `json:"rate"`
	Records         int           `json:"records_per_packet"`
	Duration        time.Duration `json:"duration_ns"`
	Settle          time.Duration `json:"settle_ns"`
	DialConcurrency int           `json:"dial_concurrency"`
	SourceIPs       int           `json:"source_ips"`
	PID             int           `json:"pid,omitempty"`
}

// telResult is what a simulation measured.
type telResult struct {
	Config          telConfig `json:"config"`
	Started         time.Time `json:"started"`
	Connected       int64     `json:"connected"`
	ConnectErrors   int64     `json:"connect_errors"`
	ConnectSeconds  float64   `json:"connect_seconds"`
	PacketsSent     int64     `json:"packets_sent"`
	RecordsAcked    int64     `json:"records_acked"`
	ShortAcks       int64     `json:"short_acks"`
	Errors          int64     `json:"errors"`
	FirstErrors     []string  `json:"first_errors,omitempty"`
	FixesPerSecond  float64   `json:"fixes_per_second"`
	ServerCPU       float64   `json:"server_cpu_percent"`
	FixesPerCore    float64   `json:"fixes_per_second_per_core"`
	ToolCPU         float64   `json:"tool_cpu_percent"`
	AckP50ms        float64   `json:"ack_p50_ms"`
	AckP99ms        float64   `json:"ack_p99_ms"`
	AckMaxms        float64   `json:"ack_max_ms"`
	RSSBefore       int64     `json:"rss_before_bytes"`
	RSSConnected    int64     `json:"rss_connected_bytes"`
	RSSUnderLoad    int64     `json:"rss_under_load_bytes"`
	RSSPerDevice    float64   `json:"rss_per_device_bytes"`
	HeapBefore      float64   `json:"heap_before_bytes"`
	HeapConnected   float64   `json:"heap_connected_bytes"`
	HeapPerDevice   float64   `json:"heap_per_device_bytes"`
	GoroutinesAdded float64   `json:"goroutines_per_device"`
}

// runTeltonika is "fwload teltonika": it creates a tracker per simulated
// device through the admin API, connects every device, reads the
// server's memory idle, then drives records at -rate and reports the
// fixes per second acknowledged, the server's CPU and memory per device.
func runTeltonika(args []string) error {
	cfg := telConfig{}
	fs := flag.NewFlagSet("fwload teltonika", flag.ContinueOnError)
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "fleetwire base URL (admin API and /metrics)")
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:5027", "the Teltonika listener")
	fs.StringVar(&cfg.AdminKey, "admin-key", os.Getenv("FLEETWIRE_ADMIN_KEY"), "fleetwire admin key (default $FLEETWIRE_ADMIN_KEY)")
	fs.IntVar(&cfg.Devices, "devices", 1000, fmt.Sprintf("simulated devices, one TCP connection each (at most %d)", maxConns))
	fs.Float64Var(&cfg.Rate, "rate", 1000, "records per second over all devices")
	fs.IntVar(&cfg.Records, "records", 1, "records per AVL packet (1 to 50)")
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, fmt.Sprintf("how long records are driven (at most %s)", maxDuration))
	fs.DurationVar(&cfg.Settle, "settle", 3*time.Second, "pause after connecting, before the idle memory reading")
	fs.IntVar(&cfg.DialConcurrency, "dial-concurrency", 64, "connections being opened at once")
	fs.IntVar(&cfg.SourceIPs, "source-ips", 1, "local addresses to dial from, 127.0.0.2 and up")
	fs.IntVar(&cfg.PID, "pid", 0, "server process id, for RSS and CPU from /proc (0: not sampled)")
	jsonOut := fs.String("json", "", "also write the result as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case cfg.AdminKey == "":
		return errors.New("-admin-key is needed to create the trackers")
	case cfg.Devices < 1 || cfg.Devices > maxConns:
		return fmt.Errorf("-devices must be 1..%d", maxConns)
	case cfg.Rate <= 0 || cfg.Rate > maxRate:
		return fmt.Errorf("-rate must be in (0, %g]", maxRate)
	case cfg.Records < 1 || cfg.Records > 50:
		return errors.New("-records must be 1..50")
	case cfg.Duration <= 0 || cfg.Duration > maxDuration:
		return fmt.Errorf("-duration must be in (0, %s]", maxDuration)
	case cfg.SourceIPs < 1 || cfg.SourceIPs > 200 || cfg.DialConcurrency < 1:
		return errors.New("-source-ips must be 1..200 and -dial-concurrency positive")
	}
	for _, u := range []string{cfg.URL, "tcp://" + cfg.Addr} {
		if err := requireLoopback(u); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration+cfg.Settle+10*time.Minute)
	defer cancel()
	res, err := simulate(ctx, cfg)
	if err != nil {
		return err
	}
	res.print(os.Stdout)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", *jsonOut, err)
		}
	}
	return nil
}

// telDevice is one simulated device.
type telDevice struct {
	imei string
	nc   net.Conn
	br   *bufio.Reader
}

type telStats struct {
	sent, acked, short, errs atomic.Int64
	lat                      Histogram
	mu                       sync.Mutex
	first                    []string
}

func (s *telStats) fail(err error) {
	s.errs.Add(1)
	s.mu.Lock()
	if len(s.first) < 5 {
		s.first = append(s.first, err.Error())
	}
	s.mu.Unlock()
}

func simulate(ctx context.Context, cfg telConfig) (*telResult, error) {
	res := &telResult{Config: cfg, Started: time.Now().UTC()}
	metricsURL := cfg.URL + "/metrics"
	imeis, err := createDevices(ctx, cfg)
	if err != nil {
		return nil, err
	}
	before := sampleProc(cfg.PID)
	heapBefore, _ := scrapeMetric(ctx, metricsURL, "go_memstats_heap_inuse_bytes")
	gorBefore, _ := scrapeMetric(ctx, metricsURL, "go_goroutines")

	logf("teltonika: connecting %d devices", cfg.Devices)
	st := &telStats{}
	start := time.Now()
	devs := connectDevices(ctx, cfg, imeis, st)
	res.ConnectSeconds = time.Since(start).Seconds()
	res.Connected, res.ConnectErrors = int64(len(devs)), int64(cfg.Devices-len(devs))
	defer func() {
		for _, d := range devs {
			d.nc.Close()
		}
	}()
	logf("teltonika: %d connected in %.1fs; settling %s", len(devs), res.ConnectSeconds, cfg.Settle)
	sleepCtx(ctx, cfg.Settle)
	connected := sampleProc(cfg.PID)
	heapConn, _ := scrapeMetric(ctx, metricsURL, "go_memstats_heap_inuse_bytes")
	gorConn, _ := scrapeMetric(ctx, metricsURL, "go_goroutines")
	if n := float64(len(devs)); n > 0 {
		res.RSSPerDevice = float64(connected.RSSBytes-before.RSSBytes) / n
		res.HeapPerDevice = (heapConn - heapBefore) / n
		res.GoroutinesAdded = (gorConn - gorBefore) / n
	}
	res.RSSBefore, res.RSSConnected = before.RSSBytes, connected.RSSBytes
	res.HeapBefore, res.HeapConnected = heapBefore, heapConn

	logf("teltonika: driving %.0f records/s for %s", cfg.Rate, cfg.Duration)
	driveDevices(ctx, cfg, devs, st)
	end := sampleProc(cfg.PID)
	tool := sampleProc(0)
	wall := end.At.Sub(connected.At).Seconds()
	res.RSSUnderLoad = end.RSSBytes
	res.PacketsSent, res.RecordsAcked, res.ShortAcks, res.Errors = st.sent.Load(), st.acked.Load(), st.short.Load(), st.errs.Load()
	res.FirstErrors = st.first
	res.FixesPerSecond = float64(res.RecordsAcked) / cfg.Duration.Seconds()
	res.ServerCPU = cpuPercent(connected, end)
	if res.ServerCPU > 0 {
		res.FixesPerCore = res.FixesPerSecond / (res.ServerCPU / 100)
	}
	if tool.OK && wall > 0 {
		res.ToolCPU = float64(tool.CPUTicks) / clockTicks / time.Since(res.Started).Seconds() * 100
	}
	res.AckP50ms, res.AckP99ms, res.AckMaxms = ms(st.lat.Quantile(0.5)), ms(st.lat.Quantile(0.99)), ms(st.lat.Max())
	return res, nil
}

// createDevices makes one user and a tracker per device; IMEIs are 15
// digits with a random run prefix.
func createDevices(ctx context.Context, cfg telConfig) ([]string, error) {
	sys := newFleetwire(&Config{URL: cfg.URL, AdminKey: cfg.AdminKey, IngestWorkers: 1})
	run := fmt.Sprintf("35%06d", mrand.IntN(1000000))
	var u struct {
		Value struct {
			ID int64 `json:"id"`
		} `json:"value"`
	}
	if err := sys.post(ctx, "/admin/users", true, map[string]any{"login": "tel" + run, "password": sys.password, "title": "teltonika bench", "time_zone": "UTC"}, &u); err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	logf("teltonika: creating %d trackers", cfg.Devices)
	imeis := make([]string, cfg.Devices)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range imeis {
		imeis[i] = fmt.Sprintf("%s%07d", run, i)
		g.Go(func() error {
			return sys.post(gctx, "/admin/trackers", true, map[string]any{"user_id": u.Value.ID, "label": "tel " + strconv.Itoa(i), "device_id": imeis[i], "model": "teltonika"}, nil)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("create trackers: %w", err)
	}
	return imeis, nil
}

// connectDevices opens the connections and does the IMEI handshake.
func connectDevices(ctx context.Context, cfg telConfig, imeis []string, st *telStats) []*telDevice {
	out := make([]*telDevice, len(imeis))
	sem := make(chan struct{}, cfg.DialConcurrency)
	var wg sync.WaitGroup
	for i, imei := range imeis {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%cfg.SourceIPs))}}
			nc, err := d.DialContext(ctx, "tcp", cfg.Addr)
			if err != nil {
				st.fail(err)
				return
			}
			dev := &telDevice{imei: imei, nc: nc, br: bufio.NewReaderSize(nc, 64)}
			_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
			var ok [1]byte
			if _, err := nc.Write(teltonika.AppendIMEI(nil, imei)); err != nil {
				st.fail(err)
				nc.Close()
				return
			}
			if _, err := io.ReadFull(dev.br, ok[:]); err != nil || ok[0] != teltonika.Accept {
				st.fail(fmt.Errorf("handshake of %s: %x %v", imei, ok, err))
				nc.Close()
				return
			}
			_ = nc.SetDeadline(time.Time{})
			out[i] = dev
		}()
	}
	wg.Wait()
	devs := out[:0]
	for _, d := range out {
		if d != nil {
			devs = append(devs, d)
		}
	}
	return devs
}

// driveDevices has every device send a packet of cfg.Records records every
// interval (devices × records / rate), phases spread over the interval,
// and wait for the acknowledgement.
func driveDevices(ctx context.Context, cfg telConfig, devs []*telDevice, st *telStats) {
	if len(devs) == 0 {
		return
	}
	interval := time.Duration(float64(len(devs)*cfg.Records) / cfg.Rate * float64(time.Second))
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var wg sync.WaitGroup
	for i, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			phase := time.Duration(int64(interval) * int64(i) / int64(len(devs)))
			sleepCtx(ctx, phase)
			t := time.NewTicker(interval)
			defer t.Stop()
			lat, lon := 54.0+float64(i%1000)/1000, 25.0+float64(i/1000)/100
			recs := make([]teltonika.Record, cfg.Records)
			var ack [4]byte
			var pkt []byte
			for ctx.Err() == nil {
				now := time.Now()
				for k := range recs {
					lat += 1e-5
					recs[k] = teltonika.Record{Time: now.Add(time.Duration(k-cfg.Records) * time.Second), Lat: lat, Lon: lon, Satellites: 9, Speed: 40, Angle: 90,
						IO: []teltonika.IO{{ID: 239, Size: 1, Value: 1}, {ID: 66, Size: 2, Value: 12800}, {ID: 16, Size: 4, Value: uint64(now.Unix())}}}
				}
				data, _ := teltonika.AppendAVL(nil, teltonika.Codec8, recs)
				pkt = teltonika.AppendFrame(pkt[:0], data)
				_ = d.nc.SetDeadline(now.Add(30 * time.Second))
				if _, err := d.nc.Write(pkt); err != nil {
					st.fail(err)
					return
				}
				st.sent.Add(1)
				if _, err := io.ReadFull(d.br, ack[:]); err != nil {
					st.fail(err)
					return
				}
				st.lat.Record(time.Since(now))
				n := int(binary.BigEndian.Uint32(ack[:]))
				st.acked.Add(int64(n))
				if n != cfg.Records {
					st.short.Add(1)
				}
				select {
				case <-ctx.Done():
				case <-t.C:
				}
			}
		}()
	}
	wg.Wait()
}

func (r *telResult) print(w io.Writer) {
	fmt.Fprintf(w, "teltonika simulation: %d devices, %.0f records/s asked, %d per packet, %s\n", r.Config.Devices, r.Config.Rate, r.Config.Records, r.Config.Duration)
	fmt.Fprintf(w, "  connected            %d (%d failed) in %.1fs\n", r.Connected, r.ConnectErrors, r.ConnectSeconds)
	fmt.Fprintf(w, "  fixes acked/s        %.0f (%d packets, %d short acks, %d errors)\n", r.FixesPerSecond, r.PacketsSent, r.ShortAcks, r.Errors)
	fmt.Fprintf(w, "  ack latency          p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", r.AckP50ms, r.AckP99ms, r.AckMaxms)
	fmt.Fprintf(w, "  server CPU           %.0f %% of a core → %.0f fixes/s per core\n", r.ServerCPU, r.FixesPerCore)
	fmt.Fprintf(w, "  memory per device    RSS %.1f KiB, heap %.1f KiB, %.2f goroutines\n", r.RSSPerDevice/1024, r.HeapPerDevice/1024, r.GoroutinesAdded)
	fmt.Fprintf(w, "  server RSS           %.0f MiB before, %.0f MiB connected, %.0f MiB under load\n", float64(r.RSSBefore)/(1<<20), float64(r.RSSConnected)/(1<<20), float64(r.RSSUnderLoad)/(1<<20))
	fmt.Fprintf(w, "  tool CPU             %.0f %% of a core\n", r.ToolCPU)
	for _, e := range r.FirstErrors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
}

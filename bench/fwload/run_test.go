package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
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
	a2, b2 := a, b
	a2.EntriesPerSec, b2.EntriesPerSec = 500000, 250000
	md := compareMarkdown([][2]Result{{a, b}, {a2, b2}})
	for _, want := range []string{"### fanout", "2 run(s) side by side",
		"| delivered msgs/s (states) | 600000 / 500000 | 200000 / 250000 | 3.00 / 2.00 | 2.00–3.00 |",
		"| latency p99 ms | 20.0 / 20.0 | 40.0 / 40.0 | 0.50 / 0.50 | 0.50–0.50 |",
		"| RSS per conn KiB | 10.00 / 10.00 | 40.00 / 40.00 | 0.25 / 0.25 | 0.25–0.25 |"} {
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

// TestFramesAndMessages reads, over a real WebSocket, one frame carrying
// three Centrifugo pushes and one carrying a single push: two frames, four
// messages, four states; the compressed handshake is counted too.
func TestFramesAndMessages(t *testing.T) {
	up := websocket.Upgrader{EnableCompression: true}
	push := `{"push":{"channel":"fleet.0","pub":{"data":` + statePayload(1, -80, time.Now()) + `}}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		_ = ws.WriteMessage(websocket.TextMessage, []byte(push+"\n"+push+"\n"+push))
		_ = ws.WriteMessage(websocket.TextMessage, []byte(push))
		_, _, _ = ws.ReadMessage() // until the client goes
	}))
	defer srv.Close()
	st := &Stats{log: NewSendLog()}
	st.phase.Store(phaseIngest)
	d := newDialers(1, true).For(0)
	ws, resp, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{ws: ws, stats: st}
	c.noteExtensions(resp)
	done := make(chan struct{})
	go func() { c.readLoop(&centrifugoSys{cfg: &Config{}}); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for st.entries.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st.stopping.Store(true)
	ws.Close()
	<-done
	if f, m, e, z := st.frames.Load(), st.messages.Load(), st.entries.Load(), st.compressed.Load(); f != 2 || m != 4 || e != 4 || z != 1 {
		t.Fatalf("frames %d messages %d states %d compressed conns %d, want 2, 4, 4, 1", f, m, e, z)
	}
}

// TestFleetOf: by default a round of the tracker-by-tracker ingest
// updates every fleet evenly; with Contiguous a fleet's trackers are
// updated one after another.
func TestFleetOf(t *testing.T) {
	for _, contiguous := range []bool{false, true} {
		cfg := &Config{Trackers: 1000, FleetSize: 100, Contiguous: contiguous}
		size := make([]int, cfg.Fleets())
		burst := 0 // longest run of consecutive trackers in one fleet
		run := 0
		for tr := 0; tr < cfg.Trackers; tr++ {
			f := cfg.FleetOf(tr)
			size[f]++
			if tr > 0 && f == cfg.FleetOf(tr-1) {
				run++
			} else {
				run = 1
			}
			burst = max(burst, run)
		}
		for f, n := range size {
			if n != 100 {
				t.Errorf("contiguous=%v: fleet %d has %d trackers, want 100", contiguous, f, n)
			}
		}
		if want := map[bool]int{false: 1, true: 100}[contiguous]; burst != want {
			t.Errorf("contiguous=%v: %d consecutive trackers in one fleet, want %d", contiguous, burst, want)
		}
	}
}

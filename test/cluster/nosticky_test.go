package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// roundRobin is a reverse proxy that sends each request to the next node,
// as a load balancer without stickiness does.
func roundRobin(t *testing.T, c *cluster) *httptest.Server {
	var next atomic.Uint64
	proxies := make([]*httputil.ReverseProxy, len(c.nodes))
	for i, nd := range c.nodes {
		u, _ := url.Parse(nd.base())
		p := httputil.NewSingleHostReverseProxy(u)
		p.FlushInterval = -1
		proxies[i] = p
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range len(c.nodes) {
			i := int(next.Add(1)-1) % len(c.nodes)
			if c.nodes[i].alive() {
				proxies[i].ServeHTTP(w, r)
				return
			}
		}
		http.Error(w, "no node", http.StatusBadGateway)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// pollClient is a long-polling event client (trackMessageLength framing)
// that acknowledges what it received on every poll.
type pollClient struct {
	*eventClient
	base string
}

func (p *pollClient) query(extra ...string) string {
	q := url.Values{}
	p.mu.Lock()
	q.Set("X-Atmosphere-tracking-id", p.id)
	q.Set("X-Fleetwire-Received", strconv.FormatUint(p.received, 10))
	p.mu.Unlock()
	q.Set("X-Atmosphere-Framework", "5.0.7")
	q.Set("X-Atmosphere-Transport", "long-polling")
	q.Set("X-atmo-protocol", "true")
	q.Set("X-Atmosphere-TrackMessageSize", "true")
	q.Set("X-Fleetwire-Resume", p.secret)
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return p.base + "/v2/event/subscription?" + q.Encode()
}

// poll sends one long-poll and hands every message of the answer on.
func (p *pollClient) poll(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.query(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return nil
	}
	s := string(body)
	for {
		s = strings.TrimLeft(s, " \n")
		bar := strings.IndexByte(s, '|')
		if bar < 0 {
			return nil
		}
		n, err := strconv.Atoi(s[:bar])
		if err != nil {
			p.t.Errorf("bad frame %q", s)
			return nil
		}
		s = s[bar+1:]
		// Lengths count UTF-16 code units; the messages here are ASCII.
		p.handle([]byte(s[:n]))
		s = s[n:]
	}
}

func (p *pollClient) push(v any) {
	b, _ := json.Marshal(v)
	resp, err := http.Post(p.query(), "text/plain", bytes.NewReader(b))
	if err != nil {
		p.t.Fatalf("push: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		p.t.Fatalf("push answered %d", resp.StatusCode)
	}
}

// TestLongPollingRoundRobin: a long-polling client behind a round-robin
// balancer over three nodes, each poll and push landing on the next node,
// gets every accepted fix exactly once and in order.
func TestLongPollingRoundRobin(t *testing.T) {
	c := newCluster(t, "", 3)
	longPollEveryFix(t, c, roundRobin(t, c).URL, "gus", 60, "over 3 nodes")
}

// longPollEveryFix has a long-polling client of a new user, polling
// through base, follow one tracker while its device reports, for at least
// polls polls, and checks that every accepted fix arrived exactly once,
// in order.
func longPollEveryFix(t *testing.T, c *cluster, base, login string, polls int64, via string) {
	t.Helper()
	uid, hash := c.nodes[0].user(login)
	tid, src := c.nodes[0].tracker(uid, "dev-"+login)
	p := &pollClient{eventClient: newEventClient(t, hash), base: base}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := p.poll(ctx); err != nil || p.id == "0" {
		t.Fatalf("handshake %s: %v", via, err)
	}
	p.mu.Lock()
	p.sources[tid] = src
	p.mu.Unlock()
	p.push(map[string]any{"action": "subscribe", "hash": hash, "requests": []any{map[string]any{"type": "state", "trackers": []int64{tid}}}})
	var done atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if err := p.poll(ctx); err != nil && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
			}
			done.Add(1)
		}
	}()
	dev := &device{id: "dev-" + login}
	dctx, dcancel := context.WithCancel(ctx)
	wg.Add(1)
	go func() { defer wg.Done(); dev.run(dctx, c, 10*time.Millisecond) }()
	waitFor(t, 60*time.Second, fmt.Sprintf("%d polls", polls), func() bool { return done.Load() >= polls })
	dcancel()
	accepted := dev.acceptedSeqs()
	waitFor(t, 30*time.Second, "every accepted fix at the client", func() bool { return p.has(src, accepted) })
	cancel()
	wg.Wait()
	missing, dups, disorder, detail := p.verdict(src, accepted, dev.resentSeqs())
	t.Logf("%d polls %s: %d fixes accepted, %d missing, %d duplicated, %d out of order", done.Load(), via, len(accepted), missing, dups, disorder)
	if missing != 0 || dups != 0 || disorder != 0 {
		t.Fatalf("%d missing, %d duplicated, %d out of order: %s", missing, dups, disorder, detail)
	}
}

// TestRollingRestart: every node of three is stopped (SIGTERM) and
// started again in turn while devices report and clients listen; the
// clients of a stopping node reconnect to another one and lose nothing.
func TestRollingRestart(t *testing.T) {
	c := newCluster(t, "", 3)
	type watcher struct {
		cl  *eventClient
		src int64
		dev *device
		on  int
	}
	var ws []*watcher
	for i, login := range []string{"hal", "ivy", "jon"} {
		cl, _, src := session(t, c.nodes[i], login)
		ws = append(ws, &watcher{cl: cl, src: src, dev: &device{id: "dev-" + login}, on: i})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() { defer wg.Done(); w.dev.run(ctx, c, 10*time.Millisecond) }()
	}
	for i, nd := range c.nodes {
		time.Sleep(500 * time.Millisecond)
		nd.term()
		for _, w := range ws {
			if w.on == i {
				w.cl.cut()
				w.on = (i + 1) % len(c.nodes)
				w.cl.connect(c.nodes[w.on])
			}
		}
		nd.start()
	}
	time.Sleep(500 * time.Millisecond)
	cancel()
	wg.Wait()
	for _, w := range ws {
		accepted := w.dev.acceptedSeqs()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) && !w.cl.has(w.src, accepted) {
			time.Sleep(50 * time.Millisecond)
		}
		missing, dups, disorder, detail := w.cl.verdict(w.src, accepted, w.dev.resentSeqs())
		t.Logf("%s: %d fixes accepted (%d refused and sent again), %d missing, %d duplicated, %d out of order",
			w.dev.id, len(accepted), w.dev.refused, missing, dups, disorder)
		if missing != 0 || dups != 0 || disorder != 0 {
			t.Errorf("%s: %d missing, %d duplicated, %d out of order: %s", w.dev.id, missing, dups, disorder, detail)
		}
	}
}

// nginxFront runs deploy/nginx.conf in front of the cluster's three
// nodes and returns its URL; the test is skipped without nginx.
func nginxFront(t *testing.T, c *cluster) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Skip("nginx is not installed")
		}
		bin = "/usr/sbin/nginx"
	}
	conf, err := os.ReadFile("../../deploy/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	listen, osmand := freePort(t), freePort(t)
	r := strings.NewReplacer("__DIR__", dir, "__LISTEN__", strconv.Itoa(listen), "__OSMAND__", strconv.Itoa(osmand),
		"__PORT1__", strconv.Itoa(c.nodes[0].port), "__PORT2__", strconv.Itoa(c.nodes[1].port), "__PORT3__", strconv.Itoa(c.nodes[2].port),
		"__OSMAND1__", strconv.Itoa(c.nodes[0].osmand), "__OSMAND2__", strconv.Itoa(c.nodes[1].osmand), "__OSMAND3__", strconv.Itoa(c.nodes[2].osmand))
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(r.Replace(string(conf))), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", path, "-g", "daemon off;")
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("nginx: %v", err)
	}
	// SIGTERM: nginx's fast shutdown, which ends its workers too.
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	base := "http://127.0.0.1:" + strconv.Itoa(listen)
	waitFor(t, 10*time.Second, "nginx", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return base
}

// TestNginxRoundRobin: the same long-polling client as
// TestLongPollingRoundRobin behind deploy/nginx.conf (round robin, no
// stickiness) gets every accepted fix exactly once.
func TestNginxRoundRobin(t *testing.T) {
	c := newCluster(t, "", 3, "--trust-proxy")
	longPollEveryFix(t, c, nginxFront(t, c), "lou", 40, "through nginx")
}

// Package cluster tests fleetwire as a cluster of real processes: nodes of
// the fleetwire binary on one PostgreSQL database and one NATS with
// JetStream, driven over their sockets like devices and clients would,
// killed and restarted like an operator (or a crash) would.
package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/natstest"
	"github.com/fleetwire/fleetwire/internal/store/postgres/pgtest"
)

// binary is the fleetwire binary the tests run, built once.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fleetwire-cluster")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "fleetwire")
	build := exec.Command("go", "build", "-o", binary, "github.com/fleetwire/fleetwire/cmd/fleetwire")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build fleetwire:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const adminKey = "cluster-test-admin-key"

// cluster is one installation: a database schema, a NATS (the machine's
// or a private one) with a prefix of its own, and its nodes.
type cluster struct {
	t      *testing.T
	dsn    string
	nats   string
	prefix string
	nodes  []*node
	extra  []string // flags every node gets
}

func newCluster(t *testing.T, natsURL string, n int, extra ...string) *cluster {
	t.Helper()
	if natsURL == "" {
		natsURL = natstest.URL(t)
	}
	c := &cluster{t: t, dsn: pgtest.SchemaDSN(t), nats: natsURL, prefix: natstest.Prefix(t, natsURL), extra: extra}
	for i := range n {
		c.nodes = append(c.nodes, c.newNode(fmt.Sprintf("n%d", i+1)))
	}
	for _, nd := range c.nodes {
		nd.start()
	}
	return c
}

// node is one fleetwire process.
type node struct {
	c      *cluster
	name   string
	dir    string
	port   int
	osmand int
	mu     sync.Mutex // guards cmd and exited: devices check alive() while the test restarts nodes
	cmd    *exec.Cmd
	exited chan struct{}
	logMu  sync.Mutex
	log    bytes.Buffer
	extra  []string
}

func (c *cluster) newNode(name string) *node {
	nd := &node{c: c, name: name, dir: c.t.TempDir(), port: freePort(c.t), osmand: freePort(c.t)}
	c.t.Cleanup(func() {
		nd.kill()
		if c.t.Failed() {
			c.t.Logf("log of node %s:\n%s", nd.name, nd.logs())
		}
	})
	return nd
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (nd *node) base() string   { return "http://127.0.0.1:" + strconv.Itoa(nd.port) }
func (nd *node) ingest() string { return "http://127.0.0.1:" + strconv.Itoa(nd.osmand) }

func (nd *node) logs() string {
	nd.logMu.Lock()
	defer nd.logMu.Unlock()
	return nd.log.String()
}

// start runs the node and waits until it is ready.
func (nd *node) start() {
	t := nd.c.t
	t.Helper()
	args := []string{"serve",
		"--listen", "127.0.0.1:" + strconv.Itoa(nd.port),
		"--osmand-listen", "127.0.0.1:" + strconv.Itoa(nd.osmand),
		"--ngp-listen", "", "--mqtt-listen", "", "--teltonika-listen", "", "--gt06-listen", "",
		"--data", nd.dir,
		"--store", nd.c.dsn,
		"--bus", nd.c.nats, "--cluster", nd.c.prefix, "--node", nd.name,
		"--admin-key", adminKey,
		"--session-grace", "30s",
		"--log-level", "info",
	}
	args = append(append(args, nd.c.extra...), nd.extra...)
	cmd := exec.Command(binary, args...)
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node %s: %v", nd.name, err)
	}
	exited := make(chan struct{})
	nd.mu.Lock()
	nd.cmd, nd.exited = cmd, exited
	nd.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			nd.logMu.Lock()
			nd.log.WriteString(sc.Text() + "\n")
			nd.logMu.Unlock()
		}
	}()
	go func() { _ = cmd.Wait(); w.Close(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(nd.base() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("node %s exited:\n%s", nd.name, nd.logs())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("node %s not ready:\n%s", nd.name, nd.logs())
}

// kill ends the node with SIGKILL: nothing is flushed, nothing handed over.
func (nd *node) kill() {
	nd.mu.Lock()
	cmd, exited := nd.cmd, nd.exited
	nd.cmd = nil
	nd.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// term ends the node with SIGTERM and waits for its graceful shutdown.
func (nd *node) term() {
	nd.mu.Lock()
	cmd, exited := nd.cmd, nd.exited
	nd.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		nd.c.t.Errorf("node %s did not stop on SIGTERM", nd.name)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
	nd.mu.Lock()
	nd.cmd = nil
	nd.mu.Unlock()
}

func (nd *node) alive() bool {
	nd.mu.Lock()
	cmd, exited := nd.cmd, nd.exited
	nd.mu.Unlock()
	if cmd == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// call sends a JSON action to the node and decodes the answer.
func (nd *node) call(path string, body any, header map[string]string) (int, map[string]any) {
	t := nd.c.t
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, nd.base()+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s on %s: %v", path, nd.name, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s on %s: %q", path, nd.name, raw)
	}
	return resp.StatusCode, m
}

func (nd *node) admin(path string, body any) map[string]any {
	nd.c.t.Helper()
	code, m := nd.call(path, body, map[string]string{"X-Admin-Key": adminKey})
	if code != 200 || m["success"] != true {
		nd.c.t.Fatalf("admin %s: %d %v", path, code, m)
	}
	return m
}

// user creates a user and signs it in; it returns the user id and hash.
func (nd *node) user(login string) (int64, string) {
	nd.c.t.Helper()
	m := nd.admin("/admin/users", map[string]any{"login": login, "password": "pw-" + login + "-long", "time_zone": "UTC"})
	uid := int64(m["value"].(map[string]any)["id"].(float64))
	code, a := nd.call("/v2/user/auth", map[string]any{"login": login, "password": "pw-" + login + "-long"}, nil)
	if code != 200 {
		nd.c.t.Fatalf("auth %s: %d %v", login, code, a)
	}
	return uid, a["hash"].(string)
}

// tracker creates a tracker for user uid and returns its id and source id.
func (nd *node) tracker(uid int64, device string) (id, source int64) {
	nd.c.t.Helper()
	m := nd.admin("/admin/trackers", map[string]any{"user_id": uid, "label": device, "device_id": device})
	tr := m["value"].(map[string]any)
	return int64(tr["id"].(float64)), int64(tr["source"].(map[string]any)["id"].(float64))
}

// fix sends one OsmAnd fix carrying seq in its latitude and reports
// whether the node accepted it (200).
func (nd *node) fix(device string, seq int) (bool, error) {
	q := url.Values{}
	q.Set("id", device)
	q.Set("lat", strconv.FormatFloat(latOf(seq), 'f', 6, 64))
	q.Set("lon", "13.4")
	q.Set("speed", "20")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, nd.ingest()+"/?"+q.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 && resp.StatusCode != 503 {
		return false, fmt.Errorf("fix %d to %s: HTTP %d", seq, nd.name, resp.StatusCode)
	}
	return resp.StatusCode == 200, nil
}

// fixes sends fixes 1 to n, gap apart, and fails the test unless each
// is accepted.
func (nd *node) fixes(device string, n int, gap time.Duration) {
	nd.c.t.Helper()
	for seq := 1; seq <= n; seq++ {
		if ok, err := nd.fix(device, seq); !ok || err != nil {
			nd.c.t.Fatalf("fix %d to %s: accepted %v, %v", seq, nd.name, ok, err)
		}
		time.Sleep(gap)
	}
}

func latOf(seq int) float64 { return 10 + float64(seq)/1e4 }
func seqOf(lat float64) int { return int((lat-10)*1e4 + 0.5) }

// device reports fixes 1, 2, 3, … to the cluster's live nodes in turn,
// sending a fix again (to the next node) until one accepts it, and keeps
// the numbers accepted.
type device struct {
	id       string
	mu       sync.Mutex
	accepted []int
	refused  int
	resent   map[int]bool // fixes sent more than once: a node may have kept an earlier copy
	by       map[int]string
}

// run sends fixes every interval until ctx ends.
func (d *device) run(ctx context.Context, c *cluster, interval time.Duration) {
	next := 0
	for seq := 1; ctx.Err() == nil; seq++ {
		for ctx.Err() == nil {
			var nd *node
			for range len(c.nodes) {
				cand := c.nodes[next%len(c.nodes)]
				next++
				if cand.alive() {
					nd = cand
					break
				}
			}
			if nd == nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			ok, err := nd.fix(d.id, seq)
			d.mu.Lock()
			if d.resent == nil {
				d.resent = map[int]bool{}
			}
			_, tried := d.resent[seq]
			d.resent[seq] = tried
			d.mu.Unlock()
			if ok {
				d.mu.Lock()
				d.accepted = append(d.accepted, seq)
				if d.by == nil {
					d.by = map[int]string{}
				}
				d.by[seq] = nd.name + "@" + time.Now().Format("15:04:05.000")
				d.mu.Unlock()
				break
			}
			if err == nil {
				d.mu.Lock()
				d.refused++
				d.mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}

// resentSeqs are the fixes the device had to send more than once.
func (d *device) resentSeqs() map[int]bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[int]bool{}
	for s, again := range d.resent {
		if again {
			out[s] = true
		}
	}
	return out
}

func (d *device) acceptedSeqs() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]int(nil), d.accepted...)
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// scrape sums a metric's series (whose label text contains match) on a
// node.
func (nd *node) scrape(name, match string) float64 {
	resp, err := http.Get(nd.base() + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || !strings.Contains(line, match) {
			continue
		}
		if rest := line[len(name):]; rest != "" && rest[0] != '{' && rest[0] != ' ' {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

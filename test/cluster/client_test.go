package cluster

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// eventClient is an event API client as fleetwire's own page is one: it
// counts the application messages on its tracking id and acknowledges the
// count (X-Fleetwire-Received) on every connect, and binds its session to
// a resume secret (X-Fleetwire-Resume).
type eventClient struct {
	t      *testing.T
	hash   string
	secret string

	mu        sync.Mutex
	id        string
	received  uint64
	conn      *websocket.Conn
	readDone  chan struct{}
	events    map[int64][]int // source id → seqs of state events, in arrival order
	snapshots map[int64][]int // source id → seqs of initial states after a subscribe answer
	snapNext  map[int64]bool  // the next state of the source is an initial state
	sources   map[int64]int64 // tracker id → source id
	conns     []int
	nconn     int
	answers   int
	errs      []string
	handshake int
}

func newEventClient(t *testing.T, hash string) *eventClient {
	return &eventClient{t: t, hash: hash, secret: "secret-" + hash[:8], id: "0",
		events: map[int64][]int{}, snapshots: map[int64][]int{}, snapNext: map[int64]bool{}, sources: map[int64]int64{}}
}

// connect opens a WebSocket to nd, resuming the client's session.
func (c *eventClient) connect(nd *node) {
	c.t.Helper()
	c.mu.Lock()
	q := url.Values{}
	q.Set("X-Atmosphere-tracking-id", c.id)
	q.Set("X-Atmosphere-Framework", "5.0.7")
	q.Set("X-Atmosphere-Transport", "websocket")
	q.Set("X-atmo-protocol", "true")
	q.Set("X-Fleetwire-Received", strconv.FormatUint(c.received, 10))
	q.Set("X-Fleetwire-Resume", c.secret)
	c.mu.Unlock()
	u := "ws://127.0.0.1:" + strconv.Itoa(nd.port) + "/v2/event/subscription?" + q.Encode()
	var conn *websocket.Conn
	var err error
	for attempt := 0; attempt < 100; attempt++ {
		conn, _, err = websocket.DefaultDialer.Dial(u, nil)
		if err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("connect to %s: %v", nd.name, err)
	}
	done := make(chan struct{})
	c.mu.Lock()
	c.nconn++
	c.conn, c.readDone = conn, done
	c.mu.Unlock()
	go c.read(conn, done)
}

func (c *eventClient) read(conn *websocket.Conn, done chan struct{}) {
	defer close(done)
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		c.handle(data)
	}
}

func (c *eventClient) handle(data []byte) {
	s := strings.TrimSpace(string(data))
	if s == "" || s == "X" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if parts := strings.Split(s, "|"); len(parts) == 4 && !strings.HasPrefix(s, "{") {
		c.id = parts[0]
		c.handshake++
		return
	}
	c.received++
	var m struct {
		Type   string          `json:"type"`
		Event  string          `json:"event"`
		Action *string         `json:"action"`
		Data   json.RawMessage `json:"data"`
		Status *struct {
			Code int `json:"code"`
		} `json:"status"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		c.errs = append(c.errs, "not JSON: "+s)
		return
	}
	switch {
	case m.Type == "response":
		c.answers++
		// The answer is followed by the initial state of each tracker it
		// lists as normal (also an answer replayed after a move).
		var d struct {
			State struct {
				Value map[string]string `json:"value"`
			} `json:"state"`
		}
		_ = json.Unmarshal(m.Data, &d)
		for tid, st := range d.State.Value {
			id, _ := strconv.ParseInt(tid, 10, 64)
			if src, ok := c.sources[id]; ok && st == "normal" {
				c.snapNext[src] = true
			}
		}
	case m.Type == "error":
		c.errs = append(c.errs, s)
	case m.Type == "event" && m.Event == "state":
		var st struct {
			SourceID int64 `json:"source_id"`
			GPS      struct {
				Location *struct{ Lat float64 } `json:"location"`
			} `json:"gps"`
		}
		if err := json.Unmarshal(m.Data, &st); err != nil {
			return
		}
		snapshot := c.snapNext[st.SourceID]
		delete(c.snapNext, st.SourceID)
		if st.GPS.Location == nil {
			return
		}
		seq := seqOf(st.GPS.Location.Lat)
		if snapshot {
			c.snapshots[st.SourceID] = append(c.snapshots[st.SourceID], seq)
			return
		}
		c.events[st.SourceID] = append(c.events[st.SourceID], seq)
		c.conns = append(c.conns, c.nconn)
	}
}

// cut drops the connection without a close handshake, as a network would.
func (c *eventClient) cut() {
	c.mu.Lock()
	conn, done := c.conn, c.readDone
	c.mu.Unlock()
	if conn == nil {
		return
	}
	_ = conn.NetConn().Close()
	<-done
}

// subscribe sends a state subscription for trackers.
func (c *eventClient) subscribe(trackers []int64, sources []int64) {
	c.t.Helper()
	c.mu.Lock()
	for i, tid := range trackers {
		c.sources[tid] = sources[i]
	}
	conn := c.conn
	c.mu.Unlock()
	msg, _ := json.Marshal(map[string]any{"action": "subscribe", "hash": c.hash,
		"requests": []any{map[string]any{"type": "state", "trackers": trackers}}})
	if err := conn.WriteMessage(websocket.TextMessage, msg); err != nil {
		c.t.Fatalf("subscribe: %v", err)
	}
}

func (c *eventClient) answered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answers
}

// verdict compares what the client got of a device with what the cluster
// accepted: fixes accepted and never received, state events received
// twice, and state events out of order.
//
// A fix the device sent more than once (no answer from a node that then
// died, or a refusal) may have been kept more than once: it may arrive as
// often as it was kept, and is not counted as a duplicate.
func (c *eventClient) verdict(source int64, accepted []int, resent map[int]bool) (missing, dups, disorder int, detail string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[int]int{}
	for _, s := range c.events[source] {
		seen[s]++
	}
	for _, s := range c.snapshots[source] {
		if seen[s] == 0 {
			seen[s] = -1 // an initial state only: received, not an event
		}
	}
	var miss []int
	for _, s := range accepted {
		if seen[s] == 0 {
			miss = append(miss, s)
		}
	}
	for s, n := range seen {
		if n > 1 && !resent[s] {
			dups += n - 1
		}
	}
	ev := c.events[source]
	for i := 1; i < len(ev); i++ {
		if ev[i] < ev[i-1] || ev[i] == ev[i-1] && !resent[ev[i]] {
			disorder++
		}
	}
	first := map[int]int{}
	shown := 0
	for i, s := range ev {
		if j, ok := first[s]; ok && shown < 10 {
			detail += fmt.Sprintf(" dup %d: conn %d idx %d and conn %d idx %d;", s, c.conns[j], j, c.conns[i], i)
			shown++
		} else if !ok {
			first[s] = i
		}
	}
	if len(miss) > 10 {
		miss = miss[:10]
	}
	detail += fmt.Sprintf("missing %v…; %d events, %d initial states; errors %v", miss, len(ev), len(c.snapshots[source]), c.errs)
	return len(miss), dups, disorder, detail
}

// has reports whether the client received every one of seqs.
func (c *eventClient) has(source int64, seqs []int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := append(slices.Clone(c.events[source]), c.snapshots[source]...)
	for _, s := range seqs {
		if !slices.Contains(got, s) {
			return false
		}
	}
	return true
}

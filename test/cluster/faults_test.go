package cluster

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetwire/fleetwire/internal/natstest"
	storeopen "github.com/fleetwire/fleetwire/internal/store/open"
)

// TestNATSOutage: NATS is killed for a few seconds and comes back while a
// device reports and a client listens on another node. Nothing is
// accepted during the outage (ingest answers 503, the device sends again,
// /readyz fails); once NATS is back every accepted fix reaches the client
// exactly once.
func TestNATSOutage(t *testing.T) {
	srv := natstest.Start(t)
	c := newCluster(t, srv.URL(), 2)
	cl, _, src := session(t, c.nodes[1], "dee")
	dev := &device{id: "dev-dee"}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); dev.run(ctx, c, 5*time.Millisecond) }()
	time.Sleep(500 * time.Millisecond)
	srv.Stop()
	waitFor(t, 10*time.Second, "/readyz to fail", func() bool { return !ready(c.nodes[0]) })
	if got := c.nodes[0].scrape("fleetwire_bus_connected", ""); got != 0 {
		t.Errorf("fleetwire_bus_connected = %v during the outage", got)
	}
	during := len(dev.acceptedSeqs())
	time.Sleep(5 * time.Second)
	if n := len(dev.acceptedSeqs()); n > during+1 {
		t.Errorf("%d fixes accepted while NATS was down", n-during)
	}
	srv.Restart()
	waitFor(t, 20*time.Second, "/readyz again", func() bool { return ready(c.nodes[0]) && ready(c.nodes[1]) })
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	accepted := dev.acceptedSeqs()
	back := time.Now()
	// The nodes give their consumers of the log new ones within about a
	// second of JetStream answering again; 30 s leaves room for a loaded
	// machine. The time it took is logged.
	waitFor(t, 30*time.Second, "every accepted fix at the client", func() bool { return cl.has(src, accepted) })
	missing, dups, disorder, detail := cl.verdict(src, accepted, dev.resentSeqs())
	t.Logf("NATS down 5 s: %d fixes accepted, %d refused and sent again; %d missing, %d duplicated, %d out of order; the client had them all %v after the device stopped",
		len(accepted), dev.refused, missing, dups, disorder, time.Since(back).Round(10*time.Millisecond))
	if missing != 0 || dups != 0 || disorder != 0 || dev.refused == 0 {
		t.Fatalf("%d missing, %d duplicated, %d out of order, %d refused: %s", missing, dups, disorder, dev.refused, detail)
	}
	if n := c.nodes[0].scrape("fleetwire_bus_disconnects_total", ""); n == 0 {
		t.Error("no disconnect counted")
	}
}

func ready(nd *node) bool {
	resp, err := http.Get(nd.base() + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// TestInstallationsIsolated: two installations on one NATS (and one
// PostgreSQL server) never see each other's changes, though their users
// and trackers have the same ids.
func TestInstallationsIsolated(t *testing.T) {
	a := newCluster(t, "", 1)
	e := newCluster(t, "", 1)
	aUID, _ := a.nodes[0].user("alice")
	aTID, _ := a.nodes[0].tracker(aUID, "dev-alice")
	eUID, eHash := e.nodes[0].user("eve")
	eTID, eSrc := e.nodes[0].tracker(eUID, "dev-eve")
	if aTID != eTID {
		t.Fatalf("tracker ids %d and %d: the test wants equal ids", aTID, eTID)
	}
	cl := newEventClient(t, eHash)
	cl.connect(e.nodes[0])
	waitFor(t, 10*time.Second, "handshake", func() bool { cl.mu.Lock(); defer cl.mu.Unlock(); return cl.handshake == 1 })
	cl.subscribe([]int64{eTID}, []int64{eSrc})
	waitFor(t, 10*time.Second, "answer", func() bool { return cl.answered() == 1 })
	for seq := 1; seq <= 20; seq++ {
		if ok, err := a.nodes[0].fix("dev-alice", seq); !ok || err != nil {
			t.Fatalf("fix %d: %v %v", seq, ok, err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	cl.mu.Lock()
	got := len(cl.events[eSrc])
	cl.mu.Unlock()
	if got != 0 {
		t.Fatalf("eve's client got %d states of alice's tracker", got)
	}
	code, m := e.nodes[0].call("/v2/tracker/get_state", map[string]any{"hash": eHash, "tracker_id": eTID}, nil)
	if code != 200 {
		t.Fatalf("get_state: %d %v", code, m)
	}
	if loc := m["state"].(map[string]any)["gps"].(map[string]any)["location"]; loc != nil {
		t.Fatalf("eve's tracker shows alice's position %v", loc)
	}
}

// TestSharedMQTT: two nodes on one Mosquitto share the telemetry (MQTT
// shared subscriptions): each message is ingested by one of them.
func TestSharedMQTT(t *testing.T) {
	broker := "tcp://127.0.0.1:1883"
	c := newCluster(t, "", 2, "--mqtt-url", broker)
	cl, _, src := session(t, c.nodes[1], "flo")
	// The nodes' subscriptions are up once both count a connection.
	time.Sleep(2 * time.Second)
	pc := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("fwtest-" + c.prefix))
	if tok := pc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Skipf("no MQTT broker at %s: %v", broker, tok.Error())
	}
	defer pc.Disconnect(100)
	const n = 20
	var want []int
	for seq := 1; seq <= n; seq++ {
		payload := fmt.Sprintf(`{"lat":%s,"lon":13.4,"speed":20}`, strconv.FormatFloat(latOf(seq), 'f', 6, 64))
		if tok := pc.Publish("fleetwire/dev-flo/position", 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", seq, tok.Error())
		}
		want = append(want, seq)
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, 15*time.Second, "every message at the client", func() bool { return cl.has(src, want) })
	time.Sleep(500 * time.Millisecond)
	ingested := 0.0
	for _, nd := range c.nodes {
		ingested += nd.scrape("fleetwire_ingest_total", `protocol="mqtt",result="accepted"`)
	}
	cl.mu.Lock()
	events := len(cl.events[src])
	cl.mu.Unlock()
	t.Logf("%d messages published, %v ingested by the two nodes, %d state events", n, ingested, events)
	if ingested != n || events != n {
		t.Fatalf("%d messages published: %v ingested, %d state events (want %d each)", n, ingested, events, n)
	}
}

// TestHistoryFollowsLog: in a cluster the position history is kept from
// the log by the shared store writer: fixes ingested on one node are read
// back with track/read on another.
func TestHistoryFollowsLog(t *testing.T) {
	c := newCluster(t, "", 2)
	uid, hash := c.nodes[0].user("kim")
	tid, _ := c.nodes[0].tracker(uid, "dev-kim")
	const n = 20
	// The history keeps one point per millisecond and tracker.
	c.nodes[0].fixes("dev-kim", n, 5*time.Millisecond)
	now := time.Now().UTC()
	var got int
	waitFor(t, 20*time.Second, "the points on the other node", func() bool {
		code, m := c.nodes[1].call("/v2/track/read", map[string]any{"hash": hash, "tracker_id": tid,
			"from": now.Add(-time.Hour).Format("2006-01-02 15:04:05"), "to": now.Add(time.Hour).Format("2006-01-02 15:04:05"),
			"simplify": false, "filter": false}, nil)
		if code != 200 {
			t.Fatalf("track/read: %d %v", code, m)
		}
		list, _ := m["list"].([]any)
		got = len(list)
		return got >= n
	})
	if got != n {
		t.Fatalf("track/read on node 2: %d points, want %d", got, n)
	}
}

// TestAcceptedFixSurvivesKill: a fix answered 200 is in the store even
// when every node that saw it is killed (SIGKILL) right after the answer:
// the log holds it, and a node started later writes it to PostgreSQL and
// shows it, with no older state put back over it.
func TestAcceptedFixSurvivesKill(t *testing.T) {
	c := newCluster(t, "", 2)
	uid, hash := c.nodes[0].user("ole")
	tid, _ := c.nodes[0].tracker(uid, "dev-ole")
	const n = 10
	c.nodes[0].fixes("dev-ole", n, 0)
	for _, nd := range c.nodes {
		nd.kill()
	}
	st, err := storeopen.Open(context.Background(), c.dsn)
	if err != nil {
		t.Fatalf("open the store: %v", err)
	}
	defer st.Close()
	stored := func() int {
		states, err := st.States(context.Background())
		if err != nil {
			t.Fatalf("states: %v", err)
		}
		for _, s := range states {
			if s.TrackerID == tid && s.GPS.Location != nil {
				return seqOf(s.GPS.Location.Lat)
			}
		}
		return 0
	}
	t.Logf("stored when the nodes died: fix %d of %d", stored(), n)
	later := c.newNode("n3")
	later.start()
	// A batch a killed node had fetched comes back after the consumer's
	// ack wait (10 s).
	start := time.Now()
	waitFor(t, 40*time.Second, "the last accepted fix in PostgreSQL", func() bool { return stored() == n })
	t.Logf("stored %v after the new node started", time.Since(start).Round(100*time.Millisecond))
	code, m := later.call("/v2/tracker/get_state", map[string]any{"hash": hash, "tracker_id": tid}, nil)
	if code != 200 {
		t.Fatalf("get_state: %d %v", code, m)
	}
	loc, _ := m["state"].(map[string]any)["gps"].(map[string]any)["location"].(map[string]any)
	if loc == nil || seqOf(loc["lat"].(float64)) != n {
		t.Fatalf("the new node shows %v, want the position of fix %d", loc, n)
	}
	// The writer never puts an older state back.
	time.Sleep(time.Second)
	if got := stored(); got != n {
		t.Fatalf("PostgreSQL went back to fix %d", got)
	}
}

package cluster

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// session sets up a user with one tracker and a client subscribed to it
// on node nd.
func session(t *testing.T, nd *node, login string) (cl *eventClient, tid, src int64) {
	t.Helper()
	uid, hash := nd.user(login)
	tid, src = nd.tracker(uid, "dev-"+login)
	cl = newEventClient(t, hash)
	cl.connect(nd)
	waitFor(t, 10*time.Second, "handshake", func() bool { cl.mu.Lock(); defer cl.mu.Unlock(); return cl.handshake == 1 })
	cl.subscribe([]int64{tid}, []int64{src})
	waitFor(t, 10*time.Second, "subscribe answer", func() bool { return cl.answered() == 1 })
	return cl, tid, src
}

// drive runs a device of the client's tracker while move is called
// moves times, then checks that the client received every accepted fix
// exactly once and in order.
func drive(t *testing.T, c *cluster, cl *eventClient, src int64, login string, moves int, move func(i int)) {
	t.Helper()
	dev := &device{id: "dev-" + login}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); dev.run(ctx, c, 5*time.Millisecond) }()
	for i := range moves {
		time.Sleep(time.Duration(20+rand.IntN(60)) * time.Millisecond)
		move(i)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	wg.Wait()
	accepted := dev.acceptedSeqs()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && !cl.has(src, accepted) {
		time.Sleep(50 * time.Millisecond)
	}
	missing, dups, disorder, detail := cl.verdict(src, accepted, dev.resentSeqs())
	t.Logf("%d moves: %d fixes accepted (%d refused and sent again), %d missing, %d duplicated, %d out of order",
		moves, len(accepted), dev.refused, missing, dups, disorder)
	if missing != 0 {
		for s := range 2000 {
			if by, ok := dev.by[s]; ok && !cl.has(src, []int{s}) {
				t.Logf("missing %d accepted by %s", s, by)
			}
		}
	}
	if missing != 0 || dups != 0 || disorder != 0 || len(accepted) < moves {
		t.Fatalf("%d missing, %d duplicated, %d out of order: %s", missing, dups, disorder, detail)
	}
}

// TestResumeAcrossNodes: a client acknowledging what it received moves
// between two nodes while its device reports to both: its connection is
// cut and it reconnects to the other node with its tracking id (A→B→A→…),
// and gets every accepted fix exactly once, in order.
func TestResumeAcrossNodes(t *testing.T) {
	c := newCluster(t, "", 2)
	cl, _, src := session(t, c.nodes[0], "ada")
	drive(t, c, cl, src, "ada", 80, func(i int) {
		cl.cut()
		cl.connect(c.nodes[(i+1)%2])
	})
}

// TestResumeWithResubscribe: as TestResumeAcrossNodes, the client sending
// its subscription again after every move (as applications that
// subscribe on every open do).
func TestResumeWithResubscribe(t *testing.T) {
	c := newCluster(t, "", 2)
	cl, tid, src := session(t, c.nodes[0], "bo")
	drive(t, c, cl, src, "bo", 60, func(i int) {
		cl.cut()
		cl.connect(c.nodes[(i+1)%2])
		cl.subscribe([]int64{tid}, []int64{src})
	})
}

// TestResumeAfterKill: the client's node is killed (SIGKILL) and the
// client reconnects to another; the dead node comes back later.
func TestResumeAfterKill(t *testing.T) {
	c := newCluster(t, "", 3)
	cl, _, src := session(t, c.nodes[0], "cy")
	on := 0
	drive(t, c, cl, src, "cy", 10, func(i int) {
		victim := c.nodes[on]
		t.Logf("%s kill %s", time.Now().Format("15:04:05.000"), victim.name)
		victim.kill()
		cl.cut()
		on = (on + 1) % len(c.nodes)
		cl.connect(c.nodes[on])
		time.Sleep(300 * time.Millisecond)
		victim.start()
	})
}

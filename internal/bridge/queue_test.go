package bridge

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
)

func TestQueueDropsOldest(t *testing.T) {
	b := New(Options{QueueLen: 4, QueueBytes: 100, Devices: trackersOnly{}})
	c := newConn(b, nil, &credential{}, "")
	d0 := mDropped.Value()
	for i := range 10 {
		c.push([]byte(fmt.Sprint(i)))
	}
	got := c.take(nil)
	want := []string{`["$dropped",{"frames":6}]`, "6", "7", "8", "9"}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Fatalf("queue %q, want %q", got, want)
	}
	if n := mDropped.Value() - d0; n != 6 {
		t.Fatalf("dropped metric +%d, want +6", n)
	}
	if got := c.take(nil); len(got) != 0 {
		t.Fatalf("queue not empty: %q", got)
	}

	// The byte bound drops old frames too, and a frame larger than the
	// whole queue is dropped itself.
	c.push([]byte(strings.Repeat("a", 60)))
	c.push([]byte(strings.Repeat("b", 60)))
	c.push([]byte(strings.Repeat("c", 101)))
	got = c.take(nil)
	if len(got) != 2 || string(got[0]) != `["$dropped",{"frames":2}]` || got[1][0] != 'b' {
		t.Fatalf("queue %q", got)
	}
	if c.droppedTotal() != 8 {
		t.Fatalf("droppedTotal %d", c.droppedTotal())
	}
	c.closed = true
	c.push([]byte("x"))
	if got := c.take(nil); len(got) != 0 {
		t.Fatalf("push after close queued %q", got)
	}
}

// A client that stops reading loses its oldest frames and never holds up
// the broker callback or the other clients.
func TestSlowClientDoesNotBlockOthers(t *testing.T) {
	// The write timeout outlasts the fast client on a loaded machine: the
	// slow client is to be dropped frames from, not closed.
	f := newFixture(t, fixtureOpts{opts: Options{QueueLen: 16, WriteTimeout: time.Minute}})
	_, login, dev := f.user("alice")

	// The slow client does not read until the end; 600 frames of 32 KiB
	// are more than the socket buffers hold.
	slowConn, _, err := websocket.DefaultDialer.Dial(f.url(nil, ""), basicHeader(login, "pw-"+login))
	if err != nil {
		t.Fatal(err)
	}
	defer slowConn.Close()
	fast := f.connect(basic(login), "")
	fast.send("clown.talk/-/config/set", map[string]any{})
	fast.next()

	o := mqtt.NewClientOptions().AddBroker(f.broker).SetClientID("fleetwire-test-" + f.id)
	pc := mqtt.NewClient(o)
	if tok := pc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer pc.Disconnect(100)
	const n = 600
	pad := strings.Repeat("x", 32<<10)
	d0 := mDropped.Value()
	topic := "fleetwire/" + dev + "/node/blob"
	go func() {
		for i := range n {
			pc.Publish(topic, 0, false, fmt.Sprintf(`{"i":%d,"pad":%q}`, i, pad))
		}
		pc.Publish(topic, 1, false, `{"i":-1}`)
	}()

	start := time.Now()
	// The fast client reads up to the marker.
	last := -2
	for last != -1 {
		topic, p := fast.next()
		if topic == TopicDropped {
			continue
		}
		var v struct{ I int }
		if err := json.Unmarshal(p, &v); err != nil {
			t.Fatal(err)
		}
		last = v.I
	}
	t.Logf("fast client done after %v", time.Since(start))
	if mDropped.Value() == d0 {
		t.Fatal("nothing was dropped for the slow client")
	}

	// The slow client, reading at last, gets a $dropped notice and the
	// newest frames, the marker among them.
	sawDropped, frames := false, 0
	for {
		_ = slowConn.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, b, err := slowConn.ReadMessage()
		if err != nil {
			t.Fatalf("slow client read after %d frames: %v", frames, err)
		}
		frames++
		if strings.HasPrefix(string(b), `["$dropped",`) {
			sawDropped = true
			continue
		}
		if strings.HasSuffix(string(b), `{"i":-1}]`) {
			break
		}
	}
	if !sawDropped || frames > n {
		t.Fatalf("slow client: %d frames, $dropped seen %v", frames, sawDropped)
	}
}

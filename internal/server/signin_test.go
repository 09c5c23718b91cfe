package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// clientFrom returns an HTTP client whose connections leave from the
// loopback address ip (127.0.0.2, ...), so that the server sees another
// source address.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}}
}

// attempt is one sign-in's answer.
type attempt struct {
	status     int
	code       int
	retryAfter string
}

// signIn posts user/auth with c.
func signIn(c *http.Client, base, login, password string) (attempt, error) {
	resp, err := c.PostForm(base+"/v2/user/auth", url.Values{"login": {login}, "password": {password}})
	if err != nil {
		return attempt{}, err
	}
	defer resp.Body.Close()
	var m struct {
		Status struct{ Code int } `json:"status"`
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &m)
	return attempt{status: resp.StatusCode, code: m.Status.Code, retryAfter: resp.Header.Get("Retry-After")}, nil
}

// wantRefused checks a 429 with error 15 and a Retry-After of whole
// seconds.
func wantRefused(t *testing.T, what string, a attempt) {
	t.Helper()
	if s, err := strconv.Atoi(a.retryAfter); a.status != http.StatusTooManyRequests || a.code != 15 || err != nil || s < 1 {
		t.Fatalf("%s: HTTP %d code %d Retry-After %q, want 429, code 15 and Retry-After in seconds", what, a.status, a.code, a.retryAfter)
	}
}

// TestSignInThrottled: every path that checks a password or key answers
// 429 with error 15 and Retry-After once the budget is used: user/auth
// (per login, even with the right password and from another address), the
// topic bridge's basic auth, and the admin API (per address, so operators
// elsewhere keep working).
func TestSignInThrottled(t *testing.T) {
	h := startServer(t, func(c *Config) { c.MQTTListen = "127.0.0.1:0" })
	h.createUser("victim", "victim-password", "UTC")
	attacker := clientFrom("127.0.0.2")
	for i := range 10 {
		a, err := signIn(attacker, h.base, "victim", fmt.Sprintf("guess-%d", i))
		if err != nil || a.code != 102 {
			t.Fatalf("guess %d: %v %+v, want 102", i+1, err, a)
		}
	}
	a, err := signIn(attacker, h.base, "victim", "victim-password")
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "right password after 10 wrong ones", a)
	a, _ = signIn(http.DefaultClient, h.base, "victim", "victim-password")
	wantRefused(t, "the throttled login from another address", a)

	// The topic bridge's basic auth shares the budget.
	for _, from := range []string{"127.0.0.2", "127.0.0.1"} {
		d := websocket.Dialer{NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext}
		hdr := http.Header{}
		hdr.Set("Authorization", "Basic "+basicAuth("victim", "victim-password"))
		ws, resp, err := d.Dial("ws://"+h.srv.Addr()+"/bridge", hdr)
		if err == nil {
			ws.Close()
			t.Fatalf("bridge from %s signed in a throttled login", from)
		}
		if resp == nil {
			t.Fatalf("bridge from %s: %v", from, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		var m struct{ Status struct{ Code int } }
		_ = json.Unmarshal(raw, &m)
		wantRefused(t, "bridge basic auth from "+from, attempt{status: resp.StatusCode, code: m.Status.Code, retryAfter: resp.Header.Get("Retry-After")})
	}

	// The admin key: 30 wrong keys from one address (the address budget),
	// then even the right key is refused there, and only there.
	admin := clientFrom("127.0.0.3")
	adminCall := func(key string) attempt {
		req, _ := http.NewRequest("GET", h.base+"/admin/users", nil)
		req.Header.Set("X-Admin-Key", key)
		resp, err := admin.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m struct{ Status struct{ Code int } }
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return attempt{status: resp.StatusCode, code: m.Status.Code, retryAfter: resp.Header.Get("Retry-After")}
	}
	for i := range 30 {
		if a := adminCall(fmt.Sprintf("wrong-key-%d", i)); a.status != http.StatusForbidden || a.code != 11 {
			t.Fatalf("wrong admin key %d: %+v, want 403 code 11", i+1, a)
		}
	}
	wantRefused(t, "the right admin key after 30 wrong ones", adminCall(testAdminKey))
	h.admin("GET", "/admin/users", nil) // from 127.0.0.1
}

func basicAuth(user, password string) string {
	r, _ := http.NewRequest("GET", "http://x/", nil)
	r.SetBasicAuth(user, password)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// TestSignInFloodKeepsDelivery measures a subscriber's delivery rate while
// a device reports 400 fixes a second, without sign-ins (before and after
// the first flood, averaged) and during a brute force of 30 sign-ins a
// second: first on one login from one address
// (refused by the throttle after its budget), then spread over 200
// addresses and a fresh login each time (no budget runs out, so the
// password checks run, bounded by the worker limit). The rates are
// logged; only the refusals are asserted, never a timing.
func TestSignInFloodKeepsDelivery(t *testing.T) {
	h := startServer(t, nil)
	uid := h.createUser("fleet", "fleet-password", "UTC")
	h.createUser("victim", "victim-password", "UTC")
	tr := h.createTracker(uid, "Van", "flood-dev")
	hash := h.login("fleet", "fleet-password")

	c := h.dialEvents(nil)
	c.send(subscribeMsg(hash, map[string]any{"type": "state", "trackers": []int64{tr.id}}))
	c.await(wait, "response", func(m map[string]any) bool { return m["type"] == "response" })
	var delivered atomic.Int64
	c.conn.SetReadDeadline(time.Time{})
	go func() {
		for {
			_, b, err := c.conn.ReadMessage()
			if err != nil {
				t.Logf("subscriber: %v", err)
				return
			}
			delivered.Add(int64(strings.Count(string(b), `"event":"state"`)))
		}
	}()

	// The device: OsmAnd fixes at a steady 400 a second (4 every 10 ms),
	// each a new position. A feeder that falls behind does not catch up,
	// so a starved server shows as a lower rate.
	stop := make(chan struct{})
	var fed atomic.Int64
	var feeders sync.WaitGroup
	feeders.Add(1)
	go func() {
		defer feeders.Done()
		dev := &http.Client{Timeout: 10 * time.Second}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for range 4 {
				i++
				q := url.Values{"id": {tr.device}, "lat": {fmt.Sprintf("52.%06d", i%1000000)}, "lon": {"13.4"},
					"timestamp": {strconv.FormatInt(time.Now().UnixMilli(), 10)}}
				resp, err := dev.Get(h.osmand + "/?" + q.Encode())
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					fed.Add(1)
				}
			}
		}
	}()
	defer func() { close(stop); feeders.Wait() }()

	const phase = 4 * time.Second
	measure := func(flood func(i int)) (rate float64) {
		d0 := delivered.Load()
		start := time.Now()
		tick := time.NewTicker(time.Second / 30)
		defer tick.Stop()
		var wg sync.WaitGroup
		for i := 0; time.Since(start) < phase; i++ {
			<-tick.C
			if flood != nil {
				wg.Add(1)
				go func() { defer wg.Done(); flood(i) }()
			}
		}
		rate = float64(delivered.Load()-d0) / time.Since(start).Seconds()
		wg.Wait()
		return rate
	}
	time.Sleep(time.Second) // let the feeder reach its pace

	base1 := measure(nil)

	// One login from one address: 10 failures, then 429 only.
	attacker := clientFrom("127.0.0.2")
	var mu sync.Mutex
	oneAnswers := map[int]int{}
	one := measure(func(i int) {
		a, err := signIn(attacker, h.base, "victim", fmt.Sprintf("guess-%d", i))
		if err != nil {
			return
		}
		if a.status == http.StatusTooManyRequests {
			if s, err := strconv.Atoi(a.retryAfter); err != nil || s < 1 || a.code != 15 {
				t.Errorf("refusal %+v without code 15 and Retry-After", a)
			}
		}
		mu.Lock()
		oneAnswers[a.code]++
		mu.Unlock()
	})

	base2 := measure(nil)
	base := (base1 + base2) / 2

	// Spread: a fresh login and one of 200 addresses per attempt.
	spreadClients := make([]*http.Client, 200)
	for i := range spreadClients {
		spreadClients[i] = clientFrom(fmt.Sprintf("127.0.1.%d", i+1))
	}
	spreadAnswers := map[int]int{}
	spread := measure(func(i int) {
		a, err := signIn(spreadClients[i%len(spreadClients)], h.base, fmt.Sprintf("nobody-%d", i), "guess")
		if err != nil {
			return
		}
		mu.Lock()
		spreadAnswers[a.code]++
		mu.Unlock()
	})
	for _, c := range append(spreadClients, attacker) {
		c.CloseIdleConnections()
	}

	t.Logf("state deliveries/s: %.0f without sign-ins (%.0f and %.0f), %.0f (%.1f %%) during 30/s on one login (answers by code %v), %.0f (%.1f %%) during 30/s spread over logins and addresses (answers by code %v); %d fixes fed",
		base, base1, base2, one, 100*one/base, oneAnswers, spread, 100*spread/base, spreadAnswers, fed.Load())
	mu.Lock()
	defer mu.Unlock()
	if oneAnswers[102] != 10 || oneAnswers[15] == 0 {
		t.Errorf("one-login flood answered %v; want exactly 10 wrong-password answers (102), then 429 (15)", oneAnswers)
	}
	if base == 0 {
		t.Error("the subscriber received nothing")
	}
}

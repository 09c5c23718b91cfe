package netlimit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5055":              "127.0.0.1",
		"127.0.0.2":                   "127.0.0.2",
		"[::ffff:10.1.2.3]:80":        "10.1.2.3",
		"[2001:db8:1:2:3:4:5:6]:443":  "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:1":    "2001:db8:1:2::/64",
		"[fe80::1%eth0]:8080":         "fe80::/64",
		"[::1]:8080":                  "::/64",
		"not an address":              "not an address",
		"host.example:80":             "host.example:80", // no IP address: kept whole
		"[2001:db8:1:3::1]:443":       "2001:db8:1:3::/64",
		"192.168.000.001:80":          "192.168.000.001:80", // not an IP address to netip: kept whole
		"[2001:DB8:0:0:0:0:0:1]:1883": "2001:db8::/64",
		"::/0":                        "::/64",           // a prefix takes the key of its first address
		"2001:db8:1:2::/48":           "2001:db8:1::/64", // masked first
		"10.1.2.3/8":                  "10.0.0.0",
	} {
		if got := AddrKey(in); got != want {
			t.Errorf("AddrKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCounter(t *testing.T) {
	c := NewCounter(2)
	ok1, ok2, ok3, okb := c.Take("a"), c.Take("a"), c.Take("a"), c.Take("b")
	if !ok1 || !ok2 || ok3 || !okb {
		t.Fatalf("take: %v %v %v %v, want true true false true", ok1, ok2, ok3, okb)
	}
	c.Give("a")
	if n := c.Count("a"); n != 1 {
		t.Fatalf("count after a give = %d, want 1", n)
	}
	if !c.Take("a") {
		t.Fatal("a slot given back was not reusable")
	}
	c.Give("a")
	c.Give("a")
	c.Give("b")
	if c.Keys() != 0 {
		t.Fatalf("%d keys left after every give, want 0", c.Keys())
	}
	unlimited := NewCounter(0)
	for range 1000 {
		if !unlimited.Take("x") {
			t.Fatal("a counter without a cap refused")
		}
	}
	if unlimited.Count("x") != 1000 || unlimited.Max() != 0 {
		t.Fatalf("count %d max %d, want 1000 0", unlimited.Count("x"), unlimited.Max())
	}
}

// TestConnGivesBackOnce: a connection marked authenticated twice and then
// closed gives its slot back once; the other connection's slot stays
// counted.
func TestConnGivesBackOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listen(ln, 0)
	defer l.Close()
	accept := func() *Conn {
		t.Helper()
		dial(t, ln.Addr().String())
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c.(*Conn)
	}
	first, second := accept(), accept()
	defer second.Close()
	if n := l.Unauthenticated().Count("127.0.0.1"); n != 2 {
		t.Fatalf("count with two connections = %d, want 2", n)
	}
	first.Authenticated()
	first.Authenticated()
	first.Close()
	AuthenticatedConn(first)
	if n := l.Unauthenticated().Count("127.0.0.1"); n != 1 {
		t.Fatalf("count after one connection gave back twice and closed = %d, want 1", n)
	}
	AuthenticatedConn(second)
	if n := l.Unauthenticated().Count("127.0.0.1"); n != 0 {
		t.Fatalf("count after both = %d, want 0", n)
	}
}

// serve runs an http.Server over a Listener with cap max on 127.0.0.1.
func serve(t *testing.T, max int, h http.Handler) (*Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listen(ln, max)
	srv := &http.Server{Handler: h, ConnContext: ConnContext, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l, ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// get sends a keep-alive GET on c and returns the status code.
func get(t *testing.T, c net.Conn, br *bufio.Reader, path string) int {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitCount waits until the listener counts n unauthenticated connections
// from 127.0.0.1 (the server side accepts asynchronously).
func waitCount(t *testing.T, l *Listener, n int) {
	t.Helper()
	for range 500 {
		if l.Unauthenticated().Count("127.0.0.1") == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("unauthenticated count = %d, want %d", l.Unauthenticated().Count("127.0.0.1"), n)
}

// TestListenerCapsUnauthenticated: past the cap a new connection from the
// same address gets a 429 with Retry-After and error 15 before it sends
// anything; a connection whose handler marked it authenticated, or one
// that closed, frees its slot.
func TestListenerCapsUnauthenticated(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		Authenticated(r.Context())
		Authenticated(r.Context())
		w.Write([]byte("ok"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	l, addr := serve(t, 3, mux)

	idle := []net.Conn{dial(t, addr), dial(t, addr), dial(t, addr)}
	waitCount(t, l, 3)

	over := dial(t, addr)
	over.SetDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(over), nil)
	if err != nil {
		t.Fatalf("connection over the cap: %v, want a 429", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" ||
		!strings.Contains(string(body), `"code":15`) {
		t.Fatalf("over the cap: %d Retry-After %q %s, want 429 with Retry-After 1 and code 15",
			resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if _, err := over.Read(make([]byte, 1)); err == nil {
		t.Fatal("the refused connection stayed open")
	}

	// An authenticated connection gives its slot back and keeps working.
	br := bufio.NewReader(idle[0])
	if code := get(t, idle[0], br, "/login"); code != 200 {
		t.Fatalf("login on a counted connection: %d", code)
	}
	waitCount(t, l, 2)
	fresh := dial(t, addr)
	if code := get(t, fresh, bufio.NewReader(fresh), "/"); code != 200 {
		t.Fatalf("a new connection after one authenticated: %d, want 200", code)
	}
	if code := get(t, idle[0], br, "/"); code != 200 {
		t.Fatalf("the authenticated connection: %d", code)
	}

	// A closed connection gives its slot back.
	idle[1].Close()
	waitCount(t, l, 2)
	again := dial(t, addr)
	if code := get(t, again, bufio.NewReader(again), "/"); code != 200 {
		t.Fatalf("a new connection after one closed: %d, want 200", code)
	}
}

// TestBodyTimeoutCutsTrickledBody: a body trickled one byte every two
// seconds is cut once the body timeout has passed, long before it would
// have arrived whole; a prompt body on the same server is read whole and
// the handler may then hold the request past the timeout.
func TestBodyTimeoutCutsTrickledBody(t *testing.T) {
	const timeout = 1500 * time.Millisecond
	var mu sync.Mutex
	var readErr error
	h := BodyTimeout(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		mu.Lock()
		readErr = err
		mu.Unlock()
		if err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusRequestTimeout)
			return
		}
		if r.URL.Path == "/hold" {
			time.Sleep(2 * timeout) // a long poll, after its body
		}
		fmt.Fprintf(w, "%d", len(b))
	}), timeout)
	_, addr := serve(t, 0, h)

	c := dial(t, addr)
	const bodyLen = 100
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", bodyLen)
	cut := make(chan struct{})
	go func() {
		defer close(cut)
		c.SetReadDeadline(time.Now().Add(time.Duration(bodyLen) * 2 * time.Second))
		io.Copy(io.Discard, c) // returns when the server closes the connection
	}()
	sent := 0
	for sent < bodyLen {
		select {
		case <-cut:
		case <-time.After(2 * time.Second):
			if _, err := c.Write([]byte("x")); err == nil {
				sent++
			}
			continue
		}
		break
	}
	if sent >= bodyLen {
		t.Fatalf("the trickled body was read whole (%d bytes); the connection was never cut", sent)
	}
	mu.Lock()
	var ne net.Error
	if !errors.As(readErr, &ne) || !ne.Timeout() {
		t.Errorf("the handler's read failed with %v, want a timeout", readErr)
	}
	mu.Unlock()
	t.Logf("cut after %d of %d trickled bytes", sent, bodyLen)

	// A prompt body passes, and the handler can hold the request after it.
	for _, path := range []string{"/", "/hold"} {
		resp, err := http.Post("http://"+addr+path, "text/plain", strings.NewReader(strings.Repeat("y", 5000)))
		if err != nil {
			t.Fatalf("prompt POST %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "5000" {
			t.Fatalf("prompt POST %s: %d %q, want 200 \"5000\"", path, resp.StatusCode, b)
		}
	}
}

// FuzzAddrKey: AddrKey never panics, is stable (a key is its own key) and
// gives every address of one IPv6 /64 the same key.
func FuzzAddrKey(f *testing.F) {
	for _, s := range []string{"127.0.0.1:80", "[2001:db8::1]:443", "[::ffff:1.2.3.4]:1", "[fe80::1%eth0]:2", "x", "", "[::1", "1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k := AddrKey(s)
		if AddrKey(k) != k {
			t.Fatalf("AddrKey(%q) = %q, whose key is %q", s, k, AddrKey(k))
		}
		if a, err := netip.ParseAddr(strings.TrimSuffix(k, "/64")); err == nil && a.Is6() && !strings.HasSuffix(k, "/64") {
			t.Fatalf("AddrKey(%q) = %q: an IPv6 key without its /64", s, k)
		}
		if p, err := netip.ParsePrefix(k); err == nil {
			if p.Bits() != 64 || p.Masked() != p {
				t.Fatalf("AddrKey(%q) = %q: not a /64 prefix", s, k)
			}
			next := p.Addr().Next()
			if AddrKey(next.String()) != k {
				t.Fatalf("AddrKey(%q) = %q, but %v in it has key %q", s, k, next, AddrKey(next.String()))
			}
		}
	})
}

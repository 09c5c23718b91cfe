package bridge

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/fleetwire/fleetwire/internal/auth"
	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/state"
	"github.com/fleetwire/fleetwire/internal/store"
	"github.com/fleetwire/fleetwire/internal/store/sqlite"
)

// The services the server wires in satisfy the bridge's interfaces,
// including the optional ones.
var (
	_ Authenticator = (*auth.Service)(nil)
	_ loggerOut     = (*auth.Service)(nil)
	_ Devices       = (*state.Registry)(nil)
	_ deviceLookup  = (*state.Registry)(nil)
)

// brokerURL is the Mosquitto the tests use: FLEETWIRE_TEST_MQTT_URL, by
// default tcp://127.0.0.1:1883; "off" skips the tests that need it.
func brokerURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("FLEETWIRE_TEST_MQTT_URL")
	if u == "off" {
		t.Skip("FLEETWIRE_TEST_MQTT_URL=off")
	}
	if u == "" {
		u = "tcp://127.0.0.1:1883"
	}
	return u
}

// mosquittoArgs are the connection flags of mosquitto_pub/mosquitto_sub
// for the broker URL.
func mosquittoArgs(t *testing.T, broker string) []string {
	t.Helper()
	u, err := url.Parse(broker)
	if err != nil {
		t.Fatalf("FLEETWIRE_TEST_MQTT_URL: %v", err)
	}
	args := []string{"-h", u.Hostname()}
	if p := u.Port(); p != "" {
		args = append(args, "-p", p)
	}
	if u.User != nil {
		args = append(args, "-u", u.User.Username())
		if pw, ok := u.User.Password(); ok {
			args = append(args, "-P", pw)
		}
	}
	return args
}

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: these tests run the real Mosquitto clients "+
			"(apt-get install -y mosquitto-clients), or set FLEETWIRE_TEST_MQTT_URL=off to skip them", name)
	}
	return p
}

func uniq() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type fixture struct {
	t      *testing.T
	ctx    context.Context
	broker string
	st     store.Store
	auth   *auth.Service
	reg    *state.Registry
	br     *Bridge
	srv    *httptest.Server
	id     string // unique per test, in logins and device ids
}

type fixtureOpts struct {
	opts       Options
	hideLookup bool // serve Devices without TrackerByDevice
}

func newFixture(t *testing.T, fo fixtureOpts) *fixture {
	t.Helper()
	broker := brokerURL(t)
	needTool(t, "mosquitto_pub")
	needTool(t, "mosquitto_sub")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := bus.NewMemory()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := &fixture{t: t, ctx: ctx, broker: broker, st: st, id: uniq()}
	f.auth = auth.New(st, b, auth.Options{BcryptCost: 4, Logger: log})
	f.reg = state.New(st, b, state.Options{Logger: log})
	if err := f.reg.Load(ctx); err != nil {
		t.Fatal(err)
	}
	opts := fo.opts
	opts.Auth = f.auth
	opts.Devices = f.reg
	if fo.hideLookup {
		opts.Devices = trackersOnly{f.reg}
	}
	opts.MQTTURL = broker
	opts.Logger = log
	f.br = New(opts)
	f.br.deviceTTL = 100 * time.Millisecond
	runDone := make(chan error, 1)
	go func() { runDone <- f.br.Run(ctx) }()
	mux := http.NewServeMux()
	mux.Handle("/bridge", f.br)
	mux.Handle("/bridge/", f.br)
	mux.Handle("/auth/", f.br)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		f.br.Close()
		f.srv.Close()
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for !f.br.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("the bridge did not subscribe at %s within 15s: is Mosquitto running?", broker)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return f
}

// trackersOnly hides the registry's direct device lookup.
type trackersOnly struct{ r *state.Registry }

func (d trackersOnly) Trackers(userID int64) []*fleet.Tracker { return d.r.Trackers(userID) }

// user creates a user with one tracker and returns the login and device
// id; the password is "pw-" + login.
func (f *fixture) user(name string) (u *fleet.User, login, device string) {
	f.t.Helper()
	login = name + "-" + f.id
	u, err := f.auth.CreateUser(f.ctx, login, "pw-"+login, name, "")
	if err != nil {
		f.t.Fatal(err)
	}
	device = f.device(u.ID, name)
	return u, login, device
}

func (f *fixture) device(uid int64, name string) string {
	f.t.Helper()
	return f.deviceOf(uid, name, "")
}

// node creates an IoT node (model fleet.NodeModel) of user uid.
func (f *fixture) node(uid int64, name string) string {
	f.t.Helper()
	return f.deviceOf(uid, name, fleet.NodeModel)
}

func (f *fixture) deviceOf(uid int64, name, model string) string {
	f.t.Helper()
	dev := "dev-" + name + "-" + f.id + "-" + uniq()
	f.trackerOf(uid, dev, model)
	return dev
}

// trackerOf creates a tracker of user uid with device id dev.
func (f *fixture) trackerOf(uid int64, dev, model string) {
	f.t.Helper()
	if _, err := f.reg.CreateTracker(f.ctx, &fleet.Tracker{Label: dev, UserID: uid, DeviceID: dev, Model: model}); err != nil {
		f.t.Fatal(err)
	}
}

// url is the bridge URL with userinfo, as a page would write it.
func (f *fixture) url(userinfo *url.Userinfo, query string) string {
	return f.urlAt("/bridge/clown-talk-server_nodes_bridge_0", userinfo, query)
}

// urlAt is url with another path.
func (f *fixture) urlAt(path string, userinfo *url.Userinfo, query string) string {
	u, _ := url.Parse(f.srv.URL)
	u.Scheme = "ws"
	u.User = userinfo
	u.Path = path
	u.RawQuery = query
	return u.String()
}

// dial connects the way browsers do with a ws://user:pass@host URL: the
// userinfo becomes a basic Authorization header.
func dial(rawURL string) (*websocket.Conn, *http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, err
	}
	var h http.Header
	if u.User != nil {
		pw, _ := u.User.Password()
		h = basicHeader(u.User.Username(), pw)
		u.User = nil
	}
	return websocket.DefaultDialer.Dial(u.String(), h)
}

func basicHeader(user, password string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))}}
}

type client struct {
	t    *testing.T
	conn *websocket.Conn
}

func (f *fixture) connect(userinfo *url.Userinfo, query string) *client {
	f.t.Helper()
	return f.connectTo(f.url(userinfo, query))
}

// connectTo dials a bridge URL (see urlAt).
func (f *fixture) connectTo(rawURL string) *client {
	f.t.Helper()
	conn, resp, err := dial(rawURL)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		f.t.Fatalf("dial: %v (HTTP %d)", err, status)
	}
	f.t.Cleanup(func() { conn.Close() })
	return &client{t: f.t, conn: conn}
}

func (c *client) sendRaw(s string) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) send(topic string, payload any) {
	c.t.Helper()
	b, err := json.Marshal([]any{topic, payload})
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(string(b))
}

// next reads one frame and returns its topic and payload.
func (c *client) next() (string, json.RawMessage) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	typ, b, err := c.conn.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if typ != websocket.TextMessage {
		c.t.Fatalf("frame type %d, want text", typ)
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(b, &arr); err != nil || len(arr) != 2 {
		c.t.Fatalf("frame %s is not [topic, payload]", b)
	}
	var topic string
	if err := json.Unmarshal(arr[0], &topic); err != nil {
		c.t.Fatalf("frame %s: topic is not a string", b)
	}
	return topic, arr[1]
}

// expect reads the next frame and checks it exactly.
func (c *client) expect(topic, payload string) {
	c.t.Helper()
	gt, gp := c.next()
	if gt != topic || string(gp) != payload {
		c.t.Fatalf("got [%q, %s], want [%q, %s]", gt, gp, topic, payload)
	}
}

// expectError reads a $error frame and checks its code.
func (c *client) expectError(code int) errorBody {
	c.t.Helper()
	topic, p := c.next()
	if topic != TopicError {
		c.t.Fatalf("got [%q, %s], want a $error frame", topic, p)
	}
	var e errorBody
	if err := json.Unmarshal(p, &e); err != nil {
		c.t.Fatalf("$error payload %s: %v", p, err)
	}
	if e.Code != code {
		c.t.Fatalf("$error %s, want code %d", p, code)
	}
	return e
}

// pub publishes with the real mosquitto_pub.
func (f *fixture) pub(topic, payload string) {
	f.t.Helper()
	args := append(mosquittoArgs(f.t, f.broker), "-q", "1", "-t", topic, "-m", payload)
	out, err := exec.Command("mosquitto_pub", args...).CombinedOutput()
	if err != nil {
		f.t.Fatalf("mosquitto_pub %v: %v\n%s", args, err, out)
	}
}

// sub starts mosquitto_sub for one message on topic and returns once it
// is subscribed; the returned func waits for the message's payload.
func (f *fixture) sub(topic string) func() string {
	f.t.Helper()
	args := append(mosquittoArgs(f.t, f.broker), "-d", "-C", "1", "-W", "20", "-q", "1", "-t", topic)
	// mosquitto_sub buffers its output when it is not a terminal; stdbuf
	// makes it line-buffered so that its SUBACK is seen at once.
	cmd := exec.Command("mosquitto_sub", args...)
	sb, err := exec.LookPath("stdbuf")
	if err == nil {
		cmd = exec.Command(sb, append([]string{"-oL", "mosquitto_sub"}, args...)...)
	}
	lineBuffered := err == nil
	out, err := cmd.StdoutPipe()
	if err != nil {
		f.t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	if !lineBuffered {
		time.Sleep(time.Second) // no way to see the SUBACK: give it time
	}
	timeout := time.After(15 * time.Second)
	for subscribed := !lineBuffered; !subscribed; {
		select {
		case l, ok := <-lines:
			if !ok {
				f.t.Fatalf("mosquitto_sub %v ended before subscribing", args)
			}
			subscribed = strings.Contains(l, "SUBACK")
		case <-timeout:
			f.t.Fatalf("mosquitto_sub %v did not subscribe", args)
		}
	}
	return func() string {
		f.t.Helper()
		// With -d, every protocol line starts with "Client "; the message
		// is the one line that does not.
		timeout := time.After(20 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					f.t.Fatalf("mosquitto_sub on %s got no message", topic)
				}
				if !strings.HasPrefix(l, "Client ") && !strings.HasPrefix(l, "Subscribed") {
					return l
				}
			case <-timeout:
				f.t.Fatalf("mosquitto_sub on %s got no message", topic)
			}
		}
	}
}

func basic(login string) *url.Userinfo { return url.UserPassword(login, "pw-"+login) }

func TestConfigAndDeviceData(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	_, login, dev := f.user("alice")
	in0 := mFramesIn.Value()
	c := f.connect(basic(login), "")
	c.sendRaw("[\"clown.talk/-/config/set\", {}]\n")
	_, p := c.next()
	var cfg struct {
		OK        bool     `json:"ok"`
		Subscribe []string `json:"subscribe"`
		Devices   []string `json:"devices"`
	}
	if err := json.Unmarshal(p, &cfg); err != nil || !cfg.OK || len(cfg.Devices) != 1 || cfg.Devices[0] != dev ||
		len(cfg.Subscribe) != 1 || cfg.Subscribe[0] != "#" {
		t.Fatalf("config answer %s", p)
	}
	f.pub("fleetwire/"+dev+"/node/thermometer/0:1/temperature", "23.5")
	c.expect(dev+"/thermometer/0:1/temperature", "23.5")
	f.pub("fleetwire/"+dev+"/node/relay/i2c0-3b", `{"state": true}`)
	c.expect(dev+"/relay/i2c0-3b", `{"state":true}`)
	// Payloads that are not JSON arrive as strings, empty ones as null.
	f.pub("fleetwire/"+dev+"/node/push-button/-/event-count", "not json")
	c.expect(dev+"/push-button/-/event-count", `"not json"`)
	if mFramesIn.Value() <= in0 || mConnections.Value() < 1 {
		t.Fatalf("metrics: frames in %d → %d, connections %d", in0, mFramesIn.Value(), mConnections.Value())
	}
}

func TestConfigFrameAnsweredOnTopic(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	_, login, _ := f.user("alice")
	c := f.connect(basic(login), "")
	c.send("clown.talk/-/config/set", nil)
	topic, _ := c.next()
	if topic != "clown.talk/-/config" {
		t.Fatalf("config answered on %q", topic)
	}
	c.send("config/set", map[string]any{"subscribe": []string{"x/#"}})
	c.expect("config", `{"devices":[`+`"`+f.reg.Trackers(0)[0].DeviceID+`"],"node":null,"ok":true,"subscribe":["x/#"]}`)
	c.send("clown.talk/-/config/set", []int{1})
	c.expectError(7)
	c.send("clown.talk/-/config/set", map[string]any{"subscribe": "x"})
	c.expectError(7)
	c.send("clown.talk/-/config/set", map[string]any{"subscribe": []string{"a/#/b"}})
	c.expectError(7)
}

func TestCommandAndAcknowledgement(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	_, login, dev := f.user("alice")
	c := f.connect(basic(login), "")
	c.send("clown.talk/-/config/set", map[string]any{})
	c.next()

	wait := f.sub("fleetwire/" + dev + "/node/relay/i2c0-3b/set")
	c.sendRaw(`["` + dev + `/relay/i2c0-3b/set", {"state": false}]`)
	if got := wait(); got != `{"state":false}` {
		t.Fatalf("device got %q", got)
	}
	// The device acknowledges on the value topic and on …/ack; the
	// command itself is not echoed to clients.
	f.pub("fleetwire/"+dev+"/node/relay/i2c0-3b", `{"state": false}`)
	c.expect(dev+"/relay/i2c0-3b", `{"state":false}`)
	f.pub("fleetwire/"+dev+"/node/relay/i2c0-3b/ack", `{"state": false}`)
	c.expect(dev+"/relay/i2c0-3b/ack", `{"state":false}`)

	// A node path ending in "config" of an own device is a command, not a
	// config frame.
	wait = f.sub("fleetwire/" + dev + "/node/lora/config/set")
	c.send(dev+"/lora/config/set", map[string]any{"band": 868})
	if got := wait(); got != `{"band":868}` {
		t.Fatalf("device got %q", got)
	}
}

func TestUsersAreIsolated(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	testIsolation(t, f)
}

func TestUsersAreIsolatedWithoutDeviceLookup(t *testing.T) {
	f := newFixture(t, fixtureOpts{hideLookup: true})
	testIsolation(t, f)
}

func testIsolation(t *testing.T, f *fixture) {
	_, loginA, devA := f.user("alice")
	_, loginB, devB := f.user("bob")
	a := f.connect(basic(loginA), "")
	b := f.connect(basic(loginB), "")
	a.send("clown.talk/-/config/set", map[string]any{})
	a.next()
	b.send("clown.talk/-/config/set", map[string]any{"subscribe": []string{"#", devA + "/#"}})
	_, p := b.next()
	var cfg struct{ Devices []string }
	if err := json.Unmarshal(p, &cfg); err != nil || len(cfg.Devices) != 1 || cfg.Devices[0] != devB {
		t.Fatalf("B's config answer %s", p)
	}

	// B cannot command A's device, nor one that does not exist.
	b.send(devA+"/relay/i2c0-3b/set", map[string]bool{"state": true})
	e := b.expectError(11)
	if !strings.Contains(string(e.Frame), devA) {
		t.Fatalf("$error frame field %s", e.Frame)
	}
	b.send("no-such-device-"+f.id+"/relay/set", true)
	b.expectError(11)

	// A's data reaches A and never B, even with a pattern naming it: B's
	// first data frame is its own, published after A's.
	f.pub("fleetwire/"+devA+"/node/thermometer/0:1/temperature", "21")
	f.pub("fleetwire/"+devB+"/node/thermometer/0:1/temperature", "22")
	b.expect(devB+"/thermometer/0:1/temperature", "22")
	a.expect(devA+"/thermometer/0:1/temperature", "21")

	// A blocked tracker neither reports nor takes commands.
	ta, _ := f.reg.TrackerByDevice(devA)
	if err := f.reg.SetBlocked(f.ctx, ta.ID, true); err != nil {
		t.Fatal(err)
	}
	a.send(devA+"/relay/i2c0-3b/set", map[string]bool{"state": true})
	a.expectError(208)
	if f.br.lookup == nil {
		time.Sleep(2 * f.br.deviceTTL) // let the device cache see the block
	}
	devA2 := f.device(ta.UserID, "alice2")
	f.pub("fleetwire/"+devA+"/node/thermometer/0:1/temperature", "1")
	f.pub("fleetwire/"+devA2+"/node/thermometer/0:1/temperature", "2")
	a.expect(devA2+"/thermometer/0:1/temperature", "2")
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	u, login, _ := f.user("alice")
	key, err := f.auth.CreateAPIKey(f.ctx, u.ID, "bridge")
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name     string
		userinfo *url.Userinfo
		query    string
	}{
		{"no credentials", nil, ""},
		{"wrong password", url.UserPassword(login, "nope"), ""},
		{"unknown login", url.UserPassword("nobody-"+f.id, "pw"), ""},
		{"unknown key", url.UserPassword("apikey", strings.Repeat("0", 32)), ""},
		{"malformed hash", nil, "hash=xyz"},
		{"unknown hash", nil, "hash=" + strings.Repeat("a", 32)},
	}
	for _, c := range bad {
		_, resp, err := dial(f.url(c.userinfo, c.query))
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: err %v, resp %v; want 401", c.name, err, resp)
			continue
		}
		if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Basic realm="fleetwire"`) {
			t.Errorf("%s: WWW-Authenticate %q", c.name, got)
		}
	}
	// A plain GET is refused the same way.
	resp, err := http.Get(f.srv.URL + "/bridge")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("plain GET: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	good := []struct {
		name     string
		userinfo *url.Userinfo
		query    string
	}{
		{"login and password", basic(login), ""},
		{"api key as password", url.UserPassword("apikey", key.Hash), ""},
		{"api key with any user name", url.UserPassword(login, key.Hash), ""},
		{"hash query", nil, "hash=" + key.Hash},
	}
	for _, c := range good {
		cl := f.connect(c.userinfo, c.query)
		cl.send("clown.talk/-/config/set", map[string]any{})
		if topic, p := cl.next(); topic != "clown.talk/-/config" {
			t.Errorf("%s: got [%q, %s]", c.name, topic, p)
		}
		cl.conn.Close()
	}

	// Cross-origin pages must use ?hash=.
	h := basicHeader(login, "pw-"+login)
	h.Set("Origin", "http://evil.example")
	_, resp, err = websocket.DefaultDialer.Dial(strings.Replace(f.srv.URL, "http", "ws", 1)+"/bridge", h)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin basic auth: %v %v", err, resp)
	}
	h.Del("Authorization")
	conn, _, err := websocket.DefaultDialer.Dial(strings.Replace(f.srv.URL, "http", "ws", 1)+"/bridge?hash="+key.Hash, h)
	if err != nil {
		t.Errorf("cross-origin ?hash=: %v", err)
	} else {
		conn.Close()
	}
}

func TestSessionsStartedByTheBridgeEnd(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	u, login, _ := f.user("alice")
	c := f.connect(basic(login), "")
	c.send("clown.talk/-/config/set", map[string]any{})
	c.next()
	if n := f.sessions(u.ID); n != 1 {
		t.Fatalf("%d sessions while connected, want 1", n)
	}
	c.conn.Close()
	// The session the connection started ends with it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ss, err := f.auth.APIKeys(f.ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) != 0 {
			t.Fatalf("api keys %v", ss)
		}
		n := f.sessions(u.ID)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions left after the connection closed", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sessions counts a user's sessions in the store.
func (f *fixture) sessions(uid int64) int {
	f.t.Helper()
	ss, err := f.st.Sessions(f.ctx, uid, fleet.KindSession)
	if err != nil {
		f.t.Fatal(err)
	}
	return len(ss)
}

func TestCredentialEndClosesConnection(t *testing.T) {
	f := newFixture(t, fixtureOpts{opts: Options{RecheckEvery: 100 * time.Millisecond}})
	u, _, _ := f.user("alice")
	key, err := f.auth.CreateAPIKey(f.ctx, u.ID, "bridge")
	if err != nil {
		t.Fatal(err)
	}
	c := f.connect(nil, "hash="+key.Hash)
	if err := f.auth.DeleteAPIKey(f.ctx, u.ID, key.Hash); err != nil {
		t.Fatal(err)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = c.conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("read after the key was deleted: %v; want close 1008", err)
	}
}

func TestMalformedFrames(t *testing.T) {
	f := newFixture(t, fixtureOpts{opts: Options{MaxPayload: 100}})
	_, login, dev := f.user("alice")
	c := f.connect(basic(login), "")
	for _, s := range []string{`not json`, `{}`, `[1,2]`, `["a"]`, `["a",1,2]`, `[null,{}]`, `"x"`, ``} {
		c.sendRaw(s)
		e := c.expectError(5)
		if s == `["a"]` && string(e.Frame) != `["a"]` {
			t.Fatalf("$error frame field %s", e.Frame)
		}
		if s == `not json` && string(e.Frame) != "null" {
			t.Fatalf("$error frame field %s for a frame that is not JSON", e.Frame)
		}
	}
	for _, fr := range []struct {
		topic   string
		payload any
		code    int
	}{
		{dev + "/+/set", true, 7},
		{"+/relay/set", true, 7},
		{dev + "/#/set", true, 7},
		{dev + "//x/set", true, 7},
		{dev + "/set", true, 7},
		{"/set", true, 7},
		{"$nope", true, 7},
		{dev + "/relay/i2c0-3b", true, 7}, // not writable
		{"a//b", true, 7},
		{dev + "/relay/set", strings.Repeat("x", 200), 7}, // payload too large
		{"$sub", 5, 7},
		{"$sub", []string{"a/#/b"}, 7},
	} {
		c.send(fr.topic, fr.payload)
		c.expectError(fr.code)
	}
	// The connection carries on.
	c.send("clown.talk/-/config/set", map[string]any{})
	if topic, p := c.next(); topic != "clown.talk/-/config" {
		t.Fatalf("after bad frames: [%q, %s]", topic, p)
	}
	// A frame over 64 KiB closes the connection with 1009.
	c.sendRaw(`["` + dev + `/x/set","` + strings.Repeat("x", 70<<10) + `"]`)
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := c.conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("after a large frame: %v; want close 1009", err)
	}
}

func TestWildcardSubscriptions(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	u, login, dev := f.user("alice")
	dev2 := f.device(u.ID, "alice2")
	c := f.connect(basic(login), "")
	c.send("clown.talk/-/config/set", map[string]any{"subscribe": []string{"+/thermometer/#"}})
	c.next()
	f.pub("fleetwire/"+dev+"/node/relay/i2c0-3b", `{"state":true}`)
	f.pub("fleetwire/"+dev2+"/node/thermometer/0:0/temperature", "19")
	c.expect(dev2+"/thermometer/0:0/temperature", "19")

	c.send(TopicSub, []string{dev + "/relay/#"})
	c.expect(TopicSub, `{"ok":true,"subscribe":["+/thermometer/#","`+dev+`/relay/#"]}`)
	f.pub("fleetwire/"+dev2+"/node/relay/i2c0-3b", `{"state":true}`)
	f.pub("fleetwire/"+dev+"/node/relay/i2c0-3b", `{"state":false}`)
	c.expect(dev+"/relay/i2c0-3b", `{"state":false}`)

	c.send(TopicUnsub, "+/thermometer/#")
	c.expect(TopicUnsub, `{"ok":true,"subscribe":["`+dev+`/relay/#"]}`)
	f.pub("fleetwire/"+dev+"/node/thermometer/0:0/temperature", "18")
	f.pub("fleetwire/"+dev+"/node/relay/i2c0-3b", `{"state":true}`)
	c.expect(dev+"/relay/i2c0-3b", `{"state":true}`)

	c.send("clown.talk/-/config/set", map[string]any{"subscribe": []string{dev2 + "/+/+/temperature"}})
	c.next()
	f.pub("fleetwire/"+dev+"/node/thermometer/0:0/temperature", "17")
	f.pub("fleetwire/"+dev2+"/node/thermometer/0:0/humidity", "50")
	f.pub("fleetwire/"+dev2+"/node/thermometer/0:0/temperature", "16")
	c.expect(dev2+"/thermometer/0:0/temperature", "16")
}

func TestCloseGoesAway(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	_, login, _ := f.user("alice")
	c := f.connect(basic(login), "")
	f.br.Close()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := c.conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("after Close: %v; want close 1001", err)
	}
	_, resp, err := dial(f.url(basic(login), ""))
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after Close: %v %v", err, resp)
	}
}

func TestRunRejectsBadURL(t *testing.T) {
	b := New(Options{MQTTURL: "http://x", Devices: trackersOnly{}})
	if err := b.Run(context.Background()); err == nil {
		t.Fatal("Run accepted an http:// broker URL")
	}
}

// TestInvalidUTF8 (RFC 6455 §8.1): a text frame that is not UTF-8 closes
// the connection with 1007 before the bridge sees it; a binary frame with
// such bytes is answered with a $error whose frame echo is UTF-8.
func TestInvalidUTF8(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	_, login, _ := f.user("utf8")
	c := f.connect(basic(login), "")
	if err := c.conn.WriteMessage(websocket.BinaryMessage, []byte("[\"a/b\xff\", 1]")); err != nil {
		t.Fatal(err)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, b, err := c.conn.ReadMessage()
	if err != nil || !utf8.Valid(b) || !strings.Contains(string(b), `"frame":["a/b`+"\uFFFD"+`",1]`) {
		t.Fatalf("error frame %q, %v", b, err)
	}
	c.sendRaw("[\"a/b\xff\", 1]")
	_, _, err = c.conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseInvalidFramePayloadData {
		t.Fatalf("after invalid UTF-8 in a text frame: %v, want close 1007", err)
	}
}

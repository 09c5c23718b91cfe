package bridge

import (
	"encoding/json"
	"net/url"
	"testing"
)

// seedBridge is the bridge name of seed 003's client.
const seedBridge = "clown-talk-server_nodes_bridge_0"

// TestSeedClient runs seed 003's client as written: basic credentials in
// the URL of /auth/<bridge-name>, the config frame with its trailing
// newline, then a relay command without a device id, which reaches the
// node behind the bridge name; the node's acknowledgement and readings
// come back under the node's own topics.
func TestSeedClient(t *testing.T) {
	nodeDev := "node-" + uniq()
	f := newFixture(t, fixtureOpts{opts: Options{Names: map[string]string{seedBridge: nodeDev}}})
	u, err := f.auth.CreateUser(f.ctx, "clown", "bigclown", "Clown", "")
	if err != nil {
		t.Fatal(err)
	}
	f.trackerOf(u.ID, nodeDev, "")
	other := f.device(u.ID, "car")

	c := f.connectTo(f.urlAt("/auth/"+seedBridge, url.UserPassword("clown", "bigclown"), ""))
	c.sendRaw("[\"clown.talk/-/config/set\", {}]\n")
	topic, p := c.next()
	var cfg struct {
		OK      bool     `json:"ok"`
		Node    *string  `json:"node"`
		Devices []string `json:"devices"`
	}
	if err := json.Unmarshal(p, &cfg); topic != "clown.talk/-/config" || err != nil || !cfg.OK ||
		cfg.Node == nil || *cfg.Node != nodeDev || len(cfg.Devices) != 2 {
		t.Fatalf("config answer [%q, %s]", topic, p)
	}

	wait := f.sub("fleetwire/" + nodeDev + "/node/relay/i2c0-3b/set")
	c.sendRaw("[\"relay/i2c0-3b/set\", {\"state\": false}]")
	if got := wait(); got != `{"state":false}` {
		t.Fatalf("the node got %q", got)
	}
	f.pub("fleetwire/"+nodeDev+"/node/relay/i2c0-3b", `{"state": false}`)
	c.expect("relay/i2c0-3b", `{"state":false}`)
	f.pub("fleetwire/"+nodeDev+"/node/thermometer/0:1/temperature", "21.5")
	c.expect("thermometer/0:1/temperature", "21.5")
	// The user's other devices keep their device id, both ways.
	f.pub("fleetwire/"+other+"/node/thermometer/0:1/temperature", "7")
	c.expect(other+"/thermometer/0:1/temperature", "7")
	wait = f.sub("fleetwire/" + other + "/node/relay/i2c0-3b/set")
	c.send(other+"/relay/i2c0-3b/set", map[string]bool{"state": true})
	if got := wait(); got != `{"state":true}` {
		t.Fatalf("the other device got %q", got)
	}

	// Patterns match the node's own topics as well as its device id.
	c.send(TopicUnsub, "#")
	c.expect(TopicUnsub, `{"ok":true,"subscribe":[]}`)
	c.send(TopicSub, []string{"relay/#", nodeDev + "/hygrometer/#"})
	c.next()
	f.pub("fleetwire/"+nodeDev+"/node/thermometer/0:1/temperature", "22")
	f.pub("fleetwire/"+nodeDev+"/node/hygrometer/0:4/relative-humidity", "40")
	c.expect("hygrometer/0:4/relative-humidity", "40")
	f.pub("fleetwire/"+nodeDev+"/node/relay/i2c0-3b", `{"state":true}`)
	c.expect("relay/i2c0-3b", `{"state":true}`)

	// A blocked node takes no commands.
	tn, _ := f.reg.TrackerByDevice(nodeDev)
	if err := f.reg.SetBlocked(f.ctx, tn.ID, true); err != nil {
		t.Fatal(err)
	}
	c.send("relay/i2c0-3b/set", map[string]bool{"state": true})
	c.expectError(208)
}

// configNode sends a config frame and returns the default node of the
// answer ("" for null).
func (c *client) configNode(payload any) string {
	c.t.Helper()
	c.send("clown.talk/-/config/set", payload)
	topic, p := c.next()
	var cfg struct {
		Node *string `json:"node"`
	}
	if err := json.Unmarshal(p, &cfg); topic != "clown.talk/-/config" || err != nil {
		c.t.Fatalf("config answer [%q, %s]", topic, p)
	}
	if cfg.Node == nil {
		return ""
	}
	return *cfg.Node
}

// TestDefaultNodeOrder: the config frame's "node" wins, then the bridge
// name (a configured name or a device id), then the user's only IoT node.
func TestDefaultNodeOrder(t *testing.T) {
	f := newFixture(t, fixtureOpts{opts: Options{Names: map[string]string{"mapped": "will-be-set", "foreign": "set-below"}}})
	u, login, car := f.user("alice")
	iot := f.node(u.ID, "iot")
	_, _, devB := f.user("bob")
	f.br.opts.Names["mapped"] = car
	f.br.opts.Names["foreign"] = devB
	creds := basic(login)

	for _, tc := range []struct{ path, want string }{
		{"/auth/mapped", car},
		{"/auth/" + car, car},
		{"/auth/foreign", iot}, // another user's device: the only IoT node instead
		{"/auth/unknown", iot},
		{"/bridge", iot},
		{"/bridge/" + iot, iot},
	} {
		c := f.connectTo(f.urlAt(tc.path, creds, ""))
		if got := c.configNode(map[string]any{}); got != tc.want {
			t.Errorf("%s: default node %q, want %q", tc.path, got, tc.want)
		}
		c.conn.Close()
	}

	c := f.connectTo(f.urlAt("/auth/mapped", creds, ""))
	if got := c.configNode(map[string]any{"node": iot}); got != iot {
		t.Fatalf("config node %q, want %q", got, iot)
	}
	wait := f.sub("fleetwire/" + iot + "/node/led/-/state/set")
	c.send("led/-/state/set", true)
	if got := wait(); got != "true" {
		t.Fatalf("the node got %q", got)
	}
	// Another user's device, a non-string: refused, the node stays.
	c.send("clown.talk/-/config/set", map[string]any{"node": devB})
	c.expectError(11)
	c.send("clown.talk/-/config/set", map[string]any{"node": 5, "subscribe": []string{"x/#"}})
	c.expectError(7)
	if got := c.configNode(nil); got != iot {
		t.Fatalf("node after refused configs %q, want %q", got, iot)
	}
	// null clears it: a bare topic is then another user's or nobody's.
	if got := c.configNode(map[string]any{"node": nil}); got != "" {
		t.Fatalf("node after null %q", got)
	}
	c.send("led/-/state/set", true)
	c.expectError(11)

	// Two IoT nodes: no default until the client names one.
	f.node(u.ID, "iot2")
	c = f.connectTo(f.urlAt("/bridge", creds, ""))
	if got := c.configNode(map[string]any{}); got != "" {
		t.Fatalf("default node with two IoT nodes: %q", got)
	}
	c.send("relay/i2c0-3b/set", map[string]bool{"state": true})
	c.expectError(11)
}

// Package bridge is the topic bridge: a WebSocket endpoint where every
// frame is a JSON array ["topic/path", payload]. Clients read what devices
// publish and write commands to them, over one MQTT connection that the
// bridge shares among all its clients.
//
// # Connecting
//
// The endpoint is mounted at /bridge and at /auth/<bridge-name>, the path
// of the seed's Clown.Hub client (wss://host/auth/clown-talk-server_nodes_bridge_0);
// /bridge/<bridge-name> works too. Credentials, checked before the
// upgrade:
//
//   - HTTP basic auth with login and password: what a client sends for
//     wss://login:password@host/bridge. The bridge starts a session for the
//     connection and ends it when the connection closes.
//   - HTTP basic auth with an API key or session hash (32 hex characters)
//     as the password and any user name, e.g. wss://apikey:<key>@host/bridge.
//   - The query parameter ?hash=<api key or session hash>, for browsers,
//     which do not reliably send credentials written in a WebSocket URL.
//
// Missing or wrong credentials get HTTP 401 with
// WWW-Authenticate: Basic realm="fleetwire" and the API's error envelope.
// A browser page of another origin must use ?hash= (basic credentials may
// be attached by the browser on its own); otherwise it gets 403.
// Options.CheckOrigin replaces that rule. The credential is checked again
// every Options.RecheckEvery; once it has ended (logout, password change,
// deleted API key, blocked user) the connection closes with 1008.
//
// # Topics
//
// A bridge topic is <device_id>/<path>, where device_id is the id a tracker
// reports with. It maps to the MQTT topic fleetwire/<device_id>/node/<path>:
//
//	bridge  dev-1/thermometer/0:1/temperature
//	MQTT    fleetwire/dev-1/node/thermometer/0:1/temperature
//
// A client only ever reads and writes topics of its user's own devices.
//
// # The default node
//
// A connection may have a default node: one of the user's devices, which
// topics without a device id address, as a Clown.Hub client writes them
// (["relay/i2c0-3b/set", {"state": false}]). It is, in this order:
//
//  1. the device named by the last config frame with a "node" member
//     (["clown.talk/-/config/set", {"node": "<device_id>"}]; null clears it);
//  2. before any such frame, the device of the bridge name: the device
//     Options.Names maps the name to, else the device whose id is the name,
//     if it is one of the user's;
//  3. else the user's only IoT node (a tracker of model fleet.NodeModel,
//     "iot_node"); a user with several has no default node.
//
// A topic whose first level is one of the user's device ids keeps
// addressing that device; any other topic goes to the default node. Data
// of the default node arrives under the node's own topic, without the
// device id (["relay/i2c0-3b", {"state": false}]); data of the user's
// other devices keeps the device id in front. Subscription patterns match
// either form. Without a default node, a topic that names no device of the
// user is refused with 11.
//
// # Frames from the server
//
//	["<device_id>/<path>", payload]
//
// for every MQTT message under fleetwire/<device_id>/node/# of one of the
// user's devices (not blocked) whose bridge topic matches one of the
// connection's patterns. A JSON payload is passed on (compacted), an empty
// one as null, anything else as a JSON string. Commands (topics ending in
// /set) are not sent back to clients; a device's acknowledgement, on the
// value topic or on <path>/ack, is an ordinary frame.
//
//	["$error", {"code": N, "description": "...", "frame": <the offending frame, or null if it was not JSON>}]
//
// answers a frame the bridge could not act on; the connection carries on.
// Codes are the API's: 5 the frame is not a JSON array of a topic string
// and a payload; 7 bad topic, wildcard in a command topic, unknown $topic,
// a topic that is not writable, a bad pattern or config, a payload over
// Options.MaxPayload (16 KiB); 11 the device is not one of the user's
// (whether it exists or not); 208 the device is blocked; 6 the broker is
// not connected or did not confirm the command within
// Options.PublishTimeout.
//
//	["$dropped", {"frames": N}]
//
// comes first when the client read too slowly and its N oldest queued
// frames were dropped (see Options.QueueLen, QueueBytes). A client that
// does not read for DefaultWriteTimeout is disconnected.
//
// # Frames from the client
//
// Config: a topic ending in config/set whose first level is not one of the
// user's devices, e.g. ["clown.talk/-/config/set", {}]. Usually the first
// frame, accepted at any time. The payload is an object (or null); its
// optional key "subscribe" replaces the connection's patterns, its
// optional key "node" sets the default node (a device id of the user's,
// or null for none; another user's device is 11). The answer is on the
// topic without /set:
//
//	["clown.talk/-/config", {"ok": true, "subscribe": ["#"], "devices": ["dev-1", ...], "node": "dev-1"}]
//
// where "node" is the default node, or null.
//
// Patterns are MQTT-style over bridge topics: "+" matches one level, "#"
// as the last level any number of levels (including none). A new
// connection has the pattern "#": everything of the user's devices.
// Examples: "dev-1/#", "+/thermometer/#", "dev-1/+/+/temperature".
//
// Commands: ["<device_id>/<path>/set", payload], e.g.
// ["dev-1/relay/i2c0-3b/set", {"state": false}], publishes the payload
// (compacted JSON) with QoS 1 on fleetwire/dev-1/node/relay/i2c0-3b/set.
// Nothing is answered on success; the device's acknowledgement arrives as
// an ordinary frame. Commands are not queued while the broker is away.
//
// Subscriptions:
//
//	["$sub", ["pattern", ...]]    add patterns (one pattern may be given as a string)
//	["$unsub", ["pattern", ...]]  remove patterns, exactly as written
//
// answered with ["$sub" or "$unsub", {"ok": true, "subscribe": [current patterns]}].
// A connection holds at most Options.MaxPatterns patterns.
//
// Frames larger than Options.MaxFrame (64 KiB) close the connection with
// 1009. Bridge.Close closes every connection with 1001.
//
// # Metrics
//
// fleetwire_bridge_connections, fleetwire_bridge_frames_total{direction="in|out"},
// fleetwire_bridge_dropped_total, fleetwire_bridge_commands_total.
package bridge

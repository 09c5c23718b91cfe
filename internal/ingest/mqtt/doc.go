// Package mqtt ingests device telemetry from an MQTT broker: the external
// broker an installation points it at, or fleetwire's embedded one
// (package broker).
//
// # Topic layout
//
// This layout is a contract: devices, gateways and other fleetwire
// packages rely on it. <device_id> is the tracker's device id; it may not
// be empty or contain '/', '+' or '#', and is at most 128 bytes.
//
// Telemetry, published by devices; the subscriber takes these at QoS 1:
//
//	fleetwire/<device_id>/position   one fix, JSON object:
//	    {"lat": 52.52, "lon": 13.405,   degrees, required
//	     "speed": 42.5,                 km/h; negative means unknown
//	     "heading": 90,                 degrees clockwise from north
//	     "alt": 34,                     metres
//	     "accuracy": 5,                 metres; negative means unknown
//	     "battery": 81,                 percent
//	     "sat": 9,                      satellites in view
//	     "ignition": true,
//	     "time": "2026-05-04T10:00:00Z"} RFC 3339, or unix seconds
//	    Every field but lat and lon is optional and may be null; unknown
//	    fields are ignored. Without time the fix is taken when received.
//
//	fleetwire/<device_id>/readings   sensor values, JSON object of name to
//	    number, string or boolean:
//	    {"fuel_level": 41.5, "temperature": 21.3, "door": "open"}
//	    Each becomes an attribute of the tracker's state ("additional"),
//	    as a string: numbers in shortest decimal form without exponent
//	    (strconv 'f', -1), booleans "true"/"false". null values are
//	    skipped. At most 256 values, names up to 128 bytes, string values
//	    up to 4096 bytes.
//
//	fleetwire/<device_id>/io         discrete inputs and outputs:
//	    {"inputs": [true, false], "outputs": [false, true]}
//	    Either list may be left out, not both; at most 64 entries each.
//	    Devices confirm output commands by reporting their outputs here.
//
//	owntracks/<user>/<device>        OwnTracks JSON. Only "_type":
//	    "location" is ingested (lat, lon, tst unix seconds, vel km/h, cog
//	    degrees, alt m, batt %, acc m; the trigger t as attribute "event",
//	    "i"/"I" as ignition on/off; ign as ignition); other types are
//	    ignored. The device id is <device>; <user> is not used.
//
//	ngp/<device_id>                  a Navixy Generic Protocol message,
//	    the protocol's own MQTT transport (see package ngp). The message's
//	    device_id must equal <device_id>. Up to 8 MiB.
//
//	fleetwire/<device_id>/node/<path...>   node data for the topic bridge.
//	    Not subscribed here and never ingested into state by this
//	    package; the bridge handles it.
//
// Published by fleetwire to devices (not by this package):
//
//	fleetwire/<device_id>/cmd/<name>         commands
//	fleetwire/<device_id>/node/<path>/set    node writes
//
// A payload on the fleetwire/ and owntracks/ topics is at most 64 KiB of
// UTF-8 JSON.
//
// # Outcome of a message
//
// Every message received is counted in
// fleetwire_ingest_total{protocol="mqtt",result=...}:
//
//	accepted        applied to the tracker's state
//	bad_request     the payload or topic does not follow the layout
//	unknown_device  no tracker has the device id
//	blocked         the tracker is blocked
//	error           the registry failed to apply it
//	ignored         a valid message that carries no fix (OwnTracks other
//	                than location)
//	discarded       an NGP message older than the device's last message,
//	                which the generic protocol discards
//
// Rejected messages are logged at debug level and otherwise dropped: a
// broker has no way to answer the device.
//
// # Sessions
//
// The subscriber reconnects on its own and subscribes again on every
// connection. With Options.ClientID set it keeps a persistent session, so
// that the broker queues QoS 1 telemetry while fleetwire is down; without
// one it uses a random client id and a clean session. Messages are
// handled one at a time in arrival order, so a device's fixes are applied
// in the order the broker delivered them.
package mqtt

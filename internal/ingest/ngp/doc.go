// Package ngp receives the Navixy Generic Protocol (NGP), the open JSON
// telematics protocol of the device documentation (versions 1.0, 1.1a and
// 1.2).
//
// # Transports
//
// The protocol defines two transports carrying the same message, one
// UTF-8 JSON object:
//
//   - HTTP/HTTPS (1.1 and 2.0): a POST with Content-Type application/json
//     and the message as its body, to the endpoint's root, port 47642 on
//     the published endpoints. NewHandler serves it; it accepts any path
//     so it can be mounted anywhere. Protocols lists the HTTP versions to
//     enable on the server, h2c included. Answers: 200 received, 400
//     invalid JSON or a value out of range, 403 unknown device_id, 500
//     server error. The protocol defines no response bodies; errors carry
//     one line of text.
//   - MQTT 3.1.1 and 5, QoS 0 or 1: the message published to
//     ngp/<device_id>. There are no responses; invalid messages are
//     silently discarded. Package mqtt subscribes to MQTTTopic and hands
//     the payloads to ParseMessage and Apply; it also drops a message whose
//     device_id differs from its topic. Broker authentication (the
//     published brokers use user name "ngp_device" and a per-device
//     password) is the broker's concern.
//
// # Messages
//
// device_id (a string of at most 64 characters) and message_time (ISO
// 8601 in UTC with a trailing Z; offsets are refused) are mandatory; every
// other attribute is optional and null counts as not reported. Predefined
// attributes are type- and range-checked as the attribute table sets out
// (latitude ±90, longitude ±180, altitude -1000…10000 m, satellites
// 0…64, speed ≥ 0, battery_level 0…100, Integer attributes whole numbers,
// enumerations from their value lists, mobile_cells and wifi_points with
// their required members); a violation rejects the whole message. Any
// other root attribute is custom and passed through unchanged. How each
// attribute maps onto a fix is described at ParseMessage.
//
// # Decisions where the documentation leaves room
//
//   - heading is documented as 1…360; 0 is accepted too, as north, since
//     devices commonly send it.
//   - The location is applied only when it is a current fix: both
//     latitude and longitude present (one without the other is invalid),
//     fix_type absent, HAS_FIX, FIX_2D or FIX_3D, and for a GNSS position
//     (source_type absent or GNSS) not fewer than 3 satellites when the
//     count is reported. The platform requires 3 satellites before it
//     stores a point; a message without a satellite count is still
//     applied. LBS and ATLAS positions skip the satellite check.
//   - The version-gated attributes (source_type and precision from 1.2,
//     custom_attributes from 1.1a) are read whatever version a message
//     declares: a receiver gains nothing by ignoring them. version must
//     be a string if present; unknown versions are accepted.
//   - Fix.Time is message_time. gnss_time is kept as an attribute.
//   - The platform discards a message whose message_time is earlier than
//     the device's previous message; so does Apply (ErrOutOfOrder),
//     comparing with the tracker's last update at one-second resolution.
//     Over HTTP such a message is still answered 200, like any message
//     that was received but not stored.
//   - NGP has no ignition attribute: the predefined events 605 (ignition
//     on) and 604 (ignition off) set the ignition state.
//   - hdop/vdop/pdop stay attributes: a dilution of precision has no unit
//     and is not the accuracy in metres a fix carries; precision is.
//   - input_status/output_status bitmasks become at least 8 inputs or
//     outputs, more in whole bytes when higher bits are set.
//   - A message may be up to 8 MiB (a blob attribute up to 1 MiB, other
//     strings up to 10 KiB), larger bodies get 400.
//   - A blocked tracker is answered 403 like an unknown device.
//
// Every HTTP request is counted in
// fleetwire_ingest_total{protocol="ngp",result=...} with result accepted,
// bad_request, unknown_device, blocked, error or discarded (out of order).
package ngp

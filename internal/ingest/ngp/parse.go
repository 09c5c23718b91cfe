package ngp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/state"
)

// ErrInvalid is wrapped by every ParseMessage error: the message is not
// one UTF-8 JSON object, a mandatory attribute is missing, or an attribute
// has the wrong type or a value outside its range. Over HTTP it is
// answered 400; over MQTT the message is dropped.
var ErrInvalid = errors.New("ngp: invalid message")

// Limits from the protocol's data types.
const (
	// MaxDeviceID is the longest device_id, in characters.
	MaxDeviceID = 64
	// MaxString is the longest value of a String attribute, in bytes.
	MaxString = 10 << 10
	// MaxBlob is the longest Base64 blob, which any custom string
	// attribute may be, in bytes.
	MaxBlob = 1 << 20
	// MaxMessage is the largest message accepted, in bytes: room for a
	// few blobs beside the rest.
	MaxMessage = 8 << 20
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// ParseMessage reads one NGP message into a fix received at now.
//
// Fix.DeviceID is device_id and Fix.Time is message_time. Location
// attributes become the fix's position (latitude, longitude), Alt
// (altitude), Speed (speed, km/h), Heading (heading), Satellites
// (satellites) and Accuracy (precision, metres); battery_level is
// Battery; input_status and output_status are expanded from bitmasks into
// Inputs and Outputs; event_id 604 and 605 set Ignition off and on. Every
// other attribute is kept in Attributes under its NGP name: hdop, vdop,
// pdop, fix_type, source_type and gnss_time from the location object;
// event_id (with its description under "event" for predefined ids);
// mobile_cells and wifi_points as compact JSON; the sensor, voltage,
// mileage, identification and custom attributes with their values as
// strings (numbers in shortest decimal form, booleans "true"/"false",
// objects and arrays as compact JSON). Structured custom_attributes
// entries are kept under their "type" names.
//
// The position is left out, while the rest of the message is kept, when
// the device reports no current fix: fix_type NO_FIX or
// LAST_KNOWN_POSITION, or a GNSS position with fewer than 3 satellites.
func ParseMessage(payload []byte, now time.Time) (*state.Fix, error) {
	if len(payload) > MaxMessage {
		return nil, invalid("message larger than %d bytes", MaxMessage)
	}
	if !utf8.Valid(payload) {
		return nil, invalid("message is not UTF-8")
	}
	var root map[string]json.RawMessage
	if err := json.Unmarshal(payload, &root); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, invalid("message must be a JSON object")
		}
		return nil, invalid("malformed JSON: %v", err)
	}
	if root == nil {
		return nil, invalid("message must be a JSON object")
	}
	m := message{fix: &state.Fix{ReceivedAt: now}}
	if err := m.parse(root); err != nil {
		return nil, err
	}
	return m.fix, nil
}

type message struct {
	fix *state.Fix
}

func (m *message) attr(name, value string) {
	if m.fix.Attributes == nil {
		m.fix.Attributes = make(map[string]string)
	}
	m.fix.Attributes[name] = value
}

func (m *message) parse(root map[string]json.RawMessage) error {
	id, ok, err := str(root["device_id"], "device_id", MaxString)
	switch {
	case err != nil:
		return err
	case !ok || id == "":
		return invalid("device_id is required")
	case utf8.RuneCountInString(id) > MaxDeviceID:
		return invalid("device_id is longer than %d characters", MaxDeviceID)
	}
	m.fix.DeviceID = id
	t, ok, err := timestamp(root["message_time"], "message_time")
	if err != nil {
		return err
	}
	if !ok {
		return invalid("message_time is required")
	}
	m.fix.Time = t
	if _, _, err := str(root["version"], "version", MaxString); err != nil {
		return err
	}
	for name, raw := range root {
		if err := m.attribute(name, raw); err != nil {
			return err
		}
	}
	return nil
}

// attribute handles one root attribute other than the mandatory ones.
func (m *message) attribute(name string, raw json.RawMessage) error {
	f := m.fix
	switch name {
	case "device_id", "message_time", "version":
		return nil
	case "location":
		return m.location(raw)
	case "event_id":
		id, ok, err := integer(raw, name, 0, math.MaxInt64)
		if !ok || err != nil {
			return err
		}
		m.attr("event_id", strconv.FormatInt(id, 10))
		if n := EventName(id); n != "" {
			m.attr("event", n)
		}
		switch id {
		case EventIgnitionOn, EventIgnitionOff:
			on := id == EventIgnitionOn
			f.Ignition = &on
		}
		return nil
	case "mobile_cells":
		return m.list(name, raw, checkCell)
	case "wifi_points":
		return m.list(name, raw, checkWiFi)
	case "is_moving":
		b, ok, err := boolean(raw, name)
		if ok && err == nil {
			m.attr(name, strconv.FormatBool(b))
		}
		return err
	case "hardware_mileage":
		return m.floatAttr(name, raw, 0, math.Inf(1))
	case "battery_voltage", "board_voltage", "temperature_internal", "humidity_internal":
		return m.floatAttr(name, raw, math.Inf(-1), math.Inf(1))
	case "battery_level":
		v, ok, err := integer(raw, name, 0, 100)
		if ok && err == nil {
			b := float64(v)
			f.Battery = &b
		}
		return err
	case "input_status":
		l, err := bitmask(raw, name)
		if l != nil {
			f.Inputs = l
		}
		return err
	case "output_status":
		l, err := bitmask(raw, name)
		if l != nil {
			f.Outputs = l
		}
		return err
	case "hardware_key", "vin":
		s, ok, err := str(raw, name, MaxString)
		if ok && err == nil {
			m.attr(name, s)
		}
		return err
	case "custom_attributes":
		return m.structured(raw)
	}
	switch {
	case indexed(name, "analog_"), indexed(name, "temperature_"), indexed(name, "humidity_"),
		indexed(name, "fuel_level_"), indexed(name, "fuel_temperature_"):
		return m.floatAttr(name, raw, math.Inf(-1), math.Inf(1))
	case indexed(name, "impulse_counter_"):
		if _, _, err := integer(raw, name, math.MinInt64, math.MaxInt64); err != nil {
			return err
		}
		return m.custom(name, raw)
	}
	return m.custom(name, raw)
}

// indexed reports whether name is prefix followed by a sensor index from 1
// to 16.
func indexed(name, prefix string) bool {
	n, ok := strings.CutPrefix(name, prefix)
	if !ok || n == "" || n[0] == '0' || len(n) > 2 {
		return false
	}
	i, err := strconv.Atoi(n)
	return err == nil && i >= 1 && i <= 16
}

var fixTypes = map[string]bool{"HAS_FIX": true, "NO_FIX": false, "LAST_KNOWN_POSITION": false, "FIX_2D": true, "FIX_3D": true}

var sourceTypes = map[string]bool{"GNSS": true, "LBS": true, "ATLAS": true}

func (m *message) location(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var loc map[string]json.RawMessage
	if kindOf(raw) != '{' || json.Unmarshal(raw, &loc) != nil {
		return invalid("location must be an object")
	}
	f := m.fix
	lat, hasLat, err := float(loc["latitude"], "location.latitude", -90, 90)
	if err != nil {
		return err
	}
	lng, hasLng, err := float(loc["longitude"], "location.longitude", -180, 180)
	if err != nil {
		return err
	}
	if hasLat != hasLng {
		return invalid("location needs both latitude and longitude")
	}
	if v, ok, err := float(loc["altitude"], "location.altitude", -1000, 10000); err != nil {
		return err
	} else if ok {
		f.Alt = &v
	}
	if v, ok, err := float(loc["speed"], "location.speed", 0, math.Inf(1)); err != nil {
		return err
	} else if ok {
		f.Speed = &v
	}
	if v, ok, err := integer(loc["heading"], "location.heading", 0, 360); err != nil {
		return err
	} else if ok {
		h := float64(v)
		f.Heading = &h
	}
	sats, hasSats, err := integer(loc["satellites"], "location.satellites", 0, 64)
	if err != nil {
		return err
	}
	if hasSats {
		n := int(sats)
		f.Satellites = &n
	}
	if v, ok, err := integer(loc["precision"], "location.precision", 0, math.MaxInt32); err != nil {
		return err
	} else if ok {
		p := float64(v)
		f.Accuracy = &p
	}
	for _, dop := range []string{"hdop", "vdop", "pdop"} {
		v, ok, err := float(loc[dop], "location."+dop, 0, math.Inf(1))
		if err != nil {
			return err
		}
		if ok {
			m.attr(dop, formatFloat(v))
		}
	}
	if t, ok, err := timestamp(loc["gnss_time"], "location.gnss_time"); err != nil {
		return err
	} else if ok {
		m.attr("gnss_time", t.Format(time.RFC3339Nano))
	}
	fixed := true
	fixType, ok, err := enum(loc["fix_type"], "location.fix_type", fixTypes)
	if err != nil {
		return err
	}
	if ok {
		m.attr("fix_type", fixType)
		fixed = fixTypes[fixType]
	}
	source, ok, err := enum(loc["source_type"], "location.source_type", sourceTypes)
	if err != nil {
		return err
	}
	if ok {
		m.attr("source_type", source)
	} else {
		source = "GNSS"
	}
	if source == "GNSS" && hasSats && sats < 3 {
		fixed = false
	}
	if hasLat && fixed {
		f.Location = &fleet.Location{Lat: lat, Lng: lng}
		f.LBS = source == "LBS"
	}
	return nil
}

// list validates an array of objects with check and keeps it as compact
// JSON.
func (m *message) list(name string, raw json.RawMessage, check func(map[string]json.RawMessage, string) error) error {
	if isNull(raw) {
		return nil
	}
	var items []json.RawMessage
	if kindOf(raw) != '[' || json.Unmarshal(raw, &items) != nil {
		return invalid("%s must be an array of objects", name)
	}
	for i, it := range items {
		var obj map[string]json.RawMessage
		if kindOf(it) != '{' || json.Unmarshal(it, &obj) != nil {
			return invalid("%s must be an array of objects", name)
		}
		if err := check(obj, fmt.Sprintf("%s[%d]", name, i)); err != nil {
			return err
		}
	}
	return m.custom(name, raw)
}

var cellTypes = map[string]bool{"GSM": true, "CDMA": true, "WCDMA": true, "LTE": true, "NR": true}

func checkCell(c map[string]json.RawMessage, at string) error {
	for _, k := range []string{"mcc", "mnc", "lac", "cell_id"} {
		_, ok, err := integer(c[k], at+"."+k, 0, math.MaxInt64)
		if err != nil {
			return err
		}
		if !ok {
			return invalid("%s.%s is required", at, k)
		}
	}
	if _, _, err := integer(c["rssi"], at+".rssi", math.MinInt32, 0); err != nil {
		return err
	}
	_, _, err := enum(c["type"], at+".type", cellTypes)
	return err
}

func checkWiFi(p map[string]json.RawMessage, at string) error {
	mac, ok, err := str(p["mac"], at+".mac", MaxString)
	if err != nil {
		return err
	}
	if !ok || !isMAC(mac) {
		return invalid("%s.mac must be a MAC address like 12:33:FF:45:04:33", at)
	}
	_, ok, err = integer(p["rssi"], at+".rssi", math.MinInt32, 0)
	if err != nil {
		return err
	}
	if !ok {
		return invalid("%s.rssi is required", at)
	}
	if _, _, err := integer(p["age"], at+".age", 0, math.MaxInt64); err != nil {
		return err
	}
	_, _, err = integer(p["channel"], at+".channel", 0, math.MaxInt32)
	return err
}

// isMAC reports whether s is six colon-delimited hexadecimal bytes.
func isMAC(s string) bool {
	if len(s) != 17 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i%3 == 2 {
			if s[i] != ':' {
				return false
			}
			continue
		}
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// structured keeps custom_attributes entries under their type names.
func (m *message) structured(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var items []json.RawMessage
	if kindOf(raw) != '[' || json.Unmarshal(raw, &items) != nil {
		return invalid("custom_attributes must be an array of objects")
	}
	for i, it := range items {
		var obj map[string]json.RawMessage
		if kindOf(it) != '{' || json.Unmarshal(it, &obj) != nil {
			return invalid("custom_attributes must be an array of objects")
		}
		at := fmt.Sprintf("custom_attributes[%d]", i)
		name, ok, err := str(obj["type"], at+".type", MaxString)
		if err != nil {
			return err
		}
		if !ok || name == "" {
			return invalid("%s.type is required", at)
		}
		if _, _, err := integer(obj["id"], at+".id", math.MinInt64, math.MaxInt64); err != nil {
			return err
		}
		if _, _, err := str(obj["units"], at+".units", MaxString); err != nil {
			return err
		}
		v, present := obj["value"]
		if !present {
			return invalid("%s.value is required", at)
		}
		if err := m.custom(name, v); err != nil {
			return err
		}
	}
	return nil
}

func (m *message) floatAttr(name string, raw json.RawMessage, lo, hi float64) error {
	if _, _, err := float(raw, name, lo, hi); err != nil {
		return err
	}
	return m.custom(name, raw)
}

// custom keeps a value of any type as an attribute.
func (m *message) custom(name string, raw json.RawMessage) error {
	if name == "" {
		return invalid("attribute names may not be empty")
	}
	switch kindOf(raw) {
	case 'n':
		return nil
	case 't', 'f':
		m.attr(name, string(bytes.TrimSpace(raw)))
	case '"':
		s, _, err := str(raw, name, MaxBlob)
		if err != nil {
			return err
		}
		m.attr(name, s)
	case '{', '[':
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			return invalid("%s: %v", name, err)
		}
		m.attr(name, b.String())
	default:
		n, err := number(raw, name)
		if err != nil {
			return err
		}
		m.attr(name, formatNumber(n))
	}
	return nil
}

// kindOf returns the first byte of a JSON value: '"', '{', '[', 't',
// 'f', 'n' or a number's first character; 0 for an absent value.
func kindOf(raw json.RawMessage) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// isNull reports an absent or null value: both mean "not reported".
func isNull(raw json.RawMessage) bool {
	k := kindOf(raw)
	return k == 0 || k == 'n'
}

func str(raw json.RawMessage, name string, limit int) (string, bool, error) {
	if isNull(raw) {
		return "", false, nil
	}
	var s string
	if kindOf(raw) != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false, invalid("%s must be a string", name)
	}
	if len(s) > limit {
		return "", false, invalid("%s is longer than %d bytes", name, limit)
	}
	return s, true, nil
}

func boolean(raw json.RawMessage, name string) (bool, bool, error) {
	switch kindOf(raw) {
	case 0, 'n':
		return false, false, nil
	case 't':
		return true, true, nil
	case 'f':
		return false, true, nil
	}
	return false, false, invalid("%s must be true or false", name)
}

func number(raw json.RawMessage, name string) (json.Number, error) {
	var n json.Number
	if k := kindOf(raw); !(k == '-' || k >= '0' && k <= '9') || json.Unmarshal(raw, &n) != nil {
		return "", invalid("%s must be a number", name)
	}
	return n, nil
}

// float reads a Float attribute within [lo, hi].
func float(raw json.RawMessage, name string, lo, hi float64) (float64, bool, error) {
	if isNull(raw) {
		return 0, false, nil
	}
	n, err := number(raw, name)
	if err != nil {
		return 0, false, err
	}
	v, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, false, invalid("%s is out of range", name)
	}
	if v < lo || v > hi {
		return 0, false, invalid("%s must be from %s to %s", name, formatFloat(lo), formatFloat(hi))
	}
	return v, true, nil
}

// integer reads an Integer attribute within [lo, hi]. A number written
// with a fraction or exponent is accepted when its value is whole.
func integer(raw json.RawMessage, name string, lo, hi int64) (int64, bool, error) {
	if isNull(raw) {
		return 0, false, nil
	}
	n, err := number(raw, name)
	if err != nil {
		return 0, false, err
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(n), 64)
		if ferr != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
			return 0, false, invalid("%s must be a whole number", name)
		}
		v = int64(f)
	}
	if v < lo || v > hi {
		return 0, false, invalid("%s must be from %d to %d", name, lo, hi)
	}
	return v, true, nil
}

// bitmask expands an unsigned bitmask of up to 8 bytes: bit 0 is the
// first entry. The list is as long as the highest set bit needs, rounded
// up to whole bytes, and at least 8 entries.
func bitmask(raw json.RawMessage, name string) ([]bool, error) {
	if isNull(raw) {
		return nil, nil
	}
	n, err := number(raw, name)
	if err != nil {
		return nil, err
	}
	v, err := strconv.ParseUint(string(n), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(n), 64)
		if ferr != nil || f != math.Trunc(f) || f < 0 || f >= 1<<64 {
			return nil, invalid("%s must be a bitmask from 0 to 2^64-1", name)
		}
		v = uint64(f)
	}
	size := max(8, (bits.Len64(v)+7)/8*8)
	out := make([]bool, size)
	for i := range out {
		out[i] = v&(1<<i) != 0
	}
	return out, nil
}

// timestamp reads an ISO 8601 UTC timestamp; the protocol does not allow
// offsets, only the trailing Z.
func timestamp(raw json.RawMessage, name string) (time.Time, bool, error) {
	s, ok, err := str(raw, name, 64)
	if !ok || err != nil {
		if err != nil {
			err = invalid("%s must be an ISO 8601 UTC timestamp", name)
		}
		return time.Time{}, false, err
	}
	if !strings.HasSuffix(s, "Z") {
		return time.Time{}, false, invalid("%s must be in UTC, ending in Z", name)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false, invalid("%s must be an ISO 8601 UTC timestamp like 2024-09-02T23:59:59Z", name)
	}
	if t.Year() < 1970 {
		// Year 1 is Go's zero time, which means "no time" downstream.
		return time.Time{}, false, invalid("%s is before 1970", name)
	}
	return t.UTC(), true, nil
}

func enum(raw json.RawMessage, name string, allowed map[string]bool) (string, bool, error) {
	s, ok, err := str(raw, name, 64)
	if !ok || err != nil {
		return "", false, err
	}
	if _, known := allowed[s]; !known {
		return "", false, invalid("%s has unknown value %q", name, s)
	}
	return s, true, nil
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// formatNumber writes integers exactly and other numbers in shortest
// decimal form.
func formatNumber(n json.Number) string {
	s := string(n)
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return s
	}
	if _, err := strconv.ParseUint(s, 10, 64); err == nil {
		return s
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	return formatFloat(f)
}

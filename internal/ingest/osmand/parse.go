package osmand

import (
	"encoding/json"
	"errors"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/state"
)

// Limits on what one message may carry.
const (
	// MaxBody is the largest request body accepted, in bytes.
	MaxBody = 64 << 10
	// MaxAttributes is how many custom attributes a message keeps; the
	// rest are dropped (the first MaxAttributes by key order are kept).
	MaxAttributes = 32
	// MaxAttrKey is the longest attribute name kept, in bytes; longer
	// names are dropped.
	MaxAttrKey = 64
	// MaxAttrValue is the longest attribute value kept, in bytes; longer
	// values are cut at a UTF-8 boundary.
	MaxAttrValue = 256
	// MaxListValue is the longest mobile_cells or wifi_points value, in
	// bytes: entries that do not fit are left out.
	MaxListValue = 1024
)

// Unit conversions.
const (
	knotToKmh = 1.852 // classic OsmAnd speed is in knots
	msToKmh   = 3.6   // JSON speed is in metres per second
)

// latest accepted timestamp, 9999-12-31T23:59:59Z, in unix seconds.
const maxUnix = 253402300799

// ErrMissingID is returned for a message without a device id.
var ErrMissingID = errors.New("missing device id")

// FieldError reports a parameter whose value could not be used.
type FieldError struct {
	Field string
}

func (e *FieldError) Error() string { return "invalid " + e.Field }

func invalid(field string) error { return &FieldError{Field: field} }

// Parse reads a message in the classic OsmAnd protocol, as query string or
// form parameters, received at now. Parameter names are case-sensitive;
// an empty value counts as absent. cell and wifi may be repeated, one
// value per cell tower or access point; of any other repeated parameter
// the first value counts.
//
//	id, deviceid       device id (required)
//	lat, lon           position in WGS 84 degrees; both or neither
//	location           "lat,lon", used when lat and lon are absent
//	timestamp          unix seconds (may have a fraction), unix milliseconds
//	                   when above 1e12, RFC 3339 / ISO 8601 with or without
//	                   zone (UTC when absent), or "2006-01-02 15:04:05" (UTC);
//	                   absent means the time of receipt
//	speed              knots, as Traccar Client sends it; stored in km/h
//	                   (×1.852); a negative value means unknown
//	bearing, heading   degrees; a negative value means unknown
//	altitude           metres
//	accuracy           metres (the state's gps.precision); a negative value
//	                   means unknown
//	hdop               horizontal dilution of precision, a number without
//	                   unit: kept as attribute "hdop", never as precision
//	batt               battery level in percent
//	sat                satellites in view (0–1000)
//	ignition           true/false/1/0
//	charge             kept as attribute "charge", "true" or "false" when
//	                   it is a boolean
//	cell               "mcc,mnc,lac,cid[,rssi]", integers: every value goes
//	                   into attribute "mobile_cells"
//	wifi               "mac,rssi" ("-" in the MAC read as ":"): every value
//	                   goes into attribute "wifi_points"
//
// mobile_cells and wifi_points are JSON arrays in the shape the generic
// protocol (package ngp) keeps them, [{"mcc":257,"mnc":2,"lac":16,
// "cell_id":2224,"rssi":-90}] and [{"mac":"00:14:22:01:23:45","rssi":-80}],
// up to MaxListValue bytes. Any other parameter becomes a string
// attribute, within MaxAttributes, MaxAttrKey and MaxAttrValue. A known
// parameter with a malformed value, and a position out of range, are
// errors (*FieldError); so is a missing id (ErrMissingID).
func Parse(q url.Values, now time.Time) (*state.Fix, error) {
	f := &state.Fix{ReceivedAt: now}
	var (
		id, devid, lat, lon, loc string
		bearing, heading, acc    string
		lists                    []listAttr
		extra                    []string // keys of custom attributes
	)
	for k, vs := range q {
		if k == "cell" || k == "wifi" {
			l, err := parseList(k, vs)
			if err != nil {
				return nil, err
			}
			if l.value != "" {
				lists = append(lists, l)
			}
			continue
		}
		if len(vs) == 0 || vs[0] == "" {
			continue
		}
		v := vs[0]
		var err error
		switch k {
		case "id":
			id = v
		case "deviceid":
			devid = v
		case "lat":
			lat = v
		case "lon":
			lon = v
		case "location":
			loc = v
		case "timestamp":
			f.Time, err = parseTime(v)
		case "speed":
			f.Speed, err = optNonNeg(k, v, knotToKmh)
		case "bearing":
			bearing = v
		case "heading":
			heading = v
		case "altitude":
			var a float64
			if a, err = number(k, v); err == nil {
				f.Alt = &a
			}
		case "accuracy":
			acc = v
		case "hdop":
			if _, err = number(k, v); err == nil {
				extra = append(extra, k)
			}
		case "batt":
			var b float64
			if b, err = number(k, v); err == nil {
				f.Battery = &b
			}
		case "sat":
			n, perr := strconv.Atoi(v)
			if perr != nil || n < 0 || n > 1000 {
				err = invalid(k)
			} else {
				f.Satellites = &n
			}
		case "ignition":
			b, perr := strconv.ParseBool(v)
			if perr != nil {
				err = invalid(k)
			} else {
				f.Ignition = &b
			}
		default:
			extra = append(extra, k)
		}
		if err != nil {
			return nil, err
		}
	}
	if f.DeviceID = strings.TrimSpace(id); f.DeviceID == "" {
		f.DeviceID = strings.TrimSpace(devid)
	}
	if f.DeviceID == "" {
		return nil, ErrMissingID
	}
	if err := parsePosition(f, lat, lon, loc); err != nil {
		return nil, err
	}
	if bearing != "" {
		if heading != "" {
			extra = append(extra, "heading")
		}
		heading = bearing
	}
	if heading != "" {
		h, err := optNonNeg("heading", heading, 1)
		if err != nil {
			return nil, err
		}
		f.Heading = h
	}
	if acc != "" {
		a, err := optNonNeg("accuracy", acc, 1)
		if err != nil {
			return nil, err
		}
		f.Accuracy = a
	}
	if len(extra) > 0 || len(lists) > 0 {
		if len(extra) > MaxAttributes {
			slices.Sort(extra)
		}
		f.Attributes = make(map[string]string, min(len(extra)+len(lists), MaxAttributes))
		for _, l := range lists {
			f.Attributes[l.name] = l.value
		}
		for _, k := range extra {
			v := q.Get(k)
			if k == "charge" {
				if b, err := strconv.ParseBool(v); err == nil {
					v = strconv.FormatBool(b)
				}
			}
			if !setAttr(f.Attributes, k, v) {
				break
			}
		}
		if len(f.Attributes) == 0 {
			f.Attributes = nil
		}
	}
	return f, nil
}

// listAttr is a JSON array attribute built from a repeated parameter.
type listAttr struct{ name, value string }

// parseList turns the values of cell or wifi into attribute mobile_cells
// or wifi_points (see Parse). Empty values are skipped; entries beyond
// MaxListValue are left out.
func parseList(param string, vs []string) (listAttr, error) {
	l := listAttr{name: "mobile_cells"}
	if param == "wifi" {
		l.name = "wifi_points"
	}
	buf := make([]byte, 0, 64*len(vs))
	buf = append(buf, '[')
	for _, v := range vs {
		if v == "" {
			continue
		}
		entry, err := listEntry(param, v)
		if err != nil {
			return l, err
		}
		if len(buf)+len(entry)+2 > MaxListValue {
			break
		}
		if len(buf) > 1 {
			buf = append(buf, ',')
		}
		buf = append(buf, entry...)
	}
	if len(buf) > 1 {
		l.value = string(append(buf, ']'))
	}
	return l, nil
}

// listEntry is one cell tower ("mcc,mnc,lac,cid[,rssi]") or access point
// ("mac,rssi") as a JSON object.
func listEntry(param, v string) ([]byte, error) {
	parts := strings.Split(v, ",")
	ints := func(names []string, vals []string) ([]byte, bool) {
		out := []byte{'{'}
		for i, name := range names {
			n, err := strconv.ParseInt(strings.TrimSpace(vals[i]), 10, 64)
			if err != nil || !sane(float64(n)) {
				return nil, false
			}
			if len(out) > 1 {
				out = append(out, ',')
			}
			out = append(out, '"')
			out = append(out, name...)
			out = append(out, '"', ':')
			out = strconv.AppendInt(out, n, 10)
		}
		return append(out, '}'), true
	}
	if param == "cell" {
		names := []string{"mcc", "mnc", "lac", "cell_id", "rssi"}
		if len(parts) < 4 || len(parts) > 5 {
			return nil, invalid(param)
		}
		e, ok := ints(names[:len(parts)], parts)
		if !ok {
			return nil, invalid(param)
		}
		return e, nil
	}
	if len(parts) != 2 {
		return nil, invalid(param)
	}
	mac := strings.ReplaceAll(strings.TrimSpace(parts[0]), "-", ":")
	if mac == "" || len(mac) > 64 || !utf8.ValidString(mac) {
		return nil, invalid(param)
	}
	rssi, ok := ints([]string{"rssi"}, parts[1:])
	if !ok {
		return nil, invalid(param)
	}
	mj, _ := json.Marshal(mac)
	e := append([]byte(`{"mac":`), mj...)
	e = append(e, ',')
	return append(e, rssi[1:]...), nil
}

// parsePosition sets f.Location from lat and lon, or from loc ("lat,lon")
// when both are empty.
func parsePosition(f *state.Fix, lat, lon, loc string) error {
	if lat == "" && lon == "" && loc != "" {
		var ok bool
		lat, lon, ok = strings.Cut(loc, ",")
		if !ok || lat == "" || lon == "" {
			return invalid("location")
		}
		lat, lon = strings.TrimSpace(lat), strings.TrimSpace(lon)
	}
	if lat == "" && lon == "" {
		return nil
	}
	la, err := number("lat", lat)
	if err != nil {
		return err
	}
	lo, err := number("lon", lon)
	if err != nil {
		return err
	}
	return setLocation(f, la, lo)
}

func setLocation(f *state.Fix, lat, lon float64) error {
	if math.IsNaN(lat) || lat < -90 || lat > 90 {
		return invalid("lat")
	}
	if math.IsNaN(lon) || lon < -180 || lon > 180 {
		return invalid("lon")
	}
	f.Location = &fleet.Location{Lat: lat, Lng: lon}
	return nil
}

// maxMagnitude bounds every number a message carries, so that later
// conversions to int stay exact.
const maxMagnitude = 1e9

// number parses a decimal number within ±maxMagnitude.
func number(field, s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !sane(v) {
		return 0, invalid(field)
	}
	return v, nil
}

// sane reports whether v is a number within ±maxMagnitude.
func sane(v float64) bool { return v >= -maxMagnitude && v <= maxMagnitude }

// optNonNeg parses a number and scales it; a negative value, which
// trackers send for "unknown", gives nil.
func optNonNeg(field, s string, scale float64) (*float64, error) {
	v, err := number(field, s)
	if err != nil {
		return nil, err
	}
	if v < 0 {
		return nil, nil
	}
	v *= scale
	return &v, nil
}

// setAttr stores one custom attribute within the limits. It reports false
// once the map is full.
func setAttr(m map[string]string, k, v string) bool {
	if len(m) >= MaxAttributes {
		return false
	}
	if !utf8.ValidString(k) {
		k = strings.ToValidUTF8(k, "\uFFFD")
	}
	if k == "" || len(k) > MaxAttrKey {
		return true
	}
	if _, dup := m[k]; dup {
		return true
	}
	m[k] = clip(v)
	return true
}

// clip cuts v to MaxAttrValue bytes without splitting a UTF-8 sequence;
// invalid UTF-8 is replaced first.
func clip(v string) string {
	if !utf8.ValidString(v) {
		v = strings.ToValidUTF8(v, "\uFFFD")
	}
	if len(v) <= MaxAttrValue {
		return v
	}
	i := MaxAttrValue
	for i > 0 && !utf8.RuneStart(v[i]) {
		i--
	}
	return v[:i]
}

// Timestamp layouts tried in order; those without a zone are UTC.
var timeLayouts = [...]string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
}

// parseTime reads a timestamp: unix seconds or milliseconds, or a date
// and time in one of timeLayouts.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, ok, err := parseUnix(s); ok {
		return t, err
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	// An unescaped "+" of a zone offset arrives as a space.
	if i := strings.LastIndexByte(s, ' '); i > 10 {
		fixed := s[:i] + "+" + s[i+1:]
		if t, err := time.Parse(time.RFC3339Nano, fixed); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, invalid("timestamp")
}

// parseUnix reads "seconds[.fraction]", taken as milliseconds when the
// whole part is above 1e12. ok is false when s is not of that shape.
func parseUnix(s string) (t time.Time, ok bool, err error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || !digits(whole) || !digits(frac) {
		return time.Time{}, false, nil
	}
	if len(whole) > 15 {
		return time.Time{}, true, invalid("timestamp")
	}
	n, _ := strconv.ParseInt(whole, 10, 64)
	unit := int64(time.Second)
	if n > 1e12 {
		unit = int64(time.Millisecond)
	}
	var sub int64 // nanoseconds of the fraction
	for i, scale := 0, unit/10; i < len(frac) && scale > 0; i, scale = i+1, scale/10 {
		sub += int64(frac[i]-'0') * scale
	}
	sec, nsec := n, sub
	if unit == int64(time.Millisecond) {
		sec, nsec = n/1000, (n%1000)*int64(time.Millisecond)+sub
	}
	if sec > maxUnix {
		return time.Time{}, true, invalid("timestamp")
	}
	return time.Unix(sec, nsec).UTC(), true, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// jsonBody is the JSON form newer Traccar Client versions (9.0 and later)
// POST: the location object of the background location library they use.
type jsonBody struct {
	DeviceID jsonScalar    `json:"device_id"`
	Location *jsonLocation `json:"location"`
}

type jsonLocation struct {
	Timestamp jsonScalar `json:"timestamp"`
	Coords    *struct {
		Latitude  *float64 `json:"latitude"`
		Longitude *float64 `json:"longitude"`
		Accuracy  *float64 `json:"accuracy"`
		Speed     *float64 `json:"speed"`
		Heading   *float64 `json:"heading"`
		Altitude  *float64 `json:"altitude"`
	} `json:"coords"`
	IsMoving *bool    `json:"is_moving"`
	Mock     *bool    `json:"mock"`
	Odometer *float64 `json:"odometer"`
	Event    string   `json:"event"`
	Battery  *struct {
		Level      *float64 `json:"level"`
		IsCharging *bool    `json:"is_charging"`
	} `json:"battery"`
	Activity *struct {
		Type string `json:"type"`
	} `json:"activity"`
	Extras map[string]json.RawMessage `json:"extras"`
}

// jsonScalar takes a JSON string or number as its text.
type jsonScalar string

func (s *jsonScalar) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 0 && b[0] == '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = jsonScalar(v)
	case string(b) == "null":
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9'):
		*s = jsonScalar(b)
	default:
		return errors.New("want a string or a number")
	}
	return nil
}

// ParseJSON reads a message in the JSON form of the protocol, received at
// now:
//
//	{"device_id": "...",                    required (a string or number)
//	 "location": {
//	   "timestamp": "2024-05-01T10:00:00.000Z",   ISO 8601, or unix s/ms
//	   "coords": {"latitude", "longitude",   degrees; both or neither
//	              "accuracy",                metres
//	              "speed",                   m/s, stored in km/h (×3.6)
//	              "heading",                 degrees
//	              "altitude"},               metres
//	   "is_moving": bool,                    attribute "motion"
//	   "mock": bool,                         attribute "mock" (a simulated location)
//	   "odometer": metres,                   attribute "odometer"
//	   "event": "motionchange",              attribute "event"
//	   "battery": {"level": 0..1,            stored in percent (×100)
//	               "is_charging": bool},     attribute "charge"
//	   "activity": {"type": "in_vehicle"},   attribute "activity"
//	   "extras": {...}}}                     each member an attribute
//
// Negative accuracy, speed, heading and battery level mean unknown, as the
// location library reports them, and are left out. A battery level above 1
// is taken as a percentage already. Extras keep string values as they are
// and other values as JSON text. Attributes obey the same limits as in
// Parse. A "location" that is an array (a batch) is not accepted.
func ParseJSON(body []byte, now time.Time) (*state.Fix, error) {
	var b jsonBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, invalid("json body")
	}
	f := &state.Fix{ReceivedAt: now, DeviceID: strings.TrimSpace(string(b.DeviceID))}
	if f.DeviceID == "" {
		return nil, ErrMissingID
	}
	l := b.Location
	if l == nil {
		return f, nil
	}
	var err error
	if f.Time, err = parseTime(string(l.Timestamp)); err != nil {
		return nil, err
	}
	if c := l.Coords; c != nil {
		for _, p := range [...]struct {
			name string
			v    *float64
		}{{"lat", c.Latitude}, {"lon", c.Longitude}, {"accuracy", c.Accuracy}, {"speed", c.Speed}, {"heading", c.Heading}, {"altitude", c.Altitude}} {
			if p.v != nil && !sane(*p.v) {
				return nil, invalid(p.name)
			}
		}
		switch {
		case c.Latitude != nil && c.Longitude != nil:
			if err := setLocation(f, *c.Latitude, *c.Longitude); err != nil {
				return nil, err
			}
		case c.Latitude != nil:
			return nil, invalid("lon")
		case c.Longitude != nil:
			return nil, invalid("lat")
		}
		f.Accuracy = nonNeg(c.Accuracy, 1)
		f.Speed = nonNeg(c.Speed, msToKmh)
		f.Heading = nonNeg(c.Heading, 1)
		f.Alt = c.Altitude
	}
	if bat := l.Battery; bat != nil && bat.Level != nil && *bat.Level >= 0 {
		v := *bat.Level
		if !sane(v) {
			return nil, invalid("battery")
		}
		if v <= 1 {
			v *= 100
		}
		f.Battery = &v
	}

	n := len(l.Extras)
	if l.IsMoving != nil {
		n++
	}
	if l.Mock != nil {
		n++
	}
	if l.Odometer != nil && sane(*l.Odometer) {
		n++
	}
	if l.Event != "" {
		n++
	}
	if l.Battery != nil && l.Battery.IsCharging != nil {
		n++
	}
	if l.Activity != nil && l.Activity.Type != "" {
		n++
	}
	if n == 0 {
		return f, nil
	}
	m := make(map[string]string, min(n, MaxAttributes))
	if l.IsMoving != nil {
		setAttr(m, "motion", strconv.FormatBool(*l.IsMoving))
	}
	if l.Mock != nil {
		setAttr(m, "mock", strconv.FormatBool(*l.Mock))
	}
	if l.Odometer != nil && sane(*l.Odometer) {
		setAttr(m, "odometer", strconv.FormatFloat(*l.Odometer, 'f', -1, 64))
	}
	if l.Event != "" {
		setAttr(m, "event", l.Event)
	}
	if l.Battery != nil && l.Battery.IsCharging != nil {
		setAttr(m, "charge", strconv.FormatBool(*l.Battery.IsCharging))
	}
	if l.Activity != nil && l.Activity.Type != "" {
		setAttr(m, "activity", l.Activity.Type)
	}
	if len(l.Extras) > 0 {
		keys := make([]string, 0, len(l.Extras))
		for k := range l.Extras {
			keys = append(keys, k)
		}
		if len(keys)+len(m) > MaxAttributes {
			slices.Sort(keys)
		}
		for _, k := range keys {
			raw := l.Extras[k]
			var v string
			if len(raw) > 0 && raw[0] == '"' {
				if json.Unmarshal(raw, &v) != nil {
					continue
				}
			} else {
				v = string(raw)
			}
			if !setAttr(m, k, v) {
				break
			}
		}
	}
	if len(m) > 0 {
		f.Attributes = m
	}
	return f, nil
}

// nonNeg scales *p, or returns nil when p is nil or negative.
func nonNeg(p *float64, scale float64) *float64 {
	if p == nil || *p < 0 {
		return nil
	}
	v := *p * scale
	return &v
}

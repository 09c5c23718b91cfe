package mqtt

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/state"
)

// ErrBadPayload is wrapped by every parse error: the payload is not JSON,
// not an object, or a field has the wrong type or an impossible value.
var ErrBadPayload = errors.New("mqtt: bad payload")

// ErrIgnored is returned by ParseOwnTracks for a valid OwnTracks message
// that is not a location (_type "transition", "waypoint", "lwt", …).
var ErrIgnored = errors.New("mqtt: message ignored")

// Limits on one message. A message beyond them is a bad payload.
const (
	// MaxPayload is the largest payload parsed, in bytes.
	MaxPayload = 64 << 10
	// MaxReadings is the most sensor values in one readings message.
	MaxReadings = 256
	// MaxNameLen is the longest sensor name, in bytes.
	MaxNameLen = 128
	// MaxValueLen is the longest string sensor value, in bytes.
	MaxValueLen = 4096
	// MaxIO is the most inputs or outputs in one io message.
	MaxIO = 64
)

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadPayload}, args...)...)
}

// fixBox holds a fix and the values its pointers refer to, so that a
// parsed fix is a single allocation.
type fixBox struct {
	fix                          state.Fix
	loc                          fleet.Location
	speed, heading, alt, acc, bt float64
	sat                          int
	ign                          bool
	trigger                      string // OwnTracks t
}

// position is what position and OwnTracks messages share.
type position struct {
	box            *fixBox
	hasLat, hasLon bool
}

func newPosition(device string, now time.Time) position {
	b := &fixBox{}
	b.fix.DeviceID = device
	b.fix.ReceivedAt = now
	return position{box: b}
}

func (p *position) lat(v *value, name string) error {
	f, ok := v.float()
	if !ok || f < -90 || f > 90 {
		return bad("%s must be a number from -90 to 90", name)
	}
	p.box.loc.Lat, p.hasLat = f, true
	return nil
}

func (p *position) lon(v *value, name string) error {
	f, ok := v.float()
	if !ok || f < -180 || f > 180 {
		return bad("%s must be a number from -180 to 180", name)
	}
	p.box.loc.Lng, p.hasLon = f, true
	return nil
}

// num reads an optional number: null leaves *dst unset.
func num(v *value, name string, slot *float64, dst **float64) error {
	if v.kind == kindNull {
		return nil
	}
	f, ok := v.float()
	if !ok {
		return bad("%s must be a number", name)
	}
	*slot = f
	*dst = slot
	return nil
}

// nonNeg is num for quantities where a negative value means "unknown", as
// several devices send -1 for speed or accuracy.
func nonNeg(v *value, name string, slot *float64, dst **float64) error {
	if err := num(v, name, slot, dst); err != nil {
		return err
	}
	if *dst != nil && **dst < 0 {
		*dst = nil
	}
	return nil
}

func (p *position) heading(v *value, name string) error {
	if err := num(v, name, &p.box.heading, &p.box.fix.Heading); err != nil {
		return err
	}
	if p.box.fix.Heading != nil {
		h := math.Mod(p.box.heading, 360)
		if h < 0 {
			h += 360
		}
		p.box.heading = h
	}
	return nil
}

func (p *position) sat(v *value, name string) error {
	if v.kind == kindNull {
		return nil
	}
	f, ok := v.float()
	if !ok || f < 0 || f > 1000 || f != math.Trunc(f) {
		return bad("%s must be a whole number from 0", name)
	}
	p.box.sat = int(f)
	p.box.fix.Satellites = &p.box.sat
	return nil
}

func (p *position) ignition(v *value, name string) error {
	switch v.kind {
	case kindNull:
		return nil
	case kindBool:
		p.box.ign = v.b
		p.box.fix.Ignition = &p.box.ign
		return nil
	}
	return bad("%s must be a boolean", name)
}

// done checks the position is complete and returns the fix.
func (p *position) done() (*state.Fix, error) {
	if !p.hasLat || !p.hasLon {
		return nil, bad("lat and lon are required")
	}
	p.box.fix.Location = &p.box.loc
	return &p.box.fix, nil
}

// unixTime converts seconds since the epoch. Values too large to be
// seconds in this era are taken as milliseconds.
// Fractions are kept to the microsecond.
func unixTime(f float64) (time.Time, bool) {
	switch {
	case f <= 0 || f >= 1e14:
		return time.Time{}, false
	case f > 1e11:
		return time.UnixMicro(int64(math.Round(f * 1e3))).UTC(), true
	}
	return time.UnixMicro(int64(math.Round(f * 1e6))).UTC(), true
}

// fixTime reads "time": an RFC 3339 string or a unix time number.
func fixTime(v *value) (time.Time, error) {
	switch v.kind {
	case kindNull:
		return time.Time{}, nil
	case kindNumber:
		f, ok := v.float()
		if t, ok2 := unixTime(f); ok && ok2 {
			return t, nil
		}
	case kindString:
		if s, ok := v.str(); ok {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return t.UTC(), nil
			}
		}
	}
	return time.Time{}, bad("time must be RFC 3339 or unix seconds")
}

// ParsePosition reads a fleetwire/<device>/position payload:
//
//	{"lat":52.52,"lon":13.40,"speed":42.5,"heading":90,"alt":34,
//	 "accuracy":5,"battery":81,"sat":9,"ignition":true,
//	 "time":"2026-05-04T10:00:00Z"}
//
// lat and lon are required; every other field is optional and may be
// null. speed is km/h; a negative speed or accuracy means unknown. time is
// RFC 3339 or unix seconds (milliseconds are recognised by size); without
// it the fix is taken at now, which is also its ReceivedAt. Unknown fields
// are ignored.
func ParsePosition(device string, payload []byte, now time.Time) (*state.Fix, error) {
	if len(payload) > MaxPayload {
		return nil, bad("payload larger than %d bytes", MaxPayload)
	}
	p := newPosition(device, now)
	b := p.box
	err := object(payload, func(key []byte, vv value) error {
		v := &vv
		switch string(key) {
		case "lat":
			return p.lat(v, "lat")
		case "lon":
			return p.lon(v, "lon")
		case "speed":
			return nonNeg(v, "speed", &b.speed, &b.fix.Speed)
		case "heading":
			return p.heading(v, "heading")
		case "alt":
			return num(v, "alt", &b.alt, &b.fix.Alt)
		case "accuracy":
			return nonNeg(v, "accuracy", &b.acc, &b.fix.Accuracy)
		case "battery":
			return num(v, "battery", &b.bt, &b.fix.Battery)
		case "sat":
			return p.sat(v, "sat")
		case "ignition":
			return p.ignition(v, "ignition")
		case "time":
			t, err := fixTime(v)
			b.fix.Time = t
			return err
		}
		return nil
	})
	if err != nil {
		return nil, payloadErr(err)
	}
	return p.done()
}

// ParseOwnTracks reads an OwnTracks payload published on
// owntracks/<user>/<device>. Only _type "location" carries a fix (lat,
// lon, tst unix seconds, vel km/h, cog degrees, alt m, batt %, acc m);
// every other _type returns ErrIgnored. The trigger t is kept as the
// attribute "event"; as trackers speaking OwnTracks (and Traccar) use it,
// "i" means ignition on and "I" ignition off. A boolean ign sets the
// ignition too, and wins over t.
func ParseOwnTracks(device string, payload []byte, now time.Time) (*state.Fix, error) {
	if len(payload) > MaxPayload {
		return nil, bad("payload larger than %d bytes", MaxPayload)
	}
	p := newPosition(device, now)
	var typ value
	hasType := false
	// A field error matters only once the message is known to be a
	// location: other message types reuse some names.
	var fieldErr error
	err := object(payload, func(key []byte, vv value) error {
		v := &vv
		if err := p.ownTracksField(key, v, &typ, &hasType); err != nil && fieldErr == nil {
			fieldErr = err
		}
		return nil
	})
	if err != nil {
		return nil, payloadErr(err)
	}
	if !hasType || typ.kind != kindString {
		return nil, bad("_type must be a string")
	}
	if string(typ.raw) != "location" {
		return nil, ErrIgnored
	}
	if fieldErr != nil {
		return nil, fieldErr
	}
	if b := p.box; b.trigger != "" {
		b.fix.Attributes = map[string]string{"event": b.trigger}
		if b.fix.Ignition == nil && (b.trigger == "i" || b.trigger == "I") {
			b.ign = b.trigger == "i"
			b.fix.Ignition = &b.ign
		}
	}
	return p.done()
}

func (p *position) ownTracksField(key []byte, v *value, typ *value, hasType *bool) error {
	b := p.box
	switch string(key) {
	case "_type":
		*typ, *hasType = *v, true
	case "t":
		if v.kind == kindNull {
			return nil
		}
		t, ok := v.str()
		if !ok || t == "" || len(t) > MaxNameLen {
			return bad("t must be a trigger string")
		}
		b.trigger = t
	case "ign":
		return p.ignition(v, "ign")
	case "lat":
		return p.lat(v, "lat")
	case "lon":
		return p.lon(v, "lon")
	case "vel":
		return nonNeg(v, "vel", &b.speed, &b.fix.Speed)
	case "cog":
		return p.heading(v, "cog")
	case "alt":
		return num(v, "alt", &b.alt, &b.fix.Alt)
	case "acc":
		return nonNeg(v, "acc", &b.acc, &b.fix.Accuracy)
	case "batt":
		return num(v, "batt", &b.bt, &b.fix.Battery)
	case "tst":
		if v.kind == kindNull {
			return nil
		}
		f, ok := v.float()
		t, ok2 := unixTime(f)
		if !ok || !ok2 {
			return bad("tst must be unix seconds")
		}
		b.fix.Time = t
	}
	return nil
}

// ParseReadings reads a fleetwire/<device>/readings payload, an object of
// sensor name to number, string or boolean:
//
//	{"fuel_level":41.5,"temperature":21.3,"door":"open","alarm":false}
//
// The values become the fix's Attributes as strings: numbers in the
// shortest decimal form without exponent, booleans as "true"/"false". null
// values are skipped; objects and arrays are bad payloads. The fix has no
// time of its own: it is taken at now.
func ParseReadings(device string, payload []byte, now time.Time) (*state.Fix, error) {
	if len(payload) > MaxPayload {
		return nil, bad("payload larger than %d bytes", MaxPayload)
	}
	f := &state.Fix{DeviceID: device, ReceivedAt: now}
	err := object(payload, func(key []byte, vv value) error {
		v := &vv
		if len(key) == 0 || len(key) > MaxNameLen {
			return bad("sensor names must be 1 to %d bytes", MaxNameLen)
		}
		var s string
		switch v.kind {
		case kindNull:
			return nil
		case kindBool:
			s = strconv.FormatBool(v.b)
		case kindNumber:
			n, ok := v.float()
			if !ok {
				return bad("value of %q is out of range", key)
			}
			s = strconv.FormatFloat(n, 'f', -1, 64)
		case kindString:
			var ok bool
			if s, ok = v.str(); !ok {
				return bad("value of %q is not valid UTF-8", key)
			}
			if len(s) > MaxValueLen {
				return bad("value of %q is longer than %d bytes", key, MaxValueLen)
			}
		default:
			return bad("value of %q must be a number, string or boolean, not an %s", key, v.kind)
		}
		if f.Attributes == nil {
			f.Attributes = make(map[string]string, 8)
		}
		f.Attributes[string(key)] = s
		if len(f.Attributes) > MaxReadings {
			return bad("more than %d readings", MaxReadings)
		}
		return nil
	})
	if err != nil {
		return nil, payloadErr(err)
	}
	return f, nil
}

// ParseIO reads a fleetwire/<device>/io payload:
//
//	{"inputs":[true,false,false,true],"outputs":[false,true]}
//
// Either list may be left out (or null), not both. Devices confirm output
// commands by reporting their outputs here.
func ParseIO(device string, payload []byte, now time.Time) (*state.Fix, error) {
	if len(payload) > MaxPayload {
		return nil, bad("payload larger than %d bytes", MaxPayload)
	}
	f := &state.Fix{DeviceID: device, ReceivedAt: now}
	err := object(payload, func(key []byte, vv value) error {
		v := &vv
		var dst *[]bool
		switch string(key) {
		case "inputs":
			dst = &f.Inputs
		case "outputs":
			dst = &f.Outputs
		default:
			return nil
		}
		if v.kind == kindNull {
			*dst = nil
			return nil
		}
		if v.kind != kindArray {
			return bad("%s must be an array of booleans", key)
		}
		list := make([]bool, 0, 8)
		err := v.array(func(e value) error {
			if e.kind != kindBool {
				return bad("%s must be an array of booleans", key)
			}
			if len(list) == MaxIO {
				return bad("more than %d %s", MaxIO, key)
			}
			list = append(list, e.b)
			return nil
		})
		*dst = list
		return err
	})
	if err != nil {
		return nil, payloadErr(err)
	}
	if f.Inputs == nil && f.Outputs == nil {
		return nil, bad("inputs or outputs is required")
	}
	return f, nil
}

func payloadErr(err error) error {
	if errors.Is(err, ErrBadPayload) {
		return err
	}
	return bad("%v", err)
}

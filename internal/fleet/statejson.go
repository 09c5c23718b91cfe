package fleet

import (
	"math"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// DateTimeLayout is the API's date/time format, always in the user's zone.
const DateTimeLayout = "2006-01-02 15:04:05"

// Dates says how the API writes dates: in a time zone, in the default
// layout (DateTimeLayout) or, with ISO, as ISO 8601 with the zone's offset
// ("2024-05-01T14:00:00+02:00", "Z" for UTC), as a client asks with
// iso_datetime.
type Dates struct {
	// Loc is the zone; nil leaves times in their own zone.
	Loc *time.Location
	// ISO selects ISO 8601.
	ISO bool
}

// Append appends t as a quoted date/time, or null for the zero time.
func (d Dates) Append(dst []byte, t time.Time) []byte {
	if !d.ISO {
		return AppendDateTime(dst, t, d.Loc)
	}
	if t.IsZero() {
		return append(dst, "null"...)
	}
	if d.Loc != nil {
		t = t.In(d.Loc)
	}
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339)
	return append(dst, '"')
}

// Format returns t as a date/time without quotes; the zero time is "".
func (d Dates) Format(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	if d.Loc != nil {
		t = t.In(d.Loc)
	}
	if d.ISO {
		return t.Format(time.RFC3339)
	}
	return t.Format(DateTimeLayout)
}

// AppendState appends s as the API's source state JSON object to dst, with
// dates in loc. compact selects the compact shape of state events (no gsm,
// battery, inputs, outputs or additional). The output is ASCII-only JSON:
// every non-ASCII character is escaped, so its length in bytes equals its
// length in UTF-16 code units.
func AppendState(dst []byte, s *State, loc *time.Location, compact bool) []byte {
	return AppendStateDates(dst, s, Dates{Loc: loc}, compact)
}

// AppendStateDates is AppendState with dates written as d says.
func AppendStateDates(dst []byte, s *State, d Dates, compact bool) []byte {
	dst = append(dst, `{"source_id":`...)
	dst = strconv.AppendInt(dst, s.SourceID, 10)
	dst = append(dst, `,"gps":{"updated":`...)
	dst = d.Append(dst, s.GPS.Updated)
	dst = append(dst, `,"signal_level":`...)
	dst = appendIntPtr(dst, s.GPS.SignalLevel)
	dst = append(dst, `,"location":`...)
	if l := s.GPS.Location; l != nil {
		dst = append(dst, `{"lat":`...)
		dst = appendFloat(dst, l.Lat)
		dst = append(dst, `,"lng":`...)
		dst = appendFloat(dst, l.Lng)
		dst = append(dst, '}')
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"heading":`...)
	dst = strconv.AppendInt(dst, int64(s.GPS.Heading), 10)
	dst = append(dst, `,"speed":`...)
	dst = strconv.AppendInt(dst, int64(s.GPS.Speed), 10)
	dst = append(dst, `,"alt":`...)
	dst = strconv.AppendInt(dst, int64(s.GPS.Alt), 10)
	if s.GPS.Precision != nil {
		dst = append(dst, `,"precision":`...)
		dst = strconv.AppendInt(dst, int64(*s.GPS.Precision), 10)
	}
	if s.GPS.GSMLBS {
		dst = append(dst, `,"gsm_lbs":true`...)
	}
	dst = append(dst, `},"connection_status":`...)
	dst = AppendString(dst, s.ConnectionStatus)
	dst = append(dst, `,"movement_status":`...)
	dst = AppendString(dst, s.MovementStatus)
	dst = append(dst, `,"movement_status_update":`...)
	dst = d.Append(dst, s.MovementStatusUpdate)
	if s.Ignition != nil {
		dst = append(dst, `,"ignition":`...)
		dst = strconv.AppendBool(dst, *s.Ignition)
		dst = append(dst, `,"ignition_update":`...)
		dst = d.Append(dst, s.IgnitionUpdate)
	}
	if compact {
		dst = append(dst, `,"last_update":`...)
		dst = d.Append(dst, s.LastUpdate)
		return append(dst, '}')
	}
	dst = append(dst, `,"gsm":`...)
	if g := s.GSM; g != nil {
		dst = append(dst, `{"updated":`...)
		dst = d.Append(dst, g.Updated)
		dst = append(dst, `,"signal_level":`...)
		dst = appendIntPtr(dst, g.SignalLevel)
		dst = append(dst, `,"network_name":`...)
		if g.NetworkName != nil {
			dst = AppendString(dst, *g.NetworkName)
		} else {
			dst = append(dst, "null"...)
		}
		dst = append(dst, `,"roaming":`...)
		if g.Roaming != nil {
			dst = strconv.AppendBool(dst, *g.Roaming)
		} else {
			dst = append(dst, "null"...)
		}
		dst = append(dst, '}')
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"last_update":`...)
	dst = d.Append(dst, s.LastUpdate)
	dst = append(dst, `,"battery_level":`...)
	dst = appendIntPtr(dst, s.BatteryLevel)
	dst = append(dst, `,"battery_update":`...)
	dst = d.Append(dst, s.BatteryUpdate)
	dst = append(dst, `,"inputs":`...)
	dst = appendBools(dst, s.Inputs)
	dst = append(dst, `,"inputs_update":`...)
	dst = d.Append(dst, s.InputsUpdate)
	dst = append(dst, `,"outputs":`...)
	dst = appendBools(dst, s.Outputs)
	dst = append(dst, `,"outputs_update":`...)
	dst = d.Append(dst, s.OutputsUpdate)
	if len(s.Additional) > 0 {
		dst = append(dst, `,"additional":{`...)
		keys := make([]string, 0, len(s.Additional))
		for k := range s.Additional {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			a := s.Additional[k]
			dst = AppendString(dst, k)
			dst = append(dst, `:{"value":`...)
			dst = AppendString(dst, a.Value)
			dst = append(dst, `,"updated":`...)
			dst = d.Append(dst, a.Updated)
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `,"actual_track_update":`...)
	dst = d.Append(dst, s.ActualTrackUpdate)
	return append(dst, '}')
}

// AppendDateTime appends t as a quoted API date/time in loc, or null for
// the zero time.
func AppendDateTime(dst []byte, t time.Time, loc *time.Location) []byte {
	if t.IsZero() {
		return append(dst, "null"...)
	}
	if loc != nil {
		t = t.In(loc)
	}
	dst = append(dst, '"')
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	dst = appendPad(dst, y, 4)
	dst = append(dst, '-')
	dst = appendPad(dst, int(mo), 2)
	dst = append(dst, '-')
	dst = appendPad(dst, d, 2)
	dst = append(dst, ' ')
	dst = appendPad(dst, h, 2)
	dst = append(dst, ':')
	dst = appendPad(dst, mi, 2)
	dst = append(dst, ':')
	dst = appendPad(dst, sec, 2)
	return append(dst, '"')
}

func appendPad(dst []byte, v, width int) []byte {
	var buf [8]byte
	i := len(buf)
	for v >= 10 || width > 1 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		width--
		if i == 0 {
			break
		}
	}
	i--
	buf[i] = byte('0' + v%10)
	return append(dst, buf[i:]...)
}

func appendIntPtr(dst []byte, p *int) []byte {
	if p == nil {
		return append(dst, "null"...)
	}
	return strconv.AppendInt(dst, int64(*p), 10)
}

// appendFloat writes f in the shortest form that reads back exactly;
// non-finite values, which JSON cannot carry, become 0.
func appendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, '0')
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}

func appendBools(dst []byte, bs []bool) []byte {
	// A device without discrete I/O has empty lists, never null: clients
	// index these arrays without checking.
	dst = append(dst, '[')
	for i, b := range bs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendBool(dst, b)
	}
	return append(dst, ']')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaping every non-ASCII
// character as \uXXXX (surrogate pairs beyond the BMP) and replacing
// invalid UTF-8 with U+FFFD.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = appendU(dst, rune(c))
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r >= 0x10000 {
			r -= 0x10000
			dst = appendU(dst, 0xD800+(r>>10))
			dst = appendU(dst, 0xDC00+(r&0x3FF))
		} else {
			dst = appendU(dst, r)
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendU(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', hexDigits[r>>12&0xF], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
}

package store

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/fleetwire/fleetwire/internal/fleet"
)

// The states table keeps each tracker's fleet.State as one JSON document.
// The document has its own explicit shape (stateDoc below) rather than
// fleet.State's default encoding, so renaming a Go field never silently
// changes what is on disk. Times are RFC 3339 with nanoseconds in UTC; a
// zero time is left out. Unknown keys are ignored when reading, so a newer
// binary may add fields without breaking an older one.

// stateDocVersion is written as "v" so a future format change can be told
// apart from this one.
const stateDocVersion = 1

type stateDoc struct {
	V                    int                      `json:"v"`
	SourceID             int64                    `json:"source_id,omitempty"`
	GPS                  gpsDoc                   `json:"gps,omitzero"`
	ConnectionStatus     string                   `json:"connection_status,omitempty"`
	MovementStatus       string                   `json:"movement_status,omitempty"`
	MovementStatusUpdate docTime                  `json:"movement_status_update,omitzero"`
	Ignition             *bool                    `json:"ignition,omitempty"`
	IgnitionUpdate       docTime                  `json:"ignition_update,omitzero"`
	GSM                  *gsmDoc                  `json:"gsm,omitempty"`
	LastUpdate           docTime                  `json:"last_update,omitzero"`
	BatteryLevel         *int                     `json:"battery_level,omitempty"`
	BatteryUpdate        docTime                  `json:"battery_update,omitzero"`
	Inputs               []bool                   `json:"inputs,omitempty"`
	InputsUpdate         docTime                  `json:"inputs_update,omitzero"`
	Outputs              []bool                   `json:"outputs,omitempty"`
	OutputsUpdate        docTime                  `json:"outputs_update,omitzero"`
	Additional           map[string]additionalDoc `json:"additional,omitempty"`
	ActualTrackUpdate    docTime                  `json:"actual_track_update,omitzero"`
	IngestedAt           docTime                  `json:"ingested_at,omitzero"`
}

type gpsDoc struct {
	Updated     docTime         `json:"updated,omitzero"`
	SignalLevel *int            `json:"signal_level,omitempty"`
	Location    *fleet.Location `json:"location,omitempty"`
	Heading     int             `json:"heading,omitempty"`
	Speed       int             `json:"speed,omitempty"`
	Alt         int             `json:"alt,omitempty"`
	Precision   *int            `json:"precision,omitempty"`
	GSMLBS      bool            `json:"gsm_lbs,omitempty"`
}

type gsmDoc struct {
	Updated     docTime `json:"updated,omitzero"`
	SignalLevel *int    `json:"signal_level,omitempty"`
	NetworkName *string `json:"network_name,omitempty"`
	Roaming     *bool   `json:"roaming,omitempty"`
}

type additionalDoc struct {
	Value   string  `json:"value"`
	Updated docTime `json:"updated,omitzero"`
}

// docTime is a time.Time encoded as an RFC 3339 string in UTC with
// nanoseconds.
type docTime time.Time

// IsZero lets `omitzero` leave zero times out.
func (t docTime) IsZero() bool { return time.Time(t).IsZero() }

// MarshalJSON encodes t in UTC.
func (t docTime) MarshalJSON() ([]byte, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return []byte("null"), nil
	}
	tt = tt.UTC()
	if y := tt.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("time %v: year outside 0..9999", tt)
	}
	return json.Marshal(tt.Format(time.RFC3339Nano))
}

// UnmarshalJSON accepts an RFC 3339 string or null.
func (t *docTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = docTime{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("time: %w", err)
	}
	tt, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("time: %w", err)
	}
	tt = tt.UTC()
	if y := tt.Year(); y < 0 || y > 9999 {
		return fmt.Errorf("time %q: year outside 0..9999 in UTC", s)
	}
	*t = docTime(tt)
	return nil
}

// EncodeState renders s in the on-disk form. TrackerID is the row key and is
// not repeated in the document. The document is written by hand, field by
// field in stateDoc's order and with encoding/json's spelling of every
// value (a test holds the two byte for byte), because every state change
// is encoded once for the store and once for the cluster's log.
func EncodeState(s *fleet.State) ([]byte, error) {
	b, err := AppendState(make([]byte, 0, 512), s)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// AppendState appends EncodeState's document of s to dst.
func AppendState(dst []byte, s *fleet.State) ([]byte, error) {
	w := docWriter{b: dst}
	w.b = append(w.b, `{"v":`...)
	w.b = strconv.AppendInt(w.b, stateDocVersion, 10)
	if s.SourceID != 0 {
		w.key("source_id")
		w.b = strconv.AppendInt(w.b, s.SourceID, 10)
	}
	if g := &s.GPS; !gpsZero(g) {
		w.open("gps")
		w.time("updated", g.Updated)
		w.intPtr("signal_level", g.SignalLevel)
		if l := g.Location; l != nil {
			w.key("location")
			w.b = append(w.b, `{"lat":`...)
			w.float(l.Lat)
			w.b = append(w.b, `,"lng":`...)
			w.float(l.Lng)
			w.b = append(w.b, '}')
		}
		w.int("heading", g.Heading)
		w.int("speed", g.Speed)
		w.int("alt", g.Alt)
		w.intPtr("precision", g.Precision)
		if g.GSMLBS {
			w.key("gsm_lbs")
			w.b = append(w.b, "true"...)
		}
		w.close()
	}
	w.str("connection_status", s.ConnectionStatus)
	w.str("movement_status", s.MovementStatus)
	w.time("movement_status_update", s.MovementStatusUpdate)
	w.boolPtr("ignition", s.Ignition)
	w.time("ignition_update", s.IgnitionUpdate)
	if g := s.GSM; g != nil {
		w.open("gsm")
		w.time("updated", g.Updated)
		w.intPtr("signal_level", g.SignalLevel)
		if g.NetworkName != nil {
			w.key("network_name")
			w.b = appendJSONString(w.b, *g.NetworkName)
		}
		w.boolPtr("roaming", g.Roaming)
		w.close()
	}
	w.time("last_update", s.LastUpdate)
	w.intPtr("battery_level", s.BatteryLevel)
	w.time("battery_update", s.BatteryUpdate)
	w.bools("inputs", s.Inputs)
	w.time("inputs_update", s.InputsUpdate)
	w.bools("outputs", s.Outputs)
	w.time("outputs_update", s.OutputsUpdate)
	if len(s.Additional) > 0 {
		w.key("additional")
		w.b = append(w.b, '{')
		for i, k := range slices.Sorted(maps.Keys(s.Additional)) {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			a := s.Additional[k]
			w.b = appendJSONString(w.b, k)
			w.b = append(w.b, `:{"value":`...)
			w.b = appendJSONString(w.b, a.Value)
			w.first = false
			w.time("updated", a.Updated)
			w.b = append(w.b, '}')
		}
		w.b = append(w.b, '}')
	}
	w.time("actual_track_update", s.ActualTrackUpdate)
	w.time("ingested_at", s.IngestedAt)
	if w.err != nil {
		return dst, fmt.Errorf("encode state of tracker %d: %w", s.TrackerID, w.err)
	}
	return append(w.b, '}'), nil
}

// gpsZero reports whether g is the zero value, which `omitzero` leaves
// out of the document.
func gpsZero(g *fleet.GPS) bool {
	return g.Updated == (time.Time{}) && g.SignalLevel == nil && g.Location == nil &&
		g.Heading == 0 && g.Speed == 0 && g.Alt == 0 && g.Precision == nil && !g.GSMLBS
}

// docWriter appends the members of one JSON object; first says the next
// member is the object's first. The first error is kept in err.
type docWriter struct {
	b     []byte
	first bool
	err   error
}

func (w *docWriter) key(name string) {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
	w.b = append(w.b, '"')
	w.b = append(w.b, name...)
	w.b = append(w.b, `":`...)
}

// open starts the member name as an object; close ends it.
func (w *docWriter) open(name string) {
	w.key(name)
	w.b = append(w.b, '{')
	w.first = true
}

func (w *docWriter) close() {
	w.b = append(w.b, '}')
	w.first = false
}

func (w *docWriter) int(name string, v int) {
	if v != 0 {
		w.key(name)
		w.b = strconv.AppendInt(w.b, int64(v), 10)
	}
}

func (w *docWriter) intPtr(name string, p *int) {
	if p != nil {
		w.key(name)
		w.b = strconv.AppendInt(w.b, int64(*p), 10)
	}
}

func (w *docWriter) boolPtr(name string, p *bool) {
	if p != nil {
		w.key(name)
		w.b = strconv.AppendBool(w.b, *p)
	}
}

func (w *docWriter) str(name, v string) {
	if v != "" {
		w.key(name)
		w.b = appendJSONString(w.b, v)
	}
}

func (w *docWriter) bools(name string, v []bool) {
	if len(v) == 0 {
		return
	}
	w.key(name)
	w.b = append(w.b, '[')
	for i, x := range v {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = strconv.AppendBool(w.b, x)
	}
	w.b = append(w.b, ']')
}

// time writes t in UTC as RFC 3339 with nanoseconds, leaving a zero time
// out, as docTime does.
func (w *docWriter) time(name string, t time.Time) {
	if t.IsZero() {
		return
	}
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		if w.err == nil {
			w.err = fmt.Errorf("time %v: year outside 0..9999", t)
		}
		return
	}
	w.key(name)
	w.b = append(w.b, '"')
	w.b = t.AppendFormat(w.b, time.RFC3339Nano)
	w.b = append(w.b, '"')
}

// float writes f as encoding/json does: the shortest form that reads back
// exactly, in exponent form below 1e-6 and from 1e21 on. JSON cannot carry
// NaN or infinities, so they are an error.
func (w *docWriter) float(f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		if w.err == nil {
			w.err = fmt.Errorf("unsupported value: %v", f)
		}
		w.b = append(w.b, '0')
		return
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	w.b = strconv.AppendFloat(w.b, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as encoding/json writes it.
		if n := len(w.b); n >= 4 && w.b[n-4] == 'e' && w.b[n-3] == '-' && w.b[n-2] == '0' {
			w.b[n-2] = w.b[n-1]
			w.b = w.b[:n-1]
		}
	}
}

// appendJSONString appends v as encoding/json writes a string: HTML
// characters, control characters, U+2028 and U+2029 escaped, invalid
// UTF-8 as U+FFFD, other text as it is.
func appendJSONString(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(v) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, v...)
	return append(dst, '"')
}

// DecodeState parses a document written by EncodeState for trackerID.
func DecodeState(trackerID int64, b []byte) (*fleet.State, error) {
	var d stateDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decode state of tracker %d: %w", trackerID, err)
	}
	if d.V != stateDocVersion {
		return nil, fmt.Errorf("decode state of tracker %d: unsupported document version %d", trackerID, d.V)
	}
	s := &fleet.State{
		TrackerID:            trackerID,
		SourceID:             d.SourceID,
		ConnectionStatus:     d.ConnectionStatus,
		MovementStatus:       d.MovementStatus,
		MovementStatusUpdate: time.Time(d.MovementStatusUpdate),
		Ignition:             d.Ignition,
		IgnitionUpdate:       time.Time(d.IgnitionUpdate),
		LastUpdate:           time.Time(d.LastUpdate),
		BatteryLevel:         d.BatteryLevel,
		BatteryUpdate:        time.Time(d.BatteryUpdate),
		Inputs:               d.Inputs,
		InputsUpdate:         time.Time(d.InputsUpdate),
		Outputs:              d.Outputs,
		OutputsUpdate:        time.Time(d.OutputsUpdate),
		ActualTrackUpdate:    time.Time(d.ActualTrackUpdate),
		IngestedAt:           time.Time(d.IngestedAt),
		GPS: fleet.GPS{
			Updated:     time.Time(d.GPS.Updated),
			SignalLevel: d.GPS.SignalLevel,
			Location:    d.GPS.Location,
			Heading:     d.GPS.Heading,
			Speed:       d.GPS.Speed,
			Alt:         d.GPS.Alt,
			Precision:   d.GPS.Precision,
			GSMLBS:      d.GPS.GSMLBS,
		},
	}
	if d.GSM != nil {
		s.GSM = &fleet.GSM{
			Updated:     time.Time(d.GSM.Updated),
			SignalLevel: d.GSM.SignalLevel,
			NetworkName: d.GSM.NetworkName,
			Roaming:     d.GSM.Roaming,
		}
	}
	if len(d.Additional) > 0 {
		s.Additional = make(map[string]fleet.Additional, len(d.Additional))
		for k, v := range d.Additional {
			s.Additional[k] = fleet.Additional{Value: v.Value, Updated: time.Time(v.Updated)}
		}
	}
	return s, nil
}

// Package readings turns the attributes a device reports into the API's
// sensor readings: metering sensors ("inputs"), virtual sensors, state
// values and counters, the shape of tracker/readings/list and of the
// readings_batch event.
//
// fleetwire has no sensor configuration; sensors are derived from
// attribute names. A numeric attribute whose name starts with a metering
// type's prefix (fuel, lls_level, temperature/temp, rpm, power/voltage,
// speed, flow, acceleration, consumption) is a metering sensor of that
// type; odometer and engine_hours are counters; ignition is the
// virtual_ignition sensor; every other attribute is a state value. A
// tracker with two or more fuel sensors also gets a composite fuel sensor
// (name "composite", the sum of its parts), and each part lists it in
// composite_sensor_ids. Sensor ids are stable: derived from tracker id and
// attribute name.
package readings

import (
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fleetwire/fleetwire/internal/fleet"
)

// Sensor is one metering sensor reading ("inputs").
type Sensor struct {
	ID          int64
	Label, Name string
	Type        string
	Units       string
	UnitsType   string
	Value       float64
	Updated     time.Time
	Composite   []int64 // composite sensors this one is part of
	IsComposite bool
}

// Virtual is one virtual sensor reading.
type Virtual struct {
	ID      int64
	Label   string
	Type    string
	Value   string
	Updated time.Time
}

// StateValue is one state value.
type StateValue struct {
	Field   string
	Value   string // raw text; numbers and booleans are written unquoted
	Updated time.Time
}

// Counter is one counter reading.
type Counter struct {
	Type    string
	Value   float64
	Updated time.Time
}

// Readings are a tracker's latest readings.
type Readings struct {
	Inputs   []Sensor
	States   []StateValue
	Virtual  []Virtual
	Counters []Counter
}

// Filter narrows readings as the API's parameters do.
type Filter struct {
	// SensorType keeps only sensors of this metering or virtual type and
	// drops state values and counters; empty keeps everything.
	SensorType string
	// ExcludeComponents drops the parts of composite sensors.
	ExcludeComponents bool
	// Since keeps only readings updated after it (zero keeps all).
	Since time.Time
}

var meteringPrefixes = []struct{ prefix, typ, units, unitsType string }{
	{"fuel_consumption", "fuel_consumption", "l", "litre"},
	{"instant_consumption", "instant_consumption", "l/h", "custom"},
	{"fuel", "fuel", "l", "litre"},
	{"lls_level", "fuel", "l", "litre"},
	{"temperature", "temperature", "°C", "celsius"},
	{"temp", "temperature", "°C", "celsius"},
	{"rpm", "rpm", "rpm", "custom"},
	{"power", "power", "V", "volt"},
	{"voltage", "power", "V", "volt"},
	{"can_speed", "speed", "km/h", "custom"},
	{"flow", "flow_meter", "l", "litre"},
	{"acceleration", "acceleration", "g", "custom"},
}

var counters = map[string]bool{"odometer": true, "engine_hours": true, "hour_meter": true}

// SensorTypes are the documented metering and virtual sensor types a
// sensor_type filter may name.
var SensorTypes = []string{
	"fuel", "temperature", "rpm", "custom", "fuel_consumption", "instant_consumption",
	"power", "speed", "flow_meter", "acceleration", // metering
	"state", "virtual_ignition", // virtual
}

// ValidSensorType reports whether t is one of SensorTypes.
func ValidSensorType(t string) bool { return slices.Contains(SensorTypes, t) }

// SensorID is the stable id of tracker's sensor name.
func SensorID(trackerID int64, name string) int64 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(strconv.FormatInt(trackerID, 10)))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(name))
	return int64(h.Sum32()&0x7fffffff) | 1<<20
}

// Of derives the readings of tracker id from its state.
func Of(id int64, s *fleet.State, f Filter) Readings {
	var r Readings
	if s == nil {
		return r
	}
	names := make([]string, 0, len(s.Additional))
	for k := range s.Additional {
		names = append(names, k)
	}
	slices.Sort(names)
	var fuelIDs []int64
	var fuelSum float64
	var fuelAt time.Time
	for _, name := range names {
		a := s.Additional[name]
		v, numErr := strconv.ParseFloat(a.Value, 64)
		numeric := numErr == nil
		switch {
		case counters[name] && numeric:
			r.Counters = append(r.Counters, Counter{Type: name, Value: v, Updated: a.Updated})
		case numeric && metering(name) != nil:
			m := metering(name)
			sid := SensorID(id, name)
			r.Inputs = append(r.Inputs, Sensor{ID: sid, Label: label(name), Name: name, Type: m.typ, Units: m.units, UnitsType: m.unitsType, Value: v, Updated: a.Updated})
			if m.typ == "fuel" {
				fuelIDs = append(fuelIDs, sid)
				fuelSum += v
				if a.Updated.After(fuelAt) {
					fuelAt = a.Updated
				}
			}
		default:
			r.States = append(r.States, StateValue{Field: name, Value: a.Value, Updated: a.Updated})
		}
	}
	if len(fuelIDs) >= 2 {
		cid := SensorID(id, "composite")
		for i := range r.Inputs {
			if slices.Contains(fuelIDs, r.Inputs[i].ID) {
				r.Inputs[i].Composite = []int64{cid}
			}
		}
		r.Inputs = append(r.Inputs, Sensor{ID: cid, Label: "Fuel total", Name: "composite", Type: "fuel", Units: "l", UnitsType: "litre", Value: fuelSum, Updated: fuelAt, IsComposite: true})
	}
	if s.Ignition != nil {
		v := "Off"
		if *s.Ignition {
			v = "On"
		}
		r.Virtual = append(r.Virtual, Virtual{ID: SensorID(id, "virtual_ignition"), Label: "Virtual Ignition", Type: "virtual_ignition", Value: v, Updated: s.IgnitionUpdate})
	}
	return r.filter(f)
}

func metering(name string) *struct{ prefix, typ, units, unitsType string } {
	for i := range meteringPrefixes {
		if strings.HasPrefix(name, meteringPrefixes[i].prefix) {
			return &meteringPrefixes[i]
		}
	}
	return nil
}

func label(name string) string {
	s := strings.ReplaceAll(name, "_", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (r Readings) filter(f Filter) Readings {
	keep := func(t time.Time) bool { return f.Since.IsZero() || t.After(f.Since) }
	var out Readings
	for _, s := range r.Inputs {
		if (f.SensorType != "" && s.Type != f.SensorType) || (f.ExcludeComponents && len(s.Composite) > 0) || !keep(s.Updated) {
			continue
		}
		out.Inputs = append(out.Inputs, s)
	}
	for _, v := range r.Virtual {
		if (f.SensorType != "" && v.Type != f.SensorType) || !keep(v.Updated) {
			continue
		}
		out.Virtual = append(out.Virtual, v)
	}
	if f.SensorType == "" {
		for _, s := range r.States {
			if keep(s.Updated) {
				out.States = append(out.States, s)
			}
		}
		for _, c := range r.Counters {
			if keep(c.Updated) {
				out.Counters = append(out.Counters, c)
			}
		}
	}
	return out
}

// Empty reports whether r holds no readings.
func (r Readings) Empty() bool {
	return len(r.Inputs) == 0 && len(r.States) == 0 && len(r.Virtual) == 0 && len(r.Counters) == 0
}

// AppendJSON appends r as the API's readings object
// ({"inputs":[...],"states":[...],"virtual_sensors":[...],"counters":[...]})
// with times in loc.
func (r Readings) AppendJSON(dst []byte, loc *time.Location) []byte {
	return r.AppendJSONDates(dst, fleet.Dates{Loc: loc})
}

// AppendJSONDates is AppendJSON with times written as d says.
func (r Readings) AppendJSONDates(dst []byte, d fleet.Dates) []byte {
	dst = append(dst, `{"inputs":[`...)
	for i, s := range r.Inputs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"sensor_id":`...)
		dst = strconv.AppendInt(dst, s.ID, 10)
		dst = append(dst, `,"label":`...)
		dst = fleet.AppendString(dst, s.Label)
		dst = append(dst, `,"units":`...)
		dst = fleet.AppendString(dst, s.Units)
		dst = append(dst, `,"name":`...)
		dst = fleet.AppendString(dst, s.Name)
		dst = append(dst, `,"type":`...)
		dst = fleet.AppendString(dst, s.Type)
		dst = append(dst, `,"value":`...)
		dst = strconv.AppendFloat(dst, s.Value, 'f', -1, 64)
		dst = append(dst, `,"units_type":`...)
		dst = fleet.AppendString(dst, s.UnitsType)
		// converted_units_type and converted_value are always NULL here:
		// omitted, as the API omits NULL fields.
		dst = append(dst, `,"update_time":`...)
		dst = d.Append(dst, s.Updated)
		if len(s.Composite) > 0 {
			dst = append(dst, `,"composite_sensor_ids":[`...)
			for j, id := range s.Composite {
				if j > 0 {
					dst = append(dst, ',')
				}
				dst = strconv.AppendInt(dst, id, 10)
			}
			dst = append(dst, ']')
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `],"states":[`...)
	for i, s := range r.States {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"field":`...)
		dst = fleet.AppendString(dst, s.Field)
		dst = append(dst, `,"value":`...)
		dst = appendValue(dst, s.Value)
		dst = append(dst, `,"update_time":`...)
		dst = d.Append(dst, s.Updated)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"virtual_sensors":[`...)
	for i, v := range r.Virtual {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"sensor_id":`...)
		dst = strconv.AppendInt(dst, v.ID, 10)
		dst = append(dst, `,"label":`...)
		dst = fleet.AppendString(dst, v.Label)
		dst = append(dst, `,"value":`...)
		dst = fleet.AppendString(dst, v.Value)
		dst = append(dst, `,"type":`...)
		dst = fleet.AppendString(dst, v.Type)
		dst = append(dst, `,"update_time":`...)
		dst = d.Append(dst, v.Updated)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"counters":[`...)
	for i, c := range r.Counters {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"type":`...)
		dst = fleet.AppendString(dst, c.Type)
		dst = append(dst, `,"value":`...)
		dst = strconv.AppendFloat(dst, c.Value, 'f', -1, 64)
		dst = append(dst, `,"update_time":`...)
		dst = d.Append(dst, c.Updated)
		dst = append(dst, '}')
	}
	return append(dst, `]}`...)
}

// appendValue writes a state value: numbers and booleans bare, null for
// "null", anything else as a string.
func appendValue(dst []byte, v string) []byte {
	switch v {
	case "true", "false", "null":
		return append(dst, v...)
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && !strings.ContainsAny(v, "xXnN_") && v[0] != '+' && v[0] != '.' {
		return strconv.AppendFloat(dst, f, 'f', -1, 64)
	}
	return fleet.AppendString(dst, v)
}

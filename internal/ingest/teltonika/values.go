package teltonika

import (
	"encoding/hex"
	"strconv"
)

// Values is what a record's IO elements mean to fleetwire.
type Values struct {
	// Ignition is AVL id 239, nil when absent.
	Ignition *bool
	// BatteryLevel is AVL id 113 in percent, nil when absent.
	BatteryLevel *float64
	// Inputs are the digital inputs DIN1 to DIN4 (ids 1, 2, 3 and a
	// one-byte 4), up to the highest one reported; nil when none is.
	Inputs []bool
	// Outputs are the digital outputs DOUT1 to DOUT3 (ids 179, 180, 380),
	// up to the highest one reported; nil when none is.
	Outputs []bool
	// Attributes are the other elements, named where the id is known
	// (see Interpret) and "io_<id>" otherwise.
	Attributes map[string]string
}

// named is how a known fixed-size element becomes an attribute.
type named struct {
	name   string
	scale  float64 // value × scale; 0 keeps the integer
	signed bool
	bool   bool
}

// knownIO are the FMB/FMC/FMM AVL ids with a meaning fleetwire uses.
// Names follow the readings package: power*/voltage* are voltage sensors
// (V), temp* temperature (°C), odometer a counter (km).
var knownIO = map[uint16]named{
	6:     {name: "voltage_ain2", scale: 0.001},
	9:     {name: "voltage_ain1", scale: 0.001},
	16:    {name: "odometer", scale: 0.001},
	17:    {name: "axis_x", signed: true},
	18:    {name: "axis_y", signed: true},
	19:    {name: "axis_z", signed: true},
	21:    {name: "gsm_signal"},
	24:    {name: "gnss_speed"},
	66:    {name: "power", scale: 0.001},
	67:    {name: "voltage_battery", scale: 0.001},
	68:    {name: "battery_current", scale: 0.001},
	69:    {name: "gnss_status"},
	72:    {name: "temp1", scale: 0.1, signed: true},
	73:    {name: "temp2", scale: 0.1, signed: true},
	74:    {name: "temp3", scale: 0.1, signed: true},
	75:    {name: "temp4", scale: 0.1, signed: true},
	80:    {name: "data_mode"},
	181:   {name: "pdop", scale: 0.1},
	182:   {name: "hdop", scale: 0.1},
	199:   {name: "trip_odometer", scale: 0.001},
	200:   {name: "sleep_mode"},
	205:   {name: "gsm_cell_id"},
	206:   {name: "gsm_area_code"},
	240:   {name: "movement", bool: true},
	241:   {name: "gsm_operator"},
	10800: {name: "temp_eye1", scale: 0.01, signed: true},
	10801: {name: "temp_eye2", scale: 0.01, signed: true},
	10802: {name: "temp_eye3", scale: 0.01, signed: true},
	10803: {name: "temp_eye4", scale: 0.01, signed: true},
	10804: {name: "humidity_eye1"},
	10805: {name: "humidity_eye2"},
	10806: {name: "humidity_eye3"},
	10807: {name: "humidity_eye4"},
}

// Interpret maps a record's IO elements onto Values. Besides the table
// above: 78 (iButton) is driver_id in hex, 256 is vin as text, and the
// BLE sensor lists 548 and 10828 to 10831 become ble<n>_rssi, ble<n>_id,
// ble<n>_voltage_mv, ble<n>_battery_mv and ble<n>_low_battery for the
// n-th sensor (other fields ble<n>_t<type> in hex). Every element is also
// kept by number when its meaning is not one of these.
func Interpret(r *Record) Values {
	var v Values
	attrs := make(map[string]string, len(r.IO))
	set := func(list *[]bool, i int, on bool) {
		for len(*list) <= i {
			*list = append(*list, false)
		}
		(*list)[i] = on
	}
	for _, e := range r.IO {
		if e.Raw == nil {
			switch {
			case e.ID == 239:
				on := e.Value != 0
				v.Ignition = &on
				continue
			case e.ID == 113:
				lvl := float64(e.Value)
				v.BatteryLevel = &lvl
				continue
			case e.ID >= 1 && e.ID <= 3, e.ID == 4 && e.Size == 1:
				set(&v.Inputs, int(e.ID)-1, e.Value != 0)
				continue
			case e.ID == 179 || e.ID == 180:
				set(&v.Outputs, int(e.ID)-179, e.Value != 0)
				continue
			case e.ID == 380:
				set(&v.Outputs, 2, e.Value != 0)
				continue
			case e.ID == 78:
				if e.Value != 0 {
					attrs["driver_id"] = strconv.FormatUint(e.Value, 16)
				}
				continue
			}
			if k, ok := knownIO[e.ID]; ok {
				attrs[k.name] = k.format(e)
				continue
			}
		} else {
			switch {
			case e.ID == 256:
				attrs["vin"] = printable(e.Raw)
				continue
			case e.ID == 548 || (e.ID >= 10828 && e.ID <= 10831):
				if bleSensors(e.Raw, attrs) {
					continue
				}
			}
		}
		attrs["io_"+strconv.Itoa(int(e.ID))] = rawValue(e)
	}
	if len(attrs) > 0 {
		v.Attributes = attrs
	}
	return v
}

func (k named) format(e IO) string {
	switch {
	case k.bool:
		return strconv.FormatBool(e.Value != 0)
	case k.scale != 0 && k.signed:
		return strconv.FormatFloat(float64(e.Signed())*k.scale, 'f', -1, 64)
	case k.scale != 0:
		return strconv.FormatFloat(float64(e.Value)*k.scale, 'f', -1, 64)
	case k.signed:
		return strconv.FormatInt(e.Signed(), 10)
	}
	return strconv.FormatUint(e.Value, 10)
}

func rawValue(e IO) string {
	if e.Raw != nil {
		return hex.EncodeToString(e.Raw)
	}
	return strconv.FormatUint(e.Value, 10)
}

func printable(b []byte) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c >= 0x20 && c < 0x7F {
			out = append(out, c)
		}
	}
	return string(out)
}

// bleSensors reads a BLE sensor list: a header byte, then for each sensor
// its length and fields as type, length, value. It writes nothing and
// returns false when the value is not such a list.
func bleSensors(b []byte, attrs map[string]string) bool {
	if len(b) < 2 {
		return false
	}
	type field struct {
		sensor int
		typ    byte
		val    []byte
	}
	var fields []field
	for i, n := 1, 1; i < len(b); n++ {
		l := int(b[i])
		i++
		if l == 0 || i+l > len(b) {
			return false
		}
		s := b[i : i+l]
		i += l
		for j := 0; j < len(s); {
			if j+2 > len(s) || j+2+int(s[j+1]) > len(s) {
				return false
			}
			fields = append(fields, field{sensor: n, typ: s[j], val: s[j+2 : j+2+int(s[j+1])]})
			j += 2 + int(s[j+1])
		}
	}
	for _, f := range fields {
		p := "ble" + strconv.Itoa(f.sensor) + "_"
		switch {
		case f.typ == 0x00 && len(f.val) == 1:
			attrs[p+"rssi"] = strconv.Itoa(int(int8(f.val[0])))
		case f.typ == 0x01:
			attrs[p+"id"] = hex.EncodeToString(f.val)
		case f.typ == 0x02 && len(f.val) > 0:
			// The last byte counts 10 mV steps above 2 V.
			attrs[p+"voltage_mv"] = strconv.Itoa(2000 + 10*int(f.val[len(f.val)-1]))
		case f.typ == 0x0D && len(f.val) == 1:
			attrs[p+"low_battery"] = strconv.FormatBool(f.val[0] != 0)
		case f.typ == 0x0E && len(f.val) == 2:
			attrs[p+"battery_mv"] = strconv.Itoa(int(f.val[0])<<8 | int(f.val[1]))
		default:
			attrs[p+"t"+hex.EncodeToString([]byte{f.typ})] = hex.EncodeToString(f.val)
		}
	}
	return true
}

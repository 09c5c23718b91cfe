package gt06

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/fleetwire/fleetwire/internal/ingest/cursor"
)

// Decode decodes a frame's content by its protocol number. Unknown
// protocol numbers decode to a Message without a Record.
func Decode(f Frame) (*Message, error) {
	m := &Message{Type: f.Type, Serial: f.Serial, Long: f.Long}
	r := cursor.New(f.Content, ErrMalformed)
	switch f.Type {
	case TypeLogin:
		if len(f.Content) < 8 {
			return nil, fmt.Errorf("%w: login of %d bytes", ErrMalformed, len(f.Content))
		}
		m.IMEI = bcd(r.Take(8))
		if !validIMEI(m.IMEI) {
			return nil, fmt.Errorf("%w: login IMEI %x", ErrMalformed, f.Content[:8])
		}
	case TypeGPS, TypeLBS, TypeGPSLBS, TypeGPSLBS2, TypeGPSPhone, 0x37:
		if len(f.Content) == 0 {
			break // an empty location packet: nothing to report
		}
		rec := &Record{}
		gps(r, rec)
		if r.Left() >= 8 {
			lbs(r, rec, false)
		}
		switch {
		case f.Type == TypeGPSLBS2 || f.Type == 0x37:
			accAndMileage(r, rec)
		case f.Type == TypeGPSLBS && r.Left() == 5:
			// Clones that append the status block to a location.
			status(r, rec)
		}
		m.Record = rec
	case 0x61:
		// A location with the IMEI in front and a driver card behind.
		rec := &Record{}
		rec.set("imei", bcd(r.Take(8)))
		gps(r, rec)
		lbs(r, rec, false)
		if r.Left() == 7 {
			r.Take(3)
			if id := r.U32(); id != 0 {
				rec.set("driver_id", strconv.FormatUint(uint64(id), 10))
			}
		}
		m.Record = rec
	case TypeGPS4G:
		rec := &Record{}
		gps(r, rec)
		lbs(r, rec, true)
		accAndMileage(r, rec)
		m.Record = rec
	case TypeStatus:
		rec := &Record{}
		status(r, rec)
		m.Record = rec
	case TypeHeartbeat2:
		rec := &Record{}
		info := r.U8()
		terminal(rec, info)
		if v := r.U16(); r.Err() == nil {
			rec.set("voltage_battery", strconv.FormatFloat(float64(v)/100, 'f', -1, 64))
		}
		if g := r.U8(); r.Err() == nil {
			rec.set("gsm_signal", strconv.Itoa(int(g)))
		}
		m.Record = rec
	case TypeAlarm, TypeAlarm2, TypeAlarmMulti:
		rec := &Record{}
		gps(r, rec)
		// The LBS length byte is filled in differently by different
		// devices; what is left tells the layout: 13 bytes have no
		// length byte, 15 (in 0x16 and 0x26) a four-byte cell id.
		switch n := r.Left(); {
		case n == 13:
			lbs(r, rec, false)
		case n == 15 && f.Type != TypeAlarmMulti:
			r.U8()
			lbsWide(r, rec)
		default:
			r.U8()
			lbs(r, rec, false)
		}
		status(r, rec)
		if r.Left() == 8 {
			// VL103 and others append the driver card.
			rec.set("driver_id", hex.EncodeToString(r.Take(8)))
		}
		m.Record = rec
	case TypeAlarm4G:
		rec := &Record{}
		gps(r, rec)
		r.U8()
		lbs(r, rec, true)
		status(r, rec)
		m.Record = rec
	case TypeAlarmLBS4G:
		rec := &Record{}
		lbs(r, rec, true)
		status(r, rec)
		m.Record = rec
	case TypeLBSStatus:
		if len(f.Content) != 13 {
			break // a layout this decoder does not know
		}
		rec := &Record{}
		lbs(r, rec, false)
		status(r, rec)
		m.Record = rec
	case TypeLBSExtend, TypeLBSMulti, TypeWifi, TypeLBS4G:
		// Cell and Wi-Fi lists for network positioning, which fleetwire
		// does not resolve: the report's time and serving cell.
		rec := &Record{Time: dateTime(r)}
		mcc := r.U16()
		mnc := r.U8()
		if r.Err() == nil {
			rec.set("mcc", strconv.Itoa(int(mcc&0x7FFF)))
			rec.set("mnc", strconv.Itoa(int(mnc)))
		}
		m.Record = rec
	case TypeLBSPhone:
		if f.Trailer && len(f.Content) >= 34 {
			// A location with a driver card (RFID) behind the cell.
			rec := &Record{}
			gps(r, rec)
			lbs(r, rec, false)
			rec.set("driver_id", hex.EncodeToString(r.Take(8)))
			m.Record = rec
			break
		}
		fallthrough
	case 0x69:
		// GK310 Wi-Fi and cell reports, framed by their stop bytes.
		rec := &Record{Time: dateTime(r)}
		rec.set("network", "wifi")
		m.Record = rec
	case 0x34:
		rec := &Record{}
		r.Take(4)
		gps(r, rec)
		rec.set("data", hex.EncodeToString(r.Rest()))
		m.Record = rec
	case 0x1E, 0x24, 0x25, 0x2E, 0x31, 0x32, 0x33, 0x36, 0x38, 0xA2, 0xA3, 0xA7, 0xF2, 0xF3:
		if f.Type == 0xA3 && len(f.Content) == 7 {
			// The 4G status heartbeat.
			rec := &Record{}
			terminal(rec, r.U8())
			rec.set("voltage_battery", strconv.FormatFloat(float64(r.U16())/100, 'f', -1, 64))
			rec.set("gsm_signal", strconv.Itoa(int(r.U8())))
			m.Record = rec
			break
		}
		m.Record = report(f.Type, f.Content)
	case 0x70:
		m.Record = modules(r)
	case 0x8C:
		// OBD data: time, a byte, then "key=value," pairs in ASCII.
		rec := &Record{Time: dateTime(r)}
		r.U8()
		for kv := range strings.SplitSeq(string(asciiPrefix(r.Rest())), ",") {
			if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
				rec.set("obd_"+strings.ToLower(k), v)
			}
		}
		m.Record = rec
	case 0x95:
		m.Record = dashcam(r, f.Content)
	case 0xF1:
		// Unix time, then tag (2), length (1), value.
		rec := &Record{Time: time.Unix(int64(r.U32()), 0).UTC()}
		for r.Left() >= 3 && r.Err() == nil {
			tag, n := r.U16(), int(r.U8())
			v := r.Take(n)
			switch {
			case tag == 0x0005 && n == 2:
				rec.set("power", strconv.FormatFloat(float64(binary.BigEndian.Uint16(v))/100, 'f', -1, 64))
			case v != nil:
				rec.set(fmt.Sprintf("tlv_%04x", tag), hex.EncodeToString(v))
			}
		}
		m.Record = rec
	case TypeStringInfo:
		n := int(r.U8())
		m.ServerFlag = r.U32()
		if n < 4 || n-4 > r.Left() {
			// Devices that leave the length at zero: the text runs to
			// the language field.
			n = r.Left() + 2
		}
		m.Text = text(r.Take(n - 4))
		if r.Err() != nil {
			return nil, fmt.Errorf("string information: %w", r.Err())
		}
		m.Record = textRecord(m.Text)
	case TypeCommandReply:
		m.ServerFlag = r.U32()
		enc := r.U8()
		body := r.Rest()
		if r.Err() != nil {
			return nil, fmt.Errorf("command answer: %w", r.Err())
		}
		if enc == 0x02 {
			m.Text = utf16Text(body)
		} else {
			m.Text = text(body)
		}
		m.Record = textRecord(m.Text)
	case TypeInfo:
		sub := r.U8()
		if r.Err() != nil {
			return nil, fmt.Errorf("information: %w", r.Err())
		}
		m.Record = info(sub, r.Rest())
	case TypeSerialData:
		r.U8() // the external device's type
		rec := &Record{}
		rec.set("result", resultText(r.Rest()))
		m.Record = rec
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("protocol 0x%02x: %w", f.Type, err)
	}
	if rec := m.Record; rec != nil && rec.HasLocation && (math.Abs(rec.Lat) > 90 || math.Abs(rec.Lon) > 180) {
		// A layout this decoder does not know put something else where
		// the coordinates go: keep the packet, not the position.
		rec.HasLocation, rec.Valid, rec.Lat, rec.Lon = false, false, 0, 0
		rec.set("data", hex.EncodeToString(f.Content))
	}
	return m, nil
}

// bcd reads a BCD terminal id without its leading zero.
func bcd(b []byte) string {
	s := hex.EncodeToString(b)
	if len(s) == 16 && s[0] == '0' {
		s = s[1:]
	}
	return s
}

func validIMEI(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// dateTime reads YY MM DD hh mm ss (UTC); zero when the fields are not a
// date (devices without a fix send zeros).
func dateTime(r *cursor.Reader) time.Time {
	b := r.Take(6)
	if b == nil {
		return time.Time{}
	}
	y, mo, d, h, mi, s := int(b[0]), int(b[1]), int(b[2]), int(b[3]), int(b[4]), int(b[5])
	if mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59 {
		return time.Time{}
	}
	return time.Date(2000+y, time.Month(mo), d, h, mi, s, 0, time.UTC)
}

// gps reads the 18-byte GPS block: time, satellites, latitude, longitude,
// speed, course and status.
func gps(r *cursor.Reader, rec *Record) {
	rec.Time = dateTime(r)
	rec.Satellites = int(r.U8() & 0x0F)
	lat := float64(r.U32()) / 1800000
	lon := float64(r.U32()) / 1800000
	rec.Speed = int(r.U8())
	flags := r.U16()
	if r.Err() != nil {
		return
	}
	rec.HasLocation = true
	rec.Valid = flags&0x1000 != 0
	if flags&0x0400 == 0 {
		lat = -lat
	}
	if flags&0x0800 != 0 {
		lon = -lon
	}
	rec.Lat, rec.Lon = lat, lon
	rec.Course = int(flags & 0x03FF)
}

// lbs reads the serving cell: MCC, MNC (two bytes when the MCC's top bit
// is set), LAC and cell id; the 4G packets have a four-byte LAC and an
// eight-byte cell id.
func lbs(r *cursor.Reader, rec *Record, long bool) {
	mcc := r.U16()
	var mnc uint16
	if mcc&0x8000 != 0 {
		mnc = r.U16()
	} else {
		mnc = uint16(r.U8())
	}
	var lac, cell uint64
	if long {
		lac, cell = uint64(r.U32()), r.U64()
	} else {
		lac, cell = uint64(r.U16()), r.Uint(3)
	}
	if r.Err() != nil {
		return
	}
	setCell(rec, mcc, mnc, lac, cell)
}

// lbsWide reads a serving cell with a four-byte cell id.
func lbsWide(r *cursor.Reader, rec *Record) {
	mcc, mnc := r.U16(), uint16(r.U8())
	lac, cell := uint64(r.U16()), uint64(r.U32())
	if r.Err() == nil {
		setCell(rec, mcc, mnc, lac, cell)
	}
}

func setCell(rec *Record, mcc, mnc uint16, lac, cell uint64) {
	rec.set("mcc", strconv.Itoa(int(mcc&0x7FFF)))
	rec.set("mnc", strconv.Itoa(int(mnc)))
	rec.set("lac", strconv.FormatUint(lac, 10))
	rec.set("cell_id", strconv.FormatUint(cell, 10))
}

// accAndMileage reads what the second generation of location packets
// appends: ACC, upload mode, real-time or re-upload, and mileage.
func accAndMileage(r *cursor.Reader, rec *Record) {
	if r.Left() < 3 {
		return
	}
	acc := r.U8() != 0
	rec.Ignition = &acc
	rec.set("upload_mode", strconv.Itoa(int(r.U8())))
	rec.set("archive", strconv.FormatBool(r.U8() != 0))
	if r.Left() >= 4 {
		rec.set("odometer", strconv.FormatFloat(float64(r.U32())/1000, 'f', -1, 64))
	}
}

// alarms are the alarm codes of the status block.
var alarms = map[byte]string{
	0x01: "sos",
	0x02: "power_cut",
	0x03: "vibration",
	0x04: "geofence_enter",
	0x05: "geofence_exit",
	0x06: "overspeed",
	0x09: "movement",
	0x0E: "low_power",
	0x0F: "low_power",
	0x11: "power_off",
	0x13: "tampering",
	0x19: "low_battery",
	0x26: "hard_acceleration",
	0x27: "hard_braking",
	0x28: "sharp_turn",
	0x29: "sharp_turn",
	0x2A: "accident",
}

// terminalAlarms are the alarm bits (3 to 5) of the terminal information
// byte.
var terminalAlarms = map[byte]string{1: "vibration", 2: "power_cut", 3: "low_battery", 4: "sos"}

// status reads the status block: terminal information, voltage level
// (0 to 6), GSM signal (0 to 4), alarm and language.
func status(r *cursor.Reader, rec *Record) {
	info := r.U8()
	level := r.U8()
	gsm := r.U8()
	alarm := r.U8()
	if r.Err() != nil {
		return
	}
	r.U8() // language
	switch {
	case level <= 6:
		b := math.Round(float64(level) * 100 / 6)
		rec.BatteryLevel = &b
	case level <= 100:
		// Newer devices send the battery in percent.
		b := float64(level)
		rec.BatteryLevel = &b
	}
	if gsm <= 4 {
		rec.set("gsm_signal", strconv.Itoa(int(gsm)))
	}
	if a, ok := alarms[alarm]; ok {
		rec.set("alarm", a)
	} else if alarm != 0 {
		rec.set("event", strconv.Itoa(int(alarm)))
	}
	// The alarm bits of the terminal information win over the alarm
	// byte: devices that set both mean the bits.
	terminal(rec, info)
}

// terminal reads the terminal information byte: armed, ACC, charging,
// alarm, GPS tracking and the oil/electricity cut relay.
func terminal(rec *Record, info byte) {
	acc := info&0x02 != 0
	rec.Ignition = &acc
	rec.set("armed", strconv.FormatBool(info&0x01 != 0))
	rec.set("charging", strconv.FormatBool(info&0x04 != 0))
	rec.set("relay", strconv.FormatBool(info&0x80 != 0))
	if a, ok := terminalAlarms[info>>3&0x07]; ok {
		rec.set("alarm", a)
	}
}

// info decodes an information packet (0x94) by its sub-type.
func info(sub byte, b []byte) *Record {
	rec := &Record{}
	switch {
	case sub == 0x00 && len(b) == 2, sub == 0x0B && len(b) == 2:
		rec.set("power", strconv.FormatFloat(float64(binary.BigEndian.Uint16(b))/100, 'f', -1, 64))
	case sub == 0x0B && len(b) == 1:
		rec.set("network", map[byte]string{0: "2G", 1: "4G"}[b[0]])
	case sub == 0x05 && len(b) > 0:
		rec.set("door", strconv.FormatBool(b[len(b)-1]&0x01 != 0))
	case sub == 0x0A && len(b) >= 26:
		rec.set("imsi", bcd(b[8:16]))
		rec.set("iccid", strings.TrimRight(hex.EncodeToString(b[16:26]), "fF"))
	case sub == 0x1E && len(b) == 8:
		rec.set("temp1", strconv.FormatFloat(float64(int32(binary.BigEndian.Uint32(b)))/10, 'f', -1, 64))
		rec.set("humidity", strconv.FormatFloat(float64(binary.BigEndian.Uint32(b[4:]))/10, 'f', -1, 64))
	case sub == 0x1B && printable(b):
		rec.set("serial", text(b))
	case sub == 0x1B && len(b) >= 2 && b[0] == 0x02 && int(b[1]+1)/2 <= len(b)-2:
		// A driver card: its number of hex digits, then the digits.
		rec.set("driver_id", hex.EncodeToString(b[2:2+int(b[1]+1)/2]))
	case printable(b):
		rec.set("info_"+hex.EncodeToString([]byte{sub}), text(b))
	default:
		rec.set("info_"+hex.EncodeToString([]byte{sub}), hex.EncodeToString(b))
	}
	return rec
}

// textRecord keeps a command answer as the result attribute and reads a
// position from the "Current position!Lat:N54.739332,Lon:E25.273270,..."
// answer to a where-is command.
func textRecord(t string) *Record {
	rec := &Record{}
	rec.set("result", t)
	if strings.HasPrefix(t, "<ICCID:") {
		rec.set("iccid", strings.TrimSuffix(strings.TrimPrefix(t, "<ICCID:"), ">"))
	}
	_, pos, ok := strings.Cut(t, "Lat:")
	if !ok {
		return rec
	}
	fields := map[string]string{"Lat": ""}
	for i, kv := range strings.Split(pos, ",") {
		k, v, _ := strings.Cut(kv, ":")
		if i == 0 {
			k, v = "Lat", kv
		}
		fields[k] = v
	}
	lat, okLat := hemisphere(fields["Lat"], 'N', 'S')
	lon, okLon := hemisphere(fields["Lon"], 'E', 'W')
	at, err := time.Parse("2006-01-02 15:04:05", strings.Join(strings.Fields(fields["DateTime"]), " "))
	if !okLat || !okLon || err != nil {
		return rec
	}
	rec.HasLocation, rec.Valid = true, true
	rec.Lat, rec.Lon, rec.Time = lat, lon, at
	if c, err := strconv.ParseFloat(fields["Course"], 64); err == nil {
		rec.Course = int(math.Round(c)) % 360
	}
	if s, err := strconv.ParseFloat(fields["Speed"], 64); err == nil && s >= 0 {
		rec.Speed = int(math.Round(s))
	}
	return rec
}

func hemisphere(s string, pos, neg byte) (float64, bool) {
	if len(s) < 2 || (s[0] != pos && s[0] != neg) {
		return 0, false
	}
	v, err := strconv.ParseFloat(s[1:], 64)
	if err != nil {
		return 0, false
	}
	if s[0] == neg {
		v = -v
	}
	return v, true
}

// text is printable ASCII with padding and line ends removed.
func text(b []byte) string {
	return strings.TrimRight(strings.TrimLeft(string(b), "\x00"), "\x00\r\n ")
}

func printable(b []byte) bool {
	t := strings.TrimRight(string(b), "\x00\r\n")
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] < 0x20 || t[i] > 0x7E {
			return false
		}
	}
	return true
}

// resultText is serial data as text when it is text, else as hex.
func resultText(b []byte) string {
	if printable(b) {
		return text(b)
	}
	return hex.EncodeToString(b)
}

func utf16Text(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.BigEndian.Uint16(b[2*i:])
	}
	return strings.TrimRight(string(utf16.Decode(u)), "\x00\r\n ")
}

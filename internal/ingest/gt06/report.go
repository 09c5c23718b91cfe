package gt06

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fleetwire/fleetwire/internal/ingest/cursor"
)

// report decodes the report packets whose layouts vary between device
// families (0x1E, 0x24, 0x31 to 0x38, 0xA2, 0xF2 and others): a time
// first, a GPS block when one follows (recognised by its length nibble
// 0xC and coordinates in range, right after the time or one byte later),
// and the rest kept in hex as the data attribute.
func report(typ byte, b []byte) *Record {
	rec := &Record{}
	r := cursor.New(b, ErrMalformed)
	probe := []int{0, 1}
	if typ == 0xF2 {
		rec.Time = time.Unix(int64(r.U32()), 0).UTC()
		probe = nil
	} else {
		rec.Time = dateTime(r)
	}
	for _, skip := range probe {
		at := r.Offset() + skip
		if at < 6 || at+12 > len(b) || b[at]>>4 != 0x0C {
			continue
		}
		g := cursor.New(b[at-6:], ErrMalformed)
		var fix Record
		gps(g, &fix)
		if g.Err() == nil && fix.Lat >= -90 && fix.Lat <= 90 && fix.Lon >= -180 && fix.Lon <= 180 {
			fix.Time = rec.Time
			*rec = fix
			r.Take(skip + 12)
			break
		}
	}
	if rest := r.Rest(); len(rest) > 0 {
		rec.set("data", hex.EncodeToString(rest))
	}
	return rec
}

// modules decodes a 0x70 packet: tag (2), length (2), value, repeated.
func modules(r *cursor.Reader) *Record {
	rec := &Record{}
	for r.Left() >= 4 && r.Err() == nil {
		tag, n := r.U16(), int(r.U16())
		v := r.Take(n)
		if v == nil {
			break
		}
		switch {
		case tag == 0x0001 && n == 8:
			rec.set("imei", bcd(v))
		case tag == 0x0002 && n == 8:
			rec.set("imsi", bcd(v))
		case tag == 0x0003:
			rec.set("iccid", strings.TrimRight(hex.EncodeToString(v), "fF"))
		case tag == 0x0018 && n == 2:
			rec.set("voltage_battery", strconv.FormatFloat(float64(binary.BigEndian.Uint16(v))/100, 'f', -1, 64))
		case tag == 0x002C && n == 4:
			rec.Time = time.Unix(int64(binary.BigEndian.Uint32(v)), 0).UTC()
		case tag == 0x0033 && n >= 18:
			moduleLocation(rec, v)
		case tag == 0x0035 && n == 1:
			rec.set("event", strconv.Itoa(int(v[0])))
			if v[0] == 0x01 {
				rec.set("alarm", "removing")
			}
		case tag == 0x007F && n >= 12:
			// A BLE sensor: MAC, then readings; the temperature is a
			// little-endian tenth of a degree at byte 10.
			rec.set("ble1_id", hex.EncodeToString(v[:6]))
			rec.set("temp_ble1", strconv.FormatFloat(float64(int16(binary.LittleEndian.Uint16(v[10:])))/10, 'f', -1, 64))
		default:
			rec.set(fmt.Sprintf("tlv_%04x", tag), hex.EncodeToString(v))
		}
	}
	return rec
}

// moduleLocation reads module 0x33: Unix time, satellites, altitude,
// latitude, longitude, speed, course and status.
func moduleLocation(rec *Record, v []byte) {
	r := cursor.New(v, ErrMalformed)
	at := time.Unix(int64(r.U32()), 0).UTC()
	sats := int(r.U8())
	alt := int(int16(r.U16()))
	lat := float64(r.U32()) / 1800000
	lon := float64(r.U32()) / 1800000
	speed := int(r.U8())
	flags := r.U16()
	if r.Err() != nil {
		return
	}
	if flags&0x0400 == 0 {
		lat = -lat
	}
	if flags&0x0800 != 0 {
		lon = -lon
	}
	if math.Abs(lat) > 90 || math.Abs(lon) > 180 {
		return
	}
	rec.Time, rec.Satellites, rec.Altitude = at, sats, &alt
	rec.HasLocation, rec.Valid = true, flags&0x1000 != 0
	rec.Lat, rec.Lon, rec.Speed, rec.Course = lat, lon, speed, int(flags&0x03FF)
}

// dashcamEvents are the event codes of the dashcam alarm packet (0x95)
// that are alarms.
var dashcamEvents = map[byte]string{0x01: "sos", 0x90: "hard_acceleration", 0x91: "hard_braking", 0x93: "accident"}

// dashcam decodes a dashcam event (0x95): the event code and the video
// files recorded for it. Three layouts are in use: time and code only;
// time, position and code; and, behind ff ff 01, time, a full GPS block
// and the code.
func dashcam(r *cursor.Reader, b []byte) *Record {
	rec := &Record{}
	var code byte
	switch {
	case len(b) >= 3 && b[0] == 0xFF && b[1] == 0xFF && b[2] == 0x01:
		r.Take(3)
		gps(r, rec)
		r.Take(3)
		code = r.U8()
		r.Take(2)
	case len(b) <= 10:
		rec.Time = dateTime(r)
		code = r.U8()
	default:
		rec.Time = dateTime(r)
		lat := float64(r.U32()) / 1800000
		lon := float64(r.U32()) / 1800000
		rec.Speed = int(r.U8())
		r.U8()
		code = r.U8()
		r.Take(2)
		if r.Err() == nil && lat <= 90 && lon <= 180 {
			rec.HasLocation, rec.Lat, rec.Lon = true, lat, lon
		}
	}
	if r.Err() != nil {
		return rec
	}
	rec.set("event", strconv.Itoa(int(code)))
	if a, ok := dashcamEvents[code]; ok {
		rec.set("alarm", a)
	}
	if files := asciiPrefix(r.Rest()); len(files) > 0 {
		rec.set("event_files", string(files))
	}
	return rec
}

// asciiPrefix is the printable run at the start of b.
func asciiPrefix(b []byte) []byte {
	for i, c := range b {
		if c < 0x20 || c > 0x7E {
			return b[:i]
		}
	}
	return b
}

package teltonika

import (
	"fmt"
	"math"
	"time"

	"github.com/fleetwire/fleetwire/internal/ingest/cursor"
)

// Codec is the codec id, the first byte of a packet's data.
type Codec byte

// Codecs.
const (
	Codec7  Codec = 0x07 // GH3000 AVL data
	Codec8  Codec = 0x08 // AVL data, one-byte IO ids
	Codec8E Codec = 0x8E // AVL data, two-byte IO ids, variable-length values
	Codec12 Codec = 0x0C // commands and responses
	Codec13 Codec = 0x0D // device messages with a timestamp
	Codec14 Codec = 0x0E // commands and responses addressed by IMEI
	Codec15 Codec = 0x0F // device messages with a timestamp and IMEI
	Codec16 Codec = 0x10 // AVL data, two-byte IO ids, generation type
)

// Packet is a decoded data field: AVL records or messages.
type Packet struct {
	// Codec is the codec the packet was sent in.
	Codec Codec
	// Records are the AVL records, oldest first as the device sends them.
	Records []Record
	// Messages are the command and response messages (Codecs 12 to 15).
	Messages []Message
}

// Record is one AVL record.
type Record struct {
	// Time is when the device took the record.
	Time time.Time
	// Priority is 0 low, 1 high, 2 panic.
	Priority uint8
	// HasGPS is false for a Codec 7 record whose mask leaves out the
	// coordinates; every other record has them.
	HasGPS bool
	// Lat and Lon are in degrees; both 0 when the device had no fix yet.
	Lat, Lon float64
	// Altitude in metres, Angle in degrees from north, Speed in km/h.
	Altitude, Angle, Speed int
	// Satellites in use; 0 means the coordinates are not a current fix.
	Satellites int
	// EventID is the IO id that caused the record (0 for a periodic one).
	EventID uint16
	// Generation is Codec 16's generation type (0 on exit, 1 on entrance,
	// 2 on both, 3 reserved, 4 hysteresis, 5 on change, 6 eventual,
	// 7 periodical).
	Generation uint8
	// IO are the IO elements in the order they came.
	IO []IO
	// Cell is the GSM element of a Codec 7 record, nil when absent.
	Cell *Cell
}

// Cell is the GSM part of a Codec 7 record.
type Cell struct {
	// LAC and CellID locate the serving cell; both 0 when not sent.
	LAC, CellID uint16
	// Signal is the signal quality, -1 when not sent.
	Signal int
	// Operator is the MCC and MNC as one number (24602), 0 when not sent.
	Operator uint32
}

// IO is one IO element.
type IO struct {
	// ID is the AVL id of the element.
	ID uint16
	// Size is the value's length in bytes: 1, 2, 4 or 8 for fixed-size
	// values (then in Value), 16 or any length for the others (in Raw).
	Size int
	// Value is a fixed-size value, unsigned.
	Value uint64
	// Raw is a value longer than 8 bytes, or a Codec 8 Extended variable
	// value of any length.
	Raw []byte
}

// Signed is the fixed-size value as a two's complement number of its size.
func (e IO) Signed() int64 {
	switch e.Size {
	case 1:
		return int64(int8(e.Value))
	case 2:
		return int64(int16(e.Value))
	case 4:
		return int64(int32(e.Value))
	}
	return int64(e.Value)
}

// Decode decodes a packet's data field, from the codec id to the trailing
// record count, as ReadFrame returns it or as a UDP datagram carries it.
// The leading and trailing record counts must agree and nothing may follow
// the trailing count.
func Decode(data []byte) (*Packet, error) {
	p, n, err := decode(data)
	if err != nil {
		return nil, err
	}
	if n != len(data) {
		return nil, fmt.Errorf("%w: %d bytes after the last record", ErrMalformed, len(data)-n)
	}
	return p, nil
}

// decode decodes a data field at the start of data and returns how many
// bytes it took.
func decode(data []byte) (*Packet, int, error) {
	if len(data) < 3 {
		return nil, 0, fmt.Errorf("%w: %d bytes of data", ErrMalformed, len(data))
	}
	c := Codec(data[0])
	switch c {
	case Codec8:
		p, n, err := decodeAVL(data, c, false)
		if err != nil {
			// Firmware that adds 16-byte IO values to Codec 8 is told
			// by its layout: the plain reading of it falls apart.
			if p2, n2, err2 := decodeAVL(data, c, true); err2 == nil {
				return p2, n2, nil
			}
		}
		return p, n, err
	case Codec7, Codec8E, Codec16:
		return decodeAVL(data, c, false)
	case Codec12, Codec13, Codec14, Codec15:
		return decodeMessages(data, c)
	}
	return nil, 0, fmt.Errorf("%w: unknown codec 0x%02x", ErrMalformed, data[0])
}

func decodeAVL(data []byte, c Codec, wide bool) (*Packet, int, error) {
	r := cursor.New(data, ErrMalformed)
	r.U8() // codec id
	n := int(r.U8())
	if n == 0 {
		return nil, 0, fmt.Errorf("%w: no records", ErrMalformed)
	}
	// Each record has at least 10 bytes; do not let a count allocate
	// more than the data can hold.
	if n > len(data)/10 {
		return nil, 0, fmt.Errorf("%w: %d records in %d bytes", ErrMalformed, n, len(data))
	}
	p := &Packet{Codec: c, Records: make([]Record, n)}
	for i := range p.Records {
		rec := &p.Records[i]
		if c == Codec7 {
			record7(r, rec)
		} else {
			record(r, rec, c, wide)
		}
		if r.Err() != nil {
			return nil, 0, fmt.Errorf("record %d of %d: %w", i+1, n, r.Err())
		}
	}
	if m := int(r.U8()); r.Err() != nil || m != n {
		if r.Err() != nil {
			return nil, 0, fmt.Errorf("record count: %w", r.Err())
		}
		return nil, 0, fmt.Errorf("%w: %d records announced, %d at the end", ErrMalformed, n, m)
	}
	return p, r.Offset(), nil
}

// epoch7 is where Codec 7 counts its seconds from.
var epoch7 = time.Date(2007, 1, 1, 0, 0, 0, 0, time.UTC)

func record(r *cursor.Reader, rec *Record, c Codec, wide bool) {
	rec.Time = time.UnixMilli(int64(r.U64())).UTC()
	rec.Priority = r.U8()
	rec.HasGPS = true
	rec.Lon = float64(int32(r.U32())) / 1e7
	rec.Lat = float64(int32(r.U32())) / 1e7
	rec.Altitude = int(int16(r.U16()))
	rec.Angle = int(r.U16())
	rec.Satellites = int(r.U8())
	rec.Speed = int(r.U16())
	var total int
	switch c {
	case Codec8:
		rec.EventID = uint16(r.U8())
		total = int(r.U8())
	case Codec8E:
		rec.EventID = r.U16()
		total = int(r.U16())
	case Codec16:
		rec.EventID = r.U16()
		rec.Generation = r.U8()
		total = int(r.U8())
	}
	if r.Err() != nil {
		return
	}
	if total > r.Left()/2 {
		r.Fail("%d IO elements in %d bytes", total, r.Left())
		return
	}
	rec.IO = make([]IO, 0, total)
	sizes := []int{1, 2, 4, 8}
	if wide {
		sizes = append(sizes, 16)
	}
	for _, size := range sizes {
		var count int
		if c == Codec8E {
			count = int(r.U16())
		} else {
			count = int(r.U8())
		}
		for range count {
			e := IO{Size: size}
			if c == Codec8 {
				e.ID = uint16(r.U8())
			} else {
				e.ID = r.U16()
			}
			if size <= 8 {
				e.Value = r.Uint(size)
			} else {
				e.Raw = r.Bytes(size)
			}
			if r.Err() != nil {
				return
			}
			rec.IO = append(rec.IO, e)
		}
	}
	if c == Codec8E {
		count := int(r.U16())
		for range count {
			e := IO{ID: r.U16()}
			e.Size = int(r.U16())
			e.Raw = r.Bytes(e.Size)
			if r.Err() != nil {
				return
			}
			rec.IO = append(rec.IO, e)
		}
	}
	if r.Err() == nil && len(rec.IO) != total {
		r.Fail("%d IO elements announced, %d found", total, len(rec.IO))
	}
}

// Codec 7 masks.
const (
	mask7GPS = 1 << iota
	mask7IO1
	mask7IO2
	mask7IO4
	mask7IO8
)

func record7(r *cursor.Reader, rec *Record) {
	ts := r.U32()
	rec.Priority = uint8(ts >> 30)
	rec.Time = epoch7.Add(time.Duration(ts&0x3FFFFFFF) * time.Second)
	mask := r.U8()
	if mask&mask7GPS != 0 {
		gps := r.U8()
		if gps&0x01 != 0 {
			rec.HasGPS = true
			rec.Lat = float64(math.Float32frombits(r.U32()))
			rec.Lon = float64(math.Float32frombits(r.U32()))
			if math.IsNaN(rec.Lat) || math.IsNaN(rec.Lon) {
				r.Fail("coordinates are not numbers")
			}
		}
		if gps&0x02 != 0 {
			rec.Altitude = int(int16(r.U16()))
		}
		if gps&0x04 != 0 {
			rec.Angle = int(r.U8()) * 360 / 256
		}
		if gps&0x08 != 0 {
			rec.Speed = int(r.U8())
		}
		if gps&0x10 != 0 {
			rec.Satellites = int(r.U8())
		}
		if gps&0xE0 != 0 {
			rec.Cell = &Cell{Signal: -1}
			if gps&0x20 != 0 {
				rec.Cell.LAC = r.U16()
				rec.Cell.CellID = r.U16()
			}
			if gps&0x40 != 0 {
				rec.Cell.Signal = int(r.U8())
			}
			if gps&0x80 != 0 {
				rec.Cell.Operator = r.U32()
			}
		}
	}
	for i, size := range []int{1, 2, 4, 8} {
		if mask&(mask7IO1<<i) == 0 {
			continue
		}
		count := int(r.U8())
		for range count {
			e := IO{Size: size, ID: uint16(r.U8())}
			e.Value = r.Uint(size)
			if r.Err() != nil {
				return
			}
			rec.IO = append(rec.IO, e)
		}
	}
}

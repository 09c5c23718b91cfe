package teltonika

import (
	"encoding/binary"
	"fmt"
	"math"
)

// AppendAVL appends the data field of an AVL packet carrying recs in
// Codec 8 or Codec 8 Extended, as a device sends it (for simulators and
// tests). In Codec 8, IO ids must fit a byte and values must be of size
// 1, 2, 4 or 8.
func AppendAVL(dst []byte, c Codec, recs []Record) ([]byte, error) {
	if c != Codec8 && c != Codec8E {
		return nil, fmt.Errorf("teltonika: cannot encode codec 0x%02x", byte(c))
	}
	if len(recs) == 0 || len(recs) > 255 {
		return nil, fmt.Errorf("teltonika: %d records (1 to 255)", len(recs))
	}
	dst = append(dst, byte(c), byte(len(recs)))
	for i := range recs {
		r := &recs[i]
		dst = binary.BigEndian.AppendUint64(dst, uint64(r.Time.UnixMilli()))
		dst = append(dst, r.Priority)
		dst = binary.BigEndian.AppendUint32(dst, uint32(int32(math.Round(r.Lon*1e7))))
		dst = binary.BigEndian.AppendUint32(dst, uint32(int32(math.Round(r.Lat*1e7))))
		dst = binary.BigEndian.AppendUint16(dst, uint16(int16(r.Altitude)))
		dst = binary.BigEndian.AppendUint16(dst, uint16(r.Angle))
		dst = append(dst, byte(r.Satellites))
		dst = binary.BigEndian.AppendUint16(dst, uint16(r.Speed))
		wide := c == Codec8E
		put := func(v uint16) {
			if wide {
				dst = binary.BigEndian.AppendUint16(dst, v)
			} else {
				dst = append(dst, byte(v))
			}
		}
		put(r.EventID)
		put(uint16(len(r.IO)))
		var seen int
		for _, size := range []int{1, 2, 4, 8} {
			var group []IO
			for _, e := range r.IO {
				if e.Size == size && e.Raw == nil {
					group = append(group, e)
				}
			}
			put(uint16(len(group)))
			for _, e := range group {
				if !wide && e.ID > 0xFF {
					return nil, fmt.Errorf("teltonika: IO id %d in codec 8", e.ID)
				}
				put(e.ID)
				for s := size - 1; s >= 0; s-- {
					dst = append(dst, byte(e.Value>>(8*s)))
				}
			}
			seen += len(group)
		}
		if wide {
			var group []IO
			for _, e := range r.IO {
				if e.Raw != nil {
					group = append(group, e)
				}
			}
			put(uint16(len(group)))
			for _, e := range group {
				put(e.ID)
				put(uint16(len(e.Raw)))
				dst = append(dst, e.Raw...)
			}
			seen += len(group)
		}
		if seen != len(r.IO) {
			return nil, fmt.Errorf("teltonika: record %d has IO values codec 0x%02x cannot carry", i, byte(c))
		}
	}
	return append(dst, byte(len(recs))), nil
}

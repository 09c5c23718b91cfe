package sqlstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/fleetwire/fleetwire/internal/store"
)

// A block is one tracker's points of one hour, packed: a version byte,
// then per point, oldest first, the milliseconds since the previous point
// (the first since the hour's start), latitude and longitude as signed
// differences from the previous point in 1e-7 degrees, altitude signed,
// speed, heading, satellites and precision unsigned, all varints, and the
// flags byte. A point at one fix a second takes about 12 bytes.
const blockVersion = 1

// blockHour is the start of the hour t is in.
func blockHour(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// encodeBlock packs points (sorted, of one tracker and the hour start).
func encodeBlock(start time.Time, points []store.Point) []byte {
	b := make([]byte, 0, 1+14*len(points))
	b = append(b, blockVersion)
	prev := start.UnixMilli()
	var lat, lng int64
	for _, p := range points {
		t := pointTime(p.Time).UnixMilli()
		b = binary.AppendUvarint(b, uint64(t-prev))
		la, ln := degrees(p.Lat), degrees(p.Lng)
		b = binary.AppendVarint(b, la-lat)
		b = binary.AppendVarint(b, ln-lng)
		b = binary.AppendVarint(b, int64(clamp(p.Alt, -1e6, 1e6)))
		b = binary.AppendUvarint(b, uint64(clamp(p.Speed, 0, 32767)))
		b = binary.AppendUvarint(b, uint64(clamp(p.Heading, 0, 360)))
		b = binary.AppendUvarint(b, uint64(clamp(p.Satellites, 0, 255)))
		b = binary.AppendUvarint(b, uint64(clamp(p.Precision, 0, 1e9)))
		b = append(b, byte(flagsOf(p)))
		prev, lat, lng = t, la, ln
	}
	return b
}

var errBlock = errors.New("corrupt position block")

// decodeBlock unpacks a block's points with from < Time < to onto dst.
func decodeBlock(dst []store.Point, trackerID int64, start time.Time, b []byte, from, to time.Time) ([]store.Point, error) {
	if len(b) == 0 || b[0] != blockVersion {
		return dst, fmt.Errorf("%w: version", errBlock)
	}
	b = b[1:]
	prev := start.UnixMilli()
	lo, hi := from.UnixMilli(), to.UnixMilli()
	var lat, lng int64
	for len(b) > 0 {
		var f [8]int64
		for i := range f {
			var v int64
			var n int
			switch i {
			case 1, 2, 3:
				v, n = binary.Varint(b)
			default:
				var u uint64
				u, n = binary.Uvarint(b)
				v = int64(u)
			}
			if n <= 0 {
				return dst, fmt.Errorf("%w: field %d", errBlock, i)
			}
			f[i] = v
			b = b[n:]
		}
		if len(b) == 0 {
			return dst, fmt.Errorf("%w: flags", errBlock)
		}
		flags := b[0]
		b = b[1:]
		t := prev + f[0]
		lat, lng, prev = lat+f[1], lng+f[2], t
		if t <= lo || t >= hi {
			continue
		}
		dst = append(dst, store.Point{
			TrackerID: trackerID, Time: time.UnixMilli(t).UTC(),
			Lat: float64(lat) / 1e7, Lng: float64(lng) / 1e7,
			Alt: int(f[3]), Speed: int(f[4]), Heading: int(f[5]), Satellites: int(f[6]), Precision: int(f[7]),
			GSMLBS: flags&flagGSMLBS != 0, Buffered: flags&flagBuffered != 0,
		})
	}
	return dst, nil
}

func flagsOf(p store.Point) int {
	var f int
	if p.GSMLBS {
		f |= flagGSMLBS
	}
	if p.Buffered {
		f |= flagBuffered
	}
	return f
}

// mergePoints merges two time-sorted lists; at a millisecond both have, a
// keeps its point.
func mergePoints(a, b []store.Point) []store.Point {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	out := make([]store.Point, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		ta, tb := a[i].Time.UnixMilli(), b[j].Time.UnixMilli()
		switch {
		case ta < tb:
			out = append(out, a[i])
			i++
		case tb < ta:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

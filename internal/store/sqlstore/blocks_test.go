package sqlstore

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/store"
)

var hour = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

func samplePoints() []store.Point {
	return []store.Point{
		{TrackerID: 7, Time: hour.Add(12 * time.Millisecond), Lat: 54.6872111, Lng: -25.2797222, Alt: -12, Speed: 88, Heading: 359, Satellites: 11, Precision: 4, Buffered: true},
		{TrackerID: 7, Time: hour.Add(time.Second), Lat: -33.9, Lng: 151.2, Alt: 3000, GSMLBS: true},
		{TrackerID: 7, Time: hour.Add(59*time.Minute + 59*time.Second + 999*time.Millisecond), Lat: 90, Lng: -180},
	}
}

// TestBlockRoundTrip packs points and reads them back, whole and by window.
func TestBlockRoundTrip(t *testing.T) {
	pts := samplePoints()
	b := encodeBlock(hour, pts)
	got, err := decodeBlock(nil, 7, hour, b, hour.Add(-time.Millisecond), hour.Add(time.Hour))
	if err != nil || !reflect.DeepEqual(got, pts) {
		t.Fatalf("%v\n got %+v\nwant %+v", err, got, pts)
	}
	got, err = decodeBlock(nil, 7, hour, b, pts[0].Time, pts[2].Time)
	if err != nil || len(got) != 1 || !got[0].Time.Equal(pts[1].Time) {
		t.Fatalf("window: %v %+v", err, got)
	}
	for _, bad := range [][]byte{nil, {9}, b[:len(b)-1], append(append([]byte{}, b...), 0x80)} {
		if _, err := decodeBlock(nil, 7, hour, bad, hour.Add(-time.Hour), hour.Add(time.Hour)); !errors.Is(err, errBlock) {
			t.Errorf("%x: %v", bad, err)
		}
	}
}

// FuzzDecodeBlock reads arbitrary block data: errors, never panics, and
// what decodes re-encodes to a block that decodes the same.
func FuzzDecodeBlock(f *testing.F) {
	f.Add(encodeBlock(hour, samplePoints()))
	f.Add([]byte{blockVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeBlock(nil, 1, hour, b, time.Unix(0, 0), hour.Add(1e6*time.Hour))
		if err != nil {
			if !errors.Is(err, errBlock) {
				t.Fatalf("error %v", err)
			}
			return
		}
		again, err := decodeBlock(nil, 1, hour, encodeBlock(hour, got), time.Unix(0, 0), hour.Add(1e6*time.Hour))
		if err != nil || len(again) != len(got) {
			t.Fatalf("re-encoded: %v, %d points of %d", err, len(again), len(got))
		}
	})
}

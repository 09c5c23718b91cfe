package storetest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/store"
)

// History is a store with position history, as both SQL backends are.
type History interface {
	store.Store
	store.History
}

// RunHistory runs the position history contract as parallel subtests of
// t, each on a fresh store from open.
func RunHistory(t *testing.T, open func(t *testing.T) (History, error)) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, st History)
	}{
		{"AppendAndRead", testAppendAndRead},
		{"Duplicates", testPointDuplicates},
		{"Compact", testCompactPoints},
		{"Prune", testPrunePoints},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, err := open(t)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			t.Cleanup(func() { st.Close() })
			tc.fn(t, st)
		})
	}
}

// track makes n points of tracker id one step apart from start.
func track(id int64, start time.Time, step time.Duration, n int) []store.Point {
	out := make([]store.Point, n)
	for i := range out {
		out[i] = store.Point{
			TrackerID: id, Time: start.Add(time.Duration(i) * step),
			Lat: 52.5 + float64(i)*1e-5, Lng: -13.4 - float64(i)*1e-5,
			Alt: i % 300, Speed: i % 120, Heading: i % 360, Satellites: i % 13, Precision: i % 50,
			GSMLBS: i%7 == 0, Buffered: i%5 == 0,
		}
	}
	return out
}

func testAppendAndRead(t *testing.T, st History) {
	u := MustUser(t, st, "alice")
	a, b := MustTracker(t, st, u.ID, "a"), MustTracker(t, st, u.ID, "b")
	start := time.Now().UTC().Truncate(time.Hour).Add(123456789 * time.Nanosecond)
	pa := track(a.ID, start, 1500*time.Millisecond, 1000) // more than one statement
	pb := track(b.ID, start, time.Second, 10)
	if err := st.AppendPoints(t.Context(), append(pa, pb...)); err != nil {
		t.Fatalf("AppendPoints: %v", err)
	}
	got, err := st.Points(t.Context(), a.ID, start.Add(-time.Second), start.Add(time.Hour), 5000)
	if err != nil {
		t.Fatalf("Points: %v", err)
	}
	if len(got) != len(pa) {
		t.Fatalf("%d points, want %d", len(got), len(pa))
	}
	for i := range pa {
		want := pa[i]
		want.Time = want.Time.Truncate(time.Millisecond)
		want.Lat, want.Lng = got[i].Lat, got[i].Lng
		if !reflect.DeepEqual(got[i], want) || abs(got[i].Lat-pa[i].Lat) > 1e-7 || abs(got[i].Lng-pa[i].Lng) > 1e-7 {
			t.Fatalf("point %d: got %+v, want %+v", i, got[i], pa[i])
		}
	}
	// from and to are exclusive; limit cuts from the oldest.
	got, err = st.Points(t.Context(), b.ID, pb[2].Time, pb[6].Time, 100)
	if err != nil || len(got) != 3 || !got[0].Time.Equal(pb[3].Time.Truncate(time.Millisecond)) {
		t.Fatalf("window: %v %+v", err, got)
	}
	if got, err = st.Points(t.Context(), b.ID, start.Add(-time.Hour), start.Add(time.Hour), 4); err != nil || len(got) != 4 {
		t.Fatalf("limit: %v %d", err, len(got))
	}
	if got, err = st.Points(t.Context(), 999999, start.Add(-time.Hour), start.Add(time.Hour), 4); err != nil || len(got) != 0 {
		t.Fatalf("unknown tracker: %v %d", err, len(got))
	}
}

func testPointDuplicates(t *testing.T, st History) {
	u := MustUser(t, st, "alice")
	a := MustTracker(t, st, u.ID, "a")
	start := time.Now().UTC().Truncate(time.Minute)
	p := track(a.ID, start, time.Second, 5)
	if err := st.AppendPoints(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	again := append(track(a.ID, start, time.Second, 5), track(a.ID, start.Add(10*time.Second), time.Second, 2)...)
	again[0].Speed = 99 // a resent fix keeps what was stored first
	if err := st.AppendPoints(t.Context(), again); err != nil {
		t.Fatalf("resent points: %v", err)
	}
	got, err := st.Points(t.Context(), a.ID, start.Add(-time.Second), start.Add(time.Minute), 100)
	if err != nil || len(got) != 7 || got[0].Speed != p[0].Speed {
		t.Fatalf("%v: %d points, first %+v", err, len(got), got)
	}
}

func testCompactPoints(t *testing.T, st History) {
	u := MustUser(t, st, "alice")
	a, b := MustTracker(t, st, u.ID, "a"), MustTracker(t, st, u.ID, "b")
	start := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	pa := track(a.ID, start.Add(17*time.Millisecond), 7*time.Second, 2000) // three hours and a bit
	pb := track(b.ID, start, time.Minute, 30)
	if err := st.AppendPoints(t.Context(), append(pa, pb...)); err != nil {
		t.Fatal(err)
	}
	read := func(id int64) []store.Point {
		t.Helper()
		got, err := st.Points(t.Context(), id, start.Add(-time.Hour), start.Add(5*time.Hour), 10000)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	before := read(a.ID)
	n, err := st.CompactPoints(t.Context(), start.Add(2*time.Hour+time.Minute))
	if err != nil {
		t.Fatalf("CompactPoints: %v", err)
	}
	inTwoHours := 0
	for _, p := range pa {
		if p.Time.Before(start.Add(2 * time.Hour)) {
			inTwoHours++
		}
	}
	if n != int64(inTwoHours+len(pb)) {
		t.Errorf("compacted %d points, want %d", n, inTwoHours+len(pb))
	}
	if after := read(a.ID); !reflect.DeepEqual(after, before) {
		t.Fatalf("points changed by compaction: %d before, %d after", len(before), len(after))
	}
	// A window inside a packed hour.
	got, err := st.Points(t.Context(), a.ID, pa[10].Time, pa[20].Time, 100)
	if err != nil || len(got) != 9 || !got[0].Time.Equal(pa[11].Time.Truncate(time.Millisecond)) {
		t.Fatalf("window in a block: %v %d", err, len(got))
	}
	// A late fix of a packed hour joins its block, a resent one does not.
	late := track(a.ID, start.Add(3*time.Second), time.Hour, 1)
	if err := st.AppendPoints(t.Context(), append(late, pa[0])); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CompactPoints(t.Context(), start.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if after := read(a.ID); len(after) != len(before)+1 || !after[1].Time.Equal(late[0].Time) {
		t.Fatalf("late point: %d points, want %d", len(after), len(before)+1)
	}
	if got := read(b.ID); len(got) != len(pb) {
		t.Fatalf("tracker b: %d points, want %d", len(got), len(pb))
	}
}

func testPrunePoints(t *testing.T, st History) {
	u := MustUser(t, st, "alice")
	a, b := MustTracker(t, st, u.ID, "a"), MustTracker(t, st, u.ID, "b")
	now := time.Now().UTC()
	today := now.Truncate(24 * time.Hour)
	var all []store.Point
	for _, id := range []int64{a.ID, b.ID} {
		all = append(all, track(id, today.AddDate(0, 0, -3), time.Hour, 72)...) // three old days
		all = append(all, track(id, today, time.Minute, 10)...)
	}
	if err := st.AppendPoints(t.Context(), all); err != nil {
		t.Fatal(err)
	}
	// Two of the three old days packed, the third still in rows.
	if _, err := st.CompactPoints(t.Context(), today.AddDate(0, 0, -1)); err != nil {
		t.Fatal(err)
	}
	n, err := st.PrunePoints(t.Context(), today.AddDate(0, 0, -1))
	if err != nil {
		t.Fatalf("PrunePoints: %v", err)
	}
	if n != 2*48 {
		t.Errorf("pruned %d points, want %d", n, 2*48)
	}
	for _, id := range []int64{a.ID, b.ID} {
		got, err := st.Points(t.Context(), id, today.AddDate(0, 0, -10), now.Add(time.Hour), 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 24+10 || got[0].Time.Before(today.AddDate(0, 0, -1)) {
			t.Fatalf("tracker %d: %d points left, first at %v", id, len(got), got[0].Time)
		}
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// BenchAppendPoints measures history writes: batches of 1,000 points,
// one per tracker of 1,000, as one group commit at 10,000 fixes/s holds
// every 100 ms. It reports points/s.
func BenchAppendPoints(b *testing.B, st History) {
	uid := benchUser(b, st)
	ids := make([]int64, 1000)
	for i := range ids {
		ids[i] = benchTracker(b, st, uid, i)
	}
	at := time.Now().UTC().Add(-time.Hour)
	batch := make([]store.Point, len(ids))
	var n int
	b.ResetTimer()
	for b.Loop() {
		at = at.Add(time.Second)
		for i, id := range ids {
			batch[i] = store.Point{TrackerID: id, Time: at, Lat: 54.1 + float64(i)*1e-4, Lng: 25.2, Speed: 50, Heading: 90, Satellites: 9}
		}
		if err := st.AppendPoints(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
		n += len(batch)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "points/s")
}

// BenchDayTrack measures reading back a day's track of one tracker at one
// fix a second (86,400 points) among other trackers' points, compacted
// as the recorder keeps closed hours.
func BenchDayTrack(b *testing.B, st History) {
	uid := benchUser(b, st)
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	target := benchTracker(b, st, uid, 0)
	other := benchTracker(b, st, uid, 1)
	for _, id := range []int64{other, target} {
		for h := range 24 {
			if err := st.AppendPoints(b.Context(), track(id, day.Add(time.Duration(h)*time.Hour), time.Second, 3600)); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := st.CompactPoints(b.Context(), day.AddDate(0, 0, 1)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		got, err := st.Points(b.Context(), target, day.Add(-time.Millisecond), day.AddDate(0, 0, 1), 100000)
		if err != nil || len(got) != 86400 {
			b.Fatalf("%v: %d points", err, len(got))
		}
	}
}

func benchUser(b *testing.B, st History) int64 {
	id, err := st.CreateUser(b.Context(), &fleet.User{Login: "bench", PasswordHash: "h"})
	if err != nil {
		b.Fatal(err)
	}
	return id
}

func benchTracker(b *testing.B, st History, uid int64, i int) int64 {
	tr, err := st.CreateTracker(b.Context(), &fleet.Tracker{Label: "t", UserID: uid, DeviceID: fmt.Sprint("bench-", i)})
	if err != nil {
		b.Fatal(err)
	}
	return tr.ID
}

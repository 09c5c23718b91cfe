package state

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/store/sqlite"
)

// BenchmarkApply measures one fix applied to one of 10,000 trackers and
// published on the in-process bus (with the registry itself subscribed,
// as in the server).
func BenchmarkApply(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	bs := bus.NewMemory()
	r := New(st, bs, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	bs.Subscribe(r.HandleBus)
	uid, err := st.CreateUser(ctx, &fleet.User{Login: "bench", PasswordHash: "x", TimeZone: "UTC"})
	if err != nil {
		b.Fatal(err)
	}
	const n = 10000
	devs := make([]string, n)
	for i := range devs {
		devs[i] = fmt.Sprintf("b-%05d", i)
		if _, err := r.CreateTracker(ctx, &fleet.Tracker{UserID: uid, Label: devs[i], DeviceID: devs[i]}); err != nil {
			b.Fatal(err)
		}
	}
	speed, heading := 40.0, 90.0
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f := &Fix{DeviceID: devs[i%n], Location: &fleet.Location{Lat: 52 + float64(i)*1e-7, Lng: 13}, Speed: &speed, Heading: &heading}
		if _, err := r.Apply(ctx, f); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkTrackersOfUser measures listing one user's 100 trackers in an
// installation of 100,000 (1,000 users), as every subscription does.
func BenchmarkTrackersOfUser(b *testing.B) {
	r := New(nil, bus.NewMemory(), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for id := int64(1); id <= 100000; id++ {
		t := &fleet.Tracker{ID: id, UserID: 1 + id%1000, SourceID: id}
		r.takeTracker(&bus.Message{Kind: bus.KindTracker, UserID: t.UserID, TrackerID: id, Tracker: t})
	}
	b.ReportAllocs()
	for b.Loop() {
		if n := len(r.Trackers(7)); n != 100 {
			b.Fatalf("%d trackers", n)
		}
	}
}

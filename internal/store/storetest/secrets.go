package storetest

import (
	"errors"
	"testing"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/store"
)

// testDeviceSecrets: a tracker's secret digest is found by its device id
// while the tracker lives; a tracker without one, a deleted tracker and an
// unknown device are store.ErrNotFound, and a deleted tracker cannot get one.
func testDeviceSecrets(t *testing.T, st store.Store) {
	ctx := t.Context()
	u := MustUser(t, st, "dora")
	tr, err := st.CreateTracker(ctx, &fleet.Tracker{Label: "Pump", UserID: u.ID, DeviceID: "pump-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeviceSecret(ctx, "pump-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("secret of a tracker without one: %v, want store.ErrNotFound", err)
	}
	if err := st.SetDeviceSecret(ctx, tr.ID, "digest-1"); err != nil {
		t.Fatalf("SetDeviceSecret: %v", err)
	}
	if err := st.SetDeviceSecret(ctx, tr.ID, "digest-2"); err != nil {
		t.Fatalf("SetDeviceSecret again: %v", err)
	}
	if d, err := st.DeviceSecret(ctx, "pump-1"); err != nil || d != "digest-2" {
		t.Fatalf("DeviceSecret = %q, %v; want digest-2", d, err)
	}
	if _, err := st.DeviceSecret(ctx, "pump-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown device: %v, want store.ErrNotFound", err)
	}
	if err := st.SetDeviceSecret(ctx, 999999, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown tracker: %v, want store.ErrNotFound", err)
	}
	if err := st.DeleteTracker(ctx, tr.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeviceSecret(ctx, "pump-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted tracker: %v, want store.ErrNotFound", err)
	}
	if err := st.SetDeviceSecret(ctx, tr.ID, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("set on a deleted tracker: %v, want store.ErrNotFound", err)
	}
	// A new tracker taking the freed device id starts without a secret.
	if _, err := st.CreateTracker(ctx, &fleet.Tracker{Label: "Pump 2", UserID: u.ID, DeviceID: "pump-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeviceSecret(ctx, "pump-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("new tracker on a freed device id: %v, want store.ErrNotFound", err)
	}
}

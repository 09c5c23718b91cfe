// Package storetest is the contract every store.Store backend passes: one
// suite of tests, run by each backend's own tests on stores it opens.
package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/store"
	"github.com/fleetwire/fleetwire/internal/store/sqlstore"
)

// FirstSourceID is the source id every backend gives its first tracker.
const FirstSourceID = 100001

// Run runs the contract as parallel subtests of t, each on a fresh store
// from open, closed when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) (store.Store, error)) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, st store.Store)
	}{
		{"Users", testUsers},
		{"UsersEmpty", testUsersEmpty},
		{"UserProfile", testUserProfile},
		{"Sessions", testSessions},
		{"DeleteExpiredSessions", testDeleteExpiredSessions},
		{"Trackers", testTrackers},
		{"CreateTrackersConcurrently", testCreateTrackersConcurrently},
		{"States", testStates},
		{"StateSeq", testStateSeq},
		{"ManyStates", testManyStates},
		{"DeviceSecrets", testDeviceSecrets},
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

// BenchSaveStates measures one flush of 1000 full states into st.
func BenchSaveStates(b *testing.B, st store.Store) {
	uid, err := st.CreateUser(b.Context(), &fleet.User{Login: "u", PasswordHash: "h"})
	if err != nil {
		b.Fatal(err)
	}
	states := make([]*fleet.State, 1000)
	for i := range states {
		tr, err := st.CreateTracker(b.Context(), &fleet.Tracker{Label: "t", UserID: uid, DeviceID: fmt.Sprint(i)})
		if err != nil {
			b.Fatal(err)
		}
		states[i] = FullState(tr.ID, tr.SourceID)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := st.SaveStates(b.Context(), states); err != nil {
			b.Fatal(err)
		}
	}
}

// ts is a fixed instant with sub-microsecond digits, in a non-UTC zone, to
// show that stores return UTC with microsecond precision.
var ts = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.FixedZone("X", 3*3600))

func micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// MustUser creates the user login in st, or fails t.
func MustUser(t *testing.T, st store.Store, login string) *fleet.User {
	t.Helper()
	u := &fleet.User{Login: login, PasswordHash: "h-" + login, Title: "T " + login, TimeZone: "Europe/Berlin", CreatedAt: ts}
	id, err := st.CreateUser(t.Context(), u)
	if err != nil {
		t.Fatalf("CreateUser %q: %v", login, err)
	}
	u.ID = id
	u.CreatedAt = micro(ts)
	return u
}

// MustTracker creates a tracker of userID with device id device in st, or
// fails t.
func MustTracker(t *testing.T, st store.Store, userID int64, device string) *fleet.Tracker {
	t.Helper()
	tr, err := st.CreateTracker(t.Context(), &fleet.Tracker{Label: "car " + device, UserID: userID, DeviceID: device})
	if err != nil {
		t.Fatalf("CreateTracker %q: %v", device, err)
	}
	return tr
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func testUsers(t *testing.T, st store.Store) {
	ctx := t.Context()
	in := &fleet.User{Login: "alice", PasswordHash: "$2a$hash", Title: "Alice", TimeZone: "Asia/Tokyo", Blocked: true, CreatedAt: ts}
	id, err := st.CreateUser(ctx, in)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if id <= 0 {
		t.Fatalf("CreateUser id = %d", id)
	}
	want := *in
	want.ID, want.CreatedAt = id, micro(ts)
	got, err := st.User(ctx, id)
	if err != nil {
		t.Fatalf("User: %v", err)
	}
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("User = %+v, want %+v", got, &want)
	}
	got, err = st.UserByLogin(ctx, "alice")
	if err != nil {
		t.Fatalf("UserByLogin: %v", err)
	}
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("UserByLogin = %+v, want %+v", got, &want)
	}

	_, err = st.CreateUser(ctx, &fleet.User{Login: "alice", PasswordHash: "x"})
	wantErr(t, "duplicate login", err, store.ErrConflict)
	_, err = st.User(ctx, id+1000)
	wantErr(t, "unknown id", err, store.ErrNotFound)
	_, err = st.UserByLogin(ctx, "nobody")
	wantErr(t, "unknown login", err, store.ErrNotFound)
	_, err = st.UserByLogin(ctx, "ALICE")
	wantErr(t, "login is compared exactly", err, store.ErrNotFound)

	// A zero CreatedAt is filled in.
	before := time.Now().Add(-time.Second)
	bobID, err := st.CreateUser(ctx, &fleet.User{Login: "bob", PasswordHash: "b"})
	if err != nil {
		t.Fatalf("CreateUser bob: %v", err)
	}
	bob, err := st.User(ctx, bobID)
	if err != nil {
		t.Fatalf("User bob: %v", err)
	}
	if bob.CreatedAt.Before(before) || bob.CreatedAt.Location() != time.UTC {
		t.Fatalf("bob.CreatedAt = %v, want now in UTC", bob.CreatedAt)
	}

	users, err := st.Users(ctx)
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if len(users) != 2 || users[0].ID != id || users[1].ID != bobID || bobID <= id {
		t.Fatalf("Users = %+v, want alice then bob", users)
	}

	if err := st.SetPasswordHash(ctx, id, "new-hash"); err != nil {
		t.Fatalf("SetPasswordHash: %v", err)
	}
	got, err = st.User(ctx, id)
	if err != nil || got.PasswordHash != "new-hash" {
		t.Fatalf("after SetPasswordHash: %+v, %v", got, err)
	}
	wantErr(t, "SetPasswordHash unknown", st.SetPasswordHash(ctx, id+1000, "x"), store.ErrNotFound)
}

// fullProfile has every field of a user profile set.
func fullProfile(tag string) fleet.UserProfile {
	return fleet.UserProfile{
		Phone: "4917612345678" + tag, Locale: "de_DE", Demo: true, Unverified: true, LegalType: "legal_entity",
		DefaultGeocoder: "google", RouteProvider: "google", MeasurementSystem: "imperial",
		DateFormat: "ddMMyyyy_dots", HourMode: "TWELVE_HOURS", TIN: "tin" + tag, IEC: "iec" + tag,
		PostCountry: "DE", PostRegion: "BE", PostIndex: "10115", PostCity: "Berlin", PostStreetAddress: "Invalidenstr. 1 " + tag,
		RegisteredCountry: "DE", RegisteredRegion: "HH", RegisteredIndex: "20095", RegisteredCity: "Hamburg",
		RegisteredStreetAddress: "Mönckebergstr. 2 " + tag,
		FirstName:               "Jo", MiddleName: "M.", LastName: "Smith " + tag, LegalName: "Fleet GmbH " + tag,
	}
}

func testUserProfile(t *testing.T, st store.Store) {
	ctx := t.Context()
	in := &fleet.User{Login: "pat", PasswordHash: "h", Title: "Pat", TimeZone: "UTC", CreatedAt: ts, Profile: fullProfile("1")}
	id, err := st.CreateUser(ctx, in)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	want := *in
	want.ID, want.CreatedAt = id, micro(ts)
	if got, err := st.User(ctx, id); err != nil || !reflect.DeepEqual(got, &want) {
		t.Fatalf("User = %+v, %v; want %+v", got, err, &want)
	}

	// UpdateUser replaces title, time zone and profile, nothing else.
	upd := &fleet.User{ID: id, Login: "ignored", PasswordHash: "ignored", Blocked: true,
		Title: "Patricia", TimeZone: "Europe/Paris", Profile: fullProfile("2")}
	upd.Profile.Demo, upd.Profile.Locale = false, "fr"
	if err := st.UpdateUser(ctx, upd); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	want.Title, want.TimeZone, want.Profile = upd.Title, upd.TimeZone, upd.Profile
	if got, err := st.UserByLogin(ctx, "pat"); err != nil || !reflect.DeepEqual(got, &want) {
		t.Fatalf("after UpdateUser = %+v, %v; want %+v", got, err, &want)
	}
	// Back to the zero profile.
	upd.Profile = fleet.UserProfile{}
	if err := st.UpdateUser(ctx, upd); err != nil {
		t.Fatalf("UpdateUser to the zero profile: %v", err)
	}
	if got, err := st.User(ctx, id); err != nil || got.Profile != (fleet.UserProfile{}) {
		t.Fatalf("profile after reset = %+v, %v", got.Profile, err)
	}
	wantErr(t, "UpdateUser unknown", st.UpdateUser(ctx, &fleet.User{ID: id + 1000}), store.ErrNotFound)
}

func testUsersEmpty(t *testing.T, st store.Store) {
	users, err := st.Users(t.Context())
	if err != nil || len(users) != 0 {
		t.Fatalf("Users on an empty store = %v, %v", users, err)
	}
	trackers, err := st.Trackers(t.Context(), 0)
	if err != nil || len(trackers) != 0 {
		t.Fatalf("Trackers on an empty store = %v, %v", trackers, err)
	}
	states, err := st.States(t.Context())
	if err != nil || len(states) != 0 {
		t.Fatalf("States on an empty store = %v, %v", states, err)
	}
}

func testSessions(t *testing.T, st store.Store) {
	ctx := t.Context()
	alice := MustUser(t, st, "alice")
	bob := MustUser(t, st, "bob")

	s1 := &fleet.Session{Hash: strings.Repeat("a", 32), UserID: alice.ID, Kind: fleet.KindSession,
		CreatedAt: ts, ExpiresAt: ts.Add(time.Hour)}
	s2 := &fleet.Session{Hash: strings.Repeat("b", 32), UserID: alice.ID, Kind: fleet.KindSession,
		CreatedAt: ts.Add(time.Second), ExpiresAt: ts.Add(2 * time.Hour)}
	k1 := &fleet.Session{Hash: strings.Repeat("c", 32), UserID: alice.ID, Kind: fleet.KindAPIKey,
		Title: "cron job", CreatedAt: ts}
	sb := &fleet.Session{Hash: strings.Repeat("d", 32), UserID: bob.ID, Kind: fleet.KindSession,
		CreatedAt: ts, ExpiresAt: ts.Add(time.Hour)}
	for _, x := range []*fleet.Session{s2, s1, k1, sb} {
		if err := st.CreateSession(ctx, x); err != nil {
			t.Fatalf("CreateSession %s: %v", x.Hash, err)
		}
	}

	got, err := st.Session(ctx, k1.Hash)
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	want := *k1
	want.CreatedAt = micro(ts)
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("Session = %+v, want %+v", got, &want)
	}
	if !got.ExpiresAt.IsZero() {
		t.Fatalf("API key ExpiresAt = %v, want zero", got.ExpiresAt)
	}
	got, err = st.Session(ctx, s1.Hash)
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if !got.ExpiresAt.Equal(micro(ts.Add(time.Hour))) || got.ExpiresAt.Location() != time.UTC {
		t.Fatalf("ExpiresAt = %v", got.ExpiresAt)
	}

	list, err := st.Sessions(ctx, alice.ID, fleet.KindSession)
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	if hashes(list) != s1.Hash+","+s2.Hash {
		t.Fatalf("Sessions = %s, want s1,s2 in creation order", hashes(list))
	}
	list, err = st.Sessions(ctx, alice.ID, fleet.KindAPIKey)
	if err != nil || hashes(list) != k1.Hash {
		t.Fatalf("API keys = %s, %v", hashes(list), err)
	}
	list, err = st.Sessions(ctx, bob.ID+1000, fleet.KindSession)
	if err != nil || len(list) != 0 {
		t.Fatalf("Sessions of unknown user = %v, %v", list, err)
	}

	wantErr(t, "duplicate hash", st.CreateSession(ctx, &fleet.Session{Hash: s1.Hash, UserID: bob.ID, Kind: fleet.KindSession, CreatedAt: ts}), store.ErrConflict)
	wantErr(t, "unknown user", st.CreateSession(ctx, &fleet.Session{Hash: strings.Repeat("e", 32), UserID: bob.ID + 1000, Kind: fleet.KindSession, CreatedAt: ts}), store.ErrNotFound)
	if err := st.CreateSession(ctx, &fleet.Session{Hash: strings.Repeat("f", 32), UserID: bob.ID, Kind: "bogus"}); err == nil {
		t.Fatal("CreateSession with an unknown kind succeeded")
	}
	_, err = st.Session(ctx, strings.Repeat("0", 32))
	wantErr(t, "unknown session", err, store.ErrNotFound)

	if err := st.DeleteSession(ctx, s2.Hash); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	_, err = st.Session(ctx, s2.Hash)
	wantErr(t, "deleted session", err, store.ErrNotFound)
	wantErr(t, "DeleteSession twice", st.DeleteSession(ctx, s2.Hash), store.ErrNotFound)

	// DeleteSessions takes one kind of one user only.
	if err := st.CreateSession(ctx, s2); err != nil {
		t.Fatalf("CreateSession again: %v", err)
	}
	removed, err := st.DeleteSessions(ctx, alice.ID, fleet.KindSession)
	if err != nil {
		t.Fatalf("DeleteSessions: %v", err)
	}
	sort.Strings(removed)
	if strings.Join(removed, ",") != s1.Hash+","+s2.Hash {
		t.Fatalf("DeleteSessions removed %v", removed)
	}
	for _, h := range []string{k1.Hash, sb.Hash} {
		if _, err := st.Session(ctx, h); err != nil {
			t.Fatalf("DeleteSessions removed %s too: %v", h, err)
		}
	}
	removed, err = st.DeleteSessions(ctx, alice.ID, fleet.KindSession)
	if err != nil || len(removed) != 0 {
		t.Fatalf("DeleteSessions with nothing left = %v, %v", removed, err)
	}
	removed, err = st.DeleteSessions(ctx, alice.ID, fleet.KindAPIKey)
	if err != nil || len(removed) != 1 || removed[0] != k1.Hash {
		t.Fatalf("DeleteSessions api keys = %v, %v", removed, err)
	}
}

func hashes(list []*fleet.Session) string {
	var hs []string
	for _, x := range list {
		hs = append(hs, x.Hash)
	}
	return strings.Join(hs, ",")
}

func testDeleteExpiredSessions(t *testing.T, st store.Store) {
	ctx := t.Context()
	u := MustUser(t, st, "alice")
	now := micro(ts)
	mk := func(c byte, kind fleet.SessionKind, expires time.Time) string {
		x := &fleet.Session{Hash: strings.Repeat(string(c), 32), UserID: u.ID, Kind: kind, CreatedAt: now.Add(-48 * time.Hour), ExpiresAt: expires}
		if err := st.CreateSession(ctx, x); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
		return x.Hash
	}
	past := mk('a', fleet.KindSession, now.Add(-time.Hour))
	exact := mk('b', fleet.KindSession, now) // Expired(now) is true
	future := mk('c', fleet.KindSession, now.Add(time.Microsecond))
	key := mk('d', fleet.KindAPIKey, time.Time{})

	n, err := st.DeleteExpiredSessions(ctx, now)
	if err != nil {
		t.Fatalf("DeleteExpiredSessions: %v", err)
	}
	if n != 2 {
		t.Fatalf("DeleteExpiredSessions = %d, want 2", n)
	}
	for _, h := range []string{past, exact} {
		_, err := st.Session(ctx, h)
		wantErr(t, "expired session", err, store.ErrNotFound)
	}
	for _, h := range []string{future, key} {
		if _, err := st.Session(ctx, h); err != nil {
			t.Fatalf("live credential %s was deleted: %v", h, err)
		}
	}
	n, err = st.DeleteExpiredSessions(ctx, now)
	if err != nil || n != 0 {
		t.Fatalf("DeleteExpiredSessions again = %d, %v", n, err)
	}
	// API keys never expire.
	n, err = st.DeleteExpiredSessions(ctx, now.Add(100*365*24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpiredSessions far ahead = %d, %v; want only the session", n, err)
	}
	if _, err := st.Session(ctx, key); err != nil {
		t.Fatalf("API key deleted: %v", err)
	}
}

func testTrackers(t *testing.T, st store.Store) {
	ctx := t.Context()
	alice := MustUser(t, st, "alice")
	bob := MustUser(t, st, "bob")

	in := &fleet.Tracker{Label: "Van 1", UserID: alice.ID, DeviceID: "359633100000001", Model: "osmand",
		Phone: "+4915100000001", Blocked: true, CreatedAt: ts}
	t1, err := st.CreateTracker(ctx, in)
	if err != nil {
		t.Fatalf("CreateTracker: %v", err)
	}
	if in.ID != 0 || in.SourceID != 0 {
		t.Fatal("CreateTracker modified its argument")
	}
	if t1.ID <= 0 || t1.SourceID != FirstSourceID || t1.SourceID == t1.ID {
		t.Fatalf("first tracker id=%d source_id=%d, want source_id %d distinct from id", t1.ID, t1.SourceID, FirstSourceID)
	}
	want := *in
	want.ID, want.SourceID, want.CreatedAt = t1.ID, t1.SourceID, micro(ts)
	if !reflect.DeepEqual(t1, &want) {
		t.Fatalf("CreateTracker = %+v, want %+v", t1, &want)
	}
	got, err := st.Tracker(ctx, t1.ID)
	if err != nil || !reflect.DeepEqual(got, &want) {
		t.Fatalf("Tracker = %+v, %v; want %+v", got, err, &want)
	}

	t2 := MustTracker(t, st, bob.ID, "dev-2")
	t3 := MustTracker(t, st, alice.ID, "dev-3")
	if t2.SourceID != t1.SourceID+1 || t3.SourceID != t2.SourceID+1 || t2.ID <= t1.ID || t3.ID <= t2.ID {
		t.Fatalf("ids not increasing: %+v %+v %+v", t1, t2, t3)
	}
	if t2.CreatedAt.IsZero() || t2.CreatedAt.Location() != time.UTC {
		t.Fatalf("zero CreatedAt not filled in: %v", t2.CreatedAt)
	}

	_, err = st.CreateTracker(ctx, &fleet.Tracker{Label: "dup", UserID: bob.ID, DeviceID: in.DeviceID})
	wantErr(t, "duplicate active device id", err, store.ErrConflict)
	_, err = st.CreateTracker(ctx, &fleet.Tracker{Label: "orphan", UserID: bob.ID + 1000, DeviceID: "dev-x"})
	wantErr(t, "unknown user", err, store.ErrNotFound)
	_, err = st.Tracker(ctx, t3.ID+1000)
	wantErr(t, "unknown tracker", err, store.ErrNotFound)

	ids := func(list []*fleet.Tracker, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("Trackers: %v", err)
		}
		var s []string
		for _, x := range list {
			s = append(s, fmt.Sprint(x.ID))
		}
		return strings.Join(s, ",")
	}
	if g, w := ids(st.Trackers(ctx, 0)), fmt.Sprintf("%d,%d,%d", t1.ID, t2.ID, t3.ID); g != w {
		t.Fatalf("Trackers(0) = %s, want %s", g, w)
	}
	if g, w := ids(st.Trackers(ctx, alice.ID)), fmt.Sprintf("%d,%d", t1.ID, t3.ID); g != w {
		t.Fatalf("Trackers(alice) = %s, want %s", g, w)
	}

	if err := st.SetTrackerBlocked(ctx, t1.ID, false); err != nil {
		t.Fatalf("SetTrackerBlocked: %v", err)
	}
	if got, _ := st.Tracker(ctx, t1.ID); got.Blocked {
		t.Fatal("tracker still blocked")
	}
	if err := st.SetTrackerBlocked(ctx, t2.ID, true); err != nil {
		t.Fatalf("SetTrackerBlocked: %v", err)
	}
	if got, _ := st.Tracker(ctx, t2.ID); !got.Blocked {
		t.Fatal("tracker not blocked")
	}
	wantErr(t, "block unknown", st.SetTrackerBlocked(ctx, t3.ID+1000, true), store.ErrNotFound)

	// Deleting frees the device id; the row stays readable.
	if err := st.DeleteTracker(ctx, t1.ID); err != nil {
		t.Fatalf("DeleteTracker: %v", err)
	}
	got, err = st.Tracker(ctx, t1.ID)
	if err != nil || !got.Deleted {
		t.Fatalf("deleted Tracker = %+v, %v", got, err)
	}
	if g, w := ids(st.Trackers(ctx, 0)), fmt.Sprintf("%d,%d", t2.ID, t3.ID); g != w {
		t.Fatalf("Trackers(0) after delete = %s, want %s", g, w)
	}
	if err := st.DeleteTracker(ctx, t1.ID); err != nil {
		t.Fatalf("DeleteTracker twice: %v", err)
	}
	wantErr(t, "delete unknown", st.DeleteTracker(ctx, t3.ID+1000), store.ErrNotFound)
	t4 := MustTracker(t, st, bob.ID, in.DeviceID)
	// A sequence may skip values after failed inserts, so only order is checked.
	if t4.ID <= t3.ID || t4.SourceID <= t3.SourceID {
		t.Fatalf("reused device id got ids of the deleted tracker: %+v vs %+v", t4, t1)
	}
	_, err = st.CreateTracker(ctx, &fleet.Tracker{Label: "dup", UserID: alice.ID, DeviceID: in.DeviceID})
	wantErr(t, "device id taken again", err, store.ErrConflict)
}

func testCreateTrackersConcurrently(t *testing.T, st store.Store) {
	ctx := t.Context()
	u := MustUser(t, st, "alice")
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	var mu sync.Mutex
	seen := map[int64]bool{}
	for i := range n {
		wg.Go(func() {
			tr, err := st.CreateTracker(ctx, &fleet.Tracker{Label: "t", UserID: u.ID, DeviceID: fmt.Sprintf("dev-%d", i)})
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[tr.SourceID] {
				errs <- fmt.Errorf("source id %d given twice", tr.SourceID)
			}
			seen[tr.SourceID] = true
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	list, err := st.Trackers(ctx, u.ID)
	if err != nil || len(list) != n {
		t.Fatalf("Trackers = %d, %v; want %d", len(list), err, n)
	}
}

func ptr[T any](v T) *T { return &v }

// FullState sets every field of fleet.State, with times in a non-UTC zone.
func FullState(trackerID, sourceID int64) *fleet.State {
	zone := time.FixedZone("Y", -5*3600)
	at := func(sec int) time.Time { return time.Date(2026, 5, 1, 10, 0, sec, 123456789, zone) }
	return &fleet.State{
		TrackerID: trackerID,
		SourceID:  sourceID,
		GPS: fleet.GPS{
			Updated:     at(1),
			SignalLevel: ptr(87),
			Location:    &fleet.Location{Lat: 52.520008, Lng: -13.404954},
			Heading:     271,
			Speed:       54,
			Alt:         -12,
			Precision:   ptr(0),
			GSMLBS:      true,
		},
		ConnectionStatus:     fleet.Active,
		MovementStatus:       fleet.Moving,
		MovementStatusUpdate: at(2),
		Ignition:             ptr(false),
		IgnitionUpdate:       at(3),
		GSM: &fleet.GSM{
			Updated:     at(4),
			SignalLevel: ptr(-3),
			NetworkName: ptr("Telekom.de \"LTE\""),
			Roaming:     ptr(true),
		},
		LastUpdate:        at(5),
		BatteryLevel:      ptr(100),
		BatteryUpdate:     at(6),
		Inputs:            []bool{true, false, true},
		InputsUpdate:      at(7),
		Outputs:           []bool{false},
		OutputsUpdate:     at(8),
		ActualTrackUpdate: at(9),
		IngestedAt:        at(10),
		Seq:               1 << 40,
		Additional: map[string]fleet.Additional{
			"temperature":  {Value: "21.5", Updated: at(11)},
			"odd\u0000key": {Value: "nul \u0000 and ünïcødé", Updated: at(12)},
			"no_time":      {Value: ""},
		},
	}
}

// InUTC returns a copy of s with every time converted to UTC, which is
// how a store returns them.
func InUTC(s *fleet.State) *fleet.State {
	c := s.Clone()
	for _, p := range []*time.Time{&c.GPS.Updated, &c.MovementStatusUpdate, &c.IgnitionUpdate, &c.LastUpdate,
		&c.BatteryUpdate, &c.InputsUpdate, &c.OutputsUpdate, &c.ActualTrackUpdate, &c.IngestedAt} {
		if !p.IsZero() {
			*p = p.UTC()
		}
	}
	if c.GSM != nil && !c.GSM.Updated.IsZero() {
		c.GSM.Updated = c.GSM.Updated.UTC()
	}
	for k, v := range c.Additional {
		if !v.Updated.IsZero() {
			v.Updated = v.Updated.UTC()
		}
		c.Additional[k] = v
	}
	return c
}

func testStates(t *testing.T, st store.Store) {
	ctx := t.Context()
	u := MustUser(t, st, "alice")
	t1 := MustTracker(t, st, u.ID, "dev-1")
	t2 := MustTracker(t, st, u.ID, "dev-2")
	t3 := MustTracker(t, st, u.ID, "dev-3")

	full := FullState(t1.ID, t1.SourceID)
	// Only ids: every pointer nil, every time zero, no slices or map.
	bare := &fleet.State{TrackerID: t2.ID, SourceID: t2.SourceID}
	if err := st.SaveStates(ctx, []*fleet.State{full, nil, bare}); err != nil {
		t.Fatalf("SaveStates: %v", err)
	}
	got, err := st.States(ctx)
	if err != nil {
		t.Fatalf("States: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("States returned %d, want 2", len(got))
	}
	if want := InUTC(full); !reflect.DeepEqual(got[0], want) {
		t.Fatalf("full state round trip:\n got %+v\nwant %+v", got[0], want)
	}
	if !reflect.DeepEqual(got[1], bare) {
		t.Fatalf("bare state round trip:\n got %+v\nwant %+v", got[1], bare)
	}

	// Upsert replaces; within one batch the later state of a tracker wins.
	first := &fleet.State{TrackerID: t1.ID, SourceID: t1.SourceID, ConnectionStatus: fleet.Idle, Seq: full.Seq + 1}
	second := &fleet.State{TrackerID: t1.ID, SourceID: t1.SourceID, ConnectionStatus: fleet.Offline, BatteryLevel: ptr(5), Seq: full.Seq + 1}
	third := &fleet.State{TrackerID: t3.ID, SourceID: t3.SourceID, MovementStatus: fleet.Parked}
	if err := st.SaveStates(ctx, []*fleet.State{first, third, second}); err != nil {
		t.Fatalf("SaveStates: %v", err)
	}
	got, err = st.States(ctx)
	if err != nil {
		t.Fatalf("States: %v", err)
	}
	if len(got) != 3 || !reflect.DeepEqual(got[0], second) || !reflect.DeepEqual(got[1], bare) || !reflect.DeepEqual(got[2], third) {
		t.Fatalf("after upsert: %+v", got)
	}

	// A batch naming an unknown tracker saves nothing.
	changed := &fleet.State{TrackerID: t2.ID, SourceID: t2.SourceID, ConnectionStatus: fleet.SignalLost}
	err = st.SaveStates(ctx, []*fleet.State{changed, {TrackerID: t3.ID + 1000}})
	wantErr(t, "state of unknown tracker", err, store.ErrNotFound)
	got, err = st.States(ctx)
	if err != nil || len(got) != 3 || !reflect.DeepEqual(got[1], bare) {
		t.Fatalf("failed batch was partly saved: %+v, %v", got, err)
	}

	if err := st.SaveStates(ctx, nil); err != nil {
		t.Fatalf("SaveStates(nil): %v", err)
	}
}

// testStateSeq: a stored state is replaced by one with the same or a higher
// Seq, never by an older one, in separate batches and within one.
func testStateSeq(t *testing.T, st store.Store) {
	ctx := t.Context()
	u := MustUser(t, st, "alice")
	t1 := MustTracker(t, st, u.ID, "dev-1")
	t2 := MustTracker(t, st, u.ID, "dev-2")
	state := func(tr *fleet.Tracker, seq uint64, battery int) *fleet.State {
		return &fleet.State{TrackerID: tr.ID, SourceID: tr.SourceID, BatteryLevel: ptr(battery), Seq: seq}
	}
	// want checks what States returns for t1 and t2.
	want := func(what string, w1, w2 *fleet.State) {
		t.Helper()
		got, err := st.States(ctx)
		if err != nil {
			t.Fatalf("%s: States: %v", what, err)
		}
		if len(got) != 2 || !reflect.DeepEqual(got[0], w1) || !reflect.DeepEqual(got[1], w2) {
			var desc []string
			for _, x := range append(got, w1, w2) {
				desc = append(desc, fmt.Sprintf("{seq %d battery %d}", x.Seq, *x.BatteryLevel))
			}
			t.Fatalf("%s: States = %v, want the last two", what, desc)
		}
	}
	save := func(states ...*fleet.State) {
		t.Helper()
		if err := st.SaveStates(ctx, states); err != nil {
			t.Fatalf("SaveStates: %v", err)
		}
	}

	// Seq 0 (never published) over seq 0 replaces.
	a, b := state(t1, 0, 1), state(t2, 0, 1)
	save(a, b)
	want("first save", a, b)
	a, b = state(t1, 0, 2), state(t2, 5, 2)
	save(a, b)
	want("seq 0 over 0 and 5 over 0", a, b)

	// Older does not overwrite, and does not fail the batch for others.
	older, newer := state(t2, 4, 3), state(t1, 1, 3)
	save(older, newer)
	want("4 over 5", newer, b)
	save(state(t2, 0, 4))
	want("0 over 5", newer, b)

	// Equal and newer do.
	b = state(t2, 5, 5)
	save(b)
	want("5 over 5", newer, b)
	b = state(t2, 1<<62, 6)
	save(b)
	want("2^62 over 5", newer, b)

	// Within one batch the state with the highest Seq wins; of equal ones,
	// the later.
	a = state(t1, 9, 7)
	save(a, state(t1, 8, 8), state(t1, 2, 9))
	want("9, 8, 2 in one batch", a, b)
	a = state(t1, 10, 11)
	save(state(t1, 10, 10), a)
	want("10, 10 in one batch", a, b)

	// A Seq the database cannot hold is refused, and nothing is saved.
	if err := st.SaveStates(ctx, []*fleet.State{state(t1, 11, 12), state(t2, 1<<63, 12)}); err == nil {
		t.Fatal("SaveStates with seq 2^63 succeeded")
	}
	want("refused batch", a, b)
}

// testManyStates: a batch larger than one statement carries is saved whole
// or not at all.
func testManyStates(t *testing.T, st store.Store) {
	ctx := t.Context()
	u := MustUser(t, st, "alice")
	const n = 501 // one more than an INSERT of sqlstore carries
	states := make([]*fleet.State, n)
	for i := range states {
		tr := MustTracker(t, st, u.ID, fmt.Sprintf("dev-%d", i))
		states[i] = &fleet.State{TrackerID: tr.ID, SourceID: tr.SourceID, BatteryLevel: ptr(i % 100), Seq: uint64(i)}
	}
	unknown := &fleet.State{TrackerID: states[n-1].TrackerID + 1000}
	err := st.SaveStates(ctx, append(states[:n:n], unknown))
	wantErr(t, "state of unknown tracker at the end of a large batch", err, store.ErrNotFound)
	if got, err := st.States(ctx); err != nil || len(got) != 0 {
		t.Fatalf("failed large batch was partly saved: %d states, %v", len(got), err)
	}
	if err := st.SaveStates(ctx, states); err != nil {
		t.Fatalf("SaveStates of %d: %v", n, err)
	}
	got, err := st.States(ctx)
	if err != nil {
		t.Fatalf("States: %v", err)
	}
	if !reflect.DeepEqual(got, states) {
		t.Fatalf("States returned %d states, not the %d saved", len(got), n)
	}
}

// RunUpgrade shows that a database made by schema version 1 of d keeps
// its data when d opens it: open opens the same database with a dialect,
// and execV1 runs one statement on it directly (the query with ?
// placeholders in d's style), to write rows as version 1 holds them: a
// user, a tracker, and a state document with no Seq. The state comes back
// with Seq 0, and any state replaces it; the user takes a profile; a
// session and an API key are turned into their digests.
func RunUpgrade(t *testing.T, d *sqlstore.Dialect, open func(d *sqlstore.Dialect) (store.Store, error), execV1 func(t *testing.T, query string, args ...any)) {
	openAt := func(t *testing.T, version int) store.Store {
		t.Helper()
		at := *d
		at.Migrations = d.Migrations[:version]
		st, err := open(&at)
		if err != nil {
			t.Fatalf("open at schema version %d: %v", version, err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	ctx := t.Context()
	if err := openAt(t, 1).Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	u := &fleet.User{ID: 1, Login: "alice", PasswordHash: "h-alice", Title: "T alice", TimeZone: "Europe/Berlin", CreatedAt: micro(ts)}
	tr := &fleet.Tracker{ID: 1, Label: "car dev-1", UserID: u.ID, SourceID: FirstSourceID, DeviceID: "dev-1", CreatedAt: micro(ts)}
	execV1(t, d.Query(`INSERT INTO users (id, login, password_hash, title, time_zone, blocked, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`), u.ID, u.Login, u.PasswordHash, u.Title, u.TimeZone, false, d.EncodeTime(ts))
	execV1(t, d.Query(`INSERT INTO trackers (id, label, user_id, source_id, device_id, model, phone, blocked, deleted, created_at)
		VALUES (?, ?, ?, ?, ?, '', '', ?, ?, ?)`), tr.ID, tr.Label, u.ID, tr.SourceID, tr.DeviceID, false, false, d.EncodeTime(ts))
	full := FullState(tr.ID, tr.SourceID)
	full.Seq = 0
	doc, err := store.EncodeState(full)
	if err != nil {
		t.Fatal(err)
	}
	execV1(t, d.Query(`INSERT INTO states (tracker_id, state) VALUES (?, ?)`), tr.ID, string(doc))
	// Version 1 keeps credentials as the hashes clients hold.
	creds := []*fleet.Session{
		{Hash: "0123456789abcdef0123456789abcdef", UserID: u.ID, Kind: fleet.KindSession, CreatedAt: micro(ts), ExpiresAt: micro(ts.Add(time.Hour))},
		{Hash: "fedcba9876543210fedcba9876543210", UserID: u.ID, Kind: fleet.KindAPIKey, Title: "key", CreatedAt: micro(ts)},
	}
	for _, x := range creds {
		execV1(t, d.Query(`INSERT INTO sessions (hash, user_id, kind, title, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`),
			x.Hash, x.UserID, string(x.Kind), x.Title, d.EncodeTime(x.CreatedAt), d.EncodeTime(x.ExpiresAt))
	}

	st := openAt(t, len(d.Migrations))
	if got, err := st.UserByLogin(ctx, "alice"); err != nil || !reflect.DeepEqual(got, u) {
		t.Fatalf("user after upgrade = %+v, %v; want %+v", got, err, u)
	}
	u.Profile = fullProfile("u")
	if err := st.UpdateUser(ctx, u); err != nil {
		t.Fatalf("UpdateUser after upgrade: %v", err)
	}
	if got, err := st.User(ctx, u.ID); err != nil || !reflect.DeepEqual(got, u) {
		t.Fatalf("user with a profile after upgrade = %+v, %v; want %+v", got, err, u)
	}
	if got, err := st.Tracker(ctx, tr.ID); err != nil || !reflect.DeepEqual(got, tr) {
		t.Fatalf("tracker after upgrade = %+v, %v; want %+v", got, err, tr)
	}
	states, err := st.States(ctx)
	if err != nil || len(states) != 1 || !reflect.DeepEqual(states[0], InUTC(full)) {
		t.Fatalf("states after upgrade = %+v, %v", states, err)
	}
	// Credentials are now found by their digests only.
	for _, x := range creds {
		want := *x
		want.Hash = fleet.CredentialDigest(x.Hash)
		if got, err := st.Session(ctx, want.Hash); err != nil || !reflect.DeepEqual(got, &want) {
			t.Fatalf("credential after upgrade = %+v, %v; want %+v", got, err, &want)
		}
		if _, err := st.Session(ctx, x.Hash); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("credential still stored as its hash after upgrade: %v", err)
		}
	}
	next := &fleet.State{TrackerID: tr.ID, SourceID: tr.SourceID, Seq: 1}
	if err := st.SaveStates(ctx, []*fleet.State{next}); err != nil {
		t.Fatalf("SaveStates after upgrade: %v", err)
	}
	if states, err := st.States(ctx); err != nil || len(states) != 1 || !reflect.DeepEqual(states[0], next) {
		t.Fatalf("states after saving over the upgraded one = %+v, %v", states, err)
	}
}

package auth

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/store"
	"github.com/fleetwire/fleetwire/internal/store/sqlite"
)

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// recorder keeps every KindLogout message published on a bus.
type recorder struct {
	mu   sync.Mutex
	msgs []bus.Message
}

func (r *recorder) take() []bus.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.msgs
	r.msgs = nil
	return m
}

type env struct {
	svc   *Service
	st    store.Store
	bus   *bus.Memory
	clock *clock
	rec   *recorder
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "auth.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	b := bus.NewMemory()
	t.Cleanup(func() { b.Close() })
	e := &env{st: st, bus: b, clock: &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, rec: &recorder{}}
	b.Subscribe(func(m *bus.Message) {
		if m.Kind == bus.KindLogout {
			e.rec.mu.Lock()
			e.rec.msgs = append(e.rec.msgs, *m)
			e.rec.mu.Unlock()
		}
	})
	e.svc = New(st, b, Options{Now: e.clock.Now, BcryptCost: bcrypt.MinCost})
	t.Cleanup(func() { e.svc.Close() })
	return e
}

func (e *env) user(t *testing.T, login, password string) *fleet.User {
	t.Helper()
	u, err := e.svc.CreateUser(t.Context(), login, password, "Title "+login, "Europe/Berlin")
	if err != nil {
		t.Fatalf("CreateUser %q: %v", login, err)
	}
	return u
}

func (e *env) login(t *testing.T, login, password string) *fleet.Session {
	t.Helper()
	s, err := e.svc.Login(t.Context(), login, password)
	if err != nil {
		t.Fatalf("Login %q: %v", login, err)
	}
	return s
}

func (e *env) resolves(t *testing.T, hash string, userID int64) {
	t.Helper()
	u, s, err := e.svc.Resolve(t.Context(), hash)
	if err != nil {
		t.Fatalf("Resolve %s: %v", hash, err)
	}
	if u.ID != userID || s.UserID != userID || s.Hash != hash {
		t.Fatalf("Resolve %s = user %d, session %+v; want user %d", hash, u.ID, s, userID)
	}
}

func (e *env) refused(t *testing.T, hash string, code int) {
	t.Helper()
	u, s, err := e.svc.Resolve(t.Context(), hash)
	wantCode(t, "Resolve "+hash, err, code)
	if u != nil || s != nil {
		t.Fatalf("Resolve %s returned values with an error", hash)
	}
}

func wantCode(t *testing.T, what string, err error, code int) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want code %d", what, code)
	}
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("%s: error %v, want API code %d", what, err, code)
	}
}

// logoutOf is the logout announcement of hashes: it names them by their
// digests.
func logoutOf(userID int64, hashes ...string) bus.Message {
	digests := make([]string, len(hashes))
	for i, h := range hashes {
		digests[i] = fleet.CredentialDigest(h)
	}
	return bus.Message{Kind: bus.KindLogout, UserID: userID, Hashes: digests}
}

func wantMessages(t *testing.T, got []bus.Message, want ...bus.Message) {
	t.Helper()
	for i := range got {
		slices.Sort(got[i].Hashes)
	}
	for i := range want {
		slices.Sort(want[i].Hashes)
	}
	if len(got) != len(want) {
		t.Fatalf("published %+v, want %+v", got, want)
	}
	for i := range got {
		if got[i].Kind != want[i].Kind || got[i].UserID != want[i].UserID || !slices.Equal(got[i].Hashes, want[i].Hashes) {
			t.Fatalf("published %+v, want %+v", got, want)
		}
	}
}

func TestLogin(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	u := e.user(t, "ann@example.com", "pw-ann")

	s := e.login(t, "ann@example.com", "pw-ann")
	if !ValidHash(s.Hash) || s.UserID != u.ID || s.Kind != fleet.KindSession {
		t.Fatalf("Login = %+v", s)
	}
	now := e.clock.Now()
	if !s.CreatedAt.Equal(now) || !s.ExpiresAt.Equal(now.Add(DefaultSessionTTL)) {
		t.Fatalf("session times %v .. %v, want %v + 30 days", s.CreatedAt, s.ExpiresAt, now)
	}
	// The store keeps the digest, never the hash the client holds.
	want := *s
	want.Hash = fleet.CredentialDigest(s.Hash)
	stored, err := e.st.Session(ctx, want.Hash)
	if err != nil || *stored != want {
		t.Fatalf("stored session = %+v, %v; want %+v", stored, err, &want)
	}
	if _, err := e.st.Session(ctx, s.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the store finds the session by the client's hash: %v", err)
	}
	if s2 := e.login(t, "ann@example.com", "pw-ann"); s2.Hash == s.Hash {
		t.Fatal("two logins got the same hash")
	}

	_, err = e.svc.Login(ctx, "ann@example.com", "pw-ANN")
	wantCode(t, "wrong password", err, 102)
	_, err = e.svc.Login(ctx, "ann@example.com", "")
	wantCode(t, "empty password", err, 102)
	_, err = e.svc.Login(ctx, "bob@example.com", "pw-ann")
	wantCode(t, "unknown login", err, 102)
	_, err = e.svc.Login(ctx, "", "")
	wantCode(t, "empty login", err, 102)

	// A blocked user cannot sign in, even with the right password.
	h, _ := bcrypt.GenerateFromPassword([]byte("pw-b"), bcrypt.MinCost)
	if _, err := e.st.CreateUser(ctx, &fleet.User{Login: "blocked", PasswordHash: string(h), Blocked: true}); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Login(ctx, "blocked", "pw-b")
	wantCode(t, "blocked user", err, 102)

	// A store failure is not reported as a wrong password.
	e.st.Close()
	_, err = e.svc.Login(ctx, "ann@example.com", "pw-ann")
	wantCode(t, "closed store", err, 1)
}

func TestSessionTTLOption(t *testing.T) {
	e := newEnv(t)
	e.svc = New(e.st, e.bus, Options{Now: e.clock.Now, BcryptCost: bcrypt.MinCost, SessionTTL: time.Hour})
	defer e.svc.Close()
	e.user(t, "ann", "pw")
	s := e.login(t, "ann", "pw")
	if !s.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("ExpiresAt = %v, want now + 1h", s.ExpiresAt)
	}
}

func TestResolve(t *testing.T) {
	e := newEnv(t)
	u := e.user(t, "ann", "pw-ann")
	s := e.login(t, "ann", "pw-ann")

	for _, bad := range []string{"", "abc", strings.ToUpper(s.Hash), s.Hash + "0", s.Hash[:31],
		strings.Repeat("g", 32), " " + s.Hash[1:], s.Hash[:30] + "é"} {
		e.refused(t, bad, 3)
	}
	e.refused(t, strings.Repeat("0", 32), 4)

	got, sess, err := e.svc.Resolve(t.Context(), s.Hash)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if got.ID != u.ID || got.Login != "ann" || got.TimeZone != "Europe/Berlin" || *sess != *s {
		t.Fatalf("Resolve = %+v, %+v", got, sess)
	}
	// Results are copies: changing one does not change the next.
	got.Login, sess.UserID = "mallory", 999
	e.resolves(t, s.Hash, u.ID)

	// Fixed expiry: use does not extend it. The first Resolve below is
	// answered from the cache, the one after the expiry must not be.
	e.clock.Advance(DefaultSessionTTL - time.Second)
	e.resolves(t, s.Hash, u.ID)
	e.clock.Advance(time.Second)
	e.refused(t, s.Hash, 4)
	// Same for an expiry first seen by the store lookup.
	s2 := e.login(t, "ann", "pw-ann")
	e.clock.Advance(DefaultSessionTTL)
	e.refused(t, s2.Hash, 4)

	// API keys do not expire.
	k, err := e.svc.CreateAPIKey(t.Context(), u.ID, "key")
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(10 * 365 * 24 * time.Hour)
	e.resolves(t, k.Hash, u.ID)

	n, err := e.svc.PurgeExpired(t.Context())
	if err != nil || n != 2 {
		t.Fatalf("PurgeExpired = %d, %v; want both sessions", n, err)
	}
	e.resolves(t, k.Hash, u.ID)
}

func TestResolveStoreFailure(t *testing.T) {
	e := newEnv(t)
	e.user(t, "ann", "pw")
	s := e.login(t, "ann", "pw")
	e.st.Close()
	e.refused(t, s.Hash, 1)
}

func TestResolveBlockedUser(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	id, err := e.st.CreateUser(ctx, &fleet.User{Login: "b", PasswordHash: string(h), Blocked: true})
	if err != nil {
		t.Fatal(err)
	}
	k, err := e.svc.CreateAPIKey(ctx, id, "k")
	if err != nil {
		t.Fatal(err)
	}
	e.refused(t, k.Hash, 4)
}

func TestLogout(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	u := e.user(t, "ann", "pw-ann")
	s1 := e.login(t, "ann", "pw-ann")
	s2 := e.login(t, "ann", "pw-ann")
	e.resolves(t, s1.Hash, u.ID) // now cached
	e.resolves(t, s2.Hash, u.ID)

	if err := e.svc.Logout(ctx, s1.Hash); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	wantMessages(t, e.rec.take(), logoutOf(u.ID, s1.Hash))
	e.refused(t, s1.Hash, 4)
	e.resolves(t, s2.Hash, u.ID)
	if _, err := e.st.Session(ctx, fleet.CredentialDigest(s1.Hash)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session still stored: %v", err)
	}

	wantCode(t, "Logout twice", e.svc.Logout(ctx, s1.Hash), 4)
	wantCode(t, "Logout malformed", e.svc.Logout(ctx, "nope"), 3)
	wantMessages(t, e.rec.take())
}

// TestLogoutOnOtherNode: two services over one store and bus, as two nodes
// would be; a logout on one is refused at once by the other, whose cache
// held the session.
func TestLogoutOnOtherNode(t *testing.T) {
	e := newEnv(t)
	other := New(e.st, e.bus, Options{Now: e.clock.Now, BcryptCost: bcrypt.MinCost})
	defer other.Close()
	u := e.user(t, "ann", "pw")
	s := e.login(t, "ann", "pw")
	if _, _, err := other.Resolve(t.Context(), s.Hash); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Logout(t.Context(), s.Hash); err != nil {
		t.Fatal(err)
	}
	_, _, err := other.Resolve(t.Context(), s.Hash)
	wantCode(t, "other node after logout", err, 4)

	// A message with no hashes ends every cached credential of the user.
	k, err := e.svc.CreateAPIKey(t.Context(), u.ID, "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.Resolve(t.Context(), k.Hash); err != nil {
		t.Fatal(err)
	}
	if err := e.st.DeleteSession(t.Context(), fleet.CredentialDigest(k.Hash)); err != nil {
		t.Fatal(err)
	}
	e.bus.Publish(t.Context(), &bus.Message{Kind: bus.KindLogout, UserID: u.ID})
	_, _, err = other.Resolve(t.Context(), k.Hash)
	wantCode(t, "other node after user-wide logout", err, 4)
}

// TestLogoutRacesResolve: once Logout returns, no Resolve succeeds, however
// the lookups running meanwhile interleave with it.
func TestLogoutRacesResolve(t *testing.T) {
	e := newEnv(t)
	u := e.user(t, "ann", "pw")
	for range 20 {
		s := e.login(t, "ann", "pw")
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
						e.svc.Resolve(context.Background(), s.Hash)
					}
				}
			})
		}
		e.resolves(t, s.Hash, u.ID)
		if err := e.svc.Logout(t.Context(), s.Hash); err != nil {
			t.Fatal(err)
		}
		for range 50 {
			e.refused(t, s.Hash, 4)
		}
		close(stop)
		wg.Wait()
		e.refused(t, s.Hash, 4)
	}
}

func TestSetPassword(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ann := e.user(t, "ann", "old-pw")
	bob := e.user(t, "bob", "bob-pw")
	s1 := e.login(t, "ann", "old-pw")
	s2 := e.login(t, "ann", "old-pw")
	sb := e.login(t, "bob", "bob-pw")
	k, err := e.svc.CreateAPIKey(ctx, ann.ID, "integration")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{s1.Hash, s2.Hash, k.Hash} {
		e.resolves(t, h, ann.ID)
	}

	if err := e.svc.SetPassword(ctx, ann.ID, "new pw ü"); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	wantMessages(t, e.rec.take(), logoutOf(ann.ID, s1.Hash, s2.Hash))
	e.refused(t, s1.Hash, 4)
	e.refused(t, s2.Hash, 4)
	e.resolves(t, k.Hash, ann.ID)
	e.resolves(t, sb.Hash, bob.ID)
	_, err = e.svc.Login(ctx, "ann", "old-pw")
	wantCode(t, "old password", err, 102)
	e.login(t, "ann", "new pw ü")

	// No sessions left to end: nothing is published.
	if err := e.svc.SetPassword(ctx, bob.ID, "x"); err != nil {
		t.Fatal(err)
	}
	wantMessages(t, e.rec.take(), logoutOf(bob.ID, sb.Hash))
	if err := e.svc.SetPassword(ctx, bob.ID, "y"); err != nil {
		t.Fatal(err)
	}
	wantMessages(t, e.rec.take())

	for _, bad := range []string{"", strings.Repeat("a", 41), "tab\there", "nl\n", "\x00", "bad\xffutf8",
		strings.Repeat("€", 25)} {
		wantCode(t, "SetPassword "+bad, e.svc.SetPassword(ctx, ann.ID, bad), 7)
	}
	if err := e.svc.SetPassword(ctx, ann.ID, strings.Repeat("Ж", 36)); err != nil {
		t.Fatalf("SetPassword of 36 two-byte characters: %v", err)
	}
	err = e.svc.SetPassword(ctx, bob.ID+100, "pw")
	wantCode(t, "unknown user", err, 204)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown user error %v does not match store.ErrNotFound", err)
	}
}

func TestEndSessions(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	u := e.user(t, "ann", "pw")
	s1 := e.login(t, "ann", "pw")
	s2 := e.login(t, "ann", "pw")
	k, err := e.svc.CreateAPIKey(ctx, u.ID, "k")
	if err != nil {
		t.Fatal(err)
	}
	e.resolves(t, s1.Hash, u.ID)

	if err := e.svc.EndSessions(ctx, u.ID); err != nil {
		t.Fatalf("EndSessions: %v", err)
	}
	wantMessages(t, e.rec.take(), logoutOf(u.ID, s1.Hash, s2.Hash))
	e.refused(t, s1.Hash, 4)
	e.refused(t, s2.Hash, 4)
	e.resolves(t, k.Hash, u.ID)
	e.login(t, "ann", "pw") // the password still works

	if err := e.svc.EndSessions(ctx, u.ID+100); err != nil {
		t.Fatalf("EndSessions of a user without sessions: %v", err)
	}
	wantMessages(t, e.rec.take())
}

func TestAPIKeys(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ann := e.user(t, "ann", "pw")
	bob := e.user(t, "bob", "pw")
	sess := e.login(t, "ann", "pw")

	k1, err := e.svc.CreateAPIKey(ctx, ann.ID, "first")
	if err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	if !ValidHash(k1.Hash) || k1.Kind != fleet.KindAPIKey || k1.Title != "first" || k1.UserID != ann.ID ||
		!k1.ExpiresAt.IsZero() || !k1.CreatedAt.Equal(e.clock.Now()) {
		t.Fatalf("CreateAPIKey = %+v", k1)
	}
	e.clock.Advance(time.Second)
	k2, err := e.svc.CreateAPIKey(ctx, ann.ID, "second")
	if err != nil {
		t.Fatal(err)
	}
	kb, err := e.svc.CreateAPIKey(ctx, bob.ID, "bob's")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.CreateAPIKey(ctx, bob.ID+100, "nobody's")
	wantCode(t, "key for unknown user", err, 204)

	keys, err := e.svc.APIKeys(ctx, ann.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The keys are not stored: the list names each by its id.
	for i, k := range []*fleet.Session{k1, k2} {
		want := *k
		want.Hash = KeyID(k.Hash)
		if len(keys) != 2 || *keys[i] != want || keys[i].Hash == k.Hash || !ValidHash(keys[i].Hash) {
			t.Fatalf("APIKeys = %+v, want first then second, each with its id", keys)
		}
	}
	e.resolves(t, k1.Hash, ann.ID)

	// Not ann's key, in every way: another user's, a session, unknown, malformed.
	for _, h := range []string{kb.Hash, sess.Hash, strings.Repeat("0", 32), "xyz"} {
		wantCode(t, "DeleteAPIKey "+h, e.svc.DeleteAPIKey(ctx, ann.ID, h), 201)
	}
	e.resolves(t, kb.Hash, bob.ID)
	e.resolves(t, sess.Hash, ann.ID)
	wantMessages(t, e.rec.take())

	if err := e.svc.DeleteAPIKey(ctx, ann.ID, k1.Hash); err != nil {
		t.Fatalf("DeleteAPIKey: %v", err)
	}
	wantMessages(t, e.rec.take(), logoutOf(ann.ID, k1.Hash))
	e.refused(t, k1.Hash, 4)
	wantCode(t, "DeleteAPIKey twice", e.svc.DeleteAPIKey(ctx, ann.ID, k1.Hash), 201)
	keys, err = e.svc.APIKeys(ctx, ann.ID)
	if err != nil || len(keys) != 1 || keys[0].Hash != KeyID(k2.Hash) {
		t.Fatalf("APIKeys after delete = %+v, %v", keys, err)
	}
	// The id the list shows deletes the key too, and only the owner's.
	wantCode(t, "DeleteAPIKey by id, another user", e.svc.DeleteAPIKey(ctx, bob.ID, keys[0].Hash), 201)
	e.resolves(t, k2.Hash, ann.ID)
	if err := e.svc.DeleteAPIKey(ctx, ann.ID, keys[0].Hash); err != nil {
		t.Fatalf("DeleteAPIKey by id: %v", err)
	}
	wantMessages(t, e.rec.take(), logoutOf(ann.ID, k2.Hash))
	e.refused(t, k2.Hash, 4)
}

func TestCreateUser(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	u, err := e.svc.CreateUser(ctx, "ann", "secret", "Ann", "America/New_York")
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if u.ID <= 0 || u.Login != "ann" || u.Title != "Ann" || u.TimeZone != "America/New_York" || !u.CreatedAt.Equal(e.clock.Now()) {
		t.Fatalf("CreateUser = %+v", u)
	}
	if u.PasswordHash == "secret" || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte("secret")) != nil {
		t.Fatal("password hash does not verify")
	}
	got, err := e.svc.User(ctx, u.ID)
	if err != nil || *got != *u {
		t.Fatalf("User = %+v, %v; want %+v", got, err, u)
	}
	utc, err := e.svc.CreateUser(ctx, "utc", "pw", "", "")
	if err != nil || utc.TimeZone != "" {
		t.Fatalf("CreateUser without a zone = %+v, %v", utc, err)
	}

	_, err = e.svc.CreateUser(ctx, "ann", "other", "Ann 2", "")
	wantCode(t, "duplicate login", err, 206)
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate login error %v does not match store.ErrConflict", err)
	}
	for name, args := range map[string][4]string{
		"empty login":     {"", "pw", "t", ""},
		"blank login":     {"  ", "pw", "t", ""},
		"empty password":  {"zed", "", "t", ""},
		"long password":   {"zed", strings.Repeat("p", 41), "t", ""},
		"control char":    {"zed", "p\x07w", "t", ""},
		"unknown zone":    {"zed", "pw", "t", "Mars/Olympus"},
		"local zone":      {"zed", "pw", "t", "Local"},
		"path-like zone":  {"zed", "pw", "t", "../../etc/passwd"},
		"bad utf-8 in pw": {"zed", "\xc3", "t", ""},
	} {
		_, err := e.svc.CreateUser(ctx, args[0], args[1], args[2], args[3])
		wantCode(t, name, err, 7)
	}
	if _, err := e.svc.CreateUser(ctx, "forty", strings.Repeat("p", 40), "", "UTC"); err != nil {
		t.Fatalf("40-character password: %v", err)
	}

	users, err := e.svc.Users(ctx)
	if err != nil || len(users) != 3 || users[0].Login != "ann" || users[1].Login != "utc" || users[2].Login != "forty" {
		t.Fatalf("Users = %+v, %v", users, err)
	}
	_, err = e.svc.User(ctx, 999)
	wantCode(t, "unknown user", err, 204)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown user error %v does not match store.ErrNotFound", err)
	}
}

// TestCacheDisabled: with CacheTTL < 0 every Resolve asks the store, so a
// credential deleted behind the service's back is refused at once.
func TestCacheDisabled(t *testing.T) {
	e := newEnv(t)
	svc := New(e.st, e.bus, Options{Now: e.clock.Now, BcryptCost: bcrypt.MinCost, CacheTTL: -1})
	defer svc.Close()
	e.user(t, "ann", "pw")
	s := e.login(t, "ann", "pw")
	if _, _, err := svc.Resolve(t.Context(), s.Hash); err != nil {
		t.Fatal(err)
	}
	if err := e.st.DeleteSession(t.Context(), fleet.CredentialDigest(s.Hash)); err != nil {
		t.Fatal(err)
	}
	_, _, err := svc.Resolve(t.Context(), s.Hash)
	wantCode(t, "deleted behind the service", err, 4)
}

// TestCacheLapses: Resolve answers from its cache, so a credential deleted
// without going through the service or the bus is still accepted until the
// cache entry lapses, and refused after.
func TestCacheLapses(t *testing.T) {
	e := newEnv(t)
	u := e.user(t, "ann", "pw")
	k, err := e.svc.CreateAPIKey(t.Context(), u.ID, "k")
	if err != nil {
		t.Fatal(err)
	}
	e.resolves(t, k.Hash, u.ID)
	if err := e.st.DeleteSession(t.Context(), fleet.CredentialDigest(k.Hash)); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(DefaultCacheTTL - time.Second)
	e.resolves(t, k.Hash, u.ID)
	e.clock.Advance(time.Second)
	e.refused(t, k.Hash, 4)
}

func FuzzValidHash(f *testing.F) {
	f.Add("0123456789abcdef0123456789abcdef")
	f.Add("0123456789ABCDEF0123456789abcdef")
	f.Add("")
	f.Add("é123456789abcdef0123456789abcde")
	f.Fuzz(func(t *testing.T, h string) {
		want := len(h) == 32 && strings.Trim(h, "0123456789abcdef") == ""
		if got := ValidHash(h); got != want {
			t.Fatalf("ValidHash(%q) = %v, want %v", h, got, want)
		}
	})
}

// BenchmarkResolve measures the hot path: a credential already in the
// cache, and one looked up in SQLite each time.
func BenchmarkResolve(b *testing.B) {
	for _, tc := range []struct {
		name     string
		cacheTTL time.Duration
	}{{"cached", 0}, {"store", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			st, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			svc := New(st, bus.NewMemory(), Options{BcryptCost: bcrypt.MinCost, CacheTTL: tc.cacheTTL})
			defer svc.Close()
			if _, err := svc.CreateUser(b.Context(), "ann", "pw", "", ""); err != nil {
				b.Fatal(err)
			}
			s, err := svc.Login(b.Context(), "ann", "pw")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := svc.Resolve(context.Background(), s.Hash); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// TestUpdateUser: a profile change shows at once through a credential
// whose user is cached.
func TestUpdateUser(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	u, err := e.svc.CreateUser(ctx, "pat", "pw-pat", "Pat", "UTC")
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.svc.Login(ctx, "pat", "pw-pat")
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := e.svc.Resolve(ctx, s.Hash); err != nil || got.Profile != (fleet.UserProfile{}) {
		t.Fatalf("Resolve before: %+v %v", got, err)
	}
	u.Title, u.TimeZone = "Patricia", "Europe/Rome"
	u.Profile = fleet.UserProfile{Locale: "it_IT", MeasurementSystem: "imperial", Demo: true, LastName: "Rossi"}
	got, err := e.svc.UpdateUser(ctx, u)
	if err != nil || got.Title != "Patricia" || got.Profile != u.Profile || got.Login != "pat" || got.PasswordHash == "" {
		t.Fatalf("UpdateUser = %+v, %v", got, err)
	}
	if got, _, err := e.svc.Resolve(ctx, s.Hash); err != nil || got.Profile != u.Profile || got.TimeZone != "Europe/Rome" {
		t.Fatalf("Resolve after: %+v %v", got, err)
	}
	u.TimeZone = "Mars/Olympus"
	if _, err := e.svc.UpdateUser(ctx, u); !errors.Is(err, apierr.InvalidParameters) {
		t.Errorf("unknown zone: %v", err)
	}
	u.ID, u.TimeZone = u.ID+100, ""
	if _, err := e.svc.UpdateUser(ctx, u); !errors.Is(err, apierr.EntityNotFound) {
		t.Errorf("unknown user: %v", err)
	}
}

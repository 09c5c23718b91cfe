// Package auth signs users in and resolves the "hash" every API call
// carries: a session created by Login or an API key. It owns password
// hashing (bcrypt), credential creation and the end of sessions, which it
// announces on the bus (bus.KindLogout) so open event streams close.
//
// Sessions live for a fixed time from creation (Options.SessionTTL); using
// a session does not extend it. API keys do not expire; they end only when
// deleted.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/metrics"
	"github.com/fleetwire/fleetwire/internal/store"
)

// Defaults for Options.
const (
	DefaultSessionTTL = 30 * 24 * time.Hour
	DefaultCacheTTL   = 30 * time.Second
)

// MaxPasswordLen is the longest password, in characters, CreateUser and
// SetPassword accept.
const MaxPasswordLen = 40

// MinPasswordLen is the shortest password, in characters, the operators'
// surfaces (the admin API and `fleetwire admin`) accept for a new user or
// a password change. CreateUser itself takes shorter ones, for accounts a
// program sets up with a known password (the demo's demo/demo).
const MinPasswordLen = 8

// maxCacheEntries bounds the resolve cache; past it, stale entries are
// dropped, and if that is not enough the cache starts over.
const maxCacheEntries = 100_000

// Options tune the Service. Zero values take the defaults noted on each
// field.
type Options struct {
	// SessionTTL is how long a session lasts from creation (default
	// DefaultSessionTTL). Sessions are not extended by use.
	SessionTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// BcryptCost is the bcrypt work factor for new password hashes
	// (default bcrypt.DefaultCost; tests use bcrypt.MinCost).
	BcryptCost int
	// CacheTTL is how long Resolve trusts a credential it has looked up
	// without asking the store again (default DefaultCacheTTL; negative
	// disables the cache). Credentials ended through this Service, or
	// announced as ended on the bus, leave the cache at once.
	CacheTTL time.Duration
	// Logger receives failures that do not fail the call, such as a bus
	// publish that did not go through (default slog.Default()).
	Logger *slog.Logger
	// LoginLimit is the budget of failed sign-ins per login, and
	// AddressLimit per source address (defaults DefaultLoginLimit and
	// DefaultAddressLimit; a negative Failures switches one off). Past it,
	// sign-ins are refused with error 15 without checking the password.
	LoginLimit, AddressLimit Limit
	// PasswordWorkers bounds the password checks and hashes running at
	// once (default: half the CPUs, at least 1), so that a flood of
	// sign-ins cannot take every core from event delivery.
	PasswordWorkers int
	// PasswordQueue is how many password checks may wait for a worker
	// (default 16 per worker); more are refused with error 15.
	PasswordQueue int
}

// Service signs users in and manages their credentials. It is safe for
// concurrent use.
type Service struct {
	st    store.Store
	bus   bus.Bus
	opts  Options
	log   *slog.Logger
	unsub func()

	mu    sync.Mutex
	cache map[string]cached
	// gen counts evictions; Resolve only caches what it read if no
	// eviction happened meanwhile, so an ended session cannot be put
	// back by a lookup that raced with its end.
	gen uint64

	dummyOnce sync.Once
	dummy     []byte // a bcrypt hash to compare against for unknown logins

	throttle *Throttle
	workers  *workers
}

type cached struct {
	user  fleet.User
	sess  fleet.Session
	until time.Time
}

var (
	resolveHits = metrics.Default.NewCounter("fleetwire_auth_resolve_cache_hits_total",
		"Credentials resolved from the in-memory cache.", "")
	resolveMisses = metrics.Default.NewCounter("fleetwire_auth_resolve_cache_misses_total",
		"Credentials resolved by asking the store.", "")
	loginFailures = metrics.Default.NewCounter("fleetwire_auth_login_failures_total",
		"Sign-ins refused for a wrong login or password.", "")
)

// New returns the Service over st and b. It listens on b for ended
// sessions (from this or another node) to drop them from its cache; Close
// stops that.
func New(st store.Store, b bus.Bus, opts Options) *Service {
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BcryptCost == 0 {
		opts.BcryptCost = bcrypt.DefaultCost
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = DefaultCacheTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.LoginLimit.Failures == 0 {
		opts.LoginLimit = DefaultLoginLimit
	}
	if opts.AddressLimit.Failures == 0 {
		opts.AddressLimit = DefaultAddressLimit
	}
	if opts.PasswordWorkers <= 0 {
		opts.PasswordWorkers = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if opts.PasswordQueue <= 0 {
		opts.PasswordQueue = 16 * opts.PasswordWorkers
	}
	s := &Service{st: st, bus: b, opts: opts, log: opts.Logger, cache: make(map[string]cached),
		throttle: NewThrottle(opts.LoginLimit, opts.AddressLimit, opts.Now),
		workers:  newWorkers(opts.PasswordWorkers, opts.PasswordQueue)}
	s.unsub = b.Subscribe(s.handleBus)
	return s
}

// Close stops listening on the bus. The store and bus stay open.
func (s *Service) Close() error {
	s.unsub()
	return nil
}

// handleBus drops ended credentials from the cache.
func (s *Service) handleBus(m *bus.Message) {
	if m.Kind != bus.KindLogout {
		return
	}
	if len(m.Hashes) == 0 {
		s.evictUser(m.UserID)
		return
	}
	s.evict(m.Hashes...)
}

// ValidHash reports whether h has the form of a credential: exactly 32
// lower-case hex characters.
func ValidHash(h string) bool {
	if len(h) != 32 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// newHash returns 16 random bytes as lower-case hex.
func newHash() string {
	var b [16]byte
	rand.Read(b[:]) // never fails; see crypto/rand.Read
	return hex.EncodeToString(b[:])
}

// dbError reports a store failure as API error 1, keeping the cause for
// logs.
func dbError(what string, err error) error {
	return fmt.Errorf("%s: %w: %w", what, apierr.DatabaseError, err)
}

// Login checks login and password and starts a session. A wrong login or
// password, or a blocked user, is apierr.WrongLogin. A login or client
// address (see WithClientAddr) that has used its budget of failures, or a
// moment when too many password checks are waiting, is an
// *apierr.Throttled (error 15) and the password is not checked.
func (s *Service) Login(ctx context.Context, login, password string) (*fleet.Session, error) {
	try, err := s.throttle.Attempt(login, clientAddr(ctx))
	if err != nil {
		return nil, err
	}
	u, err := s.st.UserByLogin(ctx, login)
	hash := s.dummyHash()
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Check against a dummy hash: the same time as for a known
		// login, so response times do not reveal which logins exist.
	case err != nil:
		try.Undo()
		return nil, dbError("login", err)
	default:
		hash = []byte(u.PasswordHash)
	}
	var mismatch error
	if err := s.workers.do(ctx, func() { mismatch = bcrypt.CompareHashAndPassword(hash, []byte(password)) }); err != nil {
		try.Undo()
		return nil, err
	}
	if u == nil || mismatch != nil || u.Blocked {
		loginFailures.Inc()
		return nil, apierr.WrongLogin
	}
	try.OK()
	now := s.now()
	return s.createCredential(ctx, &fleet.Session{
		UserID:    u.ID,
		Kind:      fleet.KindSession,
		CreatedAt: now,
		ExpiresAt: now.Add(s.opts.SessionTTL),
	})
}

// Throttle is the sign-in throttle, for other paths that check a secret
// (the admin key, MQTT device secrets) to share its budgets.
func (s *Service) Throttle() *Throttle { return s.throttle }

func (s *Service) dummyHash() []byte {
	s.dummyOnce.Do(func() {
		h, err := bcrypt.GenerateFromPassword([]byte("fleetwire-no-such-user"), s.opts.BcryptCost)
		if err != nil {
			// Only an invalid cost gets here; fall back to the default.
			h, _ = bcrypt.GenerateFromPassword([]byte("fleetwire-no-such-user"), bcrypt.DefaultCost)
		}
		s.dummy = h
	})
	return s.dummy
}

// createCredential stores x under the digest of a fresh hash, drawing
// again in the (astronomically unlikely) case the digest is taken, and
// returns x with the hash itself, which is never stored.
func (s *Service) createCredential(ctx context.Context, x *fleet.Session) (*fleet.Session, error) {
	var err error
	for range 3 {
		x.Hash = newHash()
		stored := *x
		stored.Hash = fleet.CredentialDigest(x.Hash)
		err = s.st.CreateSession(ctx, &stored)
		if !errors.Is(err, store.ErrConflict) {
			break
		}
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("create %s: %w: %w", x.Kind, apierr.EntityNotFound.With("user"), err)
	case err != nil:
		return nil, dbError("create "+string(x.Kind), err)
	}
	return x, nil
}

// now is the clock in UTC at the stores' microsecond precision, so a
// credential returned at creation equals the one read back later.
func (s *Service) now() time.Time { return s.opts.Now().UTC().Truncate(time.Microsecond) }

// Resolve returns the user and credential behind hash. A hash that is not
// 32 lower-case hex characters is apierr.WrongHash; an unknown, ended or
// expired one, or one of a blocked user, is apierr.SessionNotFound; a
// store failure is apierr.DatabaseError. The returned values are copies
// the caller may keep.
func (s *Service) Resolve(ctx context.Context, hash string) (*fleet.User, *fleet.Session, error) {
	if !ValidHash(hash) {
		return nil, nil, apierr.WrongHash
	}
	now := s.now()
	digest := fleet.CredentialDigest(hash)
	s.mu.Lock()
	c, ok := s.cache[digest]
	gen := s.gen
	s.mu.Unlock()
	if ok && now.Before(c.until) {
		if c.sess.Expired(now) {
			return nil, nil, apierr.SessionNotFound
		}
		resolveHits.Inc()
		u, x := c.user, c.sess
		return &u, &x, nil
	}
	resolveMisses.Inc()

	x, err := s.st.Session(ctx, digest)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil, apierr.SessionNotFound
	case err != nil:
		return nil, nil, dbError("resolve", err)
	}
	x.Hash = hash // the store has the digest; the caller holds the hash
	if x.Expired(now) {
		return nil, nil, apierr.SessionNotFound
	}
	u, err := s.st.User(ctx, x.UserID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil, apierr.SessionNotFound
	case err != nil:
		return nil, nil, dbError("resolve", err)
	}
	if u.Blocked {
		return nil, nil, apierr.SessionNotFound
	}
	if s.opts.CacheTTL > 0 {
		s.mu.Lock()
		if s.gen == gen {
			if len(s.cache) >= maxCacheEntries {
				s.pruneLocked(now)
			}
			s.cache[digest] = cached{user: *u, sess: *x, until: now.Add(s.opts.CacheTTL)}
		}
		s.mu.Unlock()
	}
	return u, x, nil
}

// pruneLocked drops stale entries, or everything if none are stale.
func (s *Service) pruneLocked(now time.Time) {
	for h, c := range s.cache {
		if !now.Before(c.until) || c.sess.Expired(now) {
			delete(s.cache, h)
		}
	}
	if len(s.cache) >= maxCacheEntries {
		clear(s.cache)
	}
}

// evict drops credentials, named by their digests, from the cache.
func (s *Service) evict(digests ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	for _, d := range digests {
		delete(s.cache, d)
	}
}

// evictUser drops every cached credential of a user.
func (s *Service) evictUser(userID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	for h, c := range s.cache {
		if c.sess.UserID == userID {
			delete(s.cache, h)
		}
	}
}

// ended drops credentials, named by their digests, from the cache and
// announces their end with the digests (fleet.CredentialDigest). The
// credentials are already gone from the store, so a failed publish is
// logged rather than returned: other nodes stop accepting them when their
// cache entries lapse.
func (s *Service) ended(ctx context.Context, userID int64, digests []string) {
	if len(digests) == 0 {
		return
	}
	s.evict(digests...)
	err := s.bus.Publish(ctx, &bus.Message{Kind: bus.KindLogout, UserID: userID, Hashes: digests})
	if err != nil {
		s.log.Warn("auth: publish logout", "user_id", userID, "credentials", len(digests), "err", err)
	}
}

// Logout ends the credential hash (a session or, equally, an API key) and
// announces it with bus.KindLogout. A malformed hash is apierr.WrongHash,
// an unknown one apierr.SessionNotFound.
func (s *Service) Logout(ctx context.Context, hash string) error {
	if !ValidHash(hash) {
		return apierr.WrongHash
	}
	digest := fleet.CredentialDigest(hash)
	x, err := s.st.Session(ctx, digest)
	if err == nil {
		err = s.st.DeleteSession(ctx, digest)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.evict(digest)
		return apierr.SessionNotFound
	case err != nil:
		return dbError("logout", err)
	}
	s.ended(ctx, x.UserID, []string{digest})
	return nil
}

// checkPassword enforces 1..MaxPasswordLen printable characters that
// bcrypt can take whole (at most 72 bytes of UTF-8).
func checkPassword(p string) error {
	n := utf8.RuneCountInString(p)
	switch {
	case p == "":
		return apierr.InvalidParameters.With("password is empty")
	case !utf8.ValidString(p):
		return apierr.InvalidParameters.With("password is not valid UTF-8")
	case n > MaxPasswordLen:
		return apierr.InvalidParameters.With(fmt.Sprintf("password is longer than %d characters", MaxPasswordLen))
	case len(p) > 72:
		return apierr.InvalidParameters.With("password is longer than 72 bytes")
	}
	for _, r := range p {
		if !unicode.IsPrint(r) {
			return apierr.InvalidParameters.With("password has a character that is not printable")
		}
	}
	return nil
}

// checkTimeZone accepts "" (UTC) or an IANA zone name.
func checkTimeZone(tz string) error {
	if tz == "" {
		return nil
	}
	if tz == "Local" || strings.ContainsAny(tz, "\\\x00") {
		return apierr.InvalidParameters.With("time_zone is not an IANA zone name")
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return apierr.InvalidParameters.With("time_zone is not an IANA zone name")
	}
	return nil
}

func (s *Service) hashPassword(ctx context.Context, p string) (string, error) {
	var h []byte
	var err error
	if werr := s.workers.do(ctx, func() { h, err = bcrypt.GenerateFromPassword([]byte(p), s.opts.BcryptCost) }); werr != nil {
		return "", werr
	}
	if err != nil {
		return "", fmt.Errorf("hash password: %w: %w", apierr.Unexpected, err)
	}
	return string(h), nil
}

// CreateUser adds a user. An empty login, a password that is not 1..40
// printable characters, or an unknown time zone is
// apierr.InvalidParameters; a taken login is apierr.LoginInUse (which also
// matches store.ErrConflict). An empty timeZone means UTC.
func (s *Service) CreateUser(ctx context.Context, login, password, title, timeZone string) (*fleet.User, error) {
	if strings.TrimSpace(login) == "" {
		return nil, apierr.InvalidParameters.With("login is empty")
	}
	if err := checkPassword(password); err != nil {
		return nil, err
	}
	if err := checkTimeZone(timeZone); err != nil {
		return nil, err
	}
	h, err := s.hashPassword(ctx, password)
	if err != nil {
		return nil, err
	}
	u := &fleet.User{Login: login, PasswordHash: h, Title: title, TimeZone: timeZone,
		CreatedAt: s.now()}
	id, err := s.st.CreateUser(ctx, u)
	switch {
	case errors.Is(err, store.ErrConflict):
		return nil, fmt.Errorf("create user: %w: %w", apierr.LoginInUse, err)
	case err != nil:
		return nil, dbError("create user", err)
	}
	u.ID = id
	return u, nil
}

// Users lists every user, ordered by id.
func (s *Service) Users(ctx context.Context) ([]*fleet.User, error) {
	us, err := s.st.Users(ctx)
	if err != nil {
		return nil, dbError("list users", err)
	}
	return us, nil
}

// User returns the user with id; an unknown id is apierr.EntityNotFound
// (which also matches store.ErrNotFound).
func (s *Service) User(ctx context.Context, id int64) (*fleet.User, error) {
	u, err := s.st.User(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("%w: %w", apierr.EntityNotFound.With("user"), err)
	case err != nil:
		return nil, dbError("user", err)
	}
	return u, nil
}

// UpdateUser replaces the title, time zone and profile of the user with
// u.ID and returns the user as stored. An unknown time zone is
// apierr.InvalidParameters, an unknown user apierr.EntityNotFound. The
// user's cached credentials are dropped, so the change shows at once on
// this node (other nodes read it within CacheTTL).
func (s *Service) UpdateUser(ctx context.Context, u *fleet.User) (*fleet.User, error) {
	if err := checkTimeZone(u.TimeZone); err != nil {
		return nil, err
	}
	err := s.st.UpdateUser(ctx, u)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("update user: %w: %w", apierr.EntityNotFound.With("user"), err)
	case err != nil:
		return nil, dbError("update user", err)
	}
	s.evictUser(u.ID)
	return s.User(ctx, u.ID)
}

// SetPassword replaces a user's password and ends the user's sessions (API
// keys stay valid), announcing them with bus.KindLogout. The password
// rules are CreateUser's; an unknown user is apierr.EntityNotFound.
func (s *Service) SetPassword(ctx context.Context, userID int64, password string) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	h, err := s.hashPassword(ctx, password)
	if err != nil {
		return err
	}
	err = s.st.SetPasswordHash(ctx, userID, h)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("set password: %w: %w", apierr.EntityNotFound.With("user"), err)
	case err != nil:
		return dbError("set password", err)
	}
	return s.EndSessions(ctx, userID)
}

// EndSessions ends every session of a user, announcing them with
// bus.KindLogout (which names the ended hashes). API keys are credentials
// the user manages and stay valid; DeleteAPIKey ends them.
func (s *Service) EndSessions(ctx context.Context, userID int64) error {
	hashes, err := s.st.DeleteSessions(ctx, userID, fleet.KindSession)
	if err != nil {
		return dbError("end sessions", err)
	}
	s.ended(ctx, userID, hashes)
	return nil
}

// PurgeExpired deletes sessions that have expired and returns how many.
// Expired sessions are refused whether or not they were purged; this only
// reclaims space, so call it now and then (hourly is plenty).
func (s *Service) PurgeExpired(ctx context.Context) (int, error) {
	n, err := s.st.DeleteExpiredSessions(ctx, s.now())
	if err != nil {
		return 0, dbError("purge expired sessions", err)
	}
	return n, nil
}

// CreateAPIKey creates a non-expiring API key for a user. An unknown user
// is apierr.EntityNotFound.
func (s *Service) CreateAPIKey(ctx context.Context, userID int64, title string) (*fleet.Session, error) {
	return s.createCredential(ctx, &fleet.Session{
		UserID:    userID,
		Kind:      fleet.KindAPIKey,
		Title:     title,
		CreatedAt: s.now(),
	})
}

// APIKeys lists a user's API keys, oldest first. The keys themselves are
// not stored, so each Hash is the key's id instead: the first 32
// characters of its digest (KeyID), which DeleteAPIKey also takes.
func (s *Service) APIKeys(ctx context.Context, userID int64) ([]*fleet.Session, error) {
	ks, err := s.st.Sessions(ctx, userID, fleet.KindAPIKey)
	if err != nil {
		return nil, dbError("list api keys", err)
	}
	for _, k := range ks {
		k.Hash = keyID(k.Hash)
	}
	return ks, nil
}

// KeyID is the id APIKeys lists for the API key key: 32 hex characters
// of its digest, in the form of a hash but not usable as one.
func KeyID(key string) string { return keyID(fleet.CredentialDigest(key)) }

func keyID(digest string) string { return digest[:min(32, len(digest))] }

// DeleteAPIKey deletes one of a user's API keys, named by the key itself
// or by the id APIKeys lists for it, and announces its end with
// bus.KindLogout. Anything that is not an API key of that user
// (malformed, unknown, a session, another user's key) is apierr.NotFound.
func (s *Service) DeleteAPIKey(ctx context.Context, userID int64, key string) error {
	if !ValidHash(key) {
		return apierr.NotFound
	}
	digest := fleet.CredentialDigest(key)
	x, err := s.st.Session(ctx, digest)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Not the key itself: maybe the id api/key/list showed.
		if digest, err = s.apiKeyByID(ctx, userID, key); err != nil {
			return err
		}
	case err != nil:
		return dbError("delete api key", err)
	case x.UserID != userID || x.Kind != fleet.KindAPIKey:
		return apierr.NotFound
	}
	err = s.st.DeleteSession(ctx, digest)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.evict(digest)
		return apierr.NotFound
	case err != nil:
		return dbError("delete api key", err)
	}
	s.ended(ctx, userID, []string{digest})
	return nil
}

// apiKeyByID returns the digest of the user's API key whose id is id, or
// apierr.NotFound.
func (s *Service) apiKeyByID(ctx context.Context, userID int64, id string) (string, error) {
	ks, err := s.st.Sessions(ctx, userID, fleet.KindAPIKey)
	if err != nil {
		return "", dbError("delete api key", err)
	}
	for _, k := range ks {
		if subtle.ConstantTimeCompare([]byte(keyID(k.Hash)), []byte(id)) == 1 {
			return k.Hash, nil
		}
	}
	return "", apierr.NotFound
}

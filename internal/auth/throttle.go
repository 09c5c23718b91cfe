package auth

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/metrics"
	"github.com/fleetwire/fleetwire/internal/netlimit"
)

// Limit is a budget of failed sign-ins: Failures failures in every Per,
// refilled evenly (one every Per/Failures). A key that has used its budget
// is refused, without checking the password, until the budget refills.
type Limit struct {
	Failures int
	Per      time.Duration
}

// Default sign-in budgets: per login 10 failures per 5 minutes (one more
// every 30 s once used up), per source address 30 per 5 minutes (one more
// every 10 s).
var (
	DefaultLoginLimit   = Limit{Failures: 10, Per: 5 * time.Minute}
	DefaultAddressLimit = Limit{Failures: 30, Per: 5 * time.Minute}
)

// ParseLimit reads a Limit written "N/duration" ("10/5m"); "0" or "off"
// is no limit (Failures 0).
func ParseLimit(s string) (Limit, error) {
	if s == "0" || s == "off" {
		return Limit{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return Limit{}, fmt.Errorf("limit %q: want failures/duration, e.g. 10/5m", s)
	}
	f, err := strconv.Atoi(n)
	if err != nil || f < 0 {
		return Limit{}, fmt.Errorf("limit %q: failures must be a whole number", s)
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return Limit{}, fmt.Errorf("limit %q: duration must be positive, e.g. 5m", s)
	}
	return Limit{Failures: f, Per: d}, nil
}

// String writes l as ParseLimit reads it.
func (l Limit) String() string {
	if !l.on() {
		return "off"
	}
	return strconv.Itoa(l.Failures) + "/" + l.Per.String()
}

func (l Limit) on() bool { return l.Failures > 0 && l.Per > 0 }

// maxThrottleKeys bounds the keys a Throttle tracks. Past it, keys whose
// budget has refilled are dropped; if that is not enough, new keys go
// untracked until some refill (keys already tracked stay throttled).
const maxThrottleKeys = 100_000

var throttled = metrics.Default.NewCounter("fleetwire_auth_throttled_total",
	"Sign-ins refused with error 15: a login or address out of its failure budget, or password checks saturated.", "")

// Throttle counts failed sign-ins per login and per source address
// (netlimit.AddrKey) and refuses keys that have used their budget. It is
// safe for concurrent use. Every path that checks a secret (user/auth,
// the topic bridge's basic auth, the admin key, MQTT device secrets)
// goes through Attempt.
type Throttle struct {
	login, addr Limit
	now         func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

// bucket is a leaky bucket of failures: level drains at the limit's rate.
type bucket struct {
	level float64
	at    time.Time
}

// NewThrottle returns a Throttle with the given budgets; a Limit with no
// Failures is not enforced.
func NewThrottle(login, addr Limit, now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{login: login, addr: addr, now: now, buckets: make(map[string]*bucket)}
}

func loginKey(login string) string { return "l\x00" + strings.ToLower(login) }
func addrKey(from string) string   { return "a\x00" + netlimit.AddrKey(from) }

// drain brings b's level down to t and returns it.
func (b *bucket) drain(l Limit, t time.Time) float64 {
	if el := t.Sub(b.at); el > 0 {
		b.level -= float64(l.Failures) * el.Seconds() / l.Per.Seconds()
		if b.level < 0 {
			b.level = 0
		}
		b.at = t
	}
	return b.level
}

// wait returns how long key must wait before one more failure fits its
// budget, 0 when it may try now. Callers hold t.mu.
func (t *Throttle) wait(key string, l Limit, now time.Time) time.Duration {
	b, ok := t.buckets[key]
	if !ok || !l.on() {
		return 0
	}
	over := b.drain(l, now) - float64(l.Failures) + 1
	if over <= 0 {
		return 0
	}
	return time.Duration(over * float64(l.Per) / float64(l.Failures))
}

// Attempt starts an attempt to check a secret for login (if not empty)
// from the address from (if not empty). When either has used its failure
// budget it returns an *apierr.Throttled error and the secret must not be
// checked. Otherwise the attempt is counted as a failure at once, so that
// concurrent attempts cannot overrun the budget, and the caller reports a
// different outcome on the returned Try: OK when the secret was right,
// Undo when it could not be checked. A failure needs no call.
func (t *Throttle) Attempt(login, from string) (*Try, error) {
	now := t.now()
	tr := &Try{t: t}
	if login != "" && t.login.on() {
		tr.login = loginKey(login)
	}
	if from != "" && t.addr.on() {
		tr.addr = addrKey(from)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var w time.Duration
	if tr.login != "" {
		w = t.wait(tr.login, t.login, now)
	}
	if tr.addr != "" {
		w = max(w, t.wait(tr.addr, t.addr, now))
	}
	if w > 0 {
		throttled.Inc()
		return nil, &apierr.Throttled{After: w}
	}
	if tr.login != "" {
		t.add(tr.login, t.login, now)
	}
	if tr.addr != "" {
		t.add(tr.addr, t.addr, now)
	}
	return tr, nil
}

// Try is an attempt Throttle.Attempt let through, counted as a failure
// until told otherwise. Its methods are safe on a nil *Try and act once.
type Try struct {
	t           *Throttle
	login, addr string
	once        sync.Once
}

// OK reports a right secret: the login's failures are forgotten and the
// address gets this attempt back. The address's earlier failures stay:
// one valid account must not reset an address's budget for guessing
// others.
func (tr *Try) OK() { tr.settle(true) }

// Undo reports an attempt whose secret was not checked (no worker, an
// ended request): it no longer counts.
func (tr *Try) Undo() { tr.settle(false) }

func (tr *Try) settle(forget bool) {
	if tr == nil {
		return
	}
	tr.once.Do(func() {
		t := tr.t
		t.mu.Lock()
		defer t.mu.Unlock()
		for _, k := range []string{tr.login, tr.addr} {
			if b, ok := t.buckets[k]; k != "" && ok {
				b.level = max(0, b.level-1)
			}
		}
		if forget && tr.login != "" {
			delete(t.buckets, tr.login)
		}
	})
}

func (t *Throttle) add(key string, l Limit, now time.Time) {
	b, ok := t.buckets[key]
	if !ok {
		if len(t.buckets) >= maxThrottleKeys {
			t.pruneLocked(now)
			if len(t.buckets) >= maxThrottleKeys {
				return
			}
		}
		b = &bucket{at: now}
		t.buckets[key] = b
	}
	b.drain(l, now)
	b.level++
}

// pruneLocked drops keys whose budget has refilled.
func (t *Throttle) pruneLocked(now time.Time) {
	for k, b := range t.buckets {
		l := t.addr
		if strings.HasPrefix(k, "l\x00") {
			l = t.login
		}
		if b.drain(l, now) == 0 {
			delete(t.buckets, k)
		}
	}
}

// workers bounds the password hashing (bcrypt) running at once, so that a
// flood of sign-ins takes at most that many cores from event delivery.
type workers struct {
	sem     chan struct{}
	waiting atomic.Int32
	queue   int32
}

func newWorkers(n, queue int) *workers {
	return &workers{sem: make(chan struct{}, n), queue: int32(queue)}
}

// do runs fn on a worker. When queue callers are already waiting, or ctx
// ends while waiting, it returns an error without running fn: an
// *apierr.Throttled (retry after 1 s) or ctx's error.
func (w *workers) do(ctx context.Context, fn func()) error {
	select {
	case w.sem <- struct{}{}:
	default:
		if w.waiting.Add(1) > w.queue {
			w.waiting.Add(-1)
			throttled.Inc()
			return &apierr.Throttled{After: time.Second}
		}
		select {
		case w.sem <- struct{}{}:
			w.waiting.Add(-1)
		case <-ctx.Done():
			w.waiting.Add(-1)
			return fmt.Errorf("wait for a password worker: %w", ctx.Err())
		}
	}
	defer func() { <-w.sem }()
	fn()
	return nil
}

type clientAddrKey struct{}

// WithClientAddr returns ctx carrying the address of the client signing
// in (http.Request.RemoteAddr), for Login's per-address throttling.
func WithClientAddr(ctx context.Context, remoteAddr string) context.Context {
	return context.WithValue(ctx, clientAddrKey{}, remoteAddr)
}

// clientAddr is the address WithClientAddr put in ctx, or "".
func clientAddr(ctx context.Context) string {
	s, _ := ctx.Value(clientAddrKey{}).(string)
	return s
}

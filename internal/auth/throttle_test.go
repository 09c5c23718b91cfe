package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/apierr"
)

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]Limit{
		"10/5m": {10, 5 * time.Minute},
		"3/1s":  {3, time.Second},
		"0":     {},
		"off":   {},
	} {
		got, err := ParseLimit(in)
		if err != nil || got != want {
			t.Errorf("ParseLimit(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, _ := ParseLimit(got.String()); back != got {
			t.Errorf("%v does not survive String and ParseLimit: %v", got, back)
		}
	}
	for _, bad := range []string{"", "10", "x/5m", "10/x", "10/-1s", "-1/5m", "10/0s"} {
		if _, err := ParseLimit(bad); err == nil {
			t.Errorf("ParseLimit(%q) succeeded", bad)
		}
	}
}

// wantThrottled checks that err is error 15 with a Retry-After in (0, max].
func wantThrottled(t *testing.T, what string, err error, max time.Duration) {
	t.Helper()
	var th *apierr.Throttled
	if !errors.As(err, &th) || !errors.Is(err, apierr.TooManyRequests) || apierr.From(err).Code != 15 {
		t.Fatalf("%s: %v, want error 15 with a retry time", what, err)
	}
	if th.After <= 0 || th.After > max {
		t.Fatalf("%s: retry after %v, want within (0, %v]", what, th.After, max)
	}
}

// TestLoginThrottle: a login that used its failure budget is refused
// with 15 even with the right password, until the budget refills (one
// failure per Per/Failures); a success resets the login; the address
// budget counts across logins and is not reset by a success.
func TestLoginThrottle(t *testing.T) {
	e := newEnv(t)
	e.svc.Close()
	e.svc = New(e.st, e.bus, Options{Now: e.clock.Now, BcryptCost: 4,
		LoginLimit: Limit{3, time.Minute}, AddressLimit: Limit{5, time.Minute}})
	e.user(t, "alice", "alice-password")
	e.user(t, "bob", "bob-password")
	ctx := WithClientAddr(context.Background(), "127.0.0.2:40000")

	for range 3 {
		_, err := e.svc.Login(ctx, "alice", "wrong")
		wantCode(t, "wrong password", err, 102)
	}
	_, err := e.svc.Login(ctx, "alice", "alice-password")
	wantThrottled(t, "right password after 3 failures", err, 20*time.Second)
	// From another address the login is throttled all the same.
	_, err = e.svc.Login(WithClientAddr(context.Background(), "127.0.0.3:1"), "Alice", "alice-password")
	wantThrottled(t, "same login (other case) from another address", err, 20*time.Second)

	e.clock.Advance(20 * time.Second) // one failure (60 s / 3) has drained
	if _, err := e.svc.Login(ctx, "alice", "alice-password"); err != nil {
		t.Fatalf("after the budget refilled: %v", err)
	}
	// Success reset the login: three more failures are allowed.
	for range 2 {
		_, err := e.svc.Login(ctx, "alice", "wrong")
		wantCode(t, "wrong password after success", err, 102)
	}
	// The address has failed 5 times, less what drained in 20 s (5 *
	// 20/60 ≈ 1.7): 3.3 of its 5, so one more failure fits, then no
	// whole one.
	_, err = e.svc.Login(ctx, "nobody", "wrong")
	wantCode(t, "unknown login from the same address", err, 102)
	_, err = e.svc.Login(ctx, "bob", "bob-password")
	wantThrottled(t, "the address out of budget", err, 12*time.Second)
	// Another address signs in as bob.
	if _, err := e.svc.Login(WithClientAddr(context.Background(), "[2001:db8::1]:5"), "bob", "bob-password"); err != nil {
		t.Fatalf("bob from another address: %v", err)
	}
	// A login with no address in the context is throttled per login only.
	for range 3 {
		e.svc.Login(context.Background(), "carol", "x")
	}
	_, err = e.svc.Login(context.Background(), "carol", "x")
	wantThrottled(t, "no address, login out of budget", err, 20*time.Second)
}

// TestThrottleOff: a negative budget switches a key kind off.
func TestThrottleOff(t *testing.T) {
	e := newEnv(t)
	e.svc.Close()
	e.svc = New(e.st, e.bus, Options{Now: e.clock.Now, BcryptCost: 4,
		LoginLimit: Limit{Failures: -1}, AddressLimit: Limit{Failures: -1}})
	ctx := WithClientAddr(context.Background(), "127.0.0.2:1")
	for i := range 50 {
		if _, err := e.svc.Login(ctx, "x", "y"); !errors.Is(err, apierr.WrongLogin) {
			t.Fatalf("attempt %d: %v, want 102 with throttling off", i+1, err)
		}
	}
}

// TestPasswordWorkers: with one worker and a queue of two, a burst of
// concurrent sign-ins is served at most one bcrypt at a time and the
// sign-ins beyond the queue are refused with 15 at once.
func TestPasswordWorkers(t *testing.T) {
	e := newEnv(t)
	e.svc.Close()
	e.svc = New(e.st, e.bus, Options{Now: e.clock.Now, BcryptCost: 8,
		LoginLimit: Limit{Failures: -1}, AddressLimit: Limit{Failures: -1},
		PasswordWorkers: 1, PasswordQueue: 2})
	e.svc.dummyHash()
	const n = 12
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.svc.Login(context.Background(), "nobody", "guess")
		}()
	}
	wg.Wait()
	var wrong, busy int
	for _, err := range errs {
		switch {
		case errors.Is(err, apierr.WrongLogin):
			wrong++
		case errors.Is(err, apierr.TooManyRequests):
			wantThrottled(t, "queue full", err, time.Second)
			busy++
		default:
			t.Fatalf("unexpected %v", err)
		}
	}
	// At most one running and two waiting when the burst arrives; a
	// sign-in arriving after one finished may take its place, so only the
	// refusals can be bounded from below.
	if busy == 0 || wrong < 1 {
		t.Fatalf("%d checked, %d refused; want some of each (1 worker, queue 2, %d at once)", wrong, busy, n)
	}
	t.Logf("%d checked, %d refused with 15", wrong, busy)
}

// FuzzParseLimit: ParseLimit never panics, and what it accepts is off or
// has a positive count and period, and reads back from its String.
func FuzzParseLimit(f *testing.F) {
	for _, s := range []string{"10/5m", "0", "off", "3/1s", "1/1ns", "x/y", "/", "10/", "99999999999999999999/1h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLimit(s)
		if err != nil {
			return
		}
		if l.Failures < 0 || (l.Failures > 0 && l.Per <= 0) {
			t.Fatalf("ParseLimit(%q) = %+v", s, l)
		}
		if back, err := ParseLimit(l.String()); err != nil || (l.on() && back != l) {
			t.Fatalf("ParseLimit(%q) = %+v, whose String %q reads back as %+v, %v", s, l, l.String(), back, err)
		}
	})
}

package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/auth"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/store"
)

// Limits of the admin surface.
const (
	maxLoginLen    = 255
	maxTitleLen    = 255
	maxLabelLen    = 255
	maxDeviceIDLen = 128
)

// adminUser is a user as operators see it; the password hash never leaves
// the server.
type adminUser struct {
	ID           int64   `json:"id"`
	Login        string  `json:"login"`
	Title        string  `json:"title"`
	TimeZone     string  `json:"time_zone"`
	Blocked      bool    `json:"blocked"`
	CreationDate *string `json:"creation_date"`
	profileJSON
}

type adminUserBody struct {
	Success bool      `json:"success"`
	Value   adminUser `json:"value"`
}

type adminUserListBody struct {
	Success bool        `json:"success"`
	List    []adminUser `json:"list"`
}

func adminUserOf(u *fleet.User) adminUser {
	return adminUser{
		ID:           u.ID,
		Login:        u.Login,
		Title:        u.Title,
		TimeZone:     zoneName(u),
		Blocked:      u.Blocked,
		CreationDate: dateTime(u.CreatedAt, fleet.Dates{Loc: time.UTC}),
		profileJSON:  profileOf(&u.Profile),
	}
}

// adminRoute is one admin endpoint's handler, which gets the id from the
// path (0 where the path has none); routes are keyed by method.
type adminRoute struct {
	fn func(ctx context.Context, c *call, id int64) (any, error)
}

// serveAdmin answers /admin/... after checking the admin key:
//
//	GET  /admin/users                      list users
//	POST /admin/users                      create (login, password, title, time_zone, profile fields)
//	POST /admin/users/{id}/update          change title, time_zone, profile fields (those given)
//	POST /admin/users/{id}/password        set password (password); ends sessions
//	POST /admin/users/{id}/end_sessions    end every session of the user
//	GET  /admin/trackers                   list trackers of every user
//	POST /admin/trackers                   create (user_id, label, device_id, model, phone)
//	POST /admin/trackers/{id}/block        block; also unblock, delete (corrupt)
//	POST /admin/trackers/{id}/secret       set the MQTT device secret (secret, or generated)
func (x *API) serveAdmin(w http.ResponseWriter, r *http.Request) {
	// A wrong admin key counts against the caller's address in the
	// sign-in throttle, so the key cannot be guessed at speed.
	try, err := x.auth.Throttle().Attempt("", r.RemoteAddr)
	if err != nil {
		x.writeError(w, r, err)
		return
	}
	ok := x.checkAdmin(r)
	switch {
	case ok:
		try.OK()
	case x.opts.AdminKey == "":
		try.Undo() // the admin API is off: nothing was guessed
	}
	if !ok {
		x.writeError(w, r, apierr.AccessDenied)
		return
	}
	route, id, err := x.adminRoute(r.URL.Path)
	if err != nil {
		x.writeError(w, r, err)
		return
	}
	rt, ok := route[r.Method]
	if !ok {
		x.writeError(w, r, apierr.WrongMethod)
		return
	}
	p, err := parseParams(w, r, x.opts.MaxBody)
	if err != nil {
		x.writeError(w, r, err)
		return
	}
	c := &call{r: r, p: p, now: x.opts.Now(), loc: time.UTC}
	res, err := rt.fn(r.Context(), c, id)
	if err != nil {
		x.writeError(w, r, err)
		return
	}
	x.writeJSON(w, http.StatusOK, res)
}

// adminRoute resolves an admin path to its handlers by method.
func (x *API) adminRoute(path string) (map[string]adminRoute, int64, error) {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	if len(seg) < 2 || seg[0] != "admin" {
		return nil, 0, apierr.WrongHandler
	}
	switch {
	case len(seg) == 2 && seg[1] == "users":
		return map[string]adminRoute{
			http.MethodGet:  {fn: x.adminListUsers},
			http.MethodPost: {fn: x.adminCreateUser},
		}, 0, nil
	case len(seg) == 2 && seg[1] == "trackers":
		return map[string]adminRoute{
			http.MethodGet:  {fn: x.adminListTrackers},
			http.MethodPost: {fn: x.adminCreateTracker},
		}, 0, nil
	case len(seg) == 4 && (seg[1] == "users" || seg[1] == "trackers"):
		id, err := strconv.ParseInt(seg[2], 10, 64)
		if err != nil || id <= 0 {
			return nil, 0, apierr.InvalidParameters.With("id in the path must be a positive integer")
		}
		var fn func(ctx context.Context, c *call, id int64) (any, error)
		switch seg[1] + "/" + seg[3] {
		case "users/update":
			fn = x.adminUpdateUser
		case "users/password":
			fn = x.adminSetPassword
		case "users/end_sessions":
			fn = x.adminEndSessions
		case "trackers/block":
			fn = x.adminBlock(true)
		case "trackers/unblock":
			fn = x.adminBlock(false)
		case "trackers/delete":
			fn = x.adminDeleteTracker
		case "trackers/secret":
			fn = x.adminDeviceSecret
		default:
			return nil, 0, apierr.WrongHandler
		}
		return map[string]adminRoute{http.MethodPost: {fn: fn}}, id, nil
	}
	return nil, 0, apierr.WrongHandler
}

func (x *API) adminListUsers(ctx context.Context, _ *call, _ int64) (any, error) {
	users, err := x.auth.Users(ctx)
	if err != nil {
		return nil, err
	}
	out := adminUserListBody{Success: true, List: make([]adminUser, 0, len(users))}
	for _, u := range users {
		out.List = append(out.List, adminUserOf(u))
	}
	return out, nil
}

func (x *API) adminCreateUser(ctx context.Context, c *call, _ int64) (any, error) {
	login, err := c.p.requiredStr("login")
	if err != nil {
		return nil, err
	}
	login = strings.TrimSpace(login)
	if err := checkTitle("login", login, maxLoginLen); err != nil {
		return nil, err
	}
	password, err := c.p.requiredStr("password")
	if err != nil {
		return nil, err
	}
	if err := checkNewPassword(password); err != nil {
		return nil, err
	}
	title, _, err := c.p.str("title")
	if err != nil {
		return nil, err
	}
	if title == "" {
		title = login
	}
	if err := checkTitle("title", title, maxTitleLen); err != nil {
		return nil, err
	}
	tz, _, err := c.p.str("time_zone")
	if err != nil {
		return nil, err
	}
	if tz == "" {
		tz = "UTC"
	}
	if err := checkTimeZone(tz); err != nil {
		return nil, err
	}
	var profile fleet.UserProfile
	if err := readProfile(c, &profile); err != nil {
		return nil, err
	}
	u, err := x.auth.CreateUser(ctx, login, password, title, tz)
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, apierr.LoginInUse
		}
		return nil, err
	}
	if profile != (fleet.UserProfile{}) {
		u.Profile = profile
		if u, err = x.auth.UpdateUser(ctx, u); err != nil {
			return nil, err
		}
	}
	return adminUserBody{Success: true, Value: adminUserOf(u)}, nil
}

// adminUpdateUser changes the title, time zone and profile fields the
// call names; the others stay.
func (x *API) adminUpdateUser(ctx context.Context, c *call, id int64) (any, error) {
	u, err := x.adminUserExists(ctx, id)
	if err != nil {
		return nil, err
	}
	if title, ok, err := c.p.str("title"); err != nil {
		return nil, err
	} else if ok {
		if err := checkTitle("title", title, maxTitleLen); err != nil {
			return nil, err
		}
		u.Title = title
	}
	if tz, ok, err := c.p.str("time_zone"); err != nil {
		return nil, err
	} else if ok {
		if err := checkTimeZone(tz); err != nil {
			return nil, err
		}
		u.TimeZone = tz
	}
	if err := readProfile(c, &u.Profile); err != nil {
		return nil, err
	}
	if u, err = x.auth.UpdateUser(ctx, u); err != nil {
		return nil, err
	}
	return adminUserBody{Success: true, Value: adminUserOf(u)}, nil
}

// checkNewPassword applies the operators' minimum length to a new
// password; auth checks the rest.
func checkNewPassword(p string) error {
	if utf8.RuneCountInString(p) < auth.MinPasswordLen {
		return apierr.InvalidParameters.With(fmt.Sprintf("password is shorter than %d characters", auth.MinPasswordLen))
	}
	return nil
}

// checkTimeZone accepts IANA zone names only.
func checkTimeZone(tz string) error {
	if tz == "Local" || strings.ContainsAny(tz, "\\\x00") {
		return apierr.InvalidParameters.With("time_zone is not an IANA zone name")
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return apierr.InvalidParameters.With("time_zone is not an IANA zone name")
	}
	return nil
}

// adminUserExists turns a missing user into 204.
func (x *API) adminUserExists(ctx context.Context, id int64) (*fleet.User, error) {
	u, err := x.auth.User(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, apierr.NotFound) || errors.Is(err, apierr.EntityNotFound) {
			return nil, apierr.EntityNotFound.With("user")
		}
		return nil, err
	}
	return u, nil
}

func (x *API) adminSetPassword(ctx context.Context, c *call, id int64) (any, error) {
	password, err := c.p.requiredStr("password")
	if err != nil {
		return nil, err
	}
	if err := checkNewPassword(password); err != nil {
		return nil, err
	}
	if _, err := x.adminUserExists(ctx, id); err != nil {
		return nil, err
	}
	if err := x.auth.SetPassword(ctx, id, password); err != nil {
		return nil, err
	}
	return success, nil
}

func (x *API) adminEndSessions(ctx context.Context, _ *call, id int64) (any, error) {
	if _, err := x.adminUserExists(ctx, id); err != nil {
		return nil, err
	}
	if err := x.auth.EndSessions(ctx, id); err != nil {
		return nil, err
	}
	return success, nil
}

func (x *API) adminListTrackers(_ context.Context, _ *call, _ int64) (any, error) {
	ts := x.reg.Trackers(0)
	live := make([]*fleet.Tracker, 0, len(ts))
	for _, t := range ts {
		if !t.Deleted {
			live = append(live, t)
		}
	}
	slices.SortFunc(live, func(a, b *fleet.Tracker) int { return compareInt64(a.ID, b.ID) })
	out := trackerListBody{Success: true, List: make([]trackerJSON, 0, len(live))}
	for _, t := range live {
		out.List = append(out.List, adminTrackerOf(t))
	}
	return out, nil
}

func adminTrackerOf(t *fleet.Tracker) trackerJSON {
	j := trackerOf(t, time.UTC)
	j.UserID = t.UserID
	return j
}

func (x *API) adminCreateTracker(ctx context.Context, c *call, _ int64) (any, error) {
	userID, err := c.p.requiredID("user_id")
	if err != nil {
		return nil, err
	}
	label, err := c.p.requiredStr("label")
	if err != nil {
		return nil, err
	}
	if err := checkTitle("label", label, maxLabelLen); err != nil {
		return nil, err
	}
	device, err := c.p.requiredStr("device_id")
	if err != nil {
		return nil, err
	}
	device = strings.TrimSpace(device)
	if err := checkTitle("device_id", device, maxDeviceIDLen); err != nil {
		return nil, err
	}
	model, _, err := c.p.str("model")
	if err != nil {
		return nil, err
	}
	phone, _, err := c.p.str("phone")
	if err != nil {
		return nil, err
	}
	if _, err := x.adminUserExists(ctx, userID); err != nil {
		return nil, err
	}
	t, err := x.reg.CreateTracker(ctx, &fleet.Tracker{
		Label:    label,
		UserID:   userID,
		DeviceID: device,
		Model:    strings.TrimSpace(model),
		Phone:    strings.TrimSpace(phone),
	})
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, apierr.DeviceIDInUse
		}
		return nil, err
	}
	return trackerBody{Success: true, Value: adminTrackerOf(t)}, nil
}

// adminTracker returns the live tracker id or 204.
func (x *API) adminTracker(id int64) (*fleet.Tracker, error) {
	t, ok := x.reg.Tracker(id)
	if !ok || t.Deleted {
		return nil, apierr.EntityNotFound.With("tracker")
	}
	return t, nil
}

func (x *API) adminBlock(blocked bool) func(ctx context.Context, c *call, id int64) (any, error) {
	return func(ctx context.Context, _ *call, id int64) (any, error) {
		if _, err := x.adminTracker(id); err != nil {
			return nil, err
		}
		if err := x.reg.SetBlocked(ctx, id, blocked); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, apierr.EntityNotFound.With("tracker")
			}
			return nil, err
		}
		return success, nil
	}
}

// adminDeleteTracker corrupts a tracker; a second delete is 252, as the
// documentation answers tracker/corrupt.
func (x *API) adminDeleteTracker(ctx context.Context, _ *call, id int64) (any, error) {
	if _, err := x.adminTracker(id); err != nil {
		if x.opts.Store != nil {
			if t, serr := x.opts.Store.Tracker(ctx, id); serr == nil && t.Deleted {
				return nil, apierr.DeviceCorrupted
			}
		}
		return nil, err
	}
	if err := x.reg.Delete(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, apierr.EntityNotFound.With("tracker")
		}
		return nil, err
	}
	return success, nil
}

// deviceSecret is the answer of /admin/trackers/{id}/secret: the secret is
// shown this once; the server keeps only its digest.
type deviceSecret struct {
	TrackerID int64  `json:"tracker_id"`
	DeviceID  string `json:"device_id"`
	Secret    string `json:"secret"`
}

type deviceSecretBody struct {
	Success bool         `json:"success"`
	Value   deviceSecret `json:"value"`
}

// adminDeviceSecret sets the tracker's MQTT device secret: the secret
// parameter, or a generated one when it is absent or empty.
func (x *API) adminDeviceSecret(ctx context.Context, c *call, id int64) (any, error) {
	t, err := x.adminTracker(id)
	if err != nil {
		return nil, err
	}
	secret, _, err := c.p.str("secret")
	if err != nil {
		return nil, err
	}
	secret, err = x.auth.SetDeviceSecret(ctx, id, secret)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, apierr.EntityNotFound.With("tracker")
		}
		return nil, err
	}
	return deviceSecretBody{Success: true, Value: deviceSecret{TrackerID: id, DeviceID: t.DeviceID, Secret: secret}}, nil
}

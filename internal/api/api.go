// Package api serves the REST side of the published tracker API: actions
// called as /{resource}/{action} (and under /v2), with parameters from a
// JSON body, a form body or the query string, answered with the documented
// {"success": ...} envelope. It also serves the operators' admin surface
// under /admin.
package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/auth"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/metrics"
	"github.com/fleetwire/fleetwire/internal/state"
)

// DefaultMaxBody is the request body limit when Options.MaxBody is zero.
const DefaultMaxBody = 1 << 20

// DefaultDealerID is the installation's dealer id when Options.DealerID
// is zero.
const DefaultDealerID = 1

// Options tune the API. Zero values take the defaults noted on each field.
type Options struct {
	// AdminKey guards /admin; empty disables the admin surface (every
	// admin call is answered with error 11).
	AdminKey string
	// MaxBody is the largest accepted request body in bytes (default
	// 1 MiB); a larger body is answered with error 9.
	MaxBody int64
	// Logger receives server-side failures (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock for user_time and dates (default time.Now).
	Now func() time.Time
	// Commander carries output switches and commands to devices; nil
	// answers those actions with 214.
	Commander Commander
	// DealerID is the installation's dealer id (default 1): user/auth
	// with another dealer_id answers 102, and user/get_info names it as
	// paas_id.
	DealerID int64
	// Store finds trackers the live registry no longer holds, to tell a
	// corrupted (deleted) tracker from one that never existed (201 or 252
	// rather than 217 or 204); nil takes every such tracker as never
	// existing. A store.Store provides it.
	Store TrackerStore
	// History reads trackers' positions for track/list and track/read;
	// nil answers them with 214.
	History TrackHistory
	// Links carries commands to trackers connected over their own
	// protocols (Teltonika, GT06); those trackers' commands go there
	// instead of to the Commander.
	Links Links
}

// TrackerStore looks trackers up by id, deleted ones included.
type TrackerStore interface {
	Tracker(ctx context.Context, id int64) (*fleet.Tracker, error)
}

// authService is what the API needs from sign-in and credentials;
// *auth.Service provides it.
type authService interface {
	Login(ctx context.Context, login, password string) (*fleet.Session, error)
	Resolve(ctx context.Context, hash string) (*fleet.User, *fleet.Session, error)
	Logout(ctx context.Context, hash string) error
	CreateUser(ctx context.Context, login, password, title, timeZone string) (*fleet.User, error)
	Users(ctx context.Context) ([]*fleet.User, error)
	User(ctx context.Context, id int64) (*fleet.User, error)
	SetPassword(ctx context.Context, userID int64, password string) error
	UpdateUser(ctx context.Context, u *fleet.User) (*fleet.User, error)
	EndSessions(ctx context.Context, userID int64) error
	CreateAPIKey(ctx context.Context, userID int64, title string) (*fleet.Session, error)
	APIKeys(ctx context.Context, userID int64) ([]*fleet.Session, error)
	DeleteAPIKey(ctx context.Context, userID int64, hash string) error
	Throttle() *auth.Throttle
	SetDeviceSecret(ctx context.Context, trackerID int64, secret string) (string, error)
}

// registry is what the API needs from live trackers and states;
// *state.Registry provides it.
type registry interface {
	Tracker(id int64) (*fleet.Tracker, bool)
	Trackers(userID int64) []*fleet.Tracker
	State(id int64) (*fleet.State, bool)
	CreateTracker(ctx context.Context, t *fleet.Tracker) (*fleet.Tracker, error)
	SetBlocked(ctx context.Context, id int64, blocked bool) error
	Delete(ctx context.Context, id int64) error
	// Touch makes the states of the user's trackers current for a read
	// (on a cluster node that does not follow the user yet).
	Touch(ctx context.Context, userID int64) error
}

var (
	_ authService = (*auth.Service)(nil)
	_ registry    = (*state.Registry)(nil)
)

// API is the REST and admin HTTP surface. It is safe for concurrent use.
type API struct {
	auth     authService
	reg      registry
	opts     Options
	log      *slog.Logger
	adminKey [32]byte // SHA-256 of Options.AdminKey, compared in constant time
	actions  map[string]action
	handler  http.Handler
}

// call is one action invocation.
type call struct {
	r    *http.Request
	p    *params
	now  time.Time
	user *fleet.User    // nil for actions without a hash
	sess *fleet.Session // nil for actions without a hash
	loc  *time.Location // the user's timezone, UTC without a user
	// dates is how the answer writes dates: in loc, as ISO 8601 when the
	// caller asked with iso_datetime or NVX-ISO-DateTime.
	dates fleet.Dates
}

// action is one /resource/action handler. It returns the success body (a
// struct whose first field is Success) or an error.
type action struct {
	// public actions need no hash.
	public bool
	fn     func(ctx context.Context, c *call) (any, error)
}

var (
	requestsTotal = metrics.Default.NewCounter("fleetwire_api_requests_total",
		"REST and admin API requests served.", "")
	requestErrors = metrics.Default.NewCounter("fleetwire_api_errors_total",
		"REST and admin API requests answered with an error.", "")
	requestSeconds = metrics.Default.NewHistogram("fleetwire_api_request_seconds",
		"REST and admin API request latency.", "", metrics.LatencyBuckets)
)

// New returns the API over the auth service a and the tracker registry reg.
func New(a *auth.Service, reg *state.Registry, opts Options) *API {
	return newAPI(a, reg, opts)
}

func newAPI(a authService, reg registry, opts Options) *API {
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DealerID <= 0 {
		opts.DealerID = DefaultDealerID
	}
	x := &API{auth: a, reg: reg, opts: opts, log: opts.Logger}
	if opts.AdminKey != "" {
		x.adminKey = sha256.Sum256([]byte(opts.AdminKey))
	}
	x.actions = map[string]action{
		"user/auth":      {public: true, fn: x.userAuth},
		"user/logout":    {fn: x.userLogout},
		"user/get_info":  {fn: x.userGetInfo},
		"api/key/create": {fn: x.apiKeyCreate},
		"api/key/list":   {fn: x.apiKeyList},
		"api/key/delete": {fn: x.apiKeyDelete},
		// api_key/... are aliases of the documented api/key/... paths.
		"api_key/create":     {fn: x.apiKeyCreate},
		"api_key/list":       {fn: x.apiKeyList},
		"api_key/delete":     {fn: x.apiKeyDelete},
		"tracker/list":       {fn: x.trackerList},
		"tracker/read":       {fn: x.trackerRead},
		"tracker/get_state":  {fn: x.trackerGetState},
		"tracker/get_states": {fn: x.trackerGetStates},

		"tracker/readings/list":       {fn: x.trackerReadingsList},
		"tracker/readings/batch_list": {fn: x.trackerReadingsBatchList},
		"tracker/output/set":          {fn: x.trackerOutputSet},
		"tracker/output/set_all":      {fn: x.trackerOutputSetAll},
		"tracker/raw_command/send":    {fn: x.trackerRawCommandSend},
		"tracker/send_command":        {fn: x.trackerSendCommand},
		"track/list":                  {fn: x.trackList},
		"track/read":                  {fn: x.trackRead},
	}
	x.handler = http.HandlerFunc(x.serve)
	return x
}

// Handler returns the HTTP handler to mount at "/": it serves every
// action at /{resource}/{action}, /v2/{resource}/{action} (a trailing
// slash is allowed) and the admin surface under /admin/.
func (x *API) Handler() http.Handler { return x.handler }

func (x *API) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	requestsTotal.Inc()
	defer func() {
		requestSeconds.Observe(time.Since(start).Seconds())
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			x.log.Error("api handler panic", "path", r.URL.Path, "panic", v)
			x.writeError(w, r, apierr.Unexpected)
		}
	}()
	path := r.URL.Path
	if path == "/admin" || strings.HasPrefix(path, "/admin/") {
		x.serveAdmin(w, r)
		return
	}
	name := actionName(path)
	act, ok := x.actions[name]
	if !ok {
		x.writeError(w, r, apierr.WrongHandler)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		x.writeError(w, r, apierr.WrongMethod)
		return
	}
	res, err := x.invoke(w, r, act)
	if err != nil {
		x.writeError(w, r, err)
		return
	}
	x.writeJSON(w, http.StatusOK, res)
}

// actionName turns a request path into an action name: the /v2 prefix and
// surrounding slashes are dropped ("/v2/tracker/list/" → "tracker/list").
func actionName(path string) string {
	if path == "/v2" || strings.HasPrefix(path, "/v2/") {
		path = path[len("/v2"):]
	}
	return strings.Trim(path, "/")
}

func (x *API) invoke(w http.ResponseWriter, r *http.Request, act action) (any, error) {
	p, err := parseParams(w, r, x.opts.MaxBody)
	if err != nil {
		return nil, err
	}
	iso, err := isoDates(r, p)
	if err != nil {
		return nil, err
	}
	c := &call{r: r, p: p, now: x.opts.Now(), loc: time.UTC}
	ctx := r.Context()
	if !act.public {
		hash, err := hashFrom(r, p)
		if err != nil {
			return nil, err
		}
		if hash == "" {
			return nil, apierr.WrongHash
		}
		u, s, err := x.auth.Resolve(ctx, hash)
		if err != nil {
			return nil, err
		}
		c.user, c.sess, c.loc = u, s, u.Location()
		if err := x.reg.Touch(ctx, u.ID); err != nil {
			x.log.Warn("api: states unavailable", "user", u.ID, "err", err)
			return nil, apierr.Unexpected.With("the fleet's state is unavailable, try again")
		}
	}
	c.dates = fleet.Dates{Loc: c.loc, ISO: iso}
	return act.fn(ctx, c)
}

// isoHeader asks for ISO 8601 dates, as the iso_datetime parameter does.
const isoHeader = "NVX-ISO-DateTime"

// isoDates reports whether the caller asks for ISO 8601 dates: the
// iso_datetime parameter, else the NVX-ISO-DateTime header; both take
// true/false/1/0, anything else is error 5.
func isoDates(r *http.Request, p *params) (bool, error) {
	if iso, ok, err := p.bool("iso_datetime"); err != nil || ok {
		return iso, err
	}
	switch h := strings.ToLower(strings.TrimSpace(r.Header.Get(isoHeader))); h {
	case "":
		return false, nil
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, apierr.WrongRequestFormat.With(isoHeader + " header")
}

// checkAdmin reports whether r carries the admin key, as
// "Authorization: Bearer <key>" or "X-Admin-Key: <key>".
func (x *API) checkAdmin(r *http.Request) bool {
	if x.opts.AdminKey == "" {
		return false
	}
	key := r.Header.Get("X-Admin-Key")
	if key == "" {
		scheme, rest, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return false
		}
		key = strings.TrimSpace(rest)
	}
	sum := sha256.Sum256([]byte(key))
	return subtle.ConstantTimeCompare(sum[:], x.adminKey[:]) == 1
}

// errorBody is the documented failure envelope; errors names offending
// parameters where the error carries them.
type errorBody struct {
	Success bool                `json:"success"`
	Status  errorStatus         `json:"status"`
	Errors  []apierr.ParamError `json:"errors,omitempty"`
}

type errorStatus struct {
	Code        int    `json:"code"`
	Description string `json:"description"`
}

// apiError maps err to the error a client sees. Store and unknown failures
// are logged here and never shown.
func (x *API) apiError(r *http.Request, err error) *apierr.Error {
	var e *apierr.Error
	if errors.As(err, &e) {
		if e.HTTPStatus >= 500 {
			x.log.Error("api call failed", "path", r.URL.Path, "err", err)
		}
		return e
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return apierr.Unexpected
	}
	x.log.Error("api call failed", "path", r.URL.Path, "err", err)
	return apierr.Unexpected
}

func (x *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	requestErrors.Inc()
	e := x.apiError(r, err)
	if s, ok := apierr.RetryAfterSeconds(err); ok {
		w.Header().Set("Retry-After", strconv.Itoa(s))
	}
	x.writeJSON(w, e.HTTPStatus, errorBody{Status: errorStatus{Code: e.Code, Description: e.Description}, Errors: e.Params})
}

func (x *API) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshal(v)
	if err != nil {
		x.log.Error("encode api answer", "err", err)
		status = apierr.Unexpected.HTTPStatus
		b, _ = marshal(errorBody{Status: errorStatus{Code: apierr.Unexpected.Code, Description: apierr.Unexpected.Description}})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// marshal encodes v as JSON without HTML escaping, newline-terminated.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode json: %w", err)
	}
	return buf.Bytes(), nil
}

// okBody is the bare success answer.
type okBody struct {
	Success bool `json:"success"`
}

var success = okBody{Success: true}

// dateTime formats t as d says; the zero time is null.
func dateTime(t time.Time, d fleet.Dates) *string {
	if t.IsZero() {
		return nil
	}
	s := d.Format(t)
	return &s
}

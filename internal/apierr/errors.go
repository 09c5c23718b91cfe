// Package apierr is the one table of the API's error codes. Every layer that
// reports an error to a client (REST actions, WebSocket actions, the topic
// bridge) uses these values, so a code means the same thing everywhere.
package apierr

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Error is an API error: a documented code, its description and the HTTP
// status the REST API answers with.
type Error struct {
	Code        int
	Description string
	HTTPStatus  int
	// Params, when set, name the offending parameters; the REST API
	// answers them as the "errors" list next to "status".
	Params []ParamError
}

// ParamError is one entry of an error answer's "errors" list, as the
// documentation shows it for tracker/raw_command/send:
// {"parameter": "command", "error": "Non-hex string"}.
type ParamError struct {
	// Parameter is the request parameter's name.
	Parameter string `json:"parameter"`
	// Error says what is wrong with it.
	Error string `json:"error"`
}

func (e *Error) Error() string { return fmt.Sprintf("api error %d: %s", e.Code, e.Description) }

// With returns a copy of e whose description has detail appended, for errors
// that name the offending parameter ("Invalid parameters: tracker_id").
func (e *Error) With(detail string) *Error {
	c := *e
	if detail != "" {
		c.Description = e.Description + ": " + detail
	}
	return &c
}

// WithParam returns a copy of e naming parameter as the offending one,
// with what is wrong with it; the description stays e's own.
func (e *Error) WithParam(parameter, problem string) *Error {
	c := *e
	c.Params = append(append([]ParamError(nil), e.Params...), ParamError{Parameter: parameter, Error: problem})
	return &c
}

// Is makes errors.Is match on the code, so a detailed copy still matches.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

func def(code int, desc string, status int) *Error {
	if status == 0 {
		status = http.StatusBadRequest
	}
	return &Error{Code: code, Description: desc, HTTPStatus: status}
}

// The error codes fleetwire uses, with the HTTP status the API documents.
var (
	// DatabaseError means the store failed.
	DatabaseError = def(1, "Database error", 500)
	// WrongHash means the hash is not 32 hex characters.
	WrongHash = def(3, "Wrong hash", 0)
	// SessionNotFound means no user, session or API key matches the hash, or the session ended.
	SessionNotFound = def(4, "User or API key not found or session ended", 0)
	// WrongRequestFormat means the request could not be parsed (not JSON, wrong types).
	WrongRequestFormat = def(5, "Wrong request format", 0)
	// Unexpected is an internal failure.
	Unexpected = def(6, "Unexpected error", 500)
	// InvalidParameters means a parameter is missing or out of range.
	InvalidParameters = def(7, "Invalid parameters", 0)
	// TooLarge means the request or frame exceeds the size limit.
	TooLarge = def(9, "Too large request", 412)
	// AccessDenied means the credentials do not allow the action.
	AccessDenied = def(11, "Access denied", 403)
	// TooManyRequests means a rate limit was exceeded.
	TooManyRequests = def(15, "Too many requests (rate limit exceeded)", 429)
	// WrongLogin means user/auth got a wrong login or password.
	WrongLogin = def(102, "Wrong login or password", 0)
	// WrongHandler means the action path is unknown.
	WrongHandler = def(111, "Wrong handler", 0)
	// WrongMethod means the HTTP method is not allowed for the action.
	WrongMethod = def(112, "Wrong method", 0)
	// NotFound means the entity is not in the database or not the user's.
	NotFound = def(201, "Not found in database", 0)
	// EntityNotFound means an entity addressed by id does not exist.
	EntityNotFound = def(204, "Entity not found", 404)
	// LoginInUse means a user with that login exists.
	LoginInUse = def(206, "Login already in use", 0)
	// DeviceBlocked means the tracker is blocked.
	DeviceBlocked = def(208, "Device blocked", 403)
	// TimeSpanTooBig means the period between from and to is longer than
	// the action allows.
	TimeSpanTooBig = def(211, "Requested time span is too big", 0)
	// LimitTooBig means a requested limit, or the data a period holds, is
	// more than the action returns.
	LimitTooBig = def(212, "Requested limit is too big", 0)
	// DeviceOffline means a command cannot reach the device now.
	DeviceOffline = def(213, "Cannot perform action: the device is offline", 0)
	// NotSupported means the device does not support the operation or parameters.
	NotSupported = def(214, "Requested operation or parameters are not supported by the device", 0)
	// NonexistentEntities means a list names trackers that do not exist.
	NonexistentEntities = def(217, "List contains nonexistent entities", 0)
	// DeviceIDInUse means another tracker already uses the device id.
	DeviceIDInUse = def(224, "Device ID already in use", 0)
	// DeviceCorrupted means the tracker was already deleted.
	DeviceCorrupted = def(252, "Device already corrupted", 0)
	// OverQuota means a per-account limit (such as the number of API keys) is reached.
	OverQuota = def(268, "Over quota", 402)
	// SessionTypeForbidden means the action needs another kind of credential
	// (user/logout with an API key).
	SessionTypeForbidden = def(276, "Action is forbidden for received session type", 403)
)

// All lists every code above, for documentation and tests.
var All = []*Error{
	DatabaseError, WrongHash, SessionNotFound, WrongRequestFormat, Unexpected,
	InvalidParameters, TooLarge, AccessDenied, TooManyRequests, WrongLogin,
	WrongHandler, WrongMethod, NotFound, EntityNotFound, LoginInUse,
	DeviceBlocked, TimeSpanTooBig, LimitTooBig, DeviceOffline, NotSupported, NonexistentEntities,
	DeviceIDInUse, DeviceCorrupted, OverQuota, SessionTypeForbidden,
}

// From returns err as an API error; anything that is not one becomes
// Unexpected, so internals never leak to clients.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Unexpected
}

// Throttled is TooManyRequests with the time after which the client may
// try again; the REST API sends it as Retry-After. errors.Is and From
// see it as TooManyRequests.
type Throttled struct {
	// After is how long the client should wait, at least one second.
	After time.Duration
}

func (t *Throttled) Error() string {
	return fmt.Sprintf("%v: retry after %v", TooManyRequests, t.After)
}

// Unwrap returns TooManyRequests.
func (t *Throttled) Unwrap() error { return TooManyRequests }

// RetryAfterSeconds returns the whole seconds (rounded up, at least 1) a
// client refused with err should wait, and false when err is not
// Throttled.
func RetryAfterSeconds(err error) (int, bool) {
	var t *Throttled
	if !errors.As(err, &t) {
		return 0, false
	}
	s := int((t.After + time.Second - 1) / time.Second)
	return max(s, 1), true
}

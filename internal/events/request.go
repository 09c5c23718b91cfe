package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/readings"
)

// Subscription types a request can name.
const (
	TypeState         = "state"
	TypeStateBatch    = "state_batch"
	TypeReadingsBatch = "readings_batch"
	TypeIoTMonitor    = "iot_monitor"
)

// Actions a client can send.
const (
	ActionSubscribe   = "subscribe"
	ActionUnsubscribe = "unsubscribe"
)

// Action is one parsed client message.
type Action struct {
	// Name is "subscribe" or "unsubscribe".
	Name string
	// Hash is the session hash or API key the action is made with.
	Hash string
	// Requests are the subscriptions asked for, in order.
	Requests []Request
	// Raw is the request part of the message, echoed in error data.
	Raw json.RawMessage
}

// Target selects trackers: all of the user's, or the listed ones.
type Target struct {
	All        bool
	TrackerIDs []int64
}

// Request is one subscription request.
type Request struct {
	Type string
	// Trackers is the tracker list of a state request.
	Trackers []int64
	// Target is the tracker selection of batch requests.
	Target Target
	// RateLimit is the batching period; 0 when the client gave none.
	RateLimit time.Duration
	// Compact selects the compact state format.
	Compact bool
	// SensorType filters readings_batch; empty for every sensor.
	SensorType string
	// IncludeComponents is readings_batch's include_components (default true).
	IncludeComponents bool
}

// ActionName is the "action" field of responses and errors for a client
// action name.
func ActionName(name string) string { return "subscription/" + name }

// Tracker lists are read as pointers so that a null item is seen.
type wireTarget struct {
	Type       string   `json:"type"`
	TrackerIDs []*int64 `json:"tracker_ids"`
}

type wireRequest struct {
	Type              string          `json:"type"`
	Trackers          []*int64        `json:"trackers"`
	Target            *wireTarget     `json:"target"`
	RateLimit         json.RawMessage `json:"rate_limit"`
	Format            *string         `json:"format"`
	SensorType        *string         `json:"sensor_type"`
	IncludeComponents *bool           `json:"include_components"`
}

type wireAction struct {
	Action   *string         `json:"action"`
	Hash     *string         `json:"hash"`
	Requests json.RawMessage `json:"requests"`
	Trackers json.RawMessage `json:"trackers"`
	Events   json.RawMessage `json:"events"`
}

// ParseError is a client message that could not be taken as an action.
// Action is the action's response name when it was known, else "".
type ParseError struct {
	Action string
	Err    *apierr.Error
	Data   json.RawMessage
}

func (e *ParseError) Error() string { return e.Err.Error() }

// ParseAction reads one client message. It checks the shape only: the
// hash is verified by the caller. Errors are *ParseError with the API
// error to answer: 5 for a message that is not a JSON object with a known
// action, 7 for a missing or invalid field.
func ParseAction(msg []byte) (*Action, error) {
	var w wireAction
	dec := json.NewDecoder(bytes.NewReader(msg))
	if err := dec.Decode(&w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, &ParseError{Err: apierr.InvalidParameters.With("field " + te.Field + " has the wrong type")}
		}
		return nil, &ParseError{Err: apierr.WrongRequestFormat.With("message is not a JSON object")}
	}
	if dec.More() {
		return nil, &ParseError{Err: apierr.WrongRequestFormat.With("trailing data after the JSON object")}
	}
	if w.Action == nil {
		return nil, &ParseError{Err: apierr.WrongRequestFormat.With("no action")}
	}
	name := *w.Action
	if name != ActionSubscribe && name != ActionUnsubscribe {
		return nil, &ParseError{Err: apierr.WrongRequestFormat.With(fmt.Sprintf("unknown action %q", truncate(name, 64)))}
	}
	a := &Action{Name: name}
	fail := func(e *apierr.Error, data json.RawMessage) error {
		return &ParseError{Action: ActionName(name), Err: e, Data: data}
	}
	if w.Hash == nil || *w.Hash == "" {
		return nil, fail(apierr.WrongHash.With("hash is required"), nil)
	}
	a.Hash = *w.Hash

	switch {
	case len(w.Requests) > 0 && !isNull(w.Requests):
		a.Raw = w.Requests
		var reqs []wireRequest
		if err := json.Unmarshal(w.Requests, &reqs); err != nil {
			return nil, fail(apierr.InvalidParameters.With("requests must be an array of request objects"), a.Raw)
		}
		if len(reqs) == 0 {
			return nil, fail(apierr.InvalidParameters.With("requests is empty"), a.Raw)
		}
		for i := range reqs {
			r, err := parseRequest(&reqs[i])
			if err != nil {
				return nil, fail(apierr.InvalidParameters.With(fmt.Sprintf("requests[%d]: %v", i, err)), a.Raw)
			}
			a.Requests = append(a.Requests, r)
		}
	case len(w.Trackers) > 0 || len(w.Events) > 0:
		// The deprecated form: {"trackers": [...], "events": ["state"]}.
		a.Raw = deprecatedData(w.Trackers, w.Events)
		var list []*int64
		var evs []string
		if err := json.Unmarshal(orNull(w.Trackers), &list); err != nil || list == nil {
			return nil, fail(apierr.InvalidParameters.With("trackers must be an array of tracker ids"), a.Raw)
		}
		ids, err := trackerIDs("trackers", list)
		if err != nil {
			return nil, fail(apierr.InvalidParameters.With(err.Error()), a.Raw)
		}
		if err := json.Unmarshal(orNull(w.Events), &evs); err != nil || len(evs) == 0 {
			return nil, fail(apierr.InvalidParameters.With("events must be a non-empty array"), a.Raw)
		}
		for _, e := range evs {
			if e != TypeState {
				return nil, fail(apierr.InvalidParameters.With(fmt.Sprintf("event %q cannot be used with trackers; use requests", truncate(e, 32))), a.Raw)
			}
		}
		a.Requests = []Request{{Type: TypeState, Trackers: ids}}
	default:
		return nil, fail(apierr.InvalidParameters.With("requests is required"), nil)
	}
	return a, nil
}

func parseRequest(w *wireRequest) (Request, error) {
	r := Request{Type: w.Type, IncludeComponents: true}
	if w.Format != nil {
		switch *w.Format {
		case "full", "":
		case "compact":
			r.Compact = true
		default:
			return r, fmt.Errorf("format must be full or compact")
		}
	}
	parseTarget := func(max int) error {
		if w.Target == nil {
			return errors.New("target is required")
		}
		switch w.Target.Type {
		case "all":
			r.Target.All = true
		case "selected":
			if w.Target.TrackerIDs == nil {
				return errors.New("target.tracker_ids is required for selected")
			}
			ids, err := trackerIDs("target.tracker_ids", w.Target.TrackerIDs)
			if err != nil {
				return err
			}
			r.Target.TrackerIDs = ids
			if max > 0 && len(r.Target.TrackerIDs) > max {
				return fmt.Errorf("at most %d trackers", max)
			}
		default:
			return errors.New(`target.type must be "all" or "selected"`)
		}
		return nil
	}
	parseRate := func() error {
		if len(w.RateLimit) == 0 || isNull(w.RateLimit) {
			return nil
		}
		d, err := rateLimit(w.RateLimit)
		if err != nil {
			return err
		}
		r.RateLimit = d
		return nil
	}
	switch w.Type {
	case TypeState:
		if w.Trackers == nil {
			return r, errors.New("trackers is required")
		}
		ids, err := trackerIDs("trackers", w.Trackers)
		if err != nil {
			return r, err
		}
		r.Trackers = ids
	case TypeStateBatch:
		if err := parseTarget(0); err != nil {
			return r, err
		}
		if err := parseRate(); err != nil {
			return r, err
		}
	case TypeReadingsBatch:
		if err := parseTarget(0); err != nil {
			return r, err
		}
		if err := parseRate(); err != nil {
			return r, err
		}
		if w.SensorType != nil && *w.SensorType != "" {
			if !readings.ValidSensorType(*w.SensorType) {
				return r, fmt.Errorf("sensor_type %q is not a metering or virtual sensor type", truncate(*w.SensorType, 32))
			}
			r.SensorType = *w.SensorType
		}
		if w.IncludeComponents != nil {
			r.IncludeComponents = *w.IncludeComponents
		}
	case TypeIoTMonitor:
		if err := parseTarget(MaxIoTMonitorTrackers); err != nil {
			return r, err
		}
		if r.Target.All {
			return r, fmt.Errorf("iot_monitor needs selected trackers (at most %d)", MaxIoTMonitorTrackers)
		}
		if err := parseRate(); err != nil {
			return r, err
		}
	case "":
		return r, errors.New("type is required")
	default:
		return r, fmt.Errorf("unknown type %q", truncate(w.Type, 32))
	}
	return r, nil
}

// trackerIDs takes a tracker list without null items.
func trackerIDs(field string, list []*int64) ([]int64, error) {
	ids := make([]int64, len(list))
	for i, p := range list {
		if p == nil {
			return nil, fmt.Errorf("%s[%d] is null", field, i)
		}
		ids[i] = *p
	}
	return ids, nil
}

// MaxIoTMonitorTrackers is the most trackers one iot_monitor subscription
// may select.
const MaxIoTMonitorTrackers = 10

// MaxRateLimit is the longest rate_limit accepted.
const MaxRateLimit = 24 * time.Hour

// ParseRateLimit reads a rate_limit timespan: a number with a unit
// ("500ms", "5s", "1m", "1h30m"), or a bare number of seconds.
func ParseRateLimit(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("rate_limit is empty")
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		var secs float64
		if _, serr := fmt.Sscanf(s, "%g", &secs); serr != nil || fmt.Sprint(secs) != s {
			return 0, fmt.Errorf("rate_limit %q is not a timespan like \"5s\" or \"500ms\"", truncate(s, 32))
		}
		return seconds(secs, s)
	}
	if d < 0 || d > MaxRateLimit {
		return 0, fmt.Errorf("rate_limit %q is out of range", truncate(s, 32))
	}
	return d, nil
}

// rateLimit reads the rate_limit member: a timespan string, or a JSON
// number of seconds (5, 0.5).
func rateLimit(raw json.RawMessage) (time.Duration, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return ParseRateLimit(s)
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err != nil {
		return 0, fmt.Errorf("rate_limit must be a timespan like \"5s\" or a number of seconds, not %s", truncate(string(raw), 32))
	}
	return seconds(secs, string(raw))
}

// seconds turns a number of seconds into a rate limit within range.
func seconds(secs float64, text string) (time.Duration, error) {
	if !(secs >= 0 && secs <= MaxRateLimit.Seconds()) { // NaN too
		return 0, fmt.Errorf("rate_limit %s is out of range", truncate(text, 32))
	}
	return time.Duration(secs * float64(time.Second)), nil
}

func isNull(b json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(b), []byte("null")) }

func orNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}

func deprecatedData(trackers, events json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	b.WriteString(`{"events":`)
	b.Write(orNull(events))
	b.WriteString(`,"trackers":`)
	b.Write(orNull(trackers))
	b.WriteByte('}')
	return b.Bytes()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

package api

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/fleet"
)

// Limits of the tracker actions, as documented.
const (
	maxStatesTrackers = 2000
	maxLabelFilters   = 1024
	maxLabelFilterLen = 60
)

// trackerJSON is the documented tracker object. UserID is set only on the
// admin surface.
type trackerJSON struct {
	ID          int64        `json:"id"`
	Label       string       `json:"label"`
	Clone       bool         `json:"clone"`
	GroupID     int64        `json:"group_id"`
	Source      sourceJSON   `json:"source"`
	TagBindings []tagBinding `json:"tag_bindings"`
	UserID      int64        `json:"user_id,omitempty"`
}

type sourceJSON struct {
	ID              int64   `json:"id"`
	DeviceID        string  `json:"device_id"`
	Model           string  `json:"model"`
	Blocked         bool    `json:"blocked"`
	TariffID        int64   `json:"tariff_id"`
	StatusListingID *int64  `json:"status_listing_id"`
	CreationDate    *string `json:"creation_date"`
	TariffEndDate   *string `json:"tariff_end_date"`
	Phone           string  `json:"phone"`
}

type tagBinding struct {
	TagID   int64 `json:"tag_id"`
	Ordinal int   `json:"ordinal"`
}

// trackerOf renders t as the documented tracker object, its creation date
// as a date in loc (the documentation shows "YYYY-MM-DD"). fleetwire has
// no groups, tags, tariffs or status listings: those fields carry their
// empty values.
func trackerOf(t *fleet.Tracker, loc *time.Location) trackerJSON {
	var created *string
	if !t.CreatedAt.IsZero() {
		d := t.CreatedAt.In(loc).Format(time.DateOnly)
		created = &d
	}
	return trackerJSON{
		ID:    t.ID,
		Label: t.Label,
		Source: sourceJSON{
			ID:           t.SourceID,
			DeviceID:     t.DeviceID,
			Model:        t.Model,
			Blocked:      t.Blocked,
			CreationDate: created,
			Phone:        t.Phone,
		},
		TagBindings: []tagBinding{},
	}
}

type trackerListBody struct {
	Success bool          `json:"success"`
	List    []trackerJSON `json:"list"`
}

type trackerBody struct {
	Success bool        `json:"success"`
	Value   trackerJSON `json:"value"`
}

// trackerList is tracker/list: the user's trackers, optionally only those
// whose label contains one of labels (compared without regard to case).
func (x *API) trackerList(_ context.Context, c *call) (any, error) {
	labels, hasLabels, err := c.p.strs("labels")
	if err != nil {
		return nil, err
	}
	if hasLabels {
		if err := checkLabelFilters(labels); err != nil {
			return nil, err
		}
		for i := range labels {
			labels[i] = strings.ToLower(labels[i])
		}
	}
	trackers := x.userTrackers(c.user.ID)
	out := trackerListBody{Success: true, List: make([]trackerJSON, 0, len(trackers))}
	for _, t := range trackers {
		if hasLabels && !labelMatches(t.Label, labels) {
			continue
		}
		out.List = append(out.List, trackerOf(t, c.loc))
	}
	return out, nil
}

func checkLabelFilters(labels []string) error {
	if len(labels) < 1 || len(labels) > maxLabelFilters {
		return apierr.InvalidParameters.With("labels must hold 1 to 1024 items")
	}
	seen := make(map[string]struct{}, len(labels))
	for _, l := range labels {
		if n := utf8.RuneCountInString(l); n < 1 || n > maxLabelFilterLen {
			return apierr.InvalidParameters.With("labels items must be 1 to 60 characters")
		}
		if _, dup := seen[l]; dup {
			return apierr.InvalidParameters.With("labels has duplicate items")
		}
		seen[l] = struct{}{}
	}
	return nil
}

func labelMatches(label string, lowerFilters []string) bool {
	l := strings.ToLower(label)
	for _, f := range lowerFilters {
		if strings.Contains(l, f) {
			return true
		}
	}
	return false
}

// userTrackers lists the live (not deleted) trackers of a user by id.
func (x *API) userTrackers(userID int64) []*fleet.Tracker {
	ts := x.reg.Trackers(userID)
	out := make([]*fleet.Tracker, 0, len(ts))
	for _, t := range ts {
		if !t.Deleted && t.UserID == userID {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *fleet.Tracker) int { return compareInt64(a.ID, b.ID) })
	return out
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ownTracker returns the user's live tracker id, or 201 when there is no
// such tracker, it is deleted or it belongs to someone else.
func (x *API) ownTracker(c *call, id int64) (*fleet.Tracker, error) {
	t, ok := x.userTracker(c, id)
	if !ok {
		return nil, apierr.NotFound
	}
	return t, nil
}

// userTracker is tracker id when it exists and belongs to the caller.
func (x *API) userTracker(c *call, id int64) (*fleet.Tracker, bool) {
	t, ok := x.reg.Tracker(id)
	if !ok || t.Deleted || t.UserID != c.user.ID {
		return nil, false
	}
	return t, true
}

// corrupted reports whether tracker id is one of the user's that was
// corrupted (deleted). Store failures count as no.
func (x *API) corrupted(ctx context.Context, userID, id int64) bool {
	if x.opts.Store == nil || id <= 0 {
		return false
	}
	t, err := x.opts.Store.Tracker(ctx, id)
	return err == nil && t.Deleted && t.UserID == userID
}

// trackerRead is tracker/read.
func (x *API) trackerRead(_ context.Context, c *call) (any, error) {
	id, err := c.p.requiredID("tracker_id")
	if err != nil {
		return nil, err
	}
	t, err := x.ownTracker(c, id)
	if err != nil {
		return nil, err
	}
	return trackerBody{Success: true, Value: trackerOf(t, c.loc)}, nil
}

type stateBody struct {
	Success  bool            `json:"success"`
	UserTime string          `json:"user_time"`
	State    json.RawMessage `json:"state"`
}

// trackerGetState is tracker/get_state: 201 for a tracker the user does
// not have, 208 for a blocked one.
func (x *API) trackerGetState(_ context.Context, c *call) (any, error) {
	id, err := c.p.requiredID("tracker_id")
	if err != nil {
		return nil, err
	}
	t, err := x.ownTracker(c, id)
	if err != nil {
		return nil, err
	}
	if t.Blocked {
		return nil, apierr.DeviceBlocked
	}
	return stateBody{
		Success:  true,
		UserTime: c.dates.Format(c.now),
		State:    fleet.AppendStateDates(nil, x.stateOf(t), c.dates, false),
	}, nil
}

// stateOf is the tracker's live state, or for a tracker that never
// reported, a state that says just that.
func (x *API) stateOf(t *fleet.Tracker) *fleet.State {
	if s, ok := x.reg.State(t.ID); ok && s != nil {
		return s
	}
	return &fleet.State{
		TrackerID:        t.ID,
		SourceID:         t.SourceID,
		ConnectionStatus: fleet.JustRegistered,
		MovementStatus:   fleet.Parked,
	}
}

type statesBody struct {
	Success  bool            `json:"success"`
	UserTime string          `json:"user_time"`
	States   json.RawMessage `json:"states"`
	Blocked  *[]int64        `json:"blocked,omitempty"`
	NotExist *[]int64        `json:"not_exist,omitempty"`
}

// trackerGetStates is tracker/get_states. Without allow_not_exist, a
// corrupted (deleted) tracker of the user is error 201 and a tracker the
// user does not have error 217; with it both are listed in not_exist.
// Blocked trackers are error 208 unless list_blocked lists them.
func (x *API) trackerGetStates(ctx context.Context, c *call) (any, error) {
	ids, ok, err := c.p.int64s("trackers")
	if err != nil {
		return nil, err
	}
	if !ok || len(ids) == 0 {
		return nil, apierr.InvalidParameters.With("trackers is required")
	}
	if len(ids) > maxStatesTrackers {
		return nil, apierr.InvalidParameters.With("trackers holds more than 2000 ids")
	}
	listBlocked, err := c.p.optBool("list_blocked", false)
	if err != nil {
		return nil, err
	}
	allowNotExist, err := c.p.optBool("allow_not_exist", false)
	if err != nil {
		return nil, err
	}
	var (
		live              []*fleet.Tracker
		blocked, notExist = []int64{}, []int64{}
		seen              = make(map[int64]struct{}, len(ids))
		corrupted         bool
	)
	for _, id := range ids {
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		t, ok := x.reg.Tracker(id)
		switch {
		case !ok || t.Deleted || t.UserID != c.user.ID:
			notExist = append(notExist, id)
			// Only an error tells corrupted from nonexistent trackers.
			corrupted = corrupted || (!allowNotExist && x.corrupted(ctx, c.user.ID, id))
		case t.Blocked:
			blocked = append(blocked, id)
		default:
			live = append(live, t)
		}
	}
	if corrupted && !allowNotExist {
		return nil, apierr.NotFound.With("a tracker of the list is corrupted")
	}
	if len(notExist) > 0 && !allowNotExist {
		return nil, apierr.NonexistentEntities
	}
	if len(blocked) > 0 && !listBlocked {
		return nil, apierr.DeviceBlocked
	}
	buf := make([]byte, 0, 64+len(live)*512)
	buf = append(buf, '{')
	for i, t := range live {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '"')
		buf = strconv.AppendInt(buf, t.ID, 10)
		buf = append(buf, '"', ':')
		buf = fleet.AppendStateDates(buf, x.stateOf(t), c.dates, false)
	}
	buf = append(buf, '}')
	out := statesBody{
		Success:  true,
		UserTime: c.dates.Format(c.now),
		States:   buf,
	}
	if listBlocked {
		out.Blocked = &blocked
	}
	if allowNotExist {
		out.NotExist = &notExist
	}
	return out, nil
}

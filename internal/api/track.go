package api

import (
	"context"
	"math"
	"time"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/history"
	"github.com/fleetwire/fleetwire/internal/store"
)

// TrackHistory reads trackers' positions for the track actions;
// *history.Recorder provides it. Without one the track actions answer
// 214.
type TrackHistory interface {
	Points(ctx context.Context, trackerID int64, from, to time.Time, limit int) ([]store.Point, error)
	// Retention is how long points are kept (0: forever).
	Retention() time.Duration
}

// Bounds of the track actions (the documentation leaves them to the
// server's configuration).
const (
	// MaxTrackSpan is the longest from-to period; longer is 211.
	MaxTrackSpan = 31 * 24 * time.Hour
	// MaxTrackPoints is the most points one call reads; a period holding
	// more is 212.
	MaxTrackPoints = 1_000_000
	// SimplifyTolerance is the default simplification, in metres.
	SimplifyTolerance = 5.0
)

// pointInfo is the documented point info object.
type pointInfo struct {
	Lat        float64 `json:"lat"`
	Lng        float64 `json:"lng"`
	Alt        int     `json:"alt"`
	Satellites int     `json:"satellites"`
	Mileage    float64 `json:"mileage"`
	GetTime    string  `json:"get_time"`
	Address    string  `json:"address"`
	Heading    int     `json:"heading"`
	Speed      int     `json:"speed"`
	Precision  *int    `json:"precision,omitempty"`
	GSMLBS     bool    `json:"gsm_lbs"`
	Parking    bool    `json:"parking"`
	Buffered   bool    `json:"buffered"`
}

type latLng struct {
	Lat float64 `json:"lat"`
	Lng float64 `json:"lng"`
}

type bounds struct {
	NW latLng `json:"nw"`
	SE latLng `json:"se"`
}

// regularTrack is the regular (and, without id, merged) track_info.
type regularTrack struct {
	ID           *int64      `json:"id,omitempty"`
	StartDate    string      `json:"start_date"`
	StartAddress string      `json:"start_address"`
	MaxSpeed     int         `json:"max_speed"`
	EndDate      string      `json:"end_date"`
	EndAddress   string      `json:"end_address"`
	Length       float64     `json:"length"`
	Points       int         `json:"points"`
	AvgSpeed     int         `json:"avg_speed"`
	EventCount   *int        `json:"event_count,omitempty"`
	Type         string      `json:"type"`
	GSMLBS       bool        `json:"gsm_lbs"`
	PointsList   []pointInfo `json:"points_list,omitempty"`
	Bounds       bounds      `json:"bounds"`
}

// singleReport is the single_report track_info.
type singleReport struct {
	ID           int64       `json:"id"`
	StartDate    string      `json:"start_date"`
	StartAddress string      `json:"start_address"`
	AvgSpeed     int         `json:"avg_speed"`
	GSMLBS       bool        `json:"gsm_lbs"`
	Type         string      `json:"type"`
	Precision    *int        `json:"precision,omitempty"`
	PointsList   []pointInfo `json:"points_list,omitempty"`
}

type trackListBody struct {
	Success       bool  `json:"success"`
	LimitExceeded bool  `json:"limit_exceeded"`
	List          []any `json:"list"`
}

type trackReadBody struct {
	Success       bool        `json:"success"`
	LimitExceeded bool        `json:"limit_exceeded"`
	List          []pointInfo `json:"list"`
}

// trackQuery is what track/list and track/read share: the caller's
// tracker, the period and the points in it.
type trackQuery struct {
	points        []store.Point
	limitExceeded bool
	gsmLBS        bool
	pointLimit    int // 0: not given
}

func (x *API) trackQuery(ctx context.Context, c *call) (*trackQuery, error) {
	if x.opts.History == nil {
		return nil, apierr.NotSupported.With("position history is off")
	}
	id, err := c.p.requiredID("tracker_id")
	if err != nil {
		return nil, err
	}
	from, err := x.dateParam(c, "from")
	if err != nil {
		return nil, err
	}
	to, err := x.dateParam(c, "to")
	if err != nil {
		return nil, err
	}
	q := &trackQuery{}
	if q.gsmLBS, err = c.p.optBool("include_gsm_lbs", true); err != nil {
		return nil, err
	}
	if n, ok, err := c.p.int64("point_limit"); err != nil {
		return nil, err
	} else if ok {
		switch {
		case n < 2:
			return nil, apierr.InvalidParameters.With("point_limit must be at least 2")
		case n > 3000:
			return nil, apierr.LimitTooBig.With("point_limit is at most 3000")
		}
		q.pointLimit = int(n)
	}
	t, err := x.ownTracker(c, id)
	if err != nil {
		return nil, err
	}
	if t.Blocked {
		return nil, apierr.DeviceBlocked
	}
	switch {
	case !to.After(from):
		return nil, apierr.InvalidParameters.With("to must be after from")
	case to.Sub(from) > MaxTrackSpan:
		return nil, apierr.TimeSpanTooBig.With("at most 31 days")
	}
	if r := x.opts.History.Retention(); r > 0 {
		if oldest := c.now.Add(-r); from.Before(oldest) {
			q.limitExceeded, from = true, oldest
		}
	}
	if !to.After(from) {
		return q, nil
	}
	pts, err := x.opts.History.Points(ctx, id, from, to, MaxTrackPoints+1)
	if err != nil {
		return nil, apierr.DatabaseError
	}
	if len(pts) > MaxTrackPoints {
		return nil, apierr.LimitTooBig.With("the period holds more than 1,000,000 points; ask for a shorter one")
	}
	if !q.gsmLBS {
		kept := pts[:0]
		for _, p := range pts {
			if !p.GSMLBS {
				kept = append(kept, p)
			}
		}
		pts = kept
	}
	q.points = pts
	return q, nil
}

// dateParam reads a required date/time in the caller's time zone.
func (x *API) dateParam(c *call, name string) (time.Time, error) {
	s, err := c.p.requiredStr(name)
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.ParseInLocation(fleet.DateTimeLayout, s, c.loc)
	if err != nil {
		return time.Time{}, apierr.InvalidParameters.With(name + ` must be "YYYY-MM-DD HH:MM:SS"`)
	}
	return t, nil
}

// trackList is track/list: the trips of a period, cut at parkings.
func (x *API) trackList(ctx context.Context, c *call) (any, error) {
	var opt struct{ filter, split, countEvents, withPoints bool }
	var err error
	for _, b := range []struct {
		name string
		def  bool
		dst  *bool
	}{{"filter", true, &opt.filter}, {"split", true, &opt.split}, {"count_events", false, &opt.countEvents}, {"with_points", false, &opt.withPoints}} {
		if *b.dst, err = c.p.optBool(b.name, b.def); err != nil {
			return nil, err
		}
	}
	// Accepted and without effect: fleetwire resolves no addresses and
	// builds no clusters.
	for _, name := range []string{"cluster_single_reports", "omit_addresses"} {
		if _, err := c.p.optBool(name, false); err != nil {
			return nil, err
		}
	}
	q, err := x.trackQuery(ctx, c)
	if err != nil {
		return nil, err
	}
	tracks, _ := history.Split(q.points, history.SplitOptions{})
	if opt.filter {
		// Tracks too short to be trips: one point, or under 50 m.
		kept := tracks[:0]
		for _, t := range tracks {
			if len(t.Points) > 1 && t.Length >= 0.05 {
				kept = append(kept, t)
			}
		}
		tracks = kept
	}
	body := trackListBody{Success: true, LimitExceeded: q.limitExceeded, List: []any{}}
	if !opt.split {
		if len(tracks) > 0 {
			m := history.Merge(tracks)
			body.List = append(body.List, x.regularTrack(c, &m, "merged", nil, opt.countEvents, opt.withPoints, q.pointLimit))
		}
		return body, nil
	}
	for i := range tracks {
		t := &tracks[i]
		id := t.ID()
		if len(t.Points) == 1 {
			body.List = append(body.List, x.singleReport(c, t, opt.withPoints))
			continue
		}
		body.List = append(body.List, x.regularTrack(c, t, "regular", &id, opt.countEvents, opt.withPoints, q.pointLimit))
	}
	return body, nil
}

func (x *API) regularTrack(c *call, t *history.Track, typ string, id *int64, countEvents, withPoints bool, limit int) regularTrack {
	r := regularTrack{
		ID: id, Type: typ,
		StartDate: c.userTime(t.Start()), EndDate: c.userTime(t.End()),
		MaxSpeed: t.MaxSpeed, Length: math.Round(t.Length*100) / 100, Points: len(t.Points), AvgSpeed: t.AvgSpeed(),
		Bounds: boundsOf(t.Points),
	}
	if countEvents {
		// fleetwire keeps no event history: every track has none.
		zero := 0
		r.EventCount = &zero
	}
	if withPoints {
		pts := t.Points
		if limit > 0 {
			pts = history.Simplify(pts, SimplifyTolerance, limit)
		}
		r.PointsList = c.pointInfos(pts, nil)
	}
	return r
}

func (x *API) singleReport(c *call, t *history.Track, withPoints bool) singleReport {
	p := t.Points[0]
	r := singleReport{ID: t.ID(), StartDate: c.userTime(p.Time), AvgSpeed: p.Speed, Type: "single_report", GSMLBS: p.GSMLBS}
	if p.Precision > 0 {
		r.Precision = &p.Precision
	}
	if withPoints {
		r.PointsList = c.pointInfos(t.Points, nil)
	}
	return r
}

// trackRead is track/read: the points of a period (or of one of its
// tracks).
func (x *API) trackRead(ctx context.Context, c *call) (any, error) {
	simplify, err := c.p.optBool("simplify", true)
	if err != nil {
		return nil, err
	}
	filter, err := c.p.optBool("filter", true)
	if err != nil {
		return nil, err
	}
	trackID, hasTrack, err := c.p.int64("track_id")
	if err != nil {
		return nil, err
	}
	q, err := x.trackQuery(ctx, c)
	if err != nil {
		return nil, err
	}
	tracks, parking := history.Split(q.points, history.SplitOptions{})
	pts, park := q.points, parking
	if hasTrack {
		pts, park = nil, nil
		for i := range tracks {
			if tracks[i].ID() == trackID {
				pts = tracks[i].Points
				break
			}
		}
	} else if filter {
		// Without parking points, as the documentation's filter says.
		kept := make([]store.Point, 0, len(pts))
		for i, p := range pts {
			if !parking[i] {
				kept = append(kept, p)
			}
		}
		pts, park = kept, nil
	}
	if simplify {
		if park != nil {
			// Simplification would lose which points park; keep them
			// apart and simplify the moving ones.
			pts, park = simplifyMarked(pts, park, q.pointLimit)
		} else {
			pts = history.Simplify(pts, SimplifyTolerance, q.pointLimit)
		}
	}
	return trackReadBody{Success: true, LimitExceeded: q.limitExceeded, List: c.pointInfos(pts, park)}, nil
}

// simplifyMarked simplifies the runs of unmarked points and keeps the
// marked ones.
func simplifyMarked(pts []store.Point, mark []bool, limit int) ([]store.Point, []bool) {
	var out []store.Point
	var outMark []bool
	for i := 0; i < len(pts); {
		j := i
		for j < len(pts) && mark[j] == mark[i] {
			j++
		}
		run := pts[i:j]
		if !mark[i] {
			run = history.Simplify(run, SimplifyTolerance, 0)
		}
		out = append(out, run...)
		for range run {
			outMark = append(outMark, mark[i])
		}
		i = j
	}
	if limit > 1 && len(out) > limit {
		thinP, thinM := make([]store.Point, 0, limit), make([]bool, 0, limit)
		for k := range limit {
			idx := k * (len(out) - 1) / (limit - 1)
			thinP, thinM = append(thinP, out[idx]), append(thinM, outMark[idx])
		}
		out, outMark = thinP, thinM
	}
	return out, outMark
}

// pointInfos renders points in the caller's time zone; mileage counts
// the km travelled from the first point; parking marks points of
// parkings (nil: none are).
func (c *call) pointInfos(pts []store.Point, parking []bool) []pointInfo {
	out := make([]pointInfo, len(pts))
	var km float64
	for i, p := range pts {
		if i > 0 {
			km += history.Distance(pts[i-1], p)
		}
		out[i] = pointInfo{
			Lat: p.Lat, Lng: p.Lng, Alt: p.Alt, Satellites: p.Satellites, Mileage: math.Round(km*100) / 100,
			GetTime: c.userTime(p.Time), Heading: p.Heading, Speed: p.Speed,
			GSMLBS: p.GSMLBS, Parking: parking != nil && parking[i], Buffered: p.Buffered,
		}
		if p.Precision > 0 {
			prec := p.Precision
			out[i].Precision = &prec
		}
	}
	return out
}

// userTime formats t in the caller's time zone, as ISO 8601 when the
// caller asked for it (iso_datetime).
func (c *call) userTime(t time.Time) string {
	if c.dates.ISO {
		return t.In(c.loc).Format(time.RFC3339)
	}
	return t.In(c.loc).Format(fleet.DateTimeLayout)
}

func boundsOf(pts []store.Point) bounds {
	b := bounds{NW: latLng{Lat: -90, Lng: 180}, SE: latLng{Lat: 90, Lng: -180}}
	for _, p := range pts {
		b.NW.Lat, b.NW.Lng = math.Max(b.NW.Lat, p.Lat), math.Min(b.NW.Lng, p.Lng)
		b.SE.Lat, b.SE.Lng = math.Min(b.SE.Lat, p.Lat), math.Max(b.SE.Lng, p.Lng)
	}
	return b
}

package history

import (
	"math"
	"time"

	"github.com/fleetwire/fleetwire/internal/store"
)

// SplitOptions tell tracks from parkings. Zero values take the defaults.
type SplitOptions struct {
	// MovingSpeed is the speed in km/h from which a point is moving
	// (default 3).
	MovingSpeed int
	// Parking is how long a tracker must stay still, or silent, for the
	// time to be a parking that ends a track (default 5m).
	Parking time.Duration
}

func (o *SplitOptions) defaults() {
	if o.MovingSpeed <= 0 {
		o.MovingSpeed = 3
	}
	if o.Parking <= 0 {
		o.Parking = 5 * time.Minute
	}
}

// Track is one trip: the points between two parkings.
type Track struct {
	// Points are the track's points, oldest first.
	Points []store.Point
	// Length is the distance along the points in km.
	Length float64
	// MaxSpeed is the highest point speed in km/h.
	MaxSpeed int
}

// ID is the track's id: the Unix second of its first point, stable while
// its points do not change.
func (t *Track) ID() int64 { return t.Points[0].Time.Unix() }

// Start and End are the track's first and last point times.
func (t *Track) Start() time.Time { return t.Points[0].Time }

// End is the time of the track's last point.
func (t *Track) End() time.Time { return t.Points[len(t.Points)-1].Time }

// AvgSpeed is the length over the duration in km/h, the first point's
// speed for a track of one point.
func (t *Track) AvgSpeed() int {
	d := t.End().Sub(t.Start()).Hours()
	if d <= 0 {
		return t.Points[0].Speed
	}
	return int(math.Round(t.Length / d))
}

// Split cuts points (one tracker's, oldest first) into tracks at the
// parkings: a run of points slower than MovingSpeed lasting at least
// Parking, or a silence of at least Parking. It also reports, per point,
// whether it lies in a parking. Short stops (traffic lights) stay in
// their track.
func Split(points []store.Point, opts SplitOptions) (tracks []Track, parking []bool) {
	opts.defaults()
	parking = make([]bool, len(points))
	// Mark every run of still points that lasts long enough.
	for i := 0; i < len(points); {
		if points[i].Speed >= opts.MovingSpeed {
			i++
			continue
		}
		j := i
		for j+1 < len(points) && points[j+1].Speed < opts.MovingSpeed && points[j+1].Time.Sub(points[j].Time) < opts.Parking {
			j++
		}
		if points[j].Time.Sub(points[i].Time) >= opts.Parking {
			for k := i; k <= j; k++ {
				parking[k] = true
			}
		}
		i = j + 1
	}
	var cur *Track
	for i, p := range points {
		if parking[i] {
			cur = nil
			continue
		}
		if cur != nil && p.Time.Sub(cur.Points[len(cur.Points)-1].Time) >= opts.Parking {
			cur = nil // a silence parks too
		}
		if cur == nil {
			tracks = append(tracks, Track{})
			cur = &tracks[len(tracks)-1]
		} else {
			cur.Length += Distance(cur.Points[len(cur.Points)-1], p)
		}
		cur.Points = append(cur.Points, p)
		cur.MaxSpeed = max(cur.MaxSpeed, p.Speed)
	}
	return tracks, parking
}

// Merge joins tracks into one, as the track API's split=false does.
func Merge(tracks []Track) Track {
	var m Track
	for i := range tracks {
		t := &tracks[i]
		if len(m.Points) > 0 {
			m.Length += Distance(m.Points[len(m.Points)-1], t.Points[0])
		}
		m.Length += t.Length
		m.MaxSpeed = max(m.MaxSpeed, t.MaxSpeed)
		m.Points = append(m.Points, t.Points...)
	}
	return m
}

// Distance is the great-circle distance between two points in km.
func Distance(a, b store.Point) float64 {
	const r = 6371.0088
	la1, la2 := a.Lat*math.Pi/180, b.Lat*math.Pi/180
	dla, dlo := la2-la1, (b.Lng-a.Lng)*math.Pi/180
	h := math.Sin(dla/2)*math.Sin(dla/2) + math.Cos(la1)*math.Cos(la2)*math.Sin(dlo/2)*math.Sin(dlo/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(h)))
}

// Simplify drops points that add little to the line's shape
// (Ramer-Douglas-Peucker with a tolerance of tolerance metres), then, if
// more than limit are left (limit > 1), keeps limit of them evenly
// spread; the first and last points are always kept.
func Simplify(points []store.Point, tolerance float64, limit int) []store.Point {
	if len(points) <= 2 {
		return points
	}
	keep := make([]bool, len(points))
	keep[0], keep[len(points)-1] = true, true
	if tolerance > 0 {
		rdp(points, keep, 0, len(points)-1, tolerance/1000)
	} else {
		for i := range keep {
			keep[i] = true
		}
	}
	out := make([]store.Point, 0, len(points))
	for i, k := range keep {
		if k {
			out = append(out, points[i])
		}
	}
	if limit > 1 && len(out) > limit {
		thin := make([]store.Point, 0, limit)
		for i := range limit {
			thin = append(thin, out[i*(len(out)-1)/(limit-1)])
		}
		out = thin
	}
	return out
}

// rdp marks the points of [lo, hi] that lie further than tol km from the
// chord, recursively (on an explicit stack: tracks can be long).
func rdp(p []store.Point, keep []bool, lo, hi int, tol float64) {
	stack := [][2]int{{lo, hi}}
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		a, b := s[0], s[1]
		if b-a < 2 {
			continue
		}
		worst, at := 0.0, -1
		for i := a + 1; i < b; i++ {
			if d := crossTrack(p[a], p[b], p[i]); d > worst {
				worst, at = d, i
			}
		}
		if worst > tol {
			keep[at] = true
			stack = append(stack, [2]int{a, at}, [2]int{at, b})
		}
	}
}

// crossTrack is the distance in km from p to the segment a-b, on a flat
// projection around a (fine at the scale of a track's segments).
func crossTrack(a, b, p store.Point) float64 {
	k := math.Cos(a.Lat * math.Pi / 180)
	const kmPerDeg = 111.195
	bx, by := (b.Lng-a.Lng)*k*kmPerDeg, (b.Lat-a.Lat)*kmPerDeg
	px, py := (p.Lng-a.Lng)*k*kmPerDeg, (p.Lat-a.Lat)*kmPerDeg
	l2 := bx*bx + by*by
	if l2 == 0 {
		return math.Hypot(px, py)
	}
	t := math.Max(0, math.Min(1, (px*bx+py*by)/l2))
	return math.Hypot(px-t*bx, py-t*by)
}

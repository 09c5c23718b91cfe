package store

import (
	"context"
	"time"
)

// Point is one stored position of a tracker: an accepted fix with a
// location.
type Point struct {
	// TrackerID is the tracker the fix belongs to.
	TrackerID int64
	// Time is when the device took the fix, in UTC, kept to the
	// millisecond. A tracker has at most one point per millisecond.
	Time time.Time
	// Lat and Lng are WGS 84 degrees, kept to 1e-7°.
	Lat, Lng float64
	// Alt in metres, Speed in km/h, Heading in degrees from north.
	Alt, Speed, Heading int
	// Satellites in use (0 when not reported).
	Satellites int
	// Precision in metres, 0 when not reported.
	Precision int
	// GSMLBS is true for a position from cell towers rather than
	// satellites.
	GSMLBS bool
	// Buffered is true for a fix the device kept in its memory and sent
	// later.
	Buffered bool
}

// History keeps every tracker's positions. Both SQL backends provide it.
type History interface {
	// AppendPoints writes points, all or none. A point whose tracker
	// already has one at the same millisecond is skipped: a device that
	// sends a fix again does not duplicate it.
	AppendPoints(ctx context.Context, points []Point) error
	// Points returns a tracker's points with from < Time < to, oldest
	// first, at most limit of them.
	Points(ctx context.Context, trackerID int64, from, to time.Time, limit int) ([]Point, error)
	// CompactPoints packs the points of every hour that ended before
	// before into one block per tracker and hour, which reads far faster
	// than a row per point; it returns how many points it packed. Points
	// arriving later for a packed hour are merged into its block by the
	// next call.
	CompactPoints(ctx context.Context, before time.Time) (int64, error)
	// PrunePoints removes the points older than before (whole hours: an
	// hour is removed once it ended before before) and returns how many
	// it removed.
	PrunePoints(ctx context.Context, before time.Time) (int64, error)
}

// Package demo seeds a fleet of simulated trackers and drives them around
// central Berlin, so that a fresh fleetwire shows live data without any
// real device.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/state"
)

// Model is the model of the trackers Seed creates.
const Model = "demo"

// DeviceID is the device id of the i-th demo tracker, counting from 1.
func DeviceID(i int) string { return fmt.Sprintf("demo-%03d", i) }

var kinds = [...]string{"Van", "Truck", "Car", "Courier", "Bus"}

// Label is the label of the i-th demo tracker, counting from 1.
func Label(i int) string { return fmt.Sprintf("%s %02d", kinds[(i-1)%len(kinds)], i) }

// Seed makes sure trackers demo-001 … demo-n exist and returns them in
// that order. A tracker whose device id is already registered is reused as
// it is, whoever owns it; the others are created for userID.
func Seed(ctx context.Context, reg *state.Registry, userID int64, n int) ([]*fleet.Tracker, error) {
	out := make([]*fleet.Tracker, 0, max(n, 0))
	for i := 1; i <= n; i++ {
		dev := DeviceID(i)
		if t, ok := reg.TrackerByDevice(dev); ok {
			out = append(out, t)
			continue
		}
		t, err := reg.CreateTracker(ctx, &fleet.Tracker{Label: Label(i), UserID: userID, DeviceID: dev, Model: Model})
		if err != nil {
			return out, fmt.Errorf("demo tracker %s: %w", dev, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// SimOptions tune a Simulator.
type SimOptions struct {
	// Interval is how often every tracker reports (default 1s). The
	// simulated vehicles cover the distance of one Interval per report.
	Interval time.Duration
	// Logger receives warnings (default slog.Default()).
	Logger *slog.Logger
}

// berlin is the centre the routes loop around.
var berlin = fleet.Location{Lat: 52.52, Lng: 13.405}

// Applier takes the simulated fixes: *state.Registry, or the history
// recorder in front of it.
type Applier interface {
	Apply(ctx context.Context, f *state.Fix) (*fleet.State, error)
}

// Simulator moves trackers along closed routes and reports their fixes to
// the registry. A tracker whose device reports for real (see Release)
// leaves the simulation for good and stays where it reported.
type Simulator struct {
	reg      Applier
	opts     SimOptions
	vehicles []*vehicle
	byDevice map[string]*vehicle
}

// vehicle is one simulated tracker.
type vehicle struct {
	// mu is held while the vehicle reports, so that Release and a
	// report never cross: once Release returns, no simulated fix of the
	// vehicle follows.
	mu       sync.Mutex
	released bool

	deviceID string
	route    *route
	pos      float64 // metres along the route
	cruise   float64 // km/h
	speed    float64 // km/h, last reported
	battery  float64 // percent
	sats     int
	rng      *rand.Rand

	// Vehicles that make stops alternate between driving and a stop;
	// left counts the reports until the phase ends.
	stops    bool
	stopped  bool
	engineOn bool
	left     int
	nstops   int
}

// NewSimulator returns a simulator for trackers. Routes, speeds and
// stops are deterministic: tracker i behaves the same on every run.
func NewSimulator(reg Applier, trackers []*fleet.Tracker, opts SimOptions) *Simulator {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	routes := makeRoutes(4)
	s := &Simulator{reg: reg, opts: opts, byDevice: make(map[string]*vehicle, len(trackers))}
	for i, t := range trackers {
		rng := rand.New(rand.NewPCG(uint64(i)+1, 0x5eed))
		r := routes[i%len(routes)]
		v := &vehicle{
			deviceID: t.DeviceID,
			route:    r,
			// Spread the vehicles sharing a route along it.
			pos:      math.Mod(float64(i)*0.618034, 1) * r.length,
			cruise:   20 + 40*rng.Float64(),
			battery:  70 + 30*rng.Float64(),
			sats:     7 + rng.IntN(6),
			rng:      rng,
			stops:    i%3 == 2,
			engineOn: true,
		}
		if v.stops {
			// Some start parked for a while, the others drive first.
			v.stopped = i%2 == 0
			v.engineOn = !v.stopped
			v.left = 40 + rng.IntN(60)
		}
		s.vehicles = append(s.vehicles, v)
		s.byDevice[v.deviceID] = v
	}
	return s
}

// Release takes the tracker of deviceID out of the simulation for good,
// because its device reports for real: call it before applying the
// device's own message, and no simulated fix overwrites it. It reports
// whether the device was simulated until now. Safe for concurrent use.
func (s *Simulator) Release(deviceID string) bool {
	v, ok := s.byDevice[deviceID]
	if !ok {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.released {
		return false
	}
	v.released = true
	s.opts.Logger.Info("demo: a real device reported; it leaves the simulation", "device", deviceID)
	return true
}

// Run reports a fix for every tracker at once and then every Interval,
// until ctx is done; it returns ctx.Err(). Run must not be called
// concurrently with itself.
func (s *Simulator) Run(ctx context.Context) error {
	// Large fleets are stepped by one goroutine per CPU, each over its own
	// share of the vehicles, so a short interval is kept up with.
	shards := min(runtime.GOMAXPROCS(0), max(1, len(s.vehicles)/1000))
	var wg sync.WaitGroup
	for i := 0; i < shards; i++ {
		part := s.vehicles[i*len(s.vehicles)/shards : (i+1)*len(s.vehicles)/shards]
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(ctx, part)
		}()
	}
	wg.Wait()
	return ctx.Err()
}

func (s *Simulator) run(ctx context.Context, vehicles []*vehicle) {
	tick := time.NewTicker(s.opts.Interval)
	defer tick.Stop()
	dt := s.opts.Interval.Seconds()
	for {
		for _, v := range vehicles {
			if ctx.Err() != nil {
				return
			}
			s.report(ctx, v, dt)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// report applies v's next fix, unless v was released.
func (s *Simulator) report(ctx context.Context, v *vehicle, dt float64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.released {
		return
	}
	_, err := s.reg.Apply(ctx, v.step(dt))
	switch {
	case err == nil, errors.Is(err, state.ErrBlocked), errors.Is(err, state.ErrUnknownDevice):
		// A blocked or deleted demo tracker just stays quiet.
	default:
		s.opts.Logger.Warn("demo: apply fix", "device", v.deviceID, "err", err)
	}
}

// step advances v by dt seconds and returns its fix.
func (v *vehicle) step(dt float64) *state.Fix {
	if v.stops {
		v.left--
		if v.left <= 0 {
			v.stopped = !v.stopped
			if v.stopped {
				// Every other stop is a short one with the engine running
				// (stopped), the rest are longer with it off (parked).
				v.nstops++
				v.engineOn = v.nstops%2 == 1
				v.left = 20 + v.rng.IntN(40)
			} else {
				v.engineOn = true
				v.left = 60 + v.rng.IntN(120)
			}
		}
	}
	if v.stopped {
		v.speed = 0
		if !v.engineOn {
			v.battery = math.Max(20, v.battery-0.02)
		}
	} else {
		// Vary around the cruising speed, gently.
		target := v.cruise * (0.85 + 0.3*v.rng.Float64())
		if v.speed == 0 {
			v.speed = target / 2
		} else {
			v.speed += (target - v.speed) / 4
		}
		v.speed = math.Min(60, math.Max(3, v.speed))
		v.battery = math.Min(100, v.battery+0.05)
		v.pos = math.Mod(v.pos+v.speed/3.6*dt, v.route.length)
	}
	if v.rng.IntN(20) == 0 {
		v.sats = min(12, max(5, v.sats+v.rng.IntN(3)-1))
	}
	loc, heading := v.route.at(v.pos)
	speed := math.Round(v.speed*10) / 10
	battery := math.Round(v.battery)
	alt := 34 + 8*math.Sin(v.pos/500)
	sats := v.sats
	ign := v.engineOn
	return &state.Fix{
		DeviceID:   v.deviceID,
		Location:   &loc,
		Speed:      &speed,
		Heading:    &heading,
		Alt:        &alt,
		Battery:    &battery,
		Satellites: &sats,
		Ignition:   &ign,
	}
}

// route is a closed polygon of waypoints.
type route struct {
	pts    []fleet.Location
	cum    []float64 // cum[i]: metres from pts[0] to pts[i]; cum[len(pts)] is the whole loop
	length float64
}

// makeRoutes builds n loops of a few kilometres around Berlin, the same
// on every call.
func makeRoutes(n int) []*route {
	rng := rand.New(rand.NewPCG(52, 13))
	out := make([]*route, n)
	for k := range out {
		// Each loop is centred up to 2 km off the centre, in a different
		// direction, with a radius of 1–2.5 km.
		dir := 2 * math.Pi * float64(k) / float64(n)
		off := 0.5 + 1.5*rng.Float64()
		centre := offset(berlin, off*1000*math.Cos(dir), off*1000*math.Sin(dir))
		radius := 1000 + 1500*rng.Float64()
		m := 8 + rng.IntN(5)
		pts := make([]fleet.Location, m)
		for j := range pts {
			a := 2*math.Pi*float64(j)/float64(m) + (rng.Float64()-0.5)*0.4
			rr := radius * (0.7 + 0.6*rng.Float64())
			pts[j] = offset(centre, rr*math.Cos(a), rr*math.Sin(a))
		}
		if k%2 == 1 { // run the odd loops clockwise
			for i, j := 0, len(pts)-1; i < j; i, j = i+1, j-1 {
				pts[i], pts[j] = pts[j], pts[i]
			}
		}
		out[k] = newRoute(pts)
	}
	return out
}

func newRoute(pts []fleet.Location) *route {
	r := &route{pts: pts, cum: make([]float64, len(pts)+1)}
	for i := range pts {
		r.cum[i+1] = r.cum[i] + distance(pts[i], pts[(i+1)%len(pts)])
	}
	r.length = r.cum[len(pts)]
	return r
}

// at returns the point pos metres along the loop and the bearing toward
// the next waypoint.
func (r *route) at(pos float64) (fleet.Location, float64) {
	pos = math.Mod(pos, r.length)
	if pos < 0 {
		pos += r.length
	}
	i := 0
	for i < len(r.pts)-1 && r.cum[i+1] <= pos {
		i++
	}
	a, b := r.pts[i], r.pts[(i+1)%len(r.pts)]
	f := 0.0
	if seg := r.cum[i+1] - r.cum[i]; seg > 0 {
		f = (pos - r.cum[i]) / seg
	}
	p := fleet.Location{Lat: a.Lat + (b.Lat-a.Lat)*f, Lng: a.Lng + (b.Lng-a.Lng)*f}
	return p, bearing(p, b)
}

const earthRadius = 6371000.0 // metres

// offset moves p by east and north metres.
func offset(p fleet.Location, east, north float64) fleet.Location {
	lat := p.Lat + north/earthRadius*180/math.Pi
	lng := p.Lng + east/(earthRadius*math.Cos(p.Lat*math.Pi/180))*180/math.Pi
	return fleet.Location{Lat: lat, Lng: lng}
}

// distance is the great-circle distance in metres.
func distance(a, b fleet.Location) float64 {
	lat1, lat2 := a.Lat*math.Pi/180, b.Lat*math.Pi/180
	dLat, dLng := lat2-lat1, (b.Lng-a.Lng)*math.Pi/180
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1)*math.Cos(lat2)*math.Sin(dLng/2)*math.Sin(dLng/2)
	return 2 * earthRadius * math.Asin(math.Min(1, math.Sqrt(h)))
}

// bearing is the initial bearing from a to b in degrees, 0–360.
func bearing(a, b fleet.Location) float64 {
	lat1, lat2 := a.Lat*math.Pi/180, b.Lat*math.Pi/180
	dLng := (b.Lng - a.Lng) * math.Pi / 180
	y := math.Sin(dLng) * math.Cos(lat2)
	x := math.Cos(lat1)*math.Sin(lat2) - math.Sin(lat1)*math.Cos(lat2)*math.Cos(dLng)
	deg := math.Atan2(y, x) * 180 / math.Pi
	return math.Mod(deg+360, 360)
}

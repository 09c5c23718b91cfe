package server

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/ingest/teltonika"
)

// drive sends a route over a Teltonika connection: 10 minutes driving
// north, 10 minutes parked, 10 minutes driving east, a record every
// 10 s, starting at t0. It returns the records' times.
func drive(t *testing.T, h *harness, imei string, t0 time.Time) []time.Time {
	t.Helper()
	d := dialTracker(t, h.srv.TeltonikaAddr())
	d.send(teltonika.AppendIMEI(nil, imei))
	d.expect([]byte{teltonika.Accept})
	var recs []teltonika.Record
	lat, lon := 54.0, 25.0
	for i := range 180 {
		speed := 50
		switch {
		case i < 60:
			lat += 0.001
		case i < 120:
			speed = 0
		default:
			lon += 0.0015
		}
		recs = append(recs, teltonika.Record{Time: t0.Add(time.Duration(i) * 10 * time.Second), Lat: lat, Lon: lon, Satellites: 8, Speed: speed, Angle: 10, Altitude: 120})
	}
	var times []time.Time
	for i := 0; i < len(recs); i += 60 {
		data, _ := teltonika.AppendAVL(nil, teltonika.Codec8, recs[i:i+60])
		d.send(teltonika.AppendFrame(nil, data))
		d.expect(teltonika.AppendAck(nil, 60))
	}
	for _, r := range recs {
		times = append(times, r.Time)
	}
	return times
}

func keys(m map[string]any) string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	sort.Strings(k)
	return strings.Join(k, ",")
}

// TestTrackAPI records a drive from a device and reads it back with
// track/list and track/read, in the user's time zone, with the
// documented fields, parameters and errors.
func TestTrackAPI(t *testing.T) {
	h := startServer(t, func(c *Config) {
		trackerListeners(c)
		c.HistoryRetention = 48 * time.Hour
	})
	uid := h.createUser("track@example.com", "secret-1", "Europe/Berlin")
	other := h.createUser("other@example.com", "secret-2", "UTC")
	tr := h.createTracker(uid, "Truck", "356307042441013")
	foreign := h.createTracker(other, "Theirs", "356307042441014")
	hash := h.login("track@example.com", "secret-1")
	berlin, _ := time.LoadLocation("Europe/Berlin")
	t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Minute).UTC()
	times := drive(t, h, tr.device, t0)
	from := t0.Add(-time.Minute).In(berlin).Format("2006-01-02 15:04:05")
	to := t0.Add(time.Hour).In(berlin).Format("2006-01-02 15:04:05")

	call := func(action string, extra map[string]any) (int, map[string]any) {
		body := map[string]any{"hash": hash, "tracker_id": tr.id, "from": from, "to": to}
		for k, v := range extra {
			body[k] = v
		}
		return h.call("POST", "/v2/track/"+action, body, nil)
	}

	code, list := call("list", nil)
	if code != 200 || list["success"] != true || list["limit_exceeded"] != false {
		t.Fatalf("track/list: %d %v", code, list)
	}
	tracks := list["list"].([]any)
	if len(tracks) != 2 {
		t.Fatalf("%d tracks: %v", len(tracks), tracks)
	}
	first := tracks[0].(map[string]any)
	if got := keys(first); got != "avg_speed,bounds,end_address,end_date,gsm_lbs,id,length,max_speed,points,start_address,start_date,type" {
		t.Errorf("track fields %s", got)
	}
	if first["type"] != "regular" || first["start_date"] != times[0].In(berlin).Format("2006-01-02 15:04:05") || first["max_speed"] != 50.0 {
		t.Errorf("first track %v", first)
	}
	if l := first["length"].(float64); l < 6.4 || l > 6.8 { // 59 steps of 0.001° north, 111 m each
		t.Errorf("length %v km", l)
	}
	if n := first["points"].(float64); n != 60 {
		t.Errorf("points %v", n)
	}
	b := first["bounds"].(map[string]any)
	if nw := b["nw"].(map[string]any); nw["lat"].(float64) < 54.05 || nw["lng"] != 25.0 {
		t.Errorf("bounds %v", b)
	}

	_, withPts := call("list", map[string]any{"with_points": true, "count_events": true, "split": false})
	merged := withPts["list"].([]any)[0].(map[string]any)
	if merged["type"] != "merged" || merged["id"] != nil || merged["event_count"] != 0.0 || len(merged["points_list"].([]any)) != 120 {
		t.Fatalf("merged %v", keys(merged))
	}
	p := merged["points_list"].([]any)[0].(map[string]any)
	if got := keys(p); got != "address,alt,buffered,get_time,gsm_lbs,heading,lat,lng,mileage,parking,satellites,speed" {
		t.Errorf("point fields %s", got)
	}
	if p["get_time"] != times[0].In(berlin).Format("2006-01-02 15:04:05") || p["alt"] != 120.0 || p["satellites"] != 8.0 || p["heading"] != 10.0 {
		t.Errorf("point %v", p)
	}

	// track/read: by default simplified and without parking points.
	_, read := call("read", nil)
	pts := read["list"].([]any)
	if len(pts) < 3 || len(pts) > 10 {
		t.Errorf("simplified read: %d points", len(pts))
	}
	_, all := call("read", map[string]any{"simplify": false, "filter": false})
	pts = all["list"].([]any)
	if len(pts) != 180 {
		t.Fatalf("read all: %d points", len(pts))
	}
	if pts[70].(map[string]any)["parking"] != true || pts[10].(map[string]any)["parking"] != false {
		t.Errorf("parking marks %v %v", pts[70], pts[10])
	}
	if m := pts[59].(map[string]any)["mileage"].(float64); m < 6.4 || m > 6.8 {
		t.Errorf("mileage %v", m)
	}
	second := int64(tracks[1].(map[string]any)["id"].(float64))
	_, one := call("read", map[string]any{"track_id": second, "simplify": false})
	if got := one["list"].([]any); len(got) != 60 || got[0].(map[string]any)["get_time"] != times[120].In(berlin).Format("2006-01-02 15:04:05") {
		t.Errorf("track %d: %d points", second, len(got))
	}
	if _, lim := call("read", map[string]any{"simplify": true, "filter": false, "point_limit": 5}); len(lim["list"].([]any)) > 5 {
		t.Errorf("point_limit 5: %d points", len(lim["list"].([]any)))
	}

	// Before the retention: limit_exceeded, and the points that are left.
	_, old := call("read", map[string]any{"from": t0.AddDate(0, 0, -3).In(berlin).Format("2006-01-02 15:04:05")})
	if old["limit_exceeded"] != true || len(old["list"].([]any)) == 0 {
		t.Errorf("limit_exceeded %v, %d points", old["limit_exceeded"], len(old["list"].([]any)))
	}

	for name, c := range map[string]struct {
		action string
		extra  map[string]any
		code   float64
	}{
		"another user's tracker": {"list", map[string]any{"tracker_id": foreign.id}, 201},
		"no such tracker":        {"read", map[string]any{"tracker_id": 987654}, 201},
		"span":                   {"read", map[string]any{"from": t0.AddDate(0, 0, -40).Format("2006-01-02 15:04:05")}, 211},
		"point_limit too big":    {"read", map[string]any{"point_limit": 3001}, 212},
		"point_limit too small":  {"list", map[string]any{"point_limit": 1}, 7},
		"to before from":         {"list", map[string]any{"to": t0.AddDate(0, 0, -1).Format("2006-01-02 15:04:05")}, 7},
		"date format":            {"read", map[string]any{"from": "yesterday"}, 7},
		"missing to":             {"read", map[string]any{"to": nil}, 7},
	} {
		code, body := call(c.action, c.extra)
		st, _ := body["status"].(map[string]any)
		if body["success"] != false || st["code"] != c.code {
			t.Errorf("%s: %d %v, want code %v", name, code, body, c.code)
		}
	}
	h.admin("POST", "/admin/trackers/"+itoa(tr.id)+"/block", map[string]any{})
	if _, body := call("list", nil); body["status"].(map[string]any)["code"] != 208.0 {
		t.Errorf("blocked: %v", body)
	}
}

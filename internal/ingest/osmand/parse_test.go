package osmand

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/state"
)

var now = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func fp(v float64) *float64 { return &v }

func eqf(t *testing.T, name string, got, want *float64) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Errorf("%s = %v, want %v", name, ptrStr(got), ptrStr(want))
	case !near(*got, *want):
		t.Errorf("%s = %v, want %v", name, *got, *want)
	}
}

func ptrStr(p *float64) any {
	if p == nil {
		return "nil"
	}
	return *p
}

func mustQuery(t *testing.T, s string) url.Values {
	t.Helper()
	q, err := url.ParseQuery(s)
	if err != nil {
		t.Fatalf("parse query %q: %v", s, err)
	}
	return q
}

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		query string
		check func(t *testing.T, f *state.Fix)
	}{
		{"minimal", "id=dev1&lat=52.52&lon=13.405", func(t *testing.T, f *state.Fix) {
			if f.DeviceID != "dev1" || f.Location == nil || f.Location.Lat != 52.52 || f.Location.Lng != 13.405 {
				t.Errorf("fix %+v loc %+v", f, f.Location)
			}
			if !f.Time.IsZero() || !f.ReceivedAt.Equal(now) {
				t.Errorf("time %v received %v", f.Time, f.ReceivedAt)
			}
			if f.Speed != nil || f.Heading != nil || f.Attributes != nil {
				t.Errorf("unexpected fields %+v", f)
			}
		}},
		{"deviceid alias", "deviceid=dev2&lat=1&lon=2", func(t *testing.T, f *state.Fix) {
			if f.DeviceID != "dev2" {
				t.Errorf("device %q", f.DeviceID)
			}
		}},
		{"id wins over deviceid", "deviceid=b&id=a", func(t *testing.T, f *state.Fix) {
			if f.DeviceID != "a" {
				t.Errorf("device %q", f.DeviceID)
			}
		}},
		{"no position", "id=x&batt=50", func(t *testing.T, f *state.Fix) {
			if f.Location != nil {
				t.Errorf("location %+v", f.Location)
			}
			eqf(t, "battery", f.Battery, fp(50))
		}},
		{"location param", "id=x&location=52.5,13.4", func(t *testing.T, f *state.Fix) {
			if f.Location == nil || f.Location.Lat != 52.5 || f.Location.Lng != 13.4 {
				t.Errorf("location %+v", f.Location)
			}
		}},
		{"speed knots to km/h", "id=x&lat=0&lon=0&speed=10", func(t *testing.T, f *state.Fix) {
			eqf(t, "speed", f.Speed, fp(18.52))
		}},
		{"negative speed is unknown", "id=x&lat=0&lon=0&speed=-1", func(t *testing.T, f *state.Fix) {
			eqf(t, "speed", f.Speed, nil)
		}},
		{"all fields", "id=x&lat=-33.9&lon=151.2&speed=0&bearing=271.5&altitude=-12&accuracy=8&batt=77.5&sat=9&ignition=1&charge=true&driverUniqueId=d42", func(t *testing.T, f *state.Fix) {
			eqf(t, "speed", f.Speed, fp(0))
			eqf(t, "heading", f.Heading, fp(271.5))
			eqf(t, "alt", f.Alt, fp(-12))
			eqf(t, "accuracy", f.Accuracy, fp(8))
			eqf(t, "battery", f.Battery, fp(77.5))
			if f.Satellites == nil || *f.Satellites != 9 {
				t.Errorf("satellites %v", f.Satellites)
			}
			if f.Ignition == nil || !*f.Ignition {
				t.Errorf("ignition %v", f.Ignition)
			}
			if len(f.Attributes) != 2 || f.Attributes["charge"] != "true" || f.Attributes["driverUniqueId"] != "d42" {
				t.Errorf("attributes %v", f.Attributes)
			}
		}},
		{"heading alias", "id=x&heading=90", func(t *testing.T, f *state.Fix) {
			eqf(t, "heading", f.Heading, fp(90))
		}},
		{"bearing wins over heading", "id=x&heading=90&bearing=180", func(t *testing.T, f *state.Fix) {
			eqf(t, "heading", f.Heading, fp(180))
			if f.Attributes["heading"] != "90" {
				t.Errorf("attributes %v", f.Attributes)
			}
		}},
		{"hdop is no accuracy", "id=x&hdop=1.5", func(t *testing.T, f *state.Fix) {
			eqf(t, "accuracy", f.Accuracy, nil)
			if len(f.Attributes) != 1 || f.Attributes["hdop"] != "1.5" {
				t.Errorf("attributes %v", f.Attributes)
			}
		}},
		{"accuracy next to hdop", "id=x&hdop=1.5&accuracy=12", func(t *testing.T, f *state.Fix) {
			eqf(t, "accuracy", f.Accuracy, fp(12))
			if f.Attributes["hdop"] != "1.5" {
				t.Errorf("attributes %v", f.Attributes)
			}
		}},
		{"ignition false", "id=x&ignition=false", func(t *testing.T, f *state.Fix) {
			if f.Ignition == nil || *f.Ignition {
				t.Errorf("ignition %v", f.Ignition)
			}
		}},
		{"charge not boolean kept raw", "id=x&charge=2", func(t *testing.T, f *state.Fix) {
			if f.Attributes["charge"] != "2" {
				t.Errorf("attributes %v", f.Attributes)
			}
		}},
		{"empty values are absent", "id=x&lat=&lon=&speed=&timestamp=", func(t *testing.T, f *state.Fix) {
			if f.Location != nil || f.Speed != nil || !f.Time.IsZero() {
				t.Errorf("fix %+v", f)
			}
		}},
		{"first value counts", "id=a&id=b&lat=1&lat=bad&lon=2", func(t *testing.T, f *state.Fix) {
			if f.DeviceID != "a" || f.Location.Lat != 1 {
				t.Errorf("fix %+v", f)
			}
		}},
		{"id trimmed", "id=+dev+", func(t *testing.T, f *state.Fix) {
			if f.DeviceID != "dev" {
				t.Errorf("device %q", f.DeviceID)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(mustQuery(t, tc.query), now)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.query, err)
			}
			tc.check(t, f)
		})
	}
}

func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{"1609459200", time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"1609459200000", time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"1609459200123", time.Date(2021, 1, 1, 0, 0, 0, 123e6, time.UTC)},
		{"1609459200.5", time.Date(2021, 1, 1, 0, 0, 0, 5e8, time.UTC)},
		{"2021-01-01T00:00:00Z", time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"2021-01-01T00:00:00.250Z", time.Date(2021, 1, 1, 0, 0, 0, 25e7, time.UTC)},
		{"2021-01-01T02:00:00+02:00", time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"2021-01-01T02:00:00 02:00", time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)}, // unescaped "+"
		{"2021-01-01T00:00:00", time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"2021-01-01 00:00:00", time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		q := url.Values{"id": {"x"}, "timestamp": {tc.in}}
		f, err := Parse(q, now)
		if err != nil {
			t.Errorf("timestamp %q: %v", tc.in, err)
			continue
		}
		if !f.Time.Equal(tc.want) || f.Time.Location() != time.UTC {
			t.Errorf("timestamp %q = %v, want %v", tc.in, f.Time, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		query string
		field string // "" for ErrMissingID
	}{
		{"lat=1&lon=2", ""},
		{"id=&lat=1&lon=2", ""},
		{"id=+++", ""},
		{"id=x&lat=91&lon=0", "lat"},
		{"id=x&lat=-90.5&lon=0", "lat"},
		{"id=x&lat=0&lon=180.1", "lon"},
		{"id=x&lat=abc&lon=0", "lat"},
		{"id=x&lat=NaN&lon=0", "lat"},
		{"id=x&lat=0&lon=Inf", "lon"},
		{"id=x&lat=1", "lon"},
		{"id=x&lon=1", "lat"},
		{"id=x&location=1", "location"},
		{"id=x&location=1,", "location"},
		{"id=x&location=1,200", "lon"},
		{"id=x&timestamp=yesterday", "timestamp"},
		{"id=x&timestamp=-5", "timestamp"},
		{"id=x&timestamp=1e30", "timestamp"},
		{"id=x&timestamp=2021-13-01T00:00:00Z", "timestamp"},
		{"id=x&speed=fast", "speed"},
		{"id=x&speed=1e300", "speed"},
		{"id=x&bearing=north", "heading"},
		{"id=x&altitude=high", "altitude"},
		{"id=x&accuracy=x", "accuracy"},
		{"id=x&hdop=x", "hdop"},
		{"id=x&cell=1,2,3", "cell"},
		{"id=x&cell=1,2,3,x", "cell"},
		{"id=x&cell=1,2,3,4,5,6", "cell"},
		{"id=x&cell=1,2,3,4&cell=bad", "cell"},
		{"id=x&wifi=00-11", "wifi"},
		{"id=x&wifi=,-70", "wifi"},
		{"id=x&wifi=00-11,strong", "wifi"},
		{"id=x&batt=full", "batt"},
		{"id=x&sat=-1", "sat"},
		{"id=x&sat=7.5", "sat"},
		{"id=x&ignition=maybe", "ignition"},
	}
	for _, tc := range tests {
		_, err := Parse(mustQuery(t, tc.query), now)
		var fe *FieldError
		switch {
		case tc.field == "":
			if !errors.Is(err, ErrMissingID) {
				t.Errorf("Parse(%q) = %v, want ErrMissingID", tc.query, err)
			}
		case !errors.As(err, &fe) || fe.Field != tc.field:
			t.Errorf("Parse(%q) = %v, want invalid %s", tc.query, err, tc.field)
		}
	}
}

func TestParseAttributeLimits(t *testing.T) {
	q := url.Values{"id": {"x"}}
	for i := range 40 {
		q.Set("a"+string(rune('A'+i)), "v")
	}
	q.Set(strings.Repeat("k", MaxAttrKey+1), "dropped")
	long := strings.Repeat("é", MaxAttrValue) // 2 bytes each
	q.Set("long", long)
	q.Set("bad", "\xff\xfe")
	f, err := Parse(q, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Attributes) != MaxAttributes {
		t.Fatalf("%d attributes, want %d", len(f.Attributes), MaxAttributes)
	}
	for k, v := range f.Attributes {
		if len(k) > MaxAttrKey || len(v) > MaxAttrValue {
			t.Errorf("attribute %q=%q over the limits", k, v)
		}
	}
	// Kept in key order: "aA".."aZ", "a[".."a`", "ab".. then "bad", "long".
	if _, ok := f.Attributes["aA"]; !ok {
		t.Errorf("first key dropped: %v", f.Attributes)
	}

	q = url.Values{"id": {"x"}, "long": {long}, "bad": {"\xff"}}
	f, err = Parse(q, now)
	if err != nil {
		t.Fatal(err)
	}
	if v := f.Attributes["long"]; len(v) != MaxAttrValue || v != long[:MaxAttrValue] {
		t.Errorf("long value cut to %d bytes", len(v))
	}
	if v := f.Attributes["bad"]; v != "\uFFFD" {
		t.Errorf("invalid UTF-8 kept as %q", v)
	}
}

func TestParseJSON(t *testing.T) {
	const full = `{
	  "location": {
	    "timestamp": "2024-05-01T11:59:30.500Z",
	    "coords": {"latitude": 52.52, "longitude": 13.405, "accuracy": 5,
	               "speed": 10, "heading": 90.5, "altitude": 34},
	    "is_moving": true, "odometer": 1234.5, "event": "motionchange",
	    "battery": {"level": 0.85, "is_charging": false},
	    "activity": {"type": "in_vehicle"},
	    "extras": {"trip": "t-1", "n": 3, "ok": true}
	  },
	  "device_id": "48241179"
	}`
	f, err := ParseJSON([]byte(full), now)
	if err != nil {
		t.Fatal(err)
	}
	if f.DeviceID != "48241179" || f.Location == nil || f.Location.Lat != 52.52 || f.Location.Lng != 13.405 {
		t.Fatalf("fix %+v", f)
	}
	if want := time.Date(2024, 5, 1, 11, 59, 30, 5e8, time.UTC); !f.Time.Equal(want) {
		t.Errorf("time %v, want %v", f.Time, want)
	}
	eqf(t, "speed", f.Speed, fp(36)) // 10 m/s
	eqf(t, "heading", f.Heading, fp(90.5))
	eqf(t, "alt", f.Alt, fp(34))
	eqf(t, "accuracy", f.Accuracy, fp(5))
	eqf(t, "battery", f.Battery, fp(85))
	want := map[string]string{"motion": "true", "odometer": "1234.5", "event": "motionchange",
		"charge": "false", "activity": "in_vehicle", "trip": "t-1", "n": "3", "ok": "true"}
	if len(f.Attributes) != len(want) {
		t.Errorf("attributes %v, want %v", f.Attributes, want)
	}
	for k, v := range want {
		if f.Attributes[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, f.Attributes[k], v)
		}
	}

	tests := []struct {
		name, body string
		check      func(t *testing.T, f *state.Fix)
	}{
		{"numeric device id and ms timestamp", `{"device_id": 123, "location": {"timestamp": 1609459200000}}`, func(t *testing.T, f *state.Fix) {
			if f.DeviceID != "123" || !f.Time.Equal(time.Unix(1609459200, 0)) || f.Location != nil {
				t.Errorf("fix %+v", f)
			}
		}},
		{"heartbeat without location", `{"device_id": "a"}`, func(t *testing.T, f *state.Fix) {
			if f.Location != nil || !f.Time.IsZero() || f.Attributes != nil {
				t.Errorf("fix %+v", f)
			}
		}},
		{"unknown values are negative", `{"device_id": "a", "location": {"coords": {"latitude": 1, "longitude": 2, "speed": -1, "heading": -1, "accuracy": -1}, "battery": {"level": -1}}}`, func(t *testing.T, f *state.Fix) {
			eqf(t, "speed", f.Speed, nil)
			eqf(t, "heading", f.Heading, nil)
			eqf(t, "accuracy", f.Accuracy, nil)
			eqf(t, "battery", f.Battery, nil)
		}},
		{"battery percent kept", `{"device_id": "a", "location": {"battery": {"level": 55}}}`, func(t *testing.T, f *state.Fix) {
			eqf(t, "battery", f.Battery, fp(55))
		}},
		{"null fields", `{"device_id": "a", "location": {"timestamp": null, "coords": null, "battery": null}}`, func(t *testing.T, f *state.Fix) {
			if f.Location != nil || f.Battery != nil {
				t.Errorf("fix %+v", f)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseJSON([]byte(tc.body), now)
			if err != nil {
				t.Fatalf("ParseJSON: %v", err)
			}
			tc.check(t, f)
		})
	}
}

func TestParseJSONErrors(t *testing.T) {
	tests := []struct {
		body  string
		field string // "" for ErrMissingID
	}{
		{`{}`, ""},
		{`{"device_id": ""}`, ""},
		{`{"device_id": null, "location": {}}`, ""},
		{`{"location": {"coords": {"latitude": 1, "longitude": 2}}}`, ""},
		{``, "json body"},
		{`{"device_id": "a"`, "json body"},
		{`{"device_id": "a"} trailing`, "json body"},
		{`[1, 2]`, "json body"},
		{`{"device_id": true}`, "json body"},
		{`{"device_id": "a", "location": []}`, "json body"},
		{`{"device_id": "a", "location": {"coords": {"latitude": "1"}}}`, "json body"},
		{`{"device_id": "a", "location": {"coords": {"latitude": 1e400, "longitude": 0}}}`, "json body"},
		{`{"device_id": "a", "location": {"coords": {"latitude": 95, "longitude": 0}}}`, "lat"},
		{`{"device_id": "a", "location": {"coords": {"latitude": 5, "longitude": -181}}}`, "lon"},
		{`{"device_id": "a", "location": {"coords": {"latitude": 5}}}`, "lon"},
		{`{"device_id": "a", "location": {"coords": {"longitude": 5}}}`, "lat"},
		{`{"device_id": "a", "location": {"coords": {"latitude": 5, "longitude": 5, "speed": 1e300}}}`, "speed"},
		{`{"device_id": "a", "location": {"timestamp": "soon"}}`, "timestamp"},
	}
	for _, tc := range tests {
		_, err := ParseJSON([]byte(tc.body), now)
		var fe *FieldError
		switch {
		case tc.field == "":
			if !errors.Is(err, ErrMissingID) {
				t.Errorf("ParseJSON(%s) = %v, want ErrMissingID", tc.body, err)
			}
		case !errors.As(err, &fe) || fe.Field != tc.field:
			t.Errorf("ParseJSON(%s) = %v, want invalid %s", tc.body, err, tc.field)
		}
	}
}

func TestParseJSONAttributeLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"device_id": "a", "location": {"event": "e", "extras": {`)
	for i := range 50 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%02d": %q`, i, strings.Repeat("v", 300))
	}
	b.WriteString(`, "obj": {"nested": [1, 2]}}}}`)
	f, err := ParseJSON([]byte(b.String()), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Attributes) != MaxAttributes || f.Attributes["event"] != "e" {
		t.Fatalf("%d attributes, event %q", len(f.Attributes), f.Attributes["event"])
	}
	for k, v := range f.Attributes {
		if len(v) > MaxAttrValue {
			t.Errorf("attribute %s is %d bytes", k, len(v))
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"id=dev1&lat=52.52&lon=13.405&timestamp=1609459200&speed=10&bearing=90&altitude=30&accuracy=5&batt=80&sat=7&ignition=true&charge=1",
		"deviceid=x&location=1,2&timestamp=2021-01-01T00:00:00Z&hdop=1.2&foo=bar",
		"id=x&timestamp=1609459200123",
		"id=x&lat=NaN&lon=Inf",
		"id=x&timestamp=2021-01-01 00:00:00 02:00",
		"id=%ff&%ff=%fe",
		"id=x&cell=257,02,16,2224&cell=257,02,16,2223,-90&wifi=00-14-22-01-23-45,-80&wifi=%22,-70",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, _ := url.ParseQuery(s)
		fix, err := Parse(q, now)
		if err != nil {
			return
		}
		if fix.DeviceID == "" {
			t.Fatal("accepted without a device id")
		}
		checkFix(t, fix)
	})
}

func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{
		`{"device_id": "a", "location": {"timestamp": "2024-05-01T11:59:30.500Z", "coords": {"latitude": 52.52, "longitude": 13.405, "speed": 10, "heading": 90}, "battery": {"level": 0.5, "is_charging": true}, "extras": {"x": 1}}}`,
		`{"device_id": 7, "location": {"timestamp": 1609459200000}}`,
		`{"device_id": "a", "location": {"coords": {"latitude": -91}}}`,
		`{"device_id": "\ud800"}`,
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fix, err := ParseJSON(body, now)
		if err != nil {
			return
		}
		if fix.DeviceID == "" {
			t.Fatal("accepted without a device id")
		}
		checkFix(t, fix)
	})
}

// checkFix asserts what every accepted fix guarantees.
func checkFix(t *testing.T, f *state.Fix) {
	t.Helper()
	if l := f.Location; l != nil && (l.Lat < -90 || l.Lat > 90 || l.Lng < -180 || l.Lng > 180 || math.IsNaN(l.Lat) || math.IsNaN(l.Lng)) {
		t.Fatalf("location out of range: %+v", l)
	}
	for _, p := range []*float64{f.Speed, f.Heading, f.Alt, f.Accuracy, f.Battery} {
		if p != nil && (math.IsNaN(*p) || math.IsInf(*p, 0) || math.Abs(*p) > 2e9) {
			t.Fatalf("unbounded number %v in %+v", *p, f)
		}
	}
	if len(f.Attributes) > MaxAttributes {
		t.Fatalf("%d attributes", len(f.Attributes))
	}
	for k, v := range f.Attributes {
		if k == "mobile_cells" || k == "wifi_points" {
			if len(v) > MaxListValue || !json.Valid([]byte(v)) || v[0] != '[' {
				t.Fatalf("attribute %s=%q is not a JSON array within %d bytes", k, v, MaxListValue)
			}
			continue
		}
		if k == "" || len(k) > MaxAttrKey || len(v) > MaxAttrValue {
			t.Fatalf("attribute %q=%q over the limits", k, v)
		}
	}
}

// TestParseLists: every cell and wifi value is kept, as far as they fit.
func TestParseLists(t *testing.T) {
	q := url.Values{"id": {"x"}, "cell": {"", "1,2,3,4"}, "wifi": {"aa-bb,-1"}}
	for i := range 100 {
		q.Add("cell", "262,1,"+strconv.Itoa(i)+",100000,-70")
	}
	f, err := Parse(q, now)
	if err != nil {
		t.Fatal(err)
	}
	var cells []map[string]int64
	if err := json.Unmarshal([]byte(f.Attributes["mobile_cells"]), &cells); err != nil {
		t.Fatalf("mobile_cells %q: %v", f.Attributes["mobile_cells"], err)
	}
	if len(cells) < 10 || len(cells) > 100 || len(f.Attributes["mobile_cells"]) > MaxListValue {
		t.Errorf("%d cells in %d bytes", len(cells), len(f.Attributes["mobile_cells"]))
	}
	if c := cells[0]; c["mcc"] != 1 || c["cell_id"] != 4 || len(c) != 4 || cells[1]["lac"] != 0 || cells[2]["rssi"] != -70 {
		t.Errorf("cells %v", cells[:3])
	}
	if got := f.Attributes["wifi_points"]; got != `[{"mac":"aa:bb","rssi":-1}]` {
		t.Errorf("wifi_points %s", got)
	}
}

func BenchmarkParse(b *testing.B) {
	q := url.Values{
		"id": {"862462030000000"}, "lat": {"52.520008"}, "lon": {"13.404954"},
		"timestamp": {"1714564800"}, "speed": {"21.6"}, "bearing": {"184.3"},
		"altitude": {"41.0"}, "accuracy": {"6.2"}, "batt": {"87"},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(q, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseJSON(b *testing.B) {
	body := []byte(`{"location":{"timestamp":"2024-05-01T11:59:30.500Z","coords":{"latitude":52.52,"longitude":13.405,"accuracy":5,"speed":10,"heading":90.5,"altitude":34},"is_moving":true,"odometer":1234.5,"battery":{"level":0.85,"is_charging":false},"activity":{"type":"in_vehicle"}},"device_id":"48241179"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseJSON(body, now); err != nil {
			b.Fatal(err)
		}
	}
}

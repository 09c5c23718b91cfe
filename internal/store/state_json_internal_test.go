package store

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/fleet"
)

// docOf is the state document as encoding/json writes it from stateDoc's
// tags: the form EncodeState must write byte for byte.
func docOf(s *fleet.State) ([]byte, error) {
	d := stateDoc{
		V: stateDocVersion, SourceID: s.SourceID, ConnectionStatus: s.ConnectionStatus, MovementStatus: s.MovementStatus,
		MovementStatusUpdate: docTime(s.MovementStatusUpdate), Ignition: s.Ignition, IgnitionUpdate: docTime(s.IgnitionUpdate),
		LastUpdate: docTime(s.LastUpdate), BatteryLevel: s.BatteryLevel, BatteryUpdate: docTime(s.BatteryUpdate),
		Inputs: s.Inputs, InputsUpdate: docTime(s.InputsUpdate), Outputs: s.Outputs, OutputsUpdate: docTime(s.OutputsUpdate),
		ActualTrackUpdate: docTime(s.ActualTrackUpdate), IngestedAt: docTime(s.IngestedAt),
		GPS: gpsDoc{
			Updated: docTime(s.GPS.Updated), SignalLevel: s.GPS.SignalLevel, Location: s.GPS.Location, Heading: s.GPS.Heading,
			Speed: s.GPS.Speed, Alt: s.GPS.Alt, Precision: s.GPS.Precision, GSMLBS: s.GPS.GSMLBS,
		},
	}
	if s.GSM != nil {
		d.GSM = &gsmDoc{Updated: docTime(s.GSM.Updated), SignalLevel: s.GSM.SignalLevel, NetworkName: s.GSM.NetworkName, Roaming: s.GSM.Roaming}
	}
	if len(s.Additional) > 0 {
		d.Additional = make(map[string]additionalDoc, len(s.Additional))
		for k, v := range s.Additional {
			d.Additional[k] = additionalDoc{Value: v.Value, Updated: docTime(v.Updated)}
		}
	}
	return json.Marshal(&d)
}

// randomState draws a state with every field sometimes left out and
// values at the edges of their encodings.
func randomState(r *rand.Rand) *fleet.State {
	zones := []*time.Location{time.UTC, time.FixedZone("W", -7*3600), time.FixedZone("E", 5*3600+1800)}
	at := func() time.Time {
		switch r.IntN(100) {
		case 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11:
			return time.Time{}
		case 12, 13, 14, 15:
			return time.Time{}.In(zones[1]) // zero, with a zone
		case 16:
			return time.Date(10000+r.IntN(3), 1, 1, 0, 0, 0, 0, time.UTC) // not encodable
		}
		return time.Unix(r.Int64N(4e9), r.Int64N(1e9)).In(zones[r.IntN(len(zones))])
	}
	intp := func() *int {
		if r.IntN(3) == 0 {
			return nil
		}
		v := r.IntN(400) - 200
		return &v
	}
	boolp := func() *bool {
		if r.IntN(3) == 0 {
			return nil
		}
		v := r.IntN(2) == 0
		return &v
	}
	strs := []string{"", "active", "moving", `q"u\\o`, "<b>&</b>", "nul\x00", "tab\tnl\n", "ünï", "\u2028\u2029", "bad\xffutf8", "\U0001F697"}
	str := func() string { return strs[r.IntN(len(strs))] }
	floats := []float64{0, math.Copysign(0, -1), 52.520008, -13.404954, 1e-7, -3.2e-9, 1e21, 123456789012345678901234.0, 1e-6, 0.1 + 0.2}
	bools := func() []bool {
		n := r.IntN(4) - 1
		if n < 0 {
			return nil
		}
		bs := make([]bool, n)
		for i := range bs {
			bs[i] = r.IntN(2) == 0
		}
		return bs
	}
	s := &fleet.State{TrackerID: r.Int64N(1000), ConnectionStatus: str(), MovementStatus: str(),
		MovementStatusUpdate: at(), Ignition: boolp(), IgnitionUpdate: at(), LastUpdate: at(), BatteryLevel: intp(),
		BatteryUpdate: at(), Inputs: bools(), InputsUpdate: at(), Outputs: bools(), OutputsUpdate: at(),
		ActualTrackUpdate: at(), IngestedAt: at()}
	if r.IntN(4) > 0 {
		s.SourceID = r.Int64N(1 << 40)
	}
	if r.IntN(4) > 0 {
		s.GPS = fleet.GPS{Updated: at(), SignalLevel: intp(), Heading: r.IntN(2) * r.IntN(360), Speed: r.IntN(2) * r.IntN(200),
			Alt: r.IntN(2) * (r.IntN(2000) - 500), Precision: intp(), GSMLBS: r.IntN(4) == 0}
		if r.IntN(3) > 0 {
			s.GPS.Location = &fleet.Location{Lat: floats[r.IntN(len(floats))], Lng: floats[r.IntN(len(floats))]}
		}
	}
	if r.IntN(2) == 0 {
		s.GSM = &fleet.GSM{Updated: at(), SignalLevel: intp(), Roaming: boolp()}
		if r.IntN(2) == 0 {
			v := str()
			s.GSM.NetworkName = &v
		}
	}
	if n := r.IntN(4); n > 0 {
		s.Additional = map[string]fleet.Additional{}
		for range n {
			s.Additional[str()+"k"] = fleet.Additional{Value: str(), Updated: at()}
		}
	}
	return s
}

// TestEncodeStateMatchesEncodingJSON holds the hand-written document to
// what encoding/json writes from stateDoc, byte for byte, and to the same
// errors.
func TestEncodeStateMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var errs int
	for i := range 20000 {
		s := randomState(r)
		want, wantErr := docOf(s)
		got, err := EncodeState(s)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("state %d: error %v, encoding/json's %v", i, err, wantErr)
		}
		if err != nil {
			errs++
			continue
		}
		if string(got) != string(want) {
			t.Fatalf("state %d:\n got %s\nwant %s", i, got, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		s := &fleet.State{GPS: fleet.GPS{Location: &fleet.Location{Lat: f}}}
		if _, err := EncodeState(s); err == nil {
			t.Errorf("EncodeState with lat %v: no error", f)
		}
	}
	if errs == 0 || errs > 15000 {
		t.Fatalf("%d of 20000 states failed to encode; the generator should make some, not most, unencodable", errs)
	}
}

func BenchmarkEncodeState(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	var states []*fleet.State
	for len(states) < 256 {
		if s := randomState(r); func() bool { _, err := docOf(s); return err == nil }() {
			states = append(states, s)
		}
	}
	for _, bc := range []struct {
		name string
		enc  func(*fleet.State) ([]byte, error)
	}{{"hand", EncodeState}, {"encoding-json", docOf}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := bc.enc(states[i%len(states)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

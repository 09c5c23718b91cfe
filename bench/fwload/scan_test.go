package main

import (
	"strconv"
	"testing"
	"time"
)

func TestLatRoundTrip(t *testing.T) {
	for _, seq := range []uint64{0, 1, 2, 99999, 123456, ringSize - 1} {
		for _, text := range []string{FormatLat(SeqLat(seq)), strconv.FormatFloat(SeqLat(seq), 'g', -1, 64)} {
			v, err := strconv.ParseFloat(text, 64)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := LatSeq(v)
			if !ok || got != seq {
				t.Fatalf("seq %d via %q: got %d %v", seq, text, got, ok)
			}
		}
	}
	for _, lat := range []float64{52.52, -80.000003, 14.330065796228606, -90} {
		if _, ok := LatSeq(lat); ok {
			t.Fatalf("foreign latitude %v taken for a sequence number", lat)
		}
	}
}

func TestSendLog(t *testing.T) {
	l := NewSendLog()
	seq, lat := l.Next(time.Now())
	if at, ok := l.SentAt(lat); !ok || at == 0 {
		t.Fatalf("sent sequence %d not found", seq)
	}
	l.Forget(seq)
	if _, ok := l.SentAt(lat); ok {
		t.Fatal("forgotten sequence still found")
	}
	if _, ok := l.SentAt(SeqLat(seq + 5)); ok {
		t.Fatal("unsent sequence found")
	}
}

const sampleBatch = `{"type":"event","event":"state_batch","user_time":"2024-01-02 03:04:05","data":[` +
	`{"source_id":10284,"gps":{"updated":"2018-10-17 12:51:43","signal_level":100,"location":{"lat":-79.99998,"lng":-90.99},"heading":248,"speed":0,"alt":431},"connection_status":"active"},` +
	`{"source_id":10285,"gps":{"location":{"lat": 14.330065796228606,"lng":1}}},` +
	`{"source_id":10286,"gps":{"location":null}}]}`

func TestScanStates(t *testing.T) {
	var lats []float64
	n := scanStates([]byte(sampleBatch), func(v float64) { lats = append(lats, v) })
	if n != 3 {
		t.Fatalf("states = %d, want 3", n)
	}
	if len(lats) != 2 || lats[0] != -79.99998 || lats[1] != 14.330065796228606 {
		t.Fatalf("lats = %v", lats)
	}
	if seq, ok := LatSeq(lats[0]); !ok || seq != 2 {
		t.Fatalf("seq of %v = %d %v", lats[0], seq, ok)
	}
}

func TestClassifyFleet(t *testing.T) {
	cases := map[string]frameKind{
		"X": frameHeartbeat,
		"b623a15d-1c2d-4e5f-8a9b-0c1d2e3f4a5b|0|X|": frameHandshake,
		sampleBatch: frameState,
		`{"type":"event","event":"state","data":{"source_id":1}}`:                  frameState,
		`{"type":"event","event":"lifecycle","data":{"source_id":1}}`:              frameEvent,
		`{"type":"response","action":"subscription/subscribe","events":["state"]}`: frameResponse,
		`{"type":"error","action":"subscription/subscribe","status":{"code":3}}`:   frameError,
		"":        frameOther,
		"garbage": frameOther,
	}
	for in, want := range cases {
		if got := classifyFleet([]byte(in)); got != want {
			t.Errorf("classify(%q) = %d, want %d", in, got, want)
		}
	}
}

func FuzzScanStates(f *testing.F) {
	f.Add([]byte(sampleBatch))
	f.Add([]byte(`{"push":{"channel":"fleet0","pub":{"data":{"source_id":1,"gps":{"location":{"lat":-79.9,"lng":2}}}}}}`))
	f.Add([]byte(`"lat":`))
	f.Add([]byte(`"lat":-`))
	f.Fuzz(func(t *testing.T, b []byte) {
		scanStates(b, func(float64) {})
		classifyFleet(b)
		splitCentrifugo(b, func([]byte) {})
	})
}

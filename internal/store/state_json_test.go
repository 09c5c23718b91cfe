package store_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/store"
	"github.com/fleetwire/fleetwire/internal/store/storetest"
)

// TestStateDocumentForm pins the on-disk shape: explicit keys, UTC
// RFC 3339 times with nanoseconds, zero times and nil values left out.
func TestStateDocumentForm(t *testing.T) {
	s := storetest.FullState(7, 100007)
	b, err := store.EncodeState(s)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["v"] != float64(1) || m["source_id"] != float64(100007) {
		t.Fatalf("document = %s", b)
	}
	if _, ok := m["tracker_id"]; ok {
		t.Fatalf("tracker id repeated in the document: %s", b)
	}
	if got := m["last_update"]; got != "2026-05-01T15:00:05.123456789Z" {
		t.Fatalf("last_update = %v, want UTC RFC 3339 with nanoseconds", got)
	}
	gps := m["gps"].(map[string]any)
	if loc := gps["location"].(map[string]any); loc["lat"] != 52.520008 || loc["lng"] != -13.404954 {
		t.Fatalf("gps.location = %v", loc)
	}

	bare, err := store.EncodeState(&fleet.State{TrackerID: 1, SourceID: 100001})
	if err != nil {
		t.Fatal(err)
	}
	if string(bare) != `{"v":1,"source_id":100001}` {
		t.Fatalf("bare document = %s", bare)
	}
}

func TestDecodeStateRejects(t *testing.T) {
	for _, doc := range []string{
		``, `null`, `[]`, `{"v":2}`, `{}`, `{"v":1,"last_update":"yesterday"}`,
		`{"v":1,"gps":{"location":{"lat":"x"}}}`, `{"v":1,"inputs":[1]}`,
	} {
		if s, err := store.DecodeState(1, []byte(doc)); err == nil {
			t.Errorf("DecodeState(%q) = %+v, want an error", doc, s)
		}
	}
	// Unknown keys from a newer writer are ignored; null times are zero.
	s, err := store.DecodeState(3, []byte(`{"v":1,"source_id":9,"future":{"x":1},"last_update":null}`))
	if err != nil || s.TrackerID != 3 || s.SourceID != 9 || !s.LastUpdate.IsZero() {
		t.Fatalf("DecodeState with unknown keys = %+v, %v", s, err)
	}
}

// FuzzDecodeState: no document panics the decoder, and whatever decodes
// re-encodes to a document that decodes to the same state.
func FuzzDecodeState(f *testing.F) {
	full, err := store.EncodeState(storetest.FullState(1, 100001))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Add([]byte(`{"v":1,"source_id":100001}`))
	f.Add([]byte(`{"v":1,"gsm":{"updated":"2026-01-02T03:04:05+07:00"},"additional":{"a":{"value":"1"}}}`))
	f.Add([]byte(`{"v":1,"gps":{"location":null,"speed":-1},"inputs":[],"outputs":[true]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		s, err := store.DecodeState(42, doc)
		if err != nil {
			return
		}
		again, err := store.EncodeState(s)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		s2, err := store.DecodeState(42, again)
		if err != nil {
			t.Fatalf("decode of re-encoded %s: %v", again, err)
		}
		if !reflect.DeepEqual(normalize(s), normalize(s2)) {
			t.Fatalf("round trip changed the state:\n%+v\n%+v", s, s2)
		}
	})
}

// normalize maps the encodings that carry the same meaning (empty and nil
// slices and maps) onto one.
func normalize(s *fleet.State) *fleet.State {
	c := s.Clone()
	if len(c.Additional) == 0 {
		c.Additional = nil
	}
	return c
}

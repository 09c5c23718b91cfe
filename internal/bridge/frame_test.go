package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/fleetwire/fleetwire/internal/apierr"
)

func TestParseFrame(t *testing.T) {
	ok := []struct {
		in, topic, payload string
	}{
		{`["clown.talk/-/config/set", {}]`, "clown.talk/-/config/set", `{}`},
		{"[\"relay/i2c0-3b/set\", {\"state\": false}]\n", "relay/i2c0-3b/set", `{"state": false}`},
		{` ["a",null] `, "a", `null`},
		{`["a/b",23.5]`, "a/b", `23.5`},
		{`["\u0061\/b",[1,2]]`, "a/b", `[1,2]`},
		{`["",""]`, "", `""`},
	}
	for _, c := range ok {
		topic, payload, err := ParseFrame([]byte(c.in))
		if err != nil {
			t.Errorf("ParseFrame(%q): %v", c.in, err)
			continue
		}
		if topic != c.topic || string(payload) != c.payload {
			t.Errorf("ParseFrame(%q) = %q, %s; want %q, %s", c.in, topic, payload, c.topic, c.payload)
		}
	}
	bad := []string{
		``, ` `, `x`, `{}`, `"a"`, `null`, `[]`, `["a"]`, `["a",1,2]`, `[null,1]`, `[1,2]`,
		`[{"a":1},2]`, `["a",1`, `["a",1]]`, `["a",1] x`, `["a",}]`, `[true,1]`,
	}
	for _, in := range bad {
		_, _, err := ParseFrame([]byte(in))
		if !errors.Is(err, apierr.WrongRequestFormat) {
			t.Errorf("ParseFrame(%q) err = %v, want code 5", in, err)
		}
	}
}

func TestParseFrameCopiesPayload(t *testing.T) {
	in := []byte(`["a",{"x":1}]`)
	_, p, err := ParseFrame(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = ' '
	}
	if string(p) != `{"x":1}` {
		t.Fatalf("payload changed with the input: %s", p)
	}
}

func TestValidTopic(t *testing.T) {
	for _, s := range []string{"a", "dev-1/relay/i2c0-3b/set", "dev/thermometer/0:1/temperature", "ü/ß"} {
		if !ValidTopic(s) {
			t.Errorf("ValidTopic(%q) = false", s)
		}
	}
	for _, s := range []string{"", "/", "a/", "/a", "a//b", "a/+/b", "a/#", "a+", "a\x00", "\xff", strings.Repeat("a", MaxTopicLen+1)} {
		if ValidTopic(s) {
			t.Errorf("ValidTopic(%q) = true", s)
		}
	}
}

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern, topic string
		want           bool
	}{
		{"#", "a", true},
		{"#", "a/b/c", true},
		{"a/#", "a", true},
		{"a/#", "a/b", true},
		{"a/#", "a/b/c", true},
		{"a/#", "b/a", false},
		{"+", "a", true},
		{"+", "a/b", false},
		{"+/+", "a/b", true},
		{"+/b", "a/b", true},
		{"+/b", "a/c", false},
		{"dev-1/#", "dev-1/thermometer/0:1/temperature", true},
		{"+/thermometer/#", "dev-1/thermometer/0:1/temperature", true},
		{"+/thermometer/#", "dev-1/relay/i2c0-3b", false},
		{"a/b", "a/b", true},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a/+/#", "a/b", true},
		{"a/+/#", "a", false},
		{"a/+", "a/", true},
		{"a#", "a#", false},
		{"#/a", "x/a", false},
		{"a/#/b", "a/x/b", false},
		{"a+", "a+", false},
		{"", "", false},
		{"a/b", "a/+", false},
		{"a/+", "a/+", true},
	}
	for _, c := range cases {
		if got := Match(c.pattern, c.topic); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.topic, got, c.want)
		}
	}
}

func TestMatchAllocs(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		Match("+/thermometer/#", "dev-1/thermometer/0:1/temperature")
	})
	if n != 0 {
		t.Fatalf("Match allocates %v times", n)
	}
}

func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{
		`["clown.talk/-/config/set", {}]`, `["relay/i2c0-3b/set", {"state": false}]`,
		`["$sub",["a/#"]]`, `[1,2]`, `["a"]`, `not json`, `["a",1] `, `["\ud800",1]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		topic, payload, err := ParseFrame(b)
		if err != nil {
			if !errors.Is(err, apierr.WrongRequestFormat) {
				t.Fatalf("error %v is not code 5", err)
			}
			return
		}
		if !json.Valid(payload) {
			t.Fatalf("payload %q is not JSON", payload)
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		// The frame rebuilt from its parts parses to the same parts.
		tj, _ := json.Marshal(topic)
		again := append(append(append(append([]byte("["), tj...), ','), payload...), ']')
		t2, p2, err := ParseFrame(again)
		if err != nil {
			t.Fatalf("rebuilt frame %q: %v", again, err)
		}
		if t2 != topic || !bytes.Equal(p2, payload) {
			t.Fatalf("rebuilt frame parsed to %q, %q; want %q, %q", t2, p2, topic, payload)
		}
	})
}

// matchRef is Match written the plain way, over split levels.
func matchRef(pattern, topic string) bool {
	if !ValidPattern(pattern) {
		return false
	}
	p := strings.Split(pattern, "/")
	tl := strings.Split(topic, "/")
	for i, seg := range p {
		if seg == "#" {
			return true
		}
		if i >= len(tl) {
			return false
		}
		if seg != "+" && seg != tl[i] {
			return false
		}
	}
	return len(tl) == len(p)
}

func fixRef(pattern, topic string) bool {
	// MQTT: "a/#" also matches the parent "a".
	if strings.HasSuffix(pattern, "/#") && ValidPattern(pattern) && matchRef(strings.TrimSuffix(pattern, "/#"), topic) {
		return true
	}
	return matchRef(pattern, topic)
}

func FuzzMatch(f *testing.F) {
	f.Add("#", "a/b")
	f.Add("a/#", "a")
	f.Add("+/thermometer/#", "dev-1/thermometer/0:1/temperature")
	f.Add("a/+", "a/")
	f.Add("a/#/b", "a/x/b")
	f.Add("+/+", "a")
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		got := Match(pattern, topic)
		if want := fixRef(pattern, topic); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", pattern, topic, got, want)
		}
		if ValidTopic(topic) {
			if !Match(topic, topic) {
				t.Fatalf("topic %q does not match itself", topic)
			}
			if !Match("#", topic) {
				t.Fatalf("# does not match %q", topic)
			}
		}
		if got && !ValidPattern(pattern) {
			t.Fatalf("invalid pattern %q matched %q", pattern, topic)
		}
	})
}

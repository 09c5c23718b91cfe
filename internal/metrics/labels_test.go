package metrics

import (
	"slices"
	"strings"
	"testing"
)

func TestParseLabels(t *testing.T) {
	for _, tc := range []struct {
		text          string
		names, values []string
	}{
		{"", nil, nil},
		{`protocol="osmand",result="accepted"`, []string{"protocol", "result"}, []string{"osmand", "accepted"}},
		{` transport = "long-polling" `, []string{"transport"}, []string{"long-polling"}},
		{`v="a\"b\\c\nd,e}"`, []string{"v"}, []string{"a\"b\\c\nd,e}"}},
	} {
		names, values, err := parseLabels(tc.text)
		if err != nil || !slices.Equal(names, tc.names) || !slices.Equal(values, tc.values) {
			t.Errorf("parseLabels(%q) = %q %q %v, want %q %q", tc.text, names, values, err, tc.names, tc.values)
		}
	}
	for _, text := range []string{`k`, `k=`, `k=a`, `k="a`, `1k="a"`, `k="a"} 1`, `k="a",k="b"`, `node="x"`, `__name__="x"`, "k=\"a\"\nx"} {
		if names, _, err := parseLabels(text); err == nil {
			t.Errorf("parseLabels(%q) = %q, want an error", text, names)
		}
	}
}

var escape = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// FuzzParseLabels: parsing never panics, and what it accepts is a label
// set that writes back to text parsing to the same names and values.
func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{``, `protocol="osmand",result="accepted"`, `a="\n\"\\"`, `a="b",`, `a="b"} 0`, "a=\"b\"\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		names, values, err := parseLabels(text)
		if err != nil {
			return
		}
		if len(names) != len(values) {
			t.Fatalf("%d names, %d values", len(names), len(values))
		}
		var parts []string
		for i, n := range names {
			if slices.Contains(names[:i], n) || n == nodeLabel {
				t.Fatalf("label %q accepted", n)
			}
			parts = append(parts, n+`="`+escape.Replace(values[i])+`"`)
		}
		n2, v2, err := parseLabels(strings.Join(parts, ","))
		if err != nil || !slices.Equal(names, n2) || !slices.Equal(values, v2) {
			t.Fatalf("%q → %q %q → %q %q %v", text, names, values, n2, v2, err)
		}
	})
}

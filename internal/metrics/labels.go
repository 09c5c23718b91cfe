package metrics

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// nodeLabel is the label SetNode adds to every series; no registration may
// use it.
const nodeLabel = "node"

// parseLabels splits Prometheus label text without braces
// (`protocol="osmand",result="accepted"`) into label names and values, in
// the order given. Empty text is no labels. It reads the text with the
// exposition format's own parser.
func parseLabels(text string) (names, values []string, err error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil, nil
	}
	// A raw line break is never part of label text (values escape it as \n)
	// and would start another sample line.
	if strings.ContainsAny(text, "\n\r") {
		return nil, nil, errors.New("line break in label text")
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader("m{" + text + "} 0\n"))
	if err != nil {
		return nil, nil, err
	}
	mf := mfs["m"]
	if len(mfs) != 1 || mf == nil || len(mf.GetMetric()) != 1 {
		return nil, nil, errors.New("not one label set")
	}
	for _, lp := range mf.GetMetric()[0].GetLabel() {
		n := lp.GetName()
		switch {
		case n == nodeLabel:
			return nil, nil, fmt.Errorf("label %q is reserved for SetNode", n)
		case slices.Contains(names, n):
			return nil, nil, fmt.Errorf("label %q given twice", n)
		}
		names = append(names, n)
		values = append(values, lp.GetValue())
	}
	return names, values, nil
}

// mustParseLabels is parseLabels for a registration of metric name, which
// panics on malformed text.
func mustParseLabels(name, text string) (names, values []string) {
	names, values, err := parseLabels(text)
	if err != nil {
		panic(fmt.Errorf("metrics: %s labels %q: %w", name, text, err))
	}
	return names, values
}

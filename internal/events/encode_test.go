package events

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/fleetwire/fleetwire/internal/apierr"
)

// TestErrorEchoIsUTF8: a client message with invalid UTF-8 inside a JSON
// string (a POST body can carry one) is echoed in the error's data with
// U+FFFD in its place, never raw: the error goes out in a WebSocket text
// frame, which a browser rejects if it is not UTF-8.
func TestErrorEchoIsUTF8(t *testing.T) {
	data := json.RawMessage("{\"action\":\"sub\xffscribe\",\"x\":\"\xed\xa0\x80\"}")
	b := encodeError("", apierr.WrongRequestFormat, data)
	if !utf8.Valid(b) {
		t.Fatalf("error frame is not UTF-8: %q", b)
	}
	var v struct {
		Data struct{ Action, X string }
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	if v.Data.Action != "sub\uFFFDscribe" || v.Data.X != "\uFFFD" {
		t.Fatalf("echoed data %+v", v.Data)
	}
}

package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/fleetwire/fleetwire/internal/apierr"
)

// MaxTopicLen is the longest bridge topic or pattern, in bytes.
const MaxTopicLen = 1024

// ParseFrame parses one client frame: a JSON array of exactly two
// elements, a topic string and a payload of any JSON type. Whitespace
// around the array is allowed. The returned payload is a copy of the
// second element as it was written. A frame of any other shape is
// apierr.WrongRequestFormat (with a detail); the topic itself is not
// checked here (see ValidTopic).
func ParseFrame(b []byte) (topic string, payload json.RawMessage, err error) {
	b = bytes.Trim(b, " \t\r\n") // JSON whitespace only
	if len(b) == 0 {
		return "", nil, apierr.WrongRequestFormat.With("empty frame")
	}
	if b[0] != '[' {
		return "", nil, apierr.WrongRequestFormat.With(`a frame is a JSON array ["topic", payload]`)
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(b, &arr); err != nil {
		return "", nil, apierr.WrongRequestFormat.With("frame is not valid JSON")
	}
	if len(arr) != 2 {
		return "", nil, apierr.WrongRequestFormat.With(fmt.Sprintf("a frame has exactly 2 elements, not %d", len(arr)))
	}
	if len(arr[0]) == 0 || arr[0][0] != '"' {
		return "", nil, apierr.WrongRequestFormat.With("the topic (first element) is not a string")
	}
	if err := json.Unmarshal(arr[0], &topic); err != nil {
		return "", nil, apierr.WrongRequestFormat.With("the topic (first element) is not a string")
	}
	return topic, arr[1], nil
}

// ValidTopic reports whether t can name a value or a command: 1 to
// MaxTopicLen bytes of UTF-8, levels separated by '/', no empty level,
// no wildcard ('+', '#') and no NUL.
func ValidTopic(t string) bool {
	if len(t) == 0 || len(t) > MaxTopicLen || !utf8.ValidString(t) {
		return false
	}
	if strings.ContainsAny(t, "+#\x00") {
		return false
	}
	for seg := range strings.SplitSeq(t, "/") {
		if seg == "" {
			return false
		}
	}
	return true
}

// ValidPattern reports whether p is a subscription pattern Match accepts:
// 1 to MaxTopicLen bytes of UTF-8 without NUL, where '+' stands alone in
// its level and '#' stands alone in the last level.
func ValidPattern(p string) bool {
	if len(p) == 0 || len(p) > MaxTopicLen || !utf8.ValidString(p) || strings.IndexByte(p, 0) >= 0 {
		return false
	}
	for {
		seg, rest, more := strings.Cut(p, "/")
		switch {
		case seg == "#":
			return !more
		case seg == "+":
		case strings.ContainsAny(seg, "+#"):
			return false
		}
		if !more {
			return true
		}
		p = rest
	}
}

// Match reports whether topic matches pattern, with MQTT wildcards: '+'
// matches exactly one level, '#' as the last level matches any number of
// levels, including none ("a/#" matches "a"). A pattern that is not
// ValidPattern matches nothing; a topic containing a wildcard is taken
// literally. Match does not allocate.
func Match(pattern, topic string) bool {
	if !ValidPattern(pattern) {
		return false
	}
	for {
		pseg, prest, pmore := strings.Cut(pattern, "/")
		if pseg == "#" {
			return true
		}
		tseg, trest, tmore := strings.Cut(topic, "/")
		if pseg != "+" && pseg != tseg {
			return false
		}
		switch {
		case !pmore && !tmore:
			return true
		case !tmore:
			// The topic ended; only a trailing "#" still matches.
			return prest == "#"
		case !pmore:
			return false
		}
		pattern, topic = prest, trest
	}
}

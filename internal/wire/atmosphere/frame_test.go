package atmosphere

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
)

func TestJSLen(t *testing.T) {
	for _, c := range []struct {
		s    string
		want int
	}{
		{"", 0},
		{"hello", 5},
		{"é", 1},
		{"😀", 2},
		{"a|b", 3},
		{"日本語", 3},
		{"x😀é", 4},
		{"\xff", 1},     // invalid byte: one U+FFFD
		{"\xe6\x97", 2}, // truncated sequence: one U+FFFD per byte
	} {
		if got := jsLen([]byte(c.s)); got != c.want {
			t.Errorf("jsLen(%q) = %d, want %d", c.s, got, c.want)
		}
	}
}

func TestAppendFrame(t *testing.T) {
	for _, c := range []struct{ msg, want string }{
		{"hello", "5|hello"},
		{"", "0|"},
		{"é", "1|é"},
		{"😀", "2|😀"},
		{"a|b", "3|a|b"},
		{"3f2504e0-4f89-11d3-9a0c-0305e82c3301|0|X|", "41|3f2504e0-4f89-11d3-9a0c-0305e82c3301|0|X|"},
	} {
		if got := string(appendFrame(nil, []byte(c.msg))); got != c.want {
			t.Errorf("appendFrame(%q) = %q, want %q", c.msg, got, c.want)
		}
	}
	if got := string(appendMessage([]byte("x"), []byte("é"), false)); got != "xé" {
		t.Errorf("unframed: %q", got)
	}
}

// jsParser splits a trackMessageLength stream the way atmosphere.js
// does: on JavaScript strings (UTF-16), keeping an incomplete tail for the
// next chunk.
type jsParser struct{ partial []uint16 }

var errNotNumber = errors.New("message length is not a number")

func (p *jsParser) feed(chunk []uint16) ([]string, error) {
	buf := append(p.partial, chunk...)
	var out []string
	for {
		i := -1
		for j, u := range buf {
			if u == '|' {
				i = j
				break
			}
		}
		if i < 0 {
			break
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(utf16.Decode(buf[:i]))))
		if err != nil || n < 0 {
			p.partial = nil
			return out, errNotNumber
		}
		if len(buf)-(i+1) < n {
			break
		}
		out = append(out, string(utf16.Decode(buf[i+1:i+1+n])))
		buf = buf[i+1+n:]
	}
	p.partial = append([]uint16(nil), buf...)
	return out, nil
}

// jsString is the JavaScript string a client decodes from UTF-8 bytes.
func jsString(b []byte) []uint16 { return utf16.Encode([]rune(string(b))) }

func TestJSParser(t *testing.T) {
	var p jsParser
	stream := jsString(appendFrame(appendFrame(appendFrame(nil, []byte("é")), []byte("😀")), []byte("a|b")))
	var got []string
	for _, u := range stream { // one code unit at a time
		msgs, err := p.feed([]uint16{u})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, msgs...)
	}
	if strings.Join(got, ",") != "é,😀,a|b" {
		t.Fatalf("got %q", got)
	}
}

func FuzzFrame(f *testing.F) {
	f.Add("hello\x00world", uint8(3))
	f.Add("é\x00😀\x00a|b\x00\x00|||", uint8(1))
	f.Add("\xff\xe6\x97\x00日本語", uint8(7))
	f.Add("12|34\x00 5|x", uint8(0))
	f.Fuzz(func(t *testing.T, joined string, step uint8) {
		msgs := strings.Split(joined, "\x00")
		var stream []byte
		for _, m := range msgs {
			stream = appendFrame(stream, []byte(m))
		}
		units := jsString(stream)
		n := int(step)%17 + 1
		var p jsParser
		var got []string
		for len(units) > 0 {
			k := min(n, len(units))
			out, err := p.feed(units[:k])
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			got = append(got, out...)
			units = units[k:]
		}
		if len(p.partial) != 0 {
			t.Fatalf("left over %q", string(utf16.Decode(p.partial)))
		}
		if len(got) != len(msgs) {
			t.Fatalf("got %d messages, want %d", len(got), len(msgs))
		}
		for i, m := range msgs {
			if want := string([]rune(m)); got[i] != want {
				t.Fatalf("message %d: got %q, want %q", i, got[i], want)
			}
		}
	})
}

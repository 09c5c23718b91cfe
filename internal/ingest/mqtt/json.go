package mqtt

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"unicode/utf8"
)

// The payloads on the telemetry topics are small flat JSON objects. They
// are read with the scanner below rather than encoding/json: it validates
// the JSON grammar as it goes, hands out keys and values as slices of the
// payload and allocates only for strings that contain escapes.

// maxDepth bounds nesting inside a skipped value.
const maxDepth = 32

var errSyntax = errors.New("invalid JSON")

type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindObject
	kindArray
)

func (k kind) String() string {
	switch k {
	case kindNull:
		return "null"
	case kindBool:
		return "boolean"
	case kindNumber:
		return "number"
	case kindString:
		return "string"
	case kindObject:
		return "object"
	}
	return "array"
}

// value is one scanned JSON value. raw is the number literal, or the
// string's contents between the quotes (still escaped when esc is set), or
// the whole text of an object or array.
type value struct {
	kind kind
	b    bool
	esc  bool
	raw  []byte
}

// float returns a number value; a number outside float64 is an error.
func (v *value) float() (float64, bool) {
	if v.kind != kindNumber {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(v.raw), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// str returns a string value's text, unescaped.
func (v *value) str() (string, bool) {
	if v.kind != kindString {
		return "", false
	}
	if !v.esc {
		if !utf8.Valid(v.raw) {
			return "", false
		}
		return string(v.raw), true
	}
	// Rare: let encoding/json apply the escapes, surrogate pairs included.
	q := make([]byte, 0, len(v.raw)+2)
	q = append(append(append(q, '"'), v.raw...), '"')
	var s string
	if err := json.Unmarshal(q, &s); err != nil || !utf8.ValidString(s) {
		return "", false
	}
	return s, true
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// object calls fn for each member of the object that is the whole of
// payload. It stops at fn's first error.
func object(payload []byte, fn func(key []byte, v value) error) error {
	s := scanner{b: payload}
	if err := s.members(fn); err != nil {
		return err
	}
	if s.ws(); s.i != len(s.b) {
		return errSyntax
	}
	return nil
}

func (s *scanner) members(fn func(key []byte, v value) error) error {
	if s.peek() != '{' {
		return errSyntax
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return nil
	}
	var v value
	for {
		if s.peek() != '"' {
			return errSyntax
		}
		key, esc, ok := s.str()
		if !ok {
			return errSyntax
		}
		if esc {
			// An escaped key never names a field we know; unescape it
			// anyway so that readings keep the sensor's real name.
			k := value{kind: kindString, esc: true, raw: key}
			ks, ok := k.str()
			if !ok {
				return errSyntax
			}
			key = []byte(ks)
		}
		if s.peek() != ':' {
			return errSyntax
		}
		s.i++
		if !s.value(&v, 0) {
			return errSyntax
		}
		if err := fn(key, v); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return errSyntax
		}
	}
}

// array calls fn for each element of the array v.
func (v *value) array(fn func(e value) error) error {
	if v.kind != kindArray {
		return errSyntax
	}
	s := scanner{b: v.raw, i: 1}
	if s.peek() == ']' {
		return nil
	}
	var e value
	for {
		if !s.value(&e, 1) {
			return errSyntax
		}
		if err := fn(e); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			return nil
		default:
			return errSyntax
		}
	}
}

// value scans one value into v.
func (s *scanner) value(v *value, depth int) bool {
	*v = value{}
	switch c := s.peek(); {
	case c == '"':
		raw, esc, ok := s.str()
		v.kind, v.raw, v.esc = kindString, raw, esc
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		v.kind = kindNumber
		start := s.i
		if !s.number() {
			return false
		}
		v.raw = s.b[start:s.i]
		return true
	case c == 't':
		v.kind, v.b = kindBool, true
		return s.lit("true")
	case c == 'f':
		v.kind = kindBool
		return s.lit("false")
	case c == 'n':
		v.kind = kindNull
		return s.lit("null")
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return false
		}
		start := s.i
		if !s.skip(depth) {
			return false
		}
		v.kind, v.raw = kindArray, s.b[start:s.i]
		if c == '{' {
			v.kind = kindObject
		}
		return true
	}
	return false
}

func (s *scanner) lit(word string) bool {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

// skip scans an object or array, validating it.
func (s *scanner) skip(depth int) bool {
	open := s.b[s.i]
	s.i++
	end := byte('}')
	if open == '[' {
		end = ']'
	}
	if s.peek() == end {
		s.i++
		return true
	}
	var v value
	for {
		if open == '{' {
			if s.peek() != '"' {
				return false
			}
			if _, _, ok := s.str(); !ok {
				return false
			}
			if s.peek() != ':' {
				return false
			}
			s.i++
		}
		if !s.value(&v, depth+1) {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case end:
			s.i++
			return true
		default:
			return false
		}
	}
}

// str scans a string starting at its opening quote and returns its
// contents.
func (s *scanner) str() (raw []byte, esc, ok bool) {
	s.i++ // opening quote
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, esc, true
		case c == '\\':
			esc = true
			if s.i+1 >= len(s.b) {
				return nil, false, false
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					return nil, false, false
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if !isHex(h) {
						return nil, false, false
					}
				}
				s.i += 6
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		default:
			s.i++
		}
	}
	return nil, false, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number scans a number literal by the JSON grammar.
func (s *scanner) number() bool {
	b := s.b
	if s.i < len(b) && b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(b) && b[s.i] == '0':
		s.i++
	case s.i < len(b) && b[s.i] >= '1' && b[s.i] <= '9':
		for s.i < len(b) && isDigit(b[s.i]) {
			s.i++
		}
	default:
		return false
	}
	if s.i < len(b) && b[s.i] == '.' {
		s.i++
		if s.i >= len(b) || !isDigit(b[s.i]) {
			return false
		}
		for s.i < len(b) && isDigit(b[s.i]) {
			s.i++
		}
	}
	if s.i < len(b) && (b[s.i] == 'e' || b[s.i] == 'E') {
		s.i++
		if s.i < len(b) && (b[s.i] == '+' || b[s.i] == '-') {
			s.i++
		}
		if s.i >= len(b) || !isDigit(b[s.i]) {
			return false
		}
		for s.i < len(b) && isDigit(b[s.i]) {
			s.i++
		}
	}
	return true
}

package websocket

import "unicode/utf8"

// utf8State validates UTF-8 text that arrives in pieces (frames, or reads
// of one frame), so that an invalid sequence fails the message as soon as
// its bytes arrive. It holds the start of a sequence the last piece cut.
type utf8State struct {
	pend [3]byte
	n    uint8
}

// seqLen is the length of the sequence a lead byte starts, 0 for a byte
// that cannot start one.
func seqLen(b byte) int {
	switch {
	case b < 0x80:
		return 1
	case b >= 0xc2 && b <= 0xdf:
		return 2
	case b >= 0xe0 && b <= 0xef:
		return 3
	case b >= 0xf0 && b <= 0xf4:
		return 4
	}
	return 0
}

// validPrefix reports whether p, shorter than the sequence its first byte
// starts, can still be completed to a valid sequence: the second byte's
// range depends on the lead (no overlong forms, no surrogates, nothing
// above U+10FFFF).
func validPrefix(p []byte) bool {
	if len(p) == 0 || len(p) >= seqLen(p[0]) {
		return false
	}
	if len(p) >= 2 {
		lo, hi := byte(0x80), byte(0xbf)
		switch p[0] {
		case 0xe0:
			lo = 0xa0
		case 0xed:
			hi = 0x9f
		case 0xf0:
			lo = 0x90
		case 0xf4:
			hi = 0x8f
		}
		if p[1] < lo || p[1] > hi {
			return false
		}
	}
	if len(p) == 3 && (p[2] < 0x80 || p[2] > 0xbf) {
		return false
	}
	return true
}

// incompleteTail returns where a sequence cut by the end of b starts, or
// len(b) when b does not end inside a sequence that may be valid.
func incompleteTail(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-3; i-- {
		if b[i]&0xc0 != 0x80 {
			if l := seqLen(b[i]); l > len(b)-i {
				return i
			}
			return len(b)
		}
	}
	return len(b)
}

// feed validates the next piece of the text. It reports false as soon as
// the text can no longer be valid UTF-8, however it continues.
func (s *utf8State) feed(b []byte) bool {
	if s.n > 0 {
		need := seqLen(s.pend[0])
		var seq [4]byte
		copy(seq[:], s.pend[:s.n])
		k := copy(seq[s.n:need], b)
		have := int(s.n) + k
		if have < need {
			if !validPrefix(seq[:have]) {
				return false
			}
			s.n = uint8(copy(s.pend[:], seq[:have]))
			return true
		}
		if !utf8.Valid(seq[:need]) {
			return false
		}
		b = b[k:]
		s.n = 0
	}
	t := incompleteTail(b)
	if !utf8.Valid(b[:t]) {
		return false
	}
	if t < len(b) {
		if !validPrefix(b[t:]) {
			return false
		}
		s.n = uint8(copy(s.pend[:], b[t:]))
	}
	return true
}

// complete reports whether the text fed so far ends on a sequence
// boundary.
func (s *utf8State) complete() bool { return s.n == 0 }

// validUTF8Prefix returns the longest prefix of s, at most max bytes, that
// ends on a rune boundary of valid UTF-8 text.
func validUTF8Prefix(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

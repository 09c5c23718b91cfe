package atmosphere

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jsLen is the length of the UTF-8 text b as JavaScript counts it: UTF-16
// code units, so a rune outside the Basic Multilingual Plane counts 2. An
// invalid byte decodes to U+FFFD and counts 1.
func jsLen(b []byte) int {
	n := 0
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		n += utf16.RuneLen(r)
		b = b[size:]
	}
	return n
}

// appendFrame appends msg to dst in trackMessageLength form, `<len>|<msg>`,
// where len is jsLen(msg).
func appendFrame(dst, msg []byte) []byte {
	dst = strconv.AppendInt(dst, int64(jsLen(msg)), 10)
	dst = append(dst, '|')
	return append(dst, msg...)
}

// appendMessage appends msg framed when track is set, raw otherwise.
func appendMessage(dst, msg []byte, track bool) []byte {
	if track {
		return appendFrame(dst, msg)
	}
	return append(dst, msg...)
}

// Package cursor reads the big-endian fields of binary device packets.
// The first read past the end records an error and every read after it
// returns zeros, so a decoder reads a whole structure and checks Err once.
package cursor

import (
	"encoding/binary"
	"fmt"
)

// Reader reads fields from a byte slice.
type Reader struct {
	b    []byte
	off  int
	err  error
	base error
}

// New returns a Reader over b whose errors wrap base (a package's
// "malformed packet" error).
func New(b []byte, base error) *Reader { return &Reader{b: b, base: base} }

// Err is the first error, nil while every read fitted.
func (r *Reader) Err() error { return r.err }

// Offset is how many bytes were read.
func (r *Reader) Offset() int { return r.off }

// Left is how many bytes are unread.
func (r *Reader) Left() int { return len(r.b) - r.off }

// Fail records an error (the first one is kept).
func (r *Reader) Fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", r.base, fmt.Sprintf(format, args...))
	}
}

// Take returns the next n bytes, aliasing the input; nil after an error.
func (r *Reader) Take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || r.Left() < n {
		r.Fail("truncated at byte %d (%d more wanted, %d left)", r.off, n, r.Left())
		return nil
	}
	b := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return b
}

// Rest returns every unread byte.
func (r *Reader) Rest() []byte { return r.Take(r.Left()) }

// Bytes returns a copy of the next n bytes.
func (r *Reader) Bytes(n int) []byte {
	b := r.Take(n)
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// U8 reads one byte.
func (r *Reader) U8() uint8 {
	if b := r.Take(1); b != nil {
		return b[0]
	}
	return 0
}

// U16 reads two bytes.
func (r *Reader) U16() uint16 {
	if b := r.Take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

// U32 reads four bytes.
func (r *Reader) U32() uint32 {
	if b := r.Take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// U64 reads eight bytes.
func (r *Reader) U64() uint64 {
	if b := r.Take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// Uint reads an unsigned number of size bytes (at most 8).
func (r *Reader) Uint(size int) uint64 {
	var v uint64
	for _, x := range r.Take(size) {
		v = v<<8 | uint64(x)
	}
	return v
}

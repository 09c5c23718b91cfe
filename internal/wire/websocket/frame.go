package websocket

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Opcode is a frame's opcode (RFC 6455 §5.2).
type Opcode byte

// The opcodes RFC 6455 defines; every other value is refused with 1002.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

func (op Opcode) isControl() bool { return op&0x8 != 0 }

func (op Opcode) known() bool {
	switch op {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
		return true
	}
	return false
}

// Close status codes (RFC 6455 §7.4.1 and the IANA registry).
const (
	CloseNormal             = 1000 // normal closure
	CloseGoingAway          = 1001 // the endpoint is going away (server shutdown)
	CloseProtocolError      = 1002 // the peer broke the protocol
	CloseUnsupportedData    = 1003 // a data type the endpoint cannot accept
	CloseNoStatus           = 1005 // a close frame without a code (never sent)
	CloseAbnormal           = 1006 // closed without a close frame (never sent)
	CloseInvalidPayload     = 1007 // data inconsistent with its type, such as invalid UTF-8
	ClosePolicyViolation    = 1008 // a message that violates the endpoint's policy
	CloseMessageTooBig      = 1009 // a message too big to process
	CloseMandatoryExtension = 1010 // the client needed an extension the server refused
	CloseInternalError      = 1011 // the server met an unexpected condition
	CloseServiceRestart     = 1012 // the service is restarting
	CloseTryAgainLater      = 1013 // temporary condition, such as overload
	CloseBadGateway         = 1014 // a gateway got an invalid response upstream
)

// ValidCloseCode reports whether code may be carried by a close frame:
// 1000–1003, 1007–1014 (assigned), and 3000–4999 (registered and private
// use). 1004–1006 and 1015 are reserved, the rest of 0–2999 unassigned.
func ValidCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

const (
	finBit  = 0x80
	rsv1Bit = 0x40
	rsv2Bit = 0x20
	rsv3Bit = 0x10
	maskBit = 0x80

	// maxControlPayload is the largest control frame payload (§5.5).
	maxControlPayload = 125
	// maxCloseReason is the longest close reason that fits a control frame.
	maxCloseReason = maxControlPayload - 2
	// maxHeader is the longest frame header: 2 bytes, a 64-bit length and
	// a masking key.
	maxHeader = 14
)

var (
	// ErrProtocol is a frame or message that breaks RFC 6455 or the
	// negotiated extension; the connection was failed with 1002.
	ErrProtocol = errors.New("websocket: protocol error")
	// ErrInvalidUTF8 is a text message or close reason that is not UTF-8,
	// or a compressed message that does not inflate; the connection was
	// failed with 1007.
	ErrInvalidUTF8 = errors.New("websocket: invalid payload data")
	// ErrMessageTooBig is a message over the read limit, before or after
	// inflating; the connection was failed with 1009.
	ErrMessageTooBig = errors.New("websocket: message too big")
	// ErrClosed is a write after the close frame was sent or after a
	// write failed.
	ErrClosed = errors.New("websocket: connection closed")
)

// CloseError is returned by ReadMessage when the peer sent a close frame.
// The close was echoed; the caller closes the connection.
type CloseError struct {
	// Code is the peer's status code, CloseNoStatus if it sent none.
	Code int
	// Reason is the peer's UTF-8 reason, often empty.
	Reason string
}

func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("websocket: closed by peer: %d", e.Code)
	}
	return fmt.Sprintf("websocket: closed by peer: %d %s", e.Code, e.Reason)
}

// failure is a connection the server failed, with the code it sent.
type failure struct {
	kind   error
	code   int
	detail string
}

func (f *failure) Error() string { return f.kind.Error() + ": " + f.detail }
func (f *failure) Unwrap() error { return f.kind }

// header is a parsed frame header.
type header struct {
	fin    bool
	rsv    byte // the RSV1–3 bits as they sit in the first byte
	op     Opcode
	masked bool
	length int64
	mask   [4]byte
}

// parseHeader parses the frame header at the start of b. It returns n = 0
// without an error while b is too short to hold the whole header. Lengths
// that are not minimally encoded or have the top bit set are protocol
// errors (§5.2).
func parseHeader(b []byte) (h header, n int, err error) {
	if len(b) < 2 {
		return h, 0, nil
	}
	h.fin = b[0]&finBit != 0
	h.rsv = b[0] & (rsv1Bit | rsv2Bit | rsv3Bit)
	h.op = Opcode(b[0] & 0x0f)
	h.masked = b[1]&maskBit != 0
	h.length = int64(b[1] & 0x7f)
	n = 2
	switch h.length {
	case 126:
		if len(b) < 4 {
			return h, 0, nil
		}
		h.length = int64(binary.BigEndian.Uint16(b[2:]))
		n = 4
		if h.length < 126 {
			return h, 0, errors.New("16-bit length not minimally encoded")
		}
	case 127:
		if len(b) < 10 {
			return h, 0, nil
		}
		u := binary.BigEndian.Uint64(b[2:])
		if u>>63 != 0 {
			return h, 0, errors.New("64-bit length with the most significant bit set")
		}
		h.length = int64(u)
		n = 10
		if h.length <= 0xffff {
			return h, 0, errors.New("64-bit length not minimally encoded")
		}
	}
	if h.masked {
		if len(b) < n+4 {
			return h, 0, nil
		}
		copy(h.mask[:], b[n:n+4])
		n += 4
	}
	return h, n, nil
}

// appendHeader appends the header of an unmasked server frame.
func appendHeader(dst []byte, op Opcode, rsv1 bool, n int) []byte {
	b0 := byte(op) | finBit
	if rsv1 {
		b0 |= rsv1Bit
	}
	switch {
	case n <= 125:
		return append(dst, b0, byte(n))
	case n <= 0xffff:
		return append(dst, b0, 126, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, b0, 127), uint64(n))
	}
}

// headerLen is the length of the header appendHeader writes for n bytes.
func headerLen(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xffff:
		return 4
	default:
		return 10
	}
}

// maskBytes XORs b with key, starting at key byte pos, and returns the key
// position after b.
func maskBytes(key [4]byte, pos int, b []byte) int {
	if len(b) >= 16 {
		var k [8]byte
		for i := range k {
			k[i] = key[(pos+i)&3]
		}
		kw := binary.LittleEndian.Uint64(k[:])
		for len(b) >= 8 {
			binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^kw)
			b = b[8:]
		}
	}
	for i := range b {
		b[i] ^= key[pos&3]
		pos++
	}
	return pos & 3
}

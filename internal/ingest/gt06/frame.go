package gt06

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrMalformed matches every error of ReadFrame and Decode about the
// bytes themselves; ErrTooLarge a long packet over the size bound.
var (
	ErrMalformed = errors.New("gt06: malformed packet")
	ErrTooLarge  = fmt.Errorf("%w: packet too large", ErrMalformed)
)

// DefaultMaxPacket bounds a long (0x7979) packet, and how far ReadFrame
// looks for the stop bytes of a packet whose length is wrong.
const DefaultMaxPacket = 4096

// Frame is one packet of a stream.
type Frame struct {
	// Long is true for a 0x7979 packet (two-byte length).
	Long bool
	// Type is the protocol number.
	Type byte
	// Content is the information content, between the protocol number
	// and the serial. It aliases the buffer passed to ReadFrame.
	Content []byte
	// Serial is the packet's serial number; 0 for packets that carry
	// none (Trailer false).
	Serial uint16
	// Trailer is false for a packet that ends without serial and CRC
	// (some clones send those); Serial and CRCOK are then meaningless.
	Trailer bool
	// CRCOK is whether the CRC matched.
	CRCOK bool
	// Raw is the whole packet, start to stop bytes.
	Raw []byte
}

var stop = []byte{0x0D, 0x0A}

// ReadFrame reads the next packet from r into buf (reused when large
// enough). A long packet over maxLen (0 means DefaultMaxPacket) is
// ErrTooLarge; bytes that do not start a packet, or a packet whose stop
// bytes are not found, are ErrMalformed. io.EOF means the stream ended
// between packets.
func ReadFrame(r *bufio.Reader, buf []byte, maxLen int) (Frame, error) {
	if maxLen <= 0 {
		maxLen = DefaultMaxPacket
	}
	head, err := r.Peek(3)
	if err != nil {
		if err == io.EOF && len(head) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	var hl, want int // header length, packet length by its length field
	switch {
	case head[0] == 0x78 && head[1] == 0x78:
		hl = 3
		want = hl + int(head[2]) + 2
	case head[0] == 0x79 && head[1] == 0x79:
		h, err := r.Peek(4)
		if err != nil {
			return Frame{}, unexpected(err)
		}
		hl = 4
		n := int(binary.BigEndian.Uint16(h[2:]))
		if n > maxLen {
			return Frame{}, fmt.Errorf("%w: length %d", ErrTooLarge, n)
		}
		want = hl + n + 2
	default:
		return Frame{}, fmt.Errorf("%w: start bytes %x", ErrMalformed, head[:2])
	}
	if want > r.Size() {
		// Only long packets get here; they are taken by their length.
		if cap(buf) < want {
			buf = make([]byte, want)
		}
		buf = buf[:want]
		if _, err := io.ReadFull(r, buf); err != nil {
			return Frame{}, unexpected(err)
		}
		if !bytes.Equal(buf[want-2:], stop) {
			return Frame{}, fmt.Errorf("%w: no stop bytes after %d bytes", ErrMalformed, want)
		}
		return split(buf, hl, want)
	}
	n, err := frameLen(r, hl, want, maxLen)
	if err != nil {
		return Frame{}, err
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return Frame{}, unexpected(err)
	}
	return split(buf, hl, want)
}

// frameLen finds how long the packet at the head of r is: want when the
// stop bytes are there, else up to the first stop bytes after the
// protocol number.
func frameLen(r *bufio.Reader, hl, want, maxLen int) (int, error) {
	// A packet shorter than its length says is only seen whole when it
	// is already buffered: do not wait for bytes that are not coming.
	if avail := r.Buffered(); avail < want {
		b, _ := r.Peek(avail)
		if i := shortEnd(b, hl); i > 0 {
			return i, nil
		}
	}
	if b, err := r.Peek(want); err == nil && want >= hl+3 && bytes.Equal(b[want-2:], stop) {
		return want, nil
	} else if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		if b, _ := r.Peek(r.Buffered()); shortEnd(b, hl) > 0 {
			return shortEnd(b, hl), nil
		}
		return 0, unexpected(err)
	}
	// The length is wrong: look for the stop bytes.
	for n := hl + 3; n <= maxLen; n++ {
		b, err := r.Peek(n)
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				break
			}
			return 0, unexpected(err)
		}
		if bytes.Equal(b[n-2:], stop) {
			return n, nil
		}
	}
	return 0, fmt.Errorf("%w: no stop bytes", ErrMalformed)
}

// shortEnd returns the length of a packet in b that ends with stop bytes
// where the buffered data ends or another packet starts, or 0.
func shortEnd(b []byte, hl int) int {
	for i := hl + 1; i+2 <= len(b); i++ {
		if b[i] != 0x0D || b[i+1] != 0x0A {
			continue
		}
		rest := b[i+2:]
		if len(rest) == 0 || (len(rest) >= 2 && (rest[0] == 0x78 && rest[1] == 0x78 || rest[0] == 0x79 && rest[1] == 0x79)) {
			return i + 2
		}
	}
	return 0
}

// split takes a whole packet apart. want is the length its length field
// gives; a packet of another length carries a serial and CRC only if its
// CRC says so.
func split(b []byte, hl, want int) (Frame, error) {
	f := Frame{Long: hl == 4, Raw: b, Type: b[hl]}
	body := b[hl+1 : len(b)-2] // after the protocol number, before the stop bytes
	if len(body) >= 4 {
		crcAt := len(b) - 4
		got := binary.BigEndian.Uint16(b[crcAt:])
		f.CRCOK = got == CRC16(b[2:crcAt])
		if len(b) == want || f.CRCOK {
			f.Trailer = true
			f.Serial = binary.BigEndian.Uint16(b[crcAt-2:])
			f.Content = body[:len(body)-4]
			return f, nil
		}
	}
	f.Content = body
	return f, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendPacket appends a packet of protocol number typ with content and
// serial: the short form when it fits, else the long one (or the long one
// when long is set).
func AppendPacket(dst []byte, long bool, typ byte, content []byte, serial uint16) []byte {
	n := 1 + len(content) + 4
	start := len(dst)
	if long || n > 0xFF {
		dst = append(dst, 0x79, 0x79)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	} else {
		dst = append(dst, 0x78, 0x78, byte(n))
	}
	dst = append(dst, typ)
	dst = append(dst, content...)
	dst = binary.BigEndian.AppendUint16(dst, serial)
	dst = binary.BigEndian.AppendUint16(dst, CRC16(dst[start+2:]))
	return append(dst, stop...)
}

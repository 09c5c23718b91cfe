package teltonika

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Errors of the framing layer. Each error ReadFrame, Decode and ParseUDP
// return matches ErrMalformed; a wrong checksum matches ErrCRC too, a
// packet over the size bound ErrTooLarge.
var (
	ErrMalformed = errors.New("teltonika: malformed packet")
	ErrCRC       = fmt.Errorf("%w: CRC mismatch", ErrMalformed)
	ErrTooLarge  = fmt.Errorf("%w: packet too large", ErrMalformed)
)

// MaxIMEI is the longest device identity the handshake accepts. IMEIs
// have 15 digits; some firmware sends 16 or 17 (IMEISV).
const MaxIMEI = 17

// DefaultMaxPacket bounds the data field of a TCP packet (codec to record
// count). FMB devices send at most 1,280 bytes; Codec 8 Extended with
// long variable values and Codec 12 photo chunks stay far below it.
const DefaultMaxPacket = 64 << 10

// FrameKind tells the frames of a TCP stream apart.
type FrameKind uint8

// Frame kinds.
const (
	// FrameIMEI is the handshake: the device's identity.
	FrameIMEI FrameKind = iota + 1
	// FramePing is the one-byte keep-alive 0xFF; it is not answered.
	FramePing
	// FramePacket is a packet: AVL data or a message.
	FramePacket
)

// Frame is one unit of a TCP stream.
type Frame struct {
	// Kind is what the frame is.
	Kind FrameKind
	// IMEI is the device identity of a FrameIMEI.
	IMEI string
	// Data is the data field of a FramePacket, from the codec id to the
	// trailing record count, CRC checked. It aliases the buffer passed to
	// ReadFrame.
	Data []byte
}

// ReadFrame reads the next frame from r. buf is reused for the data when
// it is large enough (pass the previous Frame's Data[:0] to avoid an
// allocation per packet). A data field longer than maxData (0 means
// DefaultMaxPacket) is ErrTooLarge, a wrong CRC ErrCRC; io.EOF means the
// device closed the connection between frames, io.ErrUnexpectedEOF within
// one.
func ReadFrame(r *bufio.Reader, buf []byte, maxData int) (Frame, error) {
	if maxData <= 0 {
		maxData = DefaultMaxPacket
	}
	first, err := r.Peek(1)
	if err != nil {
		return Frame{}, err
	}
	if first[0] == 0xFF {
		_, _ = r.Discard(1)
		return Frame{Kind: FramePing}, nil
	}
	var head [8]byte
	if _, err := io.ReadFull(r, head[:2]); err != nil {
		return Frame{}, unexpected(err)
	}
	if n := int(binary.BigEndian.Uint16(head[:2])); n != 0 {
		if n > MaxIMEI {
			return Frame{}, fmt.Errorf("%w: IMEI length %d", ErrMalformed, n)
		}
		var id [MaxIMEI]byte
		if _, err := io.ReadFull(r, id[:n]); err != nil {
			return Frame{}, unexpected(err)
		}
		imei := string(id[:n])
		if !digits(imei) {
			return Frame{}, fmt.Errorf("%w: IMEI %q is not digits", ErrMalformed, imei)
		}
		return Frame{Kind: FrameIMEI, IMEI: imei}, nil
	}
	if _, err := io.ReadFull(r, head[2:]); err != nil {
		return Frame{}, unexpected(err)
	}
	if head[2] != 0 || head[3] != 0 {
		return Frame{}, fmt.Errorf("%w: preamble %x", ErrMalformed, head[:4])
	}
	n := binary.BigEndian.Uint32(head[4:])
	if n > uint32(maxData) {
		return Frame{}, fmt.Errorf("%w: %d bytes of data", ErrTooLarge, n)
	}
	if n < 3 {
		return Frame{}, fmt.Errorf("%w: %d bytes of data", ErrMalformed, n)
	}
	total := int(n) + 4
	if cap(buf) < total {
		buf = make([]byte, total)
	}
	buf = buf[:total]
	if _, err := io.ReadFull(r, buf); err != nil {
		return Frame{}, unexpected(err)
	}
	data, tail := buf[:n], buf[n:]
	if binary.BigEndian.Uint16(tail[:2]) != 0 || binary.BigEndian.Uint16(tail[2:]) != CRC16(data) {
		return Frame{}, fmt.Errorf("%w: packet says %x, data has %04x", ErrCRC, tail, CRC16(data))
	}
	return Frame{Kind: FramePacket, Data: data}, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// AppendFrame appends data (codec id to record count) framed as a TCP
// packet: preamble, length, data, CRC.
func AppendFrame(dst, data []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(data)))
	dst = append(dst, data...)
	return binary.BigEndian.AppendUint32(dst, uint32(CRC16(data)))
}

// AppendIMEI appends the handshake frame of imei.
func AppendIMEI(dst []byte, imei string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(imei)))
	return append(dst, imei...)
}

// Handshake answers.
const (
	// Accept is the server's answer to an IMEI it takes.
	Accept byte = 0x01
	// Refuse is the server's answer to an IMEI it does not take.
	Refuse byte = 0x00
)

// AppendAck appends the answer to an AVL packet: the number of records
// the server took.
func AppendAck(dst []byte, n int) []byte {
	return binary.BigEndian.AppendUint32(dst, uint32(n))
}

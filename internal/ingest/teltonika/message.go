package teltonika

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/fleetwire/fleetwire/internal/ingest/cursor"
)

// Message types of Codecs 12 to 15.
const (
	// TypeCommand is a command (Codecs 12 and 14) or a device message
	// (Codec 13).
	TypeCommand byte = 0x05
	// TypeResponse is the device's answer to a command; in Codec 14 it is
	// the ACK of a command whose IMEI matched.
	TypeResponse byte = 0x06
	// TypeNack is Codec 14's answer to a command for another IMEI.
	TypeNack byte = 0x11
	// TypeCamera is a Codec 12 camera (photo) transfer message.
	TypeCamera byte = 0x0D
)

// Message is one command or response of Codecs 12 to 15.
type Message struct {
	// Type is TypeCommand, TypeResponse, TypeNack, TypeCamera or another
	// type the device uses.
	Type byte
	// Time is the device's timestamp (Codecs 13 and 15), else zero.
	Time time.Time
	// IMEI is the addressed device (Codecs 14 and 15), else empty.
	IMEI string
	// Payload is the command or answer, usually ASCII text.
	Payload []byte
}

// Text is the payload as text with the line ending devices append
// removed.
func (m Message) Text() string {
	return strings.TrimRight(string(m.Payload), "\r\n\x00")
}

// DriverID returns the driver identification in a GTSL message (Codec
// 13 text "GTSL|<a>|<b>|<c>|<driver id>|..."), which keypads and
// tachograph readers send when a driver signs in.
func (m Message) DriverID() (string, bool) {
	t := m.Text()
	if !strings.HasPrefix(t, "GTSL|") {
		return "", false
	}
	f := strings.Split(t, "|")
	if len(f) < 5 || f[4] == "" {
		return "", false
	}
	return f[4], true
}

func decodeMessages(data []byte, c Codec) (*Packet, int, error) {
	r := cursor.New(data, ErrMalformed)
	r.U8() // codec id
	n := int(r.U8())
	if n == 0 {
		return nil, 0, fmt.Errorf("%w: no messages", ErrMalformed)
	}
	if n > len(data)/6 {
		return nil, 0, fmt.Errorf("%w: %d messages in %d bytes", ErrMalformed, n, len(data))
	}
	p := &Packet{Codec: c, Messages: make([]Message, n)}
	for i := range p.Messages {
		m := &p.Messages[i]
		m.Type = r.U8()
		size := int(r.U32())
		if r.Err() == nil && size > r.Left() {
			return nil, 0, fmt.Errorf("%w: message %d of %d bytes in %d", ErrMalformed, i+1, size, r.Left())
		}
		if c == Codec13 || c == Codec15 {
			m.Time = time.Unix(int64(r.U32()), 0).UTC()
			size -= 4
		}
		if c == Codec14 || c == Codec15 {
			m.IMEI = imei(r.Take(8))
			size -= 8
		}
		if size < 0 {
			return nil, 0, fmt.Errorf("%w: message %d is shorter than its header", ErrMalformed, i+1)
		}
		m.Payload = r.Bytes(size)
		if r.Err() != nil {
			return nil, 0, fmt.Errorf("message %d of %d: %w", i+1, n, r.Err())
		}
	}
	if m := int(r.U8()); r.Err() != nil || m != n {
		if r.Err() != nil {
			return nil, 0, fmt.Errorf("message count: %w", r.Err())
		}
		return nil, 0, fmt.Errorf("%w: %d messages announced, %d at the end", ErrMalformed, n, m)
	}
	return p, r.Offset(), nil
}

// imei reads Codec 14's eight-byte IMEI: the digits as hexadecimal, one
// leading zero nibble.
func imei(b []byte) string {
	s := hex.EncodeToString(b)
	if len(s) == 16 && s[0] == '0' {
		s = s[1:]
	}
	return s
}

// MaxCommand is the longest command EncodeCommand takes.
const MaxCommand = 4096

// EncodeCommand returns the TCP packet carrying cmd as a Codec 12
// command ("getinfo", "setdigout 1").
func EncodeCommand(cmd []byte) ([]byte, error) {
	if len(cmd) == 0 || len(cmd) > MaxCommand {
		return nil, fmt.Errorf("teltonika: command of %d bytes (1 to %d)", len(cmd), MaxCommand)
	}
	data := make([]byte, 0, 8+len(cmd))
	data = append(data, byte(Codec12), 1, TypeCommand)
	data = binary.BigEndian.AppendUint32(data, uint32(len(cmd)))
	data = append(data, cmd...)
	data = append(data, 1)
	return AppendFrame(make([]byte, 0, len(data)+12), data), nil
}

// AppendResponse appends the data field of a Codec 12 response carrying
// text, as a device sends it (for simulators and tests).
func AppendResponse(dst []byte, text string) []byte {
	dst = append(dst, byte(Codec12), 1, TypeResponse)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(text)))
	dst = append(dst, text...)
	return append(dst, 1)
}

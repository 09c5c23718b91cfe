package teltonika

import (
	"encoding/binary"
	"fmt"
)

// UDPPacket is one datagram of the UDP channel.
type UDPPacket struct {
	// PacketID is the datagram's id, echoed in the answer.
	PacketID uint16
	// AVLPacketID is the AVL packet's id, echoed in the answer.
	AVLPacketID byte
	// IMEI is the sending device.
	IMEI string
	// Data is the AVL data field (codec id to record count). It aliases
	// the datagram.
	Data []byte
}

// ParseUDP splits a datagram into its header and AVL data. The data is
// not decoded; pass it to Decode.
func ParseUDP(b []byte) (*UDPPacket, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%w: datagram of %d bytes", ErrMalformed, len(b))
	}
	if n := int(binary.BigEndian.Uint16(b)); n != len(b)-2 {
		return nil, fmt.Errorf("%w: datagram says %d bytes, has %d", ErrMalformed, n, len(b)-2)
	}
	p := &UDPPacket{PacketID: binary.BigEndian.Uint16(b[2:]), AVLPacketID: b[5]}
	n := int(binary.BigEndian.Uint16(b[6:]))
	if n == 0 || n > MaxIMEI || len(b) < 8+n {
		return nil, fmt.Errorf("%w: IMEI length %d in a datagram of %d bytes", ErrMalformed, n, len(b))
	}
	p.IMEI = string(b[8 : 8+n])
	if !digits(p.IMEI) {
		return nil, fmt.Errorf("%w: IMEI %q is not digits", ErrMalformed, p.IMEI)
	}
	p.Data = b[8+n:]
	return p, nil
}

// AppendUDPAck appends the answer to a datagram: n records taken.
func AppendUDPAck(dst []byte, p *UDPPacket, n int) []byte {
	dst = binary.BigEndian.AppendUint16(dst, 5)
	dst = binary.BigEndian.AppendUint16(dst, p.PacketID)
	dst = append(dst, 0x01, p.AVLPacketID, byte(n))
	return dst
}

// AppendUDP appends a datagram carrying data (for simulators and tests).
func AppendUDP(dst []byte, packetID uint16, avlID byte, imei string, data []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(6+len(imei)+len(data)))
	dst = binary.BigEndian.AppendUint16(dst, packetID)
	dst = append(dst, 0x01, avlID)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(imei)))
	dst = append(dst, imei...)
	return append(dst, data...)
}

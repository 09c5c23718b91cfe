// Package gt06 decodes and encodes the GT06 protocol of Concox trackers
// and their many clones (GT06N, GT800, JM-VL01/VL03, VL103, and the
// devices that copy them). It is a pure codec: no sockets, no server;
// package trackers serves it.
//
// A packet is
//
//	78 78 | length (1) | protocol number | content | serial (2) | CRC-ITU (2) | 0D 0A
//
// or, for long packets, 79 79 and a two-byte length. The length counts
// from the protocol number to the CRC; the CRC (CRC-16/X.25) covers
// length to serial. The device logs in with its IMEI (0x01) and then
// sends locations (0x10, 0x12, 0x22, 0xA0 and others), status heartbeats
// (0x13, 0x23), alarms (0x16, 0x26, 0x27, 0xA4) and information packets
// (0x94); the server acknowledges login, heartbeats and alarms with the
// protocol number and the packet's serial (Reply). Commands go to the
// device as 0x80 packets (EncodeCommand) and come back as 0x15 or 0x21
// with the command's server flag.
//
// Clones bend the framing: some send a length that is one off or zero,
// some a wrong or missing CRC. ReadFrame takes a packet by its length
// when the stop bytes are where the length says, and otherwise by its
// stop bytes; a CRC that does not match is reported in Frame.CRCOK and
// left to the caller, since devices in the field send them.
package gt06

// Package teltonika decodes and encodes the Teltonika device protocol as
// the FMB, FMC, FMM and older GH series speak it. It is a pure codec: no
// sockets, no server; package trackers serves it.
//
// # TCP
//
// A device opens a connection with its IMEI (two bytes of length, then the
// digits); the server answers 0x01 to accept it or 0x00 to refuse it. Then
// the device sends packets:
//
//	00000000 | data length (4) | codec id | data ... | CRC-16/IBM (4)
//
// and a single 0xFF byte as a keep-alive. The CRC covers the data field
// (codec id to the trailing record count). An AVL packet is answered with
// the number of records the server took, four bytes big-endian; records
// not counted are sent again by the device. ReadFrame splits a stream into
// these frames and checks length and CRC.
//
// # UDP
//
// One datagram carries one AVL packet without CRC: length (2), packet id
// (2), a byte 0x01, AVL packet id (1), IMEI length (2), IMEI, then the
// data. It is answered with length 5, the same packet id, 0x01, the AVL
// packet id and the number of records taken (ParseUDP, UDPAck).
//
// # Codecs
//
// AVL data: Codec 8 (one-byte IO ids), Codec 8 Extended (two-byte ids and
// counts, variable-length values), Codec 16 (two-byte ids, generation
// type), and Codec 7 of the GH3000 (masked fields, coordinates as floats,
// seconds since 2007). Some Codec 8 firmware adds a group of 16-byte IO
// values after the 8-byte group; Decode recognises it by the record
// layout. Messages: Codec 12 (commands to the device, type 0x05, and its
// responses, type 0x06), Codec 13 (device messages with a timestamp) and
// Codec 14 (commands addressed by IMEI, with ACK 0x06 and nACK 0x11).
// EncodeCommand builds a Codec 12 command.
package teltonika

package gt06

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Reply returns the server's answer to m, or nil when the protocol wants
// none: login, status heartbeats and alarms are acknowledged with their
// protocol number and serial; a time request (0x8A) gets the time now.
func Reply(m *Message, now time.Time) []byte {
	switch m.Type {
	case TypeLogin, TypeStatus, TypeHeartbeat2, TypeAlarm, TypeAlarm2, TypeAlarmMulti,
		TypeAlarm4G, TypeAlarmLBS4G, TypeLBSStatus:
		return AppendPacket(nil, m.Long, m.Type, nil, m.Serial)
	case TypeTime:
		t := now.UTC()
		content := []byte{byte(t.Year() % 100), byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second())}
		return AppendPacket(nil, m.Long, m.Type, content, m.Serial)
	}
	return nil
}

// MaxCommand is the longest command EncodeCommand takes.
const MaxCommand = 200

// EncodeCommand returns the 0x80 packet carrying the ASCII command cmd
// ("RELAY,1#", "WHERE#") with serverFlag, which the device echoes in its
// answer, and the language English.
func EncodeCommand(serverFlag uint32, cmd string, serial uint16) ([]byte, error) {
	if len(cmd) == 0 || len(cmd) > MaxCommand {
		return nil, fmt.Errorf("gt06: command of %d bytes (1 to %d)", len(cmd), MaxCommand)
	}
	content := make([]byte, 0, 7+len(cmd))
	content = append(content, byte(4+len(cmd)))
	content = binary.BigEndian.AppendUint32(content, serverFlag)
	content = append(content, cmd...)
	content = append(content, 0x00, 0x02)
	return AppendPacket(nil, false, TypeCommand, content, serial), nil
}

// AppendLogin appends a login packet of imei (15 digits), as a device
// sends it (for simulators and tests).
func AppendLogin(dst []byte, imei string, serial uint16) ([]byte, error) {
	if len(imei) != 15 || !validIMEI(imei) {
		return nil, fmt.Errorf("gt06: IMEI %q is not 15 digits", imei)
	}
	var id [8]byte
	s := "0" + imei
	for i := range id {
		id[i] = (s[2*i]-'0')<<4 | (s[2*i+1] - '0')
	}
	return AppendPacket(dst, false, TypeLogin, id[:], serial), nil
}

package gt06

import (
	"time"
)

// Protocol numbers fleetwire handles by name.
const (
	TypeLogin        byte = 0x01
	TypeHeartbeat    byte = 0x08 // GK310 keep-alive, no content
	TypeGPS          byte = 0x10
	TypeLBS          byte = 0x11
	TypeGPSLBS       byte = 0x12
	TypeStatus       byte = 0x13
	TypeStringInfo   byte = 0x15
	TypeAlarm        byte = 0x16
	TypeLBSPhone     byte = 0x17
	TypeLBSExtend    byte = 0x18
	TypeLBSStatus    byte = 0x19
	TypeGPSPhone     byte = 0x1A
	TypeCommandReply byte = 0x21 // long string information with encoding
	TypeGPSLBS2      byte = 0x22
	TypeHeartbeat2   byte = 0x23
	TypeAlarm2       byte = 0x26
	TypeAlarmMulti   byte = 0x27
	TypeLBSMulti     byte = 0x28
	TypeAddress      byte = 0x2A
	TypeWifi         byte = 0x2C
	TypeCommand      byte = 0x80
	TypeTime         byte = 0x8A
	TypeInfo         byte = 0x94
	TypeSerialData   byte = 0x9B
	TypeGPS4G        byte = 0xA0
	TypeLBS4G        byte = 0xA1
	TypeWifi4G       byte = 0xA2
	TypeAlarm4G      byte = 0xA4
	TypeAlarmLBS4G   byte = 0xA5
)

// Message is a decoded packet.
type Message struct {
	// Type is the protocol number.
	Type byte
	// Serial is the packet's serial number.
	Serial uint16
	// Long is true for a 0x7979 packet; answers go back in the same form.
	Long bool
	// IMEI is the device identity of a login packet.
	IMEI string
	// ServerFlag is the flag of the command a 0x15 or 0x21 answer
	// belongs to.
	ServerFlag uint32
	// Text is a command answer or an information text.
	Text string
	// Record is what the packet says about the device, nil for packets
	// that say nothing (login, time and address requests, keep-alives).
	Record *Record
}

// Record is a position or status report.
type Record struct {
	// Time is the device's time; zero when the packet has none.
	Time time.Time
	// HasLocation is true when the packet carries a GPS position.
	HasLocation bool
	// Valid is the GPS fix flag.
	Valid bool
	// Lat and Lon in degrees.
	Lat, Lon float64
	// Speed in km/h, Course in degrees from north.
	Speed, Course int
	// Altitude in metres, nil when not reported.
	Altitude *int
	// Satellites in use.
	Satellites int
	// Ignition (ACC), nil when not reported.
	Ignition *bool
	// BatteryLevel in percent, nil when not reported.
	BatteryLevel *float64
	// Attributes are the other values, named (alarm, power, gsm_signal,
	// charging, mcc, lac, cell_id, ...).
	Attributes map[string]string
}

func (r *Record) set(k, v string) {
	if r.Attributes == nil {
		r.Attributes = make(map[string]string, 8)
	}
	r.Attributes[k] = v
}

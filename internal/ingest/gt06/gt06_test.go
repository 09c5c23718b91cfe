package gt06

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"time"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func frame(t *testing.T, s string) Frame {
	t.Helper()
	f, err := ReadFrame(bufio.NewReader(bytes.NewReader(unhex(t, s))), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestLogin decodes the GT06N documentation's login packet and answers
// it byte for byte.
func TestLogin(t *testing.T) {
	f := frame(t, "78780d01012345678901234500018cdd0d0a")
	if !f.CRCOK || f.Serial != 1 {
		t.Fatalf("%+v", f)
	}
	m, err := Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if m.IMEI != "123456789012345" || m.Record != nil {
		t.Fatalf("%+v", m)
	}
	if got := Reply(m, time.Now()); !bytes.Equal(got, unhex(t, "787805010001d9dc0d0a")) {
		t.Fatalf("reply %x", got)
	}
	b, err := AppendLogin(nil, "123456789012345", 1)
	if err != nil || !bytes.Equal(b, f.Raw) {
		t.Fatalf("AppendLogin %x, %v", b, err)
	}
}

// TestLocation reads every field of a GPS+LBS packet (Traccar's sample
// whose position their test names).
func TestLocation(t *testing.T) {
	m, err := Decode(frame(t, "78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a"))
	if err != nil {
		t.Fatal(err)
	}
	r := m.Record
	if !r.HasLocation || !r.Valid || !r.Time.Equal(time.Date(2015, 10, 20, 14, 21, 11, 0, time.UTC)) ||
		r.Satellites != 5 || r.Speed != 0 || r.Course != 0 || r.Lat < 54.9453 || r.Lat > 54.9454 || r.Lon < 24.0176 || r.Lon > 24.0177 {
		t.Fatalf("%+v", r)
	}
	if r.Attributes["mcc"] != "246" || r.Attributes["lac"] != "110" {
		t.Fatalf("%v", r.Attributes)
	}
	if Reply(m, time.Now()) != nil {
		t.Fatal("a location is answered")
	}
}

// TestStatusAndAlarm checks heartbeat and alarm answers: the protocol
// number and serial, CRC-ITU.
func TestStatusAndAlarm(t *testing.T) {
	m, err := Decode(frame(t, "78780a134004040001000fdcee0d0a"))
	if err != nil {
		t.Fatal(err)
	}
	if r := m.Record; r == nil || *r.BatteryLevel != 67 || r.Attributes["gsm_signal"] != "4" || *r.Ignition {
		t.Fatalf("%+v", m.Record)
	}
	if got := Reply(m, time.Now()); !bytes.Equal(got, unhex(t, "78780513000f008f0d0a")) {
		t.Fatalf("reply %x", got)
	}
	m, err = Decode(frame(t, "787825160b051b093523cf027ac8360c4657b30014000901cc00266a001e1740050400020008d7b10d0a"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Reply(m, time.Now()), AppendPacket(nil, false, TypeAlarm, nil, 8); !bytes.Equal(got, want) {
		t.Fatalf("alarm reply %x, want %x", got, want)
	}
	at := time.Date(2026, 5, 4, 10, 11, 12, 0, time.UTC)
	if got := Reply(&Message{Type: TypeTime, Serial: 3}, at); !bytes.Equal(got, AppendPacket(nil, false, TypeTime, []byte{26, 5, 4, 10, 11, 12}, 3)) {
		t.Fatalf("time reply %x", got)
	}
}

// TestCommand builds a command packet and reads the device's answer.
func TestCommand(t *testing.T) {
	b, err := EncodeCommand(0x01020304, "RELAY,1#", 7)
	if err != nil {
		t.Fatal(err)
	}
	want := append(unhex(t, "787814800c01020304"), "RELAY,1#"...)
	want = append(want, 0x00, 0x02, 0x00, 0x07)
	want = append(want, 0, 0, 0x0D, 0x0A)
	crc := CRC16(want[2 : len(want)-4])
	want[len(want)-4], want[len(want)-3] = byte(crc>>8), byte(crc)
	if !bytes.Equal(b, want) {
		t.Fatalf("%x, want %x", b, want)
	}
	f := frame(t, hex.EncodeToString(b))
	if f.Type != TypeCommand || !f.CRCOK || f.Serial != 7 {
		t.Fatalf("%+v", f)
	}
	answer := append([]byte{byte(4 + len("RELAY=1:Success!")), 1, 2, 3, 4}, "RELAY=1:Success!"...)
	answer = append(answer, 0x00, 0x02)
	m, err := Decode(frame(t, hex.EncodeToString(AppendPacket(nil, false, TypeStringInfo, answer, 9))))
	if err != nil {
		t.Fatal(err)
	}
	if m.ServerFlag != 0x01020304 || m.Text != "RELAY=1:Success!" {
		t.Fatalf("%+v", m)
	}
	if _, err := EncodeCommand(1, "", 1); err == nil {
		t.Fatal("empty command encoded")
	}
}

// TestReadFrameRefuses shows bad streams refused.
func TestReadFrameRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		in   string
		want error
	}{
		"start":       {"12345678", ErrMalformed},
		"too large":   {"7979ffff01", ErrTooLarge},
		"no stop":     {"787805010001d9dc0000" + string(bytes.Repeat([]byte("00"), 300)), ErrMalformed},
		"short login": {"78780d0101234567", io.ErrUnexpectedEOF},
	} {
		_, err := ReadFrame(bufio.NewReaderSize(bytes.NewReader(unhex(t, c.in)), 256), nil, 1024)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if _, err := Decode(Frame{Type: TypeLogin, Content: []byte{1, 2}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("short login: %v", err)
	}
}

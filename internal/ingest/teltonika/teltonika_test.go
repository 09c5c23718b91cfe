package teltonika

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEncodeCommand builds the getinfo command of Teltonika's Codec 12
// documentation byte for byte.
func TestEncodeCommand(t *testing.T) {
	got, err := EncodeCommand([]byte("getinfo"))
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, "000000000000000F0C010500000007676574696E666F0100004312")
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
	if _, err := EncodeCommand(nil); err == nil {
		t.Fatal("empty command encoded")
	}
}

// TestCodec12Response decodes the documentation's getinfo answer.
func TestCodec12Response(t *testing.T) {
	b := unhex(t, "00000000000000900C010600000088494E493A323031392F372F323220373A3232205254433A323031392F372F323220373A3533205253543A32204552523A312053523A302042523A302043463A302046473A3020464C3A302054553A302F302055543A3020534D533A30204E4F4750533A303A3330204750533A31205341543A302052533A332052463A36352053463A31204D443A30010000C78F")
	f, err := ReadFrame(bufio.NewReader(bytes.NewReader(b)), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Decode(f.Data)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Messages) != 1 || p.Messages[0].Type != TypeResponse || !strings.HasPrefix(p.Messages[0].Text(), "INI:2019/7/22 7:22 RTC:") {
		t.Fatalf("%+v", p.Messages)
	}
}

// TestCodec8Record checks every field of one record against the values
// read by hand from the packet.
func TestCodec8Record(t *testing.T) {
	// Teltonika's Codec 8 documentation example: one record, five IO
	// elements.
	data := unhex(t, "08 01 0000016B40D8EA30 01 0000000000000000 0000 0000 00 0000 01 05 02 15 03 01 01 01 42 5E0F 01 F1 0000601A 01 4E 0000000000000000 01")
	p, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	r := p.Records[0]
	if !r.Time.Equal(time.Date(2019, 6, 10, 10, 4, 46, 0, time.UTC)) || r.Priority != 1 || r.EventID != 1 || len(r.IO) != 5 {
		t.Fatalf("%+v", r)
	}
	v := Interpret(&r)
	if v.Inputs == nil || !v.Inputs[0] || v.Attributes["gsm_signal"] != "3" || v.Attributes["power"] != "24.079" || v.Attributes["gsm_operator"] != "24602" {
		t.Fatalf("%+v", v)
	}
	if _, ok := v.Attributes["driver_id"]; ok {
		t.Fatal("a zero iButton is a driver")
	}
}

// TestCodec7 reads a GH3000 record: masked fields, float coordinates.
func TestCodec7(t *testing.T) {
	p, err := Decode(unhex(t, "07 02 4c61410b 01 3f 4231c2c1 41d0beb9 003d 00 00 05 0064 83ff 4c6140eb 01 3f 4231c2c1 41d0beb9 003d 00 00 05 0064 83ff 02"))
	if err != nil {
		t.Fatal(err)
	}
	r := p.Records[0]
	if !r.HasGPS || r.Lat < 44.4 || r.Lat > 44.5 || r.Lon < 26.09 || r.Lon > 26.1 || r.Altitude != 61 || r.Satellites != 5 || r.Cell == nil || r.Cell.LAC != 100 {
		t.Fatalf("%+v", r)
	}
	if !r.Time.Equal(time.Date(2013, 7, 31, 22, 30, 35, 0, time.UTC)) {
		t.Fatalf("time %v", r.Time)
	}
}

// TestRoundTrip encodes records in Codec 8 and 8 Extended and decodes them.
func TestRoundTrip(t *testing.T) {
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	recs := []Record{
		{Time: at, HasGPS: true, Lat: 52.5200001, Lon: -13.4049999, Altitude: -5, Angle: 270, Satellites: 9, Speed: 88, EventID: 239,
			IO: []IO{{ID: 239, Size: 1, Value: 1}, {ID: 66, Size: 2, Value: 12800}, {ID: 16, Size: 4, Value: 123456}, {ID: 78, Size: 8, Value: 0xABCDEF}}},
		{Time: at.Add(time.Second), HasGPS: true, Lat: -33.9, Lon: 151.2, Satellites: 4, IO: []IO{}},
	}
	for _, c := range []Codec{Codec8, Codec8E} {
		data, err := AppendAVL(nil, c, recs)
		if err != nil {
			t.Fatal(err)
		}
		frame := AppendFrame(nil, data)
		f, err := ReadFrame(bufio.NewReader(bytes.NewReader(frame)), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Decode(f.Data)
		if err != nil {
			t.Fatalf("codec %x: %v", c, err)
		}
		if len(p.Records) != 2 {
			t.Fatalf("%d records", len(p.Records))
		}
		got := p.Records[0]
		if !got.Time.Equal(at) || got.Lat != 52.5200001 || got.Lon != -13.4049999 || got.Altitude != -5 || got.Angle != 270 || got.Speed != 88 || len(got.IO) != 4 {
			t.Fatalf("codec %x: %+v", c, got)
		}
		v := Interpret(&got)
		if v.Ignition == nil || !*v.Ignition || v.Attributes["power"] != "12.8" || v.Attributes["odometer"] != "123.456" || v.Attributes["driver_id"] != "abcdef" {
			t.Fatalf("codec %x: %+v", c, v)
		}
	}
	recs[0].IO = append(recs[0].IO, IO{ID: 300, Size: 1, Value: 1})
	if _, err := AppendAVL(nil, Codec8, recs); err == nil {
		t.Fatal("codec 8 took a two-byte IO id")
	}
}

// TestReadFrameRefuses shows each kind of bad input refused with its error.
func TestReadFrameRefuses(t *testing.T) {
	good, _ := AppendAVL(nil, Codec8, []Record{{Time: time.Now(), HasGPS: true}})
	frame := AppendFrame(nil, good)
	badCRC := append([]byte(nil), frame...)
	badCRC[len(badCRC)-1] ^= 1
	huge := unhex(t, "00000000 7fffffff 08")
	for name, c := range map[string]struct {
		in   []byte
		want error
	}{
		"crc":          {badCRC, ErrCRC},
		"too large":    {huge, ErrTooLarge},
		"long imei":    {unhex(t, "0020 3131"), ErrMalformed},
		"letters imei": {unhex(t, "0002 4142"), ErrMalformed},
		"preamble":     {unhex(t, "0000 0001 00000010"), ErrMalformed},
		"short":        {frame[:len(frame)-2], io.ErrUnexpectedEOF},
	} {
		_, err := ReadFrame(bufio.NewReader(bytes.NewReader(c.in)), nil, 1024)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if _, err := Decode(append(good, 0)); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing byte: %v", err)
	}
	if _, err := Decode([]byte{0x08, 0x05, 0x01}); !errors.Is(err, ErrMalformed) {
		t.Errorf("count over data: %v", err)
	}
}

// TestUDP parses a datagram and builds its answer byte by byte.
func TestUDP(t *testing.T) {
	data, _ := AppendAVL(nil, Codec8, []Record{{Time: time.Now(), HasGPS: true}})
	d := AppendUDP(nil, 0xCAFE, 0x22, "357454072713975", data)
	p, err := ParseUDP(d)
	if err != nil {
		t.Fatal(err)
	}
	if p.IMEI != "357454072713975" || p.PacketID != 0xCAFE || p.AVLPacketID != 0x22 || !bytes.Equal(p.Data, data) {
		t.Fatalf("%+v", p)
	}
	if got := AppendUDPAck(nil, p, 1); !bytes.Equal(got, unhex(t, "0005 cafe 01 22 01")) {
		t.Fatalf("ack %x", got)
	}
	if _, err := ParseUDP(d[:len(d)-1]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short datagram: %v", err)
	}
}

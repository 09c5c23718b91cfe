package teltonika

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"testing"
)

// FuzzReadFrame feeds arbitrary streams to the frame reader and decodes
// what it accepts: no input may panic, every error is a framing error or
// a short stream, and an accepted packet re-frames to the bytes it came
// from.
func FuzzReadFrame(f *testing.F) {
	for _, s := range loadTraccar(f).Samples {
		b, _ := hex.DecodeString(s.Hex)
		f.Add(b)
	}
	f.Add([]byte{0xFF, 0xFF, 0x00, 0x01, '1'})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		var buf []byte
		for {
			fr, err := ReadFrame(r, buf, 4096)
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrMalformed) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("error %v", err)
				}
				return
			}
			switch fr.Kind {
			case FrameIMEI:
				if !digits(fr.IMEI) || len(fr.IMEI) > MaxIMEI {
					t.Fatalf("IMEI %q", fr.IMEI)
				}
			case FramePacket:
				buf = fr.Data[:0]
				if len(fr.Data) > 4096 {
					t.Fatalf("%d bytes over the bound", len(fr.Data))
				}
				if !bytes.Contains(in, AppendFrame(nil, fr.Data)) {
					t.Fatal("accepted packet is not in the input")
				}
				checkDecode(t, fr.Data)
			case FramePing:
			default:
				t.Fatalf("kind %d", fr.Kind)
			}
		}
	})
}

// FuzzDecode decodes arbitrary data fields and UDP datagrams.
func FuzzDecode(f *testing.F) {
	for _, s := range loadTraccar(f).Samples {
		b, _ := hex.DecodeString(s.Hex)
		if len(b) > 8 {
			f.Add(b[8:])
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data)
		if p, err := ParseUDP(data); err == nil {
			checkDecode(t, p.Data)
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("udp error %v", err)
		}
	})
}

func checkDecode(t *testing.T, data []byte) {
	p, err := Decode(data)
	if err != nil {
		if p != nil || !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v (packet %v)", err, p)
		}
		return
	}
	if len(p.Records)+len(p.Messages) == 0 {
		t.Fatal("empty packet accepted")
	}
	for i := range p.Records {
		r := &p.Records[i]
		if math.IsNaN(r.Lat) || math.IsNaN(r.Lon) {
			t.Fatalf("NaN coordinates %+v", r)
		}
		v := Interpret(r)
		for k := range v.Attributes {
			if k == "" {
				t.Fatal("empty attribute name")
			}
		}
	}
}

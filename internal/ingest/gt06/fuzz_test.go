package gt06

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"testing"
	"time"
)

// FuzzReadFrame feeds arbitrary streams to the frame reader and decodes
// and answers what it accepts: no input may panic, every error is a
// framing error or a short stream, and every accepted packet is a slice
// of the input.
func FuzzReadFrame(f *testing.F) {
	for _, s := range loadTraccar(f).Samples {
		b, _ := hex.DecodeString(s.Hex)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(in), 512)
		var buf []byte
		for {
			fr, err := ReadFrame(r, buf, 2048)
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrMalformed) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("error %v", err)
				}
				return
			}
			buf = fr.Raw[:0]
			if !bytes.Contains(in, fr.Raw) {
				t.Fatal("frame is not in the input")
			}
			m, err := Decode(fr)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("decode error %v", err)
				}
				continue
			}
			if rec := m.Record; rec != nil && rec.HasLocation && (math.Abs(rec.Lat) > 90 || math.Abs(rec.Lon) > 180 || math.IsNaN(rec.Lat)) {
				t.Fatalf("location %v %v", rec.Lat, rec.Lon)
			}
			if rep := Reply(m, time.Now()); rep != nil {
				back, err := ReadFrame(bufio.NewReader(bytes.NewReader(rep)), nil, 0)
				if err != nil || !back.CRCOK || back.Serial != m.Serial {
					t.Fatalf("reply %x: %+v %v", rep, back, err)
				}
			}
		}
	})
}

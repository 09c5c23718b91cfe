package teltonika

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"testing"
	"time"
)

// traccarSamples is testdata/traccar.json: the hex packets of Traccar's
// Teltonika decoder tests and what those tests check on each.
type traccarSamples struct {
	Source string `json:"source"`
	Frames []struct {
		Frame string `json:"frame"`
		Input string `json:"input"`
	} `json:"frames"`
	Samples []traccarSample `json:"samples"`
}

type traccarSample struct {
	Test     string `json:"test"`
	Check    string `json:"check"`
	Disabled bool   `json:"disabled"`
	Model    string `json:"model"`
	Extended bool   `json:"extended"`
	// CheckLocation is verifyPositions' flag; absent means true.
	CheckLocation *bool  `json:"check_location"`
	Hex           string `json:"hex"`
	Key           string `json:"key"`
	Value         any    `json:"value"`
}

func loadTraccar(t testing.TB) traccarSamples {
	t.Helper()
	raw, err := os.ReadFile("testdata/traccar.json")
	if err != nil {
		t.Fatal(err)
	}
	var s traccarSamples
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// refusedByFrame are the samples whose CRC or length is wrong: Traccar's
// decoder does not check either, ReadFrame does. Their records are
// still checked, decoded from the bytes after the header.
var refusedByFrame = map[int]string{
	20: "CRC (Codec 16)",
	22: "CRC (Codec 8, edited copy of sample 24)",
	28: "length 0 and CRC 0 (Traccar: invalid length and checksum)",
	33: "length: 167 announced, 165 sent",
	36: "length: 199 announced, 198 sent",
	40: "length: 166 announced, 33 sent",
	49: "CRC (Codec 12 camera chunk)",
	50: "CRC (Codec 12 camera chunk)",
}

// refusedDiffers are samples refused by the frame check whose content does
// not decode either.
var refusedDiffers = map[int]string{
	14: "CRC; its Codec 13 command size leaves out the timestamp, which the codec counts in the size (sample 5 counts it)",
}

// traccarKeys maps the attribute names Traccar's tests check to ours.
var traccarKeys = map[string]string{
	"tag1Voltage": "ble1_voltage_mv",
	"tag1Battery": "ble1_battery_mv",
	"eyeTemp1":    "temp_eye1",
}

// TestTraccarSamples decodes every packet of Traccar's Teltonika tests and
// checks what those tests check: no position for handshakes, pings and
// camera chunks; positions with sane coordinates, time, speed and course
// for AVL packets; the attribute values they name.
func TestTraccarSamples(t *testing.T) {
	s := loadTraccar(t)
	var same, refused, differs int
	for i, smp := range s.Samples {
		t.Run(fmt.Sprintf("%02d_%s", i, smp.Check), func(t *testing.T) {
			b, err := hex.DecodeString(smp.Hex)
			if err != nil {
				t.Fatal(err)
			}
			res, frameErr := decodeSample(b)
			if why, ok := refusedDiffers[i]; ok {
				if frameErr == nil {
					t.Fatalf("accepted a sample with a wrong %s", why)
				}
				t.Logf("refused, differs from Traccar: %s", why)
				differs++
				return
			}
			why, expectRefused := refusedByFrame[i]
			switch {
			case expectRefused && frameErr == nil:
				t.Fatalf("accepted a sample with a wrong %s", why)
			case expectRefused:
				if !errors.Is(frameErr, ErrMalformed) && !errors.Is(frameErr, io.ErrUnexpectedEOF) {
					t.Fatalf("refused with %v, not ErrMalformed", frameErr)
				}
				res, err = decodeContent(b)
				if err != nil {
					t.Fatalf("records: %v", err)
				}
			case frameErr != nil:
				t.Fatalf("refused: %v", frameErr)
			}
			if err := checkTraccar(smp, res); err != nil {
				t.Fatal(err)
			}
			if expectRefused {
				refused++
			} else {
				same++
			}
		})
	}
	t.Logf("Traccar Teltonika samples: %d; accepted and decoded as their tests check: %d; refused by the length/CRC check (records decode the same): %d; refused and differing: %d",
		len(s.Samples), same, refused, differs)
	if same+refused+differs != len(s.Samples) {
		t.Errorf("%d samples fail", len(s.Samples)-same-refused-differs)
	}
}

// sampleResult is what a sample decodes into.
type sampleResult struct {
	frames  []Frame
	packets []*Packet
}

// decodeSample reads b as a TCP stream (or, for the connectionless
// sample, as a datagram) and decodes every packet in it.
func decodeSample(b []byte) (sampleResult, error) {
	var res sampleResult
	if len(b) > 2 && b[2] == 0xCA {
		p, err := ParseUDP(b)
		if err != nil {
			return res, err
		}
		pk, err := Decode(p.Data)
		if err != nil {
			return res, err
		}
		res.packets = append(res.packets, pk)
		return res, nil
	}
	r := bufio.NewReader(bytes.NewReader(b))
	for {
		f, err := ReadFrame(r, nil, 0)
		if err == io.EOF {
			return res, nil
		}
		if err != nil {
			return res, err
		}
		res.frames = append(res.frames, f)
		if f.Kind == FramePacket {
			p, err := Decode(f.Data)
			if err != nil {
				return res, err
			}
			res.packets = append(res.packets, p)
		}
	}
}

// decodeContent decodes the data field of a packet whose framing is
// wrong, reading as far as the records go.
func decodeContent(b []byte) (sampleResult, error) {
	p, _, err := decode(b[8:])
	if err != nil {
		return sampleResult{}, err
	}
	return sampleResult{packets: []*Packet{p}}, nil
}

var year2000 = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)

func checkTraccar(smp traccarSample, res sampleResult) error {
	var recs []Record
	var msgs []Message
	for _, p := range res.packets {
		recs = append(recs, p.Records...)
		msgs = append(msgs, p.Messages...)
	}
	switch smp.Check {
	case "verifyNull":
		if len(recs) > 0 {
			return fmt.Errorf("%d records, want none", len(recs))
		}
		for _, m := range msgs {
			if m.Type != TypeCamera {
				return fmt.Errorf("message type 0x%02x, want only camera chunks", m.Type)
			}
		}
		return nil
	case "verifyPositions":
		if smp.CheckLocation != nil && !*smp.CheckLocation {
			if len(recs)+len(msgs) == 0 {
				return errors.New("nothing decoded")
			}
			return nil
		}
		if len(recs) == 0 {
			return errors.New("no records")
		}
		for i, r := range recs {
			if err := saneRecord(r); err != nil {
				return fmt.Errorf("record %d: %w", i, err)
			}
		}
		return nil
	case "verifyAttribute":
		got, ok := traccarAttr(smp.Key, recs, msgs)
		if !ok {
			return fmt.Errorf("no %s", smp.Key)
		}
		return sameValue(smp.Value, got)
	}
	return fmt.Errorf("unknown check %s", smp.Check)
}

func saneRecord(r Record) error {
	switch {
	case !r.Time.After(year2000) || r.Time.After(time.Now().Add(25*time.Hour)):
		return fmt.Errorf("time %v", r.Time)
	case math.Abs(r.Lat) > 90 || math.Abs(r.Lon) > 180:
		return fmt.Errorf("location %v %v", r.Lat, r.Lon)
	case r.Altitude < -12262 || r.Altitude > 18000:
		return fmt.Errorf("altitude %d", r.Altitude)
	case r.Speed < 0 || r.Speed > 869:
		return fmt.Errorf("speed %d", r.Speed)
	case r.Angle < 0 || r.Angle > 360:
		return fmt.Errorf("course %d", r.Angle)
	}
	return nil
}

// traccarAttr finds the value Traccar's key names in the first record (or
// message), as Traccar's verifyAttribute looks at the first position.
func traccarAttr(key string, recs []Record, msgs []Message) (string, bool) {
	if key == "driverUniqueId" {
		if len(msgs) == 0 {
			return "", false
		}
		return msgs[0].DriverID()
	}
	if len(recs) == 0 {
		return "", false
	}
	v, ok := Interpret(&recs[0]).Attributes[traccarKeys[key]]
	return v, ok
}

func sameValue(want any, got string) error {
	switch w := want.(type) {
	case string:
		if got != w {
			return fmt.Errorf("got %q, want %q", got, w)
		}
	case float64:
		g, err := strconv.ParseFloat(got, 64)
		if err != nil || math.Abs(g-w) > 1e-9 {
			return fmt.Errorf("got %q, want %v", got, w)
		}
	case bool:
		if got != strconv.FormatBool(w) {
			return fmt.Errorf("got %q, want %v", got, w)
		}
	default:
		return fmt.Errorf("cannot compare %T", want)
	}
	return nil
}

// TestTraccarFrames splits the streams of Traccar's frame decoder test
// into the frames it expects.
func TestTraccarFrames(t *testing.T) {
	s := loadTraccar(t)
	for _, f := range s.Frames {
		in, _ := hex.DecodeString(f.Input)
		want, _ := hex.DecodeString(f.Frame)
		r := bufio.NewReader(bytes.NewReader(in))
		fr, err := ReadFrame(r, nil, 0)
		if err != nil {
			t.Fatalf("%s: %v", f.Input, err)
		}
		var got []byte
		switch fr.Kind {
		case FramePing:
			got = []byte{0xFF}
		case FrameIMEI:
			got = AppendIMEI(nil, fr.IMEI)
		default:
			got = AppendFrame(nil, fr.Data)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: first frame %x, want %x", f.Input, got, want)
		}
	}
}

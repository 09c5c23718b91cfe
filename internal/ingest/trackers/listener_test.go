package trackers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/history"
	"github.com/fleetwire/fleetwire/internal/ingest/gt06"
	"github.com/fleetwire/fleetwire/internal/ingest/teltonika"
	"github.com/fleetwire/fleetwire/internal/state"
	"github.com/fleetwire/fleetwire/internal/store/sqlite"
	"github.com/fleetwire/fleetwire/internal/store/sqlstore"
)

// fixture is a live registry on a real SQLite store and a bus, with one
// user, and the listeners under test.
type fixture struct {
	t      *testing.T
	st     *sqlstore.Store
	reg    *state.Registry
	bus    bus.Bus
	user   int64
	links  *Links
	ctx    context.Context
	cancel context.CancelFunc
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fw.db"))
	if err != nil {
		t.Fatal(err)
	}
	b := bus.NewMemory()
	reg := state.New(st, b, state.Options{})
	if err := reg.Load(ctx); err != nil {
		t.Fatal(err)
	}
	uid, err := st.CreateUser(ctx, &fleet.User{Login: "u", PasswordHash: "x", TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, reg: reg, bus: b, user: uid, links: NewLinks(), ctx: ctx, cancel: cancel}
	t.Cleanup(func() {
		cancel()
		b.Close()
		st.Close()
	})
	return f
}

func (f *fixture) tracker(device string) *fleet.Tracker {
	f.t.Helper()
	tr, err := f.reg.CreateTracker(f.ctx, &fleet.Tracker{Label: device, UserID: f.user, DeviceID: device, Model: "teltonika"})
	if err != nil {
		f.t.Fatal(err)
	}
	return tr
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func (f *fixture) serve(l *Listener, err error) *Listener {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Serve(f.ctx) }()
	f.t.Cleanup(func() {
		l.Close()
		if err := <-done; err != nil {
			f.t.Errorf("serve: %v", err)
		}
	})
	return l
}

func (f *fixture) teltonika(opts Options) *Listener {
	opts.Logger = quiet
	return f.serve(ListenTeltonika("127.0.0.1:0", f.reg, f.links, opts))
}

func (f *fixture) gt06(opts Options) *Listener {
	opts.Logger = quiet
	return f.serve(ListenGT06("127.0.0.1:0", f.reg, f.links, opts))
}

// device is a tracker's TCP connection as the test drives it.
type device struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *device {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &device{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (d *device) send(b []byte) {
	d.t.Helper()
	if _, err := d.nc.Write(b); err != nil {
		d.t.Fatalf("write: %v", err)
	}
}

// expect reads exactly len(want) bytes and compares them.
func (d *device) expect(want []byte) {
	d.t.Helper()
	got := make([]byte, len(want))
	_ = d.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(d.br, got); err != nil {
		d.t.Fatalf("read %d bytes (want %x): %v", len(want), want, err)
	}
	if !bytes.Equal(got, want) {
		d.t.Fatalf("got %x, want %x", got, want)
	}
}

// closed checks that the server closed the connection.
func (d *device) closed() {
	d.t.Helper()
	_ = d.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := d.br.ReadByte()
	if err == nil {
		d.t.Fatalf("read %x, want the connection closed", b)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		d.t.Fatal("connection still open")
	}
}

type sampleFile struct {
	Samples []struct {
		Check         string `json:"check"`
		Hex           string `json:"hex"`
		CheckLocation *bool  `json:"check_location"`
	} `json:"samples"`
}

func loadSamples(t *testing.T, path string) sampleFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s sampleFile
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTeltonikaTraccarSamples connects as a device and sends every AVL
// packet of Traccar's Teltonika tests whose framing is right: each is
// acknowledged with its record count, byte by byte, and the last
// record's position is the tracker's state.
func TestTeltonikaTraccarSamples(t *testing.T) {
	f := newFixture(t)
	tr := f.tracker("123456789012345")
	l := f.teltonika(Options{})
	d := dial(t, l.Addr())
	d.send(teltonika.AppendIMEI(nil, tr.DeviceID))
	d.expect([]byte{teltonika.Accept})
	var sent int
	for _, s := range loadSamples(t, "../teltonika/testdata/traccar.json").Samples {
		b, _ := hex.DecodeString(s.Hex)
		fr, err := teltonika.ReadFrame(bufio.NewReader(bytes.NewReader(b)), nil, 0)
		if err != nil || fr.Kind != teltonika.FramePacket {
			continue // handshakes, pings, datagrams and the samples with a wrong CRC
		}
		p, err := teltonika.Decode(fr.Data)
		if err != nil || len(p.Records) == 0 {
			continue
		}
		d.send(b)
		d.expect(teltonika.AppendAck(nil, len(p.Records)))
		sent++
	}
	if sent < 30 {
		t.Fatalf("only %d AVL samples sent", sent)
	}
	if _, s, _ := f.reg.Snapshot(tr.ID); s.Additional["protocol"].Value != "teltonika" {
		t.Fatalf("state %+v", s)
	}
}

// TestTeltonikaRecords checks what a record becomes in the state.
func TestTeltonikaRecords(t *testing.T) {
	f := newFixture(t)
	tr := f.tracker("352093081452251")
	l := f.teltonika(Options{})
	d := dial(t, l.Addr())
	d.send(teltonika.AppendIMEI(nil, tr.DeviceID))
	d.expect([]byte{teltonika.Accept})
	at := time.Now().Add(-time.Minute).Truncate(time.Second).UTC()
	data, _ := teltonika.AppendAVL(nil, teltonika.Codec8E, []teltonika.Record{{
		Time: at, Lat: 54.6872, Lon: 25.2797, Altitude: 112, Angle: 90, Satellites: 11, Speed: 47,
		IO: []teltonika.IO{
			{ID: 239, Size: 1, Value: 1}, {ID: 1, Size: 1, Value: 1}, {ID: 179, Size: 1, Value: 1},
			{ID: 66, Size: 2, Value: 12650}, {ID: 113, Size: 1, Value: 87}, {ID: 16, Size: 4, Value: 1234500},
			{ID: 21, Size: 1, Value: 4}, {ID: 9999, Size: 2, Value: 7},
		},
	}})
	d.send(teltonika.AppendFrame(nil, data))
	d.expect(teltonika.AppendAck(nil, 1))
	_, s, _ := f.reg.Snapshot(tr.ID)
	if s.GPS.Location == nil || s.GPS.Location.Lat != 54.6872 || s.GPS.Speed != 47 || s.GPS.Heading != 90 || s.GPS.Alt != 112 || !s.LastUpdate.Equal(at) {
		t.Fatalf("gps %+v at %v", s.GPS, s.LastUpdate)
	}
	if s.Ignition == nil || !*s.Ignition || s.BatteryLevel == nil || *s.BatteryLevel != 87 || len(s.Inputs) != 1 || !s.Inputs[0] || len(s.Outputs) != 1 || !s.Outputs[0] {
		t.Fatalf("state %+v", s)
	}
	for k, want := range map[string]string{"power": "12.65", "odometer": "1234.5", "gsm_signal": "4", "io_9999": "7", "protocol": "teltonika"} {
		if got := s.Additional[k].Value; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// TestTeltonikaRefuses shows the handshake refusals and the bad packets
// that close a connection, while another device's connection carries on.
func TestTeltonikaRefuses(t *testing.T) {
	f := newFixture(t)
	good := f.tracker("111111111111111")
	blocked := f.tracker("222222222222222")
	if err := f.reg.SetBlocked(f.ctx, blocked.ID, true); err != nil {
		t.Fatal(err)
	}
	l := f.teltonika(Options{MaxPacket: 1024})

	other := dial(t, l.Addr())
	other.send(teltonika.AppendIMEI(nil, good.DeviceID))
	other.expect([]byte{teltonika.Accept})

	for _, imei := range []string{"999999999999999", blocked.DeviceID} {
		d := dial(t, l.Addr())
		d.send(teltonika.AppendIMEI(nil, imei))
		d.expect([]byte{teltonika.Refuse})
		d.closed()
	}
	rec := []teltonika.Record{{Time: time.Now(), Lat: 1, Lon: 1, Satellites: 5}}
	data, _ := teltonika.AppendAVL(nil, teltonika.Codec8, rec)
	badCRC := teltonika.AppendFrame(nil, data)
	badCRC[len(badCRC)-1] ^= 0xFF
	huge := binary.BigEndian.AppendUint32(make([]byte, 4), 1<<20)
	for name, in := range map[string][]byte{"crc": badCRC, "too large": huge, "not a packet": []byte("GET / HTTP/1.1\r\n\r\n")} {
		t.Run(name, func(t *testing.T) {
			d := dial(t, l.Addr())
			d.send(teltonika.AppendIMEI(nil, good.DeviceID))
			d.expect([]byte{teltonika.Accept})
			d.send(in)
			d.closed()
		})
	}
	// The first connection was replaced by the later ones of the same
	// device; a fresh one still works.
	d := dial(t, l.Addr())
	d.send(teltonika.AppendIMEI(nil, good.DeviceID))
	d.expect([]byte{teltonika.Accept})
	d.send(teltonika.AppendFrame(nil, data))
	d.expect(teltonika.AppendAck(nil, 1))
}

// TestTeltonikaAckOnlyTaken blocks the tracker between two packets: the
// second is answered with 0 records taken and the connection closed, so
// the device keeps the records.
func TestTeltonikaAckOnlyTaken(t *testing.T) {
	f := newFixture(t)
	tr := f.tracker("333333333333333")
	l := f.teltonika(Options{})
	d := dial(t, l.Addr())
	d.send(teltonika.AppendIMEI(nil, tr.DeviceID))
	d.expect([]byte{teltonika.Accept})
	data, _ := teltonika.AppendAVL(nil, teltonika.Codec8, []teltonika.Record{{Time: time.Now(), Lat: 1, Lon: 1, Satellites: 5}, {Time: time.Now(), Lat: 2, Lon: 2, Satellites: 5}})
	d.send(teltonika.AppendFrame(nil, data))
	d.expect(teltonika.AppendAck(nil, 2))
	if err := f.reg.SetBlocked(f.ctx, tr.ID, true); err != nil {
		t.Fatal(err)
	}
	d.send(teltonika.AppendFrame(nil, data))
	d.expect(teltonika.AppendAck(nil, 0))
	d.closed()
}

// TestTeltonikaIdleTimeout closes a connection that stops talking.
func TestTeltonikaIdleTimeout(t *testing.T) {
	f := newFixture(t)
	tr := f.tracker("444444444444444")
	l := f.teltonika(Options{IdleTimeout: 200 * time.Millisecond, HandshakeTimeout: 200 * time.Millisecond})
	silent := dial(t, l.Addr())
	silent.closed()
	d := dial(t, l.Addr())
	d.send(teltonika.AppendIMEI(nil, tr.DeviceID))
	d.expect([]byte{teltonika.Accept})
	d.closed()
}

// TestTeltonikaCommand round-trips a Codec 12 command: the device reads
// it off its socket byte for byte and answers; the caller gets the text.
func TestTeltonikaCommand(t *testing.T) {
	f := newFixture(t)
	tr := f.tracker("555555555555555")
	l := f.teltonika(Options{CommandTimeout: 300 * time.Millisecond})
	if _, _, err := f.links.RawCommand(f.ctx, tr.DeviceID, []byte("getinfo")); !errors.Is(err, ErrOffline) {
		t.Fatalf("offline device: %v", err)
	}
	d := dial(t, l.Addr())
	d.send(teltonika.AppendIMEI(nil, tr.DeviceID))
	d.expect([]byte{teltonika.Accept})
	type result struct {
		answer string
		ok     bool
		err    error
	}
	res := make(chan result, 1)
	go func() {
		a, ok, err := f.links.RawCommand(f.ctx, tr.DeviceID, []byte("getinfo"))
		res <- result{a, ok, err}
	}()
	want, _ := teltonika.EncodeCommand([]byte("getinfo"))
	d.expect(want)
	d.send(teltonika.AppendFrame(nil, teltonika.AppendResponse(nil, "RTC:2026/5/4 10:00 Init:2026/5/4 9:59\r\n")))
	if r := <-res; r.err != nil || !r.ok || r.answer != "RTC:2026/5/4 10:00 Init:2026/5/4 9:59" {
		t.Fatalf("%+v", r)
	}
	go func() {
		a, ok, err := f.links.SetOutput(f.ctx, tr.DeviceID, 2, true)
		res <- result{a, ok, err}
	}()
	want, _ = teltonika.EncodeCommand([]byte("setdigout ?1"))
	d.expect(want)
	// No answer: the command was sent, the device stays silent.
	if r := <-res; r.err != nil || r.ok {
		t.Fatalf("%+v", r)
	}
	if _, _, err := f.links.SetOutput(f.ctx, tr.DeviceID, 9, true); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("output 9: %v", err)
	}
}

// TestTeltonikaUDP sends Traccar's connectionless sample as a datagram and
// checks the answer byte by byte.
func TestTeltonikaUDP(t *testing.T) {
	f := newFixture(t)
	f.tracker("357454072713975")
	l := f.teltonika(Options{})
	c, err := net.Dial("udp", l.UDPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dgram, _ := hex.DecodeString("0049cafe0122000f33353734353430373237313339373508010000015d3766f6a800003eef961ec6215e0063006d09003100070401000200f001c8000242381c18003201c7000000e10001")
	if _, err := c.Write(dgram); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := hex.DecodeString("0005cafe012201"); !bytes.Equal(buf[:n], want) {
		t.Fatalf("answer %x, want %x", buf[:n], want)
	}
}

// TestGT06 logs in, sends a location, a heartbeat and an alarm, and
// checks every answer byte by byte and the state.
func TestGT06(t *testing.T) {
	f := newFixture(t)
	tr := f.tracker("123456789012345")
	l := f.gt06(Options{})
	d := dial(t, l.Addr())
	login, _ := hex.DecodeString("78780d01012345678901234500018cdd0d0a")
	d.send(login)
	d.expect(mustHex(t, "787805010001d9dc0d0a"))
	// Traccar's sample with the position their test names: no answer.
	d.send(mustHex(t, "78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a"))
	d.send(mustHex(t, "78780a134004040001000fdcee0d0a"))
	d.expect(mustHex(t, "78780513000f008f0d0a"))
	alarm := mustHex(t, "787825160b051b093523cf027ac8360c4657b30014000901cc00266a001e1740050400020008d7b10d0a")
	d.send(alarm)
	d.expect(gt06.AppendPacket(nil, false, gt06.TypeAlarm, nil, 8))
	_, s, _ := f.reg.Snapshot(tr.ID)
	if s.GPS.Location == nil || s.Additional["protocol"].Value != "gt06" || s.BatteryLevel == nil {
		t.Fatalf("state %+v", s)
	}
	// A second login as another device is refused.
	other, _ := gt06.AppendLogin(nil, "999999999999999", 2)
	d.send(other)
	d.closed()
}

// TestGT06Refuses closes connections that do not log in as a known,
// unblocked device, without an answer.
func TestGT06Refuses(t *testing.T) {
	f := newFixture(t)
	blocked := f.tracker("222222222222222")
	if err := f.reg.SetBlocked(f.ctx, blocked.ID, true); err != nil {
		t.Fatal(err)
	}
	l := f.gt06(Options{})
	for _, imei := range []string{"999999999999999", blocked.DeviceID} {
		d := dial(t, l.Addr())
		b, _ := gt06.AppendLogin(nil, imei, 1)
		d.send(b)
		d.closed()
	}
	d := dial(t, l.Addr())
	d.send(mustHex(t, "78780a134004040001000fdcee0d0a")) // a heartbeat before any login
	d.closed()
	d = dial(t, l.Addr())
	d.send([]byte("\x00\x01garbage"))
	d.closed()
}

// TestGT06Command sends the relay command and hands the device's answer
// back, matched by server flag.
func TestGT06Command(t *testing.T) {
	f := newFixture(t)
	tr := f.tracker("123456789012345")
	l := f.gt06(Options{})
	d := dial(t, l.Addr())
	login, _ := gt06.AppendLogin(nil, tr.DeviceID, 1)
	d.send(login)
	d.expect(mustHex(t, "787805010001d9dc0d0a"))
	res := make(chan string, 1)
	go func() {
		a, ok, err := f.links.SetOutput(f.ctx, tr.DeviceID, 1, true)
		if err != nil || !ok {
			a = "error"
		}
		res <- a
	}()
	want, _ := gt06.EncodeCommand(1, GT06RelayOn, 1)
	d.expect(want)
	answer := append([]byte{byte(4 + len("RELAY=1:Success!")), 0, 0, 0, 1}, "RELAY=1:Success!"...)
	answer = append(answer, 0x00, 0x02)
	d.send(gt06.AppendPacket(nil, false, gt06.TypeStringInfo, answer, 2))
	if a := <-res; a != "RELAY=1:Success!" {
		t.Fatalf("answer %q", a)
	}
	if _, _, err := f.links.SetOutput(f.ctx, tr.DeviceID, 2, true); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("output 2: %v", err)
	}
}

// TestGT06UDP logs in and reports over UDP.
func TestGT06UDP(t *testing.T) {
	f := newFixture(t)
	tr := f.tracker("123456789012345")
	l := f.gt06(Options{})
	c, err := net.Dial("udp", l.UDPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	roundTrip := func(in, want []byte) {
		t.Helper()
		if _, err := c.Write(in); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], want) {
			t.Fatalf("answer %x (%v), want %x", buf[:n], err, want)
		}
	}
	roundTrip(mustHex(t, "78780d01012345678901234500018cdd0d0a"), mustHex(t, "787805010001d9dc0d0a"))
	roundTrip(mustHex(t, "78780a134004040001000fdcee0d0a"), mustHex(t, "78780513000f008f0d0a"))
	if _, s, _ := f.reg.Snapshot(tr.ID); s.BatteryLevel == nil {
		t.Fatalf("state %+v", s)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAckAfterHistoryWrite: with the history recorder in front of the
// state, a packet's acknowledgement comes after its records are in the
// store, and a failing store means no acknowledgement.
func TestAckAfterHistoryWrite(t *testing.T) {
	f := newFixture(t)
	tr := f.tracker("666666666666666")
	rec := history.New(f.reg, f.st, history.Options{})
	done := make(chan error, 1)
	go func() { done <- rec.Run(f.ctx) }()
	t.Cleanup(func() { f.cancel(); <-done })
	l := f.serve(ListenTeltonika("127.0.0.1:0", rec, f.links, Options{Logger: quiet}))
	d := dial(t, l.Addr())
	d.send(teltonika.AppendIMEI(nil, tr.DeviceID))
	d.expect([]byte{teltonika.Accept})
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond).UTC()
	var recs []teltonika.Record
	for i := range 30 {
		recs = append(recs, teltonika.Record{Time: at.Add(time.Duration(i) * time.Second), Lat: 54 + float64(i)*1e-4, Lon: 25, Satellites: 7, Speed: 30})
	}
	data, _ := teltonika.AppendAVL(nil, teltonika.Codec8, recs)
	d.send(teltonika.AppendFrame(nil, data))
	d.expect(teltonika.AppendAck(nil, 30))
	// No waiting: the ack promised they are written.
	pts, err := f.st.Points(f.ctx, tr.ID, at.Add(-time.Second), at.Add(time.Minute), 100)
	if err != nil || len(pts) != 30 || !pts[29].Time.Equal(recs[29].Time) {
		t.Fatalf("%v: %d points after the ack", err, len(pts))
	}
	// A store that fails: the device gets no ack for the packet.
	f.st.Close()
	d.send(teltonika.AppendFrame(nil, data))
	d.expect(teltonika.AppendAck(nil, 0))
	d.closed()
}

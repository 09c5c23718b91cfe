package server

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"io"
	"net"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/ingest/gt06"
	"github.com/fleetwire/fleetwire/internal/ingest/teltonika"
)

// trackerConn is a Teltonika or GT06 device's TCP connection.
type trackerConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialTracker(t *testing.T, addr string) *trackerConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &trackerConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (d *trackerConn) send(b []byte) {
	d.t.Helper()
	if _, err := d.nc.Write(b); err != nil {
		d.t.Fatal(err)
	}
}

func (d *trackerConn) expect(want []byte) {
	d.t.Helper()
	got := make([]byte, len(want))
	_ = d.nc.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.ReadFull(d.br, got); err != nil {
		d.t.Fatalf("read (want %x): %v", want, err)
	}
	if !bytes.Equal(got, want) {
		d.t.Fatalf("got %x, want %x", got, want)
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func trackerListeners(c *Config) {
	c.TeltonikaListen = "127.0.0.1:0"
	c.GT06Listen = "127.0.0.1:0"
}

// TestTrackersEndToEnd connects a Teltonika and a GT06 device to a real
// server, checks their acknowledgements byte by byte, sees their
// positions as state events of an event API subscriber, and round-trips
// commands through the REST API to the devices' sockets and back.
func TestTrackersEndToEnd(t *testing.T) {
	h := startServer(t, trackerListeners)
	uid := h.createUser("fleet@example.com", "secret-1", "UTC")
	tel := h.createTracker(uid, "Truck", "352093081452251")
	gt := h.createTracker(uid, "Van", "123456789012345")
	hash := h.login("fleet@example.com", "secret-1")
	ev := h.dialEvents(nil)
	ev.send(subscribeMsg(hash, map[string]any{"type": "state", "trackers": []int64{tel.id, gt.id}}))
	ev.await(wait, "response", func(m map[string]any) bool { return m["type"] == "response" })

	// Teltonika: handshake, one of Traccar's Codec 8 packets, its ack.
	td := dialTracker(t, h.srv.TeltonikaAddr())
	td.send(teltonika.AppendIMEI(nil, tel.device))
	td.expect([]byte{teltonika.Accept})
	at := time.Now().Add(-10 * time.Second).UTC()
	data, _ := teltonika.AppendAVL(nil, teltonika.Codec8, []teltonika.Record{{Time: at, Lat: 54.6872, Lon: 25.2797, Satellites: 9, Speed: 50, IO: []teltonika.IO{{ID: 239, Size: 1, Value: 1}}}})
	td.send(teltonika.AppendFrame(nil, data))
	td.expect(teltonika.AppendAck(nil, 1))
	state := ev.await(wait, "Teltonika state", func(m map[string]any) bool {
		if !isEvent("state")(m) {
			return false
		}
		d := m["data"].(map[string]any)
		return int64(d["source_id"].(float64)) == tel.sourceID && d["gps"].(map[string]any)["location"] != nil
	})
	if loc := state["data"].(map[string]any)["gps"].(map[string]any)["location"].(map[string]any); loc["lat"] != 54.6872 {
		t.Fatalf("location %v", loc)
	}

	// GT06: login, Traccar's location sample, a heartbeat and its ack.
	gd := dialTracker(t, h.srv.GT06Addr())
	login, _ := gt06.AppendLogin(nil, gt.device, 1)
	gd.send(login)
	gd.expect(unhex(t, "787805010001d9dc0d0a"))
	gd.send(unhex(t, "78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a"))
	gd.send(unhex(t, "78780a134004040001000fdcee0d0a"))
	gd.expect(unhex(t, "78780513000f008f0d0a"))
	ev.await(wait, "GT06 state", func(m map[string]any) bool {
		if !isEvent("state")(m) {
			return false
		}
		d := m["data"].(map[string]any)
		loc, _ := d["gps"].(map[string]any)["location"].(map[string]any)
		return int64(d["source_id"].(float64)) == gt.sourceID && loc != nil && loc["lat"].(float64) > 54.9
	})

	// tracker/raw_command/send to the Teltonika device: Codec 12 on its
	// socket, its answer in the response.
	type answer struct {
		code int
		body map[string]any
	}
	res := make(chan answer, 1)
	go func() {
		code, body := h.call("POST", "/v2/tracker/raw_command/send", map[string]any{"hash": hash, "tracker_id": tel.id, "command": "getver"}, nil)
		res <- answer{code, body}
	}()
	want, _ := teltonika.EncodeCommand([]byte("getver"))
	td.expect(want)
	td.send(teltonika.AppendFrame(nil, teltonika.AppendResponse(nil, "Ver:03.27.07_00 GPS:AXN_5.1.6")))
	if a := <-res; a.code != 200 || a.body["success"] != true || a.body["response"] != "Ver:03.27.07_00 GPS:AXN_5.1.6" {
		t.Fatalf("raw_command/send: %d %v", a.code, a.body)
	}

	// tracker/output/set to the GT06 device: the relay command, answered.
	go func() {
		code, body := h.call("POST", "/v2/tracker/output/set", map[string]any{"hash": hash, "tracker_id": gt.id, "output": 1, "enable": true}, nil)
		res <- answer{code, body}
	}()
	cmd, _ := gt06.EncodeCommand(1, "RELAY,1#", 1)
	gd.expect(cmd)
	reply := append([]byte{byte(4 + len("RELAY=1:Success!")), 0, 0, 0, 1}, "RELAY=1:Success!"...)
	gd.send(gt06.AppendPacket(nil, false, gt06.TypeStringInfo, append(reply, 0, 2), 3))
	if a := <-res; a.code != 200 || a.body["response"] != "RELAY=1:Success!" {
		t.Fatalf("output/set: %d %v", a.code, a.body)
	}
	// Output 2 of a GT06 is not there: 214.
	if code, body := h.call("POST", "/v2/tracker/output/set", map[string]any{"hash": hash, "tracker_id": gt.id, "output": 2, "enable": true}, nil); code != 400 || body["status"].(map[string]any)["code"] != 214.0 {
		t.Fatalf("output 2: %d %v", code, body)
	}

	// Once the device has gone, its commands are 213, not MQTT messages.
	td.nc.Close()
	deadline := time.Now().Add(wait)
	for {
		code, body := h.call("POST", "/v2/tracker/raw_command/send", map[string]any{"hash": hash, "tracker_id": tel.id, "command": "getver"}, nil)
		if code == 400 && body["status"].(map[string]any)["code"] == 213.0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("offline device: %d %v", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

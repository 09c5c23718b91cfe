package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// brokers lists the MQTT setups to test against: the machine's real
// broker (FLEETWIRE_TEST_MQTT_URL, default tcp://127.0.0.1:1883; "off"
// skips it) and fleetwire's embedded broker.
func brokers() map[string]func(*Config) {
	out := map[string]func(*Config){
		"embedded": func(c *Config) { c.MQTTListen = "127.0.0.1:0" },
	}
	ext := os.Getenv("FLEETWIRE_TEST_MQTT_URL")
	if ext == "" {
		ext = "tcp://127.0.0.1:1883"
	}
	if ext != "off" {
		out["mosquitto"] = func(c *Config) { c.MQTTURL = ext }
	}
	return out
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// mqttDevice is an MQTT client playing a tracker: it signs in with the
// device id and secret (the machine's Mosquitto admits anyone; the
// embedded broker checks them).
func mqttDevice(t *testing.T, url, deviceID, secret string) paho.Client {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(url).SetClientID("test-device-" + randomSuffix()).SetConnectTimeout(5 * time.Second).
		SetUsername(deviceID).SetPassword(secret)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect to %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t *testing.T, c paho.Client, topic, payload string) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// TestMQTTDevicesEndToEnd: a device publishing over MQTT reaches event
// subscribers as state and readings_batch events; an output switched over
// the REST API reaches the device, and its confirmation updates the state.
func TestMQTTDevicesEndToEnd(t *testing.T) {
	for name, setup := range brokers() {
		t.Run(name, func(t *testing.T) {
			h := startServer(t, setup)
			if h.srv.MQTTURL() == "" {
				t.Fatal("server has no MQTT broker")
			}
			select {
			case <-h.srv.mqttSub.Ready():
			case <-time.After(10 * time.Second):
				t.Fatal("MQTT ingest did not subscribe")
			}
			uid := h.createUser("mqtt-"+name, "pw-mqtt-secret", "UTC")
			h.createUser("mqtt-other-"+name, "pw-other-secret", "UTC")
			dev := "iot-" + randomSuffix()
			tr := h.createTracker(uid, "Tank truck", dev)
			hash := h.login("mqtt-"+name, "pw-mqtt-secret")
			otherHash := h.login("mqtt-other-"+name, "pw-other-secret")

			c := h.dialEvents(nil)
			c.send(subscribeMsg(hash,
				map[string]any{"type": "state", "trackers": []int64{tr.id}},
				map[string]any{"type": "readings_batch", "target": map[string]any{"type": "selected", "tracker_ids": []int64{tr.id}}, "rate_limit": "100ms"},
			))
			c.await(wait, "response", func(m map[string]any) bool { return m["type"] == "response" })

			device := mqttDevice(t, h.srv.MQTTURL(), dev, h.deviceSecret(tr.id, ""))
			publish(t, device, "fleetwire/"+dev+"/position", `{"lat":48.1,"lon":11.5,"speed":42,"heading":90,"sat":9}`)
			c.await(wait, "state from MQTT position", func(m map[string]any) bool {
				if !isEvent("state")(m) {
					return false
				}
				loc, _ := m["data"].(map[string]any)["gps"].(map[string]any)["location"].(map[string]any)
				return loc != nil && loc["lat"] == 48.1
			})
			publish(t, device, "fleetwire/"+dev+"/readings", `{"fuel_level":41.5,"temperature_1":-3}`)
			c.await(wait, "readings_batch from MQTT readings", func(m map[string]any) bool {
				if !isEvent("readings_batch")(m) {
					return false
				}
				r, _ := m["data"].([]any)[0].(map[string]any)[itoa(tr.id)].(map[string]any)
				if r == nil {
					return false
				}
				for _, in := range r["inputs"].([]any) {
					if s := in.(map[string]any); s["name"] == "fuel_level" && s["value"] == 41.5 {
						return true
					}
				}
				return false
			})

			// REST output switch → the device's command topic.
			cmds := make(chan string, 4)
			if tok := device.Subscribe("fleetwire/"+dev+"/cmd/#", 1, func(_ paho.Client, m paho.Message) {
				cmds <- m.Topic() + " " + string(m.Payload())
			}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatalf("device subscribe: %v", tok.Error())
			}
			code, m := h.call("POST", "/v2/tracker/output/set", map[string]any{"hash": otherHash, "tracker_id": tr.id, "output": 1, "enable": true}, nil)
			if code == 200 || m["status"].(map[string]any)["code"] != 204.0 {
				t.Fatalf("another user switched the output: %d %v", code, m)
			}
			code, m = h.call("POST", "/v2/tracker/output/set", map[string]any{"hash": hash, "tracker_id": tr.id, "output": 1, "enable": true}, nil)
			if code != 200 || m["success"] != true {
				t.Fatalf("output/set: %d %v", code, m)
			}
			select {
			case got := <-cmds:
				if want := "fleetwire/" + dev + `/cmd/output {"index":1,"state":true}`; got != want {
					t.Errorf("command %q, want %q", got, want)
				}
			case <-time.After(wait):
				t.Fatal("the device got no command")
			}
			// The device confirms; the state's outputs follow.
			publish(t, device, "fleetwire/"+dev+"/io", `{"outputs":[true,false]}`)
			c.await(wait, "state with confirmed outputs", func(m map[string]any) bool {
				if !isEvent("state")(m) {
					return false
				}
				out, _ := m["data"].(map[string]any)["outputs"].([]any)
				return fmt.Sprint(out) == "[true false]"
			})
			// The foreign user sees nothing of it over REST either.
			code, _ = h.call("POST", "/v2/tracker/readings/list", map[string]any{"hash": otherHash, "tracker_id": tr.id}, nil)
			if code == 200 {
				t.Errorf("another user read the readings")
			}
		})
	}
}

// TestNGPIngest: a device speaking the generic protocol over HTTP moves
// its tracker.
func TestNGPIngest(t *testing.T) {
	h := startServer(t, func(c *Config) { c.NGPListen = "127.0.0.1:0" })
	uid := h.createUser("ngp-user", "pw-ngp-secret", "UTC")
	dev := "ngp-" + randomSuffix()
	tr := h.createTracker(uid, "Generic", dev)
	hash := h.login("ngp-user", "pw-ngp-secret")
	c := h.dialEvents(nil)
	c.send(subscribeMsg(hash, map[string]any{"type": "state", "trackers": []int64{tr.id}}))
	c.await(wait, "initial state", isEvent("state"))
	body := fmt.Sprintf(`{"message_time":"%s","device_id":"%s","location":{"latitude":34.15929,"longitude":-118.4894,"speed":40,"satellites":8}}`,
		time.Now().UTC().Format("2006-01-02T15:04:05Z"), dev)
	code := postRaw(t, "http://"+h.srv.NGPAddr()+"/", body)
	if code != 200 {
		t.Fatalf("NGP message answered %d", code)
	}
	ev := c.await(wait, "state from NGP", func(m map[string]any) bool {
		loc, _ := m["data"].(map[string]any)["gps"].(map[string]any)["location"].(map[string]any)
		return isEvent("state")(m) && loc != nil && loc["lat"] == 34.15929
	})
	if sp := ev["data"].(map[string]any)["gps"].(map[string]any)["speed"]; sp != 40.0 {
		t.Errorf("speed %v", sp)
	}
	if code := postRaw(t, "http://"+h.srv.NGPAddr()+"/", `{"device_id":"nobody"}`); code < 400 || code >= 500 {
		t.Errorf("bad NGP message answered %d, want 4xx", code)
	}
}

func postRaw(t *testing.T, url, body string) int {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

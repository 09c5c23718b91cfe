package server

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
)

// BenchmarkMQTTToWebSocket measures the end-to-end latency from an MQTT
// publish of a position to the state event on an event API WebSocket, at
// 1,000 messages/s over 100 devices, through the embedded broker and the
// machine's Mosquitto. Each
// position's latitude carries its sequence number; the publisher keeps the
// send time of each. Reported: p50 and p99 in milliseconds.
//
//	go test -run '^$' -bench MQTTToWebSocket -benchtime 10x ./internal/server
func BenchmarkMQTTToWebSocket(b *testing.B) {
	for name, setup := range brokers() {
		b.Run(name, func(b *testing.B) { benchMQTTToWebSocket(b, setup) })
	}
}

func benchMQTTToWebSocket(b *testing.B, setup func(*Config)) {
	h := startServer(b, setup)
	<-h.srv.mqttSub.Ready()
	suffix := randomSuffix()
	uid := h.createUser("bench-mqtt", "pw-bench-secret", "UTC")
	const devices = 100
	ids := make([]int64, devices)
	for i := range ids {
		ids[i] = h.createTracker(uid, "bench", fmt.Sprintf("mqtt-bench-%s-%03d", suffix, i)).id
	}
	hash := h.login("bench-mqtt", "pw-bench-secret")
	conn, _, err := websocket.DefaultDialer.Dial("ws"+h.base[len("http"):]+"/v2/event/subscription?X-Atmosphere-tracking-id=0&X-Atmosphere-Transport=websocket", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	sub, _ := json.Marshal(subscribeMsg(hash, map[string]any{"type": "state", "trackers": ids}))
	if err := conn.WriteMessage(websocket.TextMessage, sub); err != nil {
		b.Fatal(err)
	}

	var mu sync.Mutex
	sent := map[int]time.Time{}
	var lat []float64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var m struct {
				Event string `json:"event"`
				Data  struct {
					GPS struct {
						Location *struct{ Lat float64 } `json:"location"`
					} `json:"gps"`
				} `json:"data"`
			}
			if json.Unmarshal(data, &m) != nil || m.Event != "state" || m.Data.GPS.Location == nil {
				continue
			}
			seq := int(math.Round((m.Data.GPS.Location.Lat + 80) * 1e5))
			now := time.Now()
			mu.Lock()
			if at, ok := sent[seq]; ok {
				lat = append(lat, float64(now.Sub(at).Microseconds())/1000)
				delete(sent, seq)
			}
			mu.Unlock()
		}
	}()

	// One publisher plays a gateway for all 100 devices: on the embedded
	// broker only fleetwire's internal client may do that.
	url := h.srv.MQTTURL()
	if h.srv.broker != nil {
		url = h.srv.broker.InternalURL()
	}
	dev := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("bench-pub-" + suffix))
	if tok := dev.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	defer dev.Disconnect(100)
	time.Sleep(200 * time.Millisecond)
	b.ResetTimer()
	seq := 0
	tick := time.NewTicker(time.Millisecond) // 1,000 messages/s
	defer tick.Stop()
	for i := 0; i < b.N; i++ {
		for j := 0; j < 1000; j++ { // one second of traffic per iteration
			<-tick.C
			seq++
			payload := `{"lat":` + strconv.FormatFloat(-80+float64(seq)*1e-5, 'f', 5, 64) + `,"lon":13.4,"speed":30}`
			mu.Lock()
			sent[seq] = time.Now()
			mu.Unlock()
			dev.Publish(fmt.Sprintf("fleetwire/mqtt-bench-%s-%03d/position", suffix, seq%devices), 0, false, payload)
		}
	}
	time.Sleep(500 * time.Millisecond)
	b.StopTimer()
	conn.Close()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(lat) == 0 {
		b.Fatal("no state arrived")
	}
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
	b.ReportMetric(float64(seq-len(lat)), "lost")
}

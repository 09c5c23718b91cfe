package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// centrifugoSys drives a Centrifugo server with the same workload: one
// channel per fleet, clients over its JSON WebSocket protocol, updates
// published through its HTTP API with a payload shaped and sized like a
// compact fleetwire state.
type centrifugoSys struct {
	cfg    *Config
	ingest *http.Client
}

func newCentrifugo(cfg *Config) *centrifugoSys {
	return &centrifugoSys{cfg: cfg, ingest: newIngestClient(cfg.IngestWorkers)}
}

func (s *centrifugoSys) Name() string { return "centrifugo" }

func (s *centrifugoSys) MetricsURL() string { return strings.TrimRight(s.cfg.URL, "/") + "/metrics" }

// Setup has nothing to create: channels exist while someone subscribes.
func (s *centrifugoSys) Setup(context.Context) error { return nil }

func (s *centrifugoSys) wsURL() string {
	u, _ := url.Parse(strings.TrimRight(s.cfg.URL, "/") + "/connection/websocket")
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	return u.String()
}

func fleetChannel(f int) string { return "fleet" + strconv.Itoa(f) }

var (
	cfPing  = []byte("{}")
	cfPush  = []byte(`"push"`)
	cfError = []byte(`"error"`)
)

// splitCentrifugo hands each newline-separated reply or push in a frame to
// fn: Centrifugo's JSON protocol may merge several into one frame.
func splitCentrifugo(frame []byte, fn func([]byte)) {
	for len(frame) > 0 {
		line := frame
		if i := bytes.IndexByte(frame, '\n'); i >= 0 {
			line, frame = frame[:i], frame[i+1:]
		} else {
			frame = nil
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			fn(line)
		}
	}
}

// Connect opens connection i, connects and subscribes it to its fleet's
// channel, waiting for both replies.
func (s *centrifugoSys) Connect(ctx context.Context, c *client, d *websocket.Dialer) error {
	ws, resp, err := d.DialContext(ctx, s.wsURL(), nil)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("dial: %w (HTTP %s)", err, resp.Status)
		}
		return fmt.Errorf("dial: %w", err)
	}
	c.ws = ws
	c.noteExtensions(resp)
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	steps := []string{
		`{"id":1,"connect":{"name":"fwload"}}`,
		fmt.Sprintf(`{"id":2,"subscribe":{"channel":%q}}`, fleetChannel(s.cfg.ConnFleet(c.id))),
	}
	for n, cmd := range steps {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
			return fmt.Errorf("send command %d: %w", n+1, err)
		}
		want := []byte(`"id":` + strconv.Itoa(n+1) + `,`)
		done := false
		for !done {
			frame, err := c.read()
			if err != nil {
				return fmt.Errorf("wait for reply %d: %w", n+1, err)
			}
			var fail []byte
			splitCentrifugo(frame, func(m []byte) {
				if bytes.Contains(m, want) {
					done = true
					if bytes.Contains(m, cfError) {
						fail = m
					}
					return
				}
				s.handleOne(c, m)
			})
			if fail != nil {
				return fmt.Errorf("command %d refused: %.300s", n+1, fail)
			}
		}
	}
	_ = ws.SetReadDeadline(time.Time{})
	return nil
}

// Handle accounts for one frame and answers pings.
func (s *centrifugoSys) Handle(c *client, frame []byte) {
	splitCentrifugo(frame, func(m []byte) { s.handleOne(c, m) })
}

func (s *centrifugoSys) handleOne(c *client, m []byte) {
	switch {
	case bytes.Equal(m, cfPing):
		c.stats.heartbeats.Add(1)
		if err := c.ws.WriteMessage(websocket.TextMessage, cfPing); err != nil {
			c.stats.noteError("pong: %v", err)
		}
	case bytes.Contains(m, cfPush):
		c.stats.countStates(m)
	case bytes.Contains(m, cfError):
		c.stats.errorFrames.Add(1)
		c.stats.noteError("error reply: %.200s", m)
	}
}

// statePayload renders a compact source state as fleetwire would send it,
// so both servers carry the same bytes per update.
func statePayload(t int, lat float64, now time.Time) string {
	ts := now.UTC().Format("2006-01-02 15:04:05")
	return `{"source_id":` + strconv.Itoa(100000+t) +
		`,"gps":{"updated":"` + ts + `","signal_level":100,"location":{"lat":` + FormatLat(lat) +
		`,"lng":` + strconv.FormatFloat(13+float64(t%1000)*1e-3, 'f', 5, 64) +
		`},"heading":` + strconv.Itoa(t%360) + `,"speed":` + strconv.Itoa(18+t%74) + `,"alt":120},` +
		`"connection_status":"active","movement_status":"moving","movement_status_update":"` + ts +
		`","ignition":null,"ignition_update":null,"last_update":"` + ts + `"}`
}

// Ingest publishes one update for tracker t to its fleet's channel.
func (s *centrifugoSys) Ingest(ctx context.Context, t int, lat float64) error {
	body := `{"channel":"` + fleetChannel(s.cfg.FleetOf(t)) + `","data":` + statePayload(t, lat, time.Now()) + `}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(s.cfg.URL, "/")+"/api/publish", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", s.cfg.APIKey)
	resp, err := s.ingest.Do(req)
	if err != nil {
		return err
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || bytes.Contains(raw, cfError) {
		return fmt.Errorf("publish: %s: %s", resp.Status, bytes.TrimSpace(raw))
	}
	return nil
}

var _ system = (*centrifugoSys)(nil)

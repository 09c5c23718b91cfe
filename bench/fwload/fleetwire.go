package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sync/errgroup"
)

// fleetwireSys drives a fleetwire server: users and trackers through the
// admin API, clients over the Atmosphere WebSocket, updates over OsmAnd.
type fleetwireSys struct {
	cfg    *Config
	http   *http.Client
	ingest *http.Client
	run    string // prefix of every login and device id of this run

	fleets   [][]int64 // tracker ids per fleet
	devices  []string  // device id per tracker index
	hashes   []string  // session hash per fleet
	password string
}

func newFleetwire(cfg *Config) *fleetwireSys {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return &fleetwireSys{
		cfg:      cfg,
		http:     &http.Client{Timeout: 30 * time.Second},
		ingest:   newIngestClient(cfg.IngestWorkers),
		run:      "b" + hex.EncodeToString(b),
		password: "bench-password-1",
	}
}

func newIngestClient(workers int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        workers * 2,
			MaxIdleConnsPerHost: workers * 2,
			DisableCompression:  true,
			IdleConnTimeout:     time.Minute,
		},
	}
}

func (s *fleetwireSys) Name() string { return "fleetwire" }

func (s *fleetwireSys) MetricsURL() string { return strings.TrimRight(s.cfg.URL, "/") + "/metrics" }

// post sends a JSON body and decodes a JSON answer, failing on
// "success": false.
func (s *fleetwireSys) post(ctx context.Context, path string, admin bool, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(s.cfg.URL, "/")+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("build %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if admin {
		req.Header.Set("X-Admin-Key", s.cfg.AdminKey)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	var ok struct {
		Success bool `json:"success"`
	}
	if err := json.Unmarshal(raw, &ok); err != nil || !ok.Success {
		if len(raw) > 300 {
			raw = raw[:300]
		}
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, bytes.TrimSpace(raw))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("decode %s: %w", path, err)
		}
	}
	return nil
}

// Setup creates one user per fleet and its trackers, then signs each user
// in once; every connection of a fleet shares that session.
func (s *fleetwireSys) Setup(ctx context.Context) error {
	if s.cfg.Login != "" {
		return s.useAccount(ctx)
	}
	nf := s.cfg.Fleets()
	s.fleets = make([][]int64, nf)
	s.hashes = make([]string, nf)
	s.devices = make([]string, s.cfg.Trackers)
	users := make([]int64, nf)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for f := 0; f < nf; f++ {
		g.Go(func() error {
			var u struct {
				Value struct {
					ID int64 `json:"id"`
				} `json:"value"`
			}
			login := fmt.Sprintf("%sf%d", s.run, f)
			if err := s.post(gctx, "/admin/users", true, map[string]any{
				"login": login, "password": s.password, "title": "bench fleet " + strconv.Itoa(f), "time_zone": "UTC",
			}, &u); err != nil {
				return err
			}
			users[f] = u.Value.ID
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("create users: %w", err)
	}
	ids := make([]int64, s.cfg.Trackers)
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(16)
	for t := 0; t < s.cfg.Trackers; t++ {
		s.devices[t] = fmt.Sprintf("%st%d", s.run, t)
		g.Go(func() error {
			var tr struct {
				Value struct {
					ID int64 `json:"id"`
				} `json:"value"`
			}
			if err := s.post(gctx, "/admin/trackers", true, map[string]any{
				"user_id": users[s.cfg.FleetOf(t)], "label": "bench " + strconv.Itoa(t), "device_id": s.devices[t], "model": "osmand",
			}, &tr); err != nil {
				return err
			}
			ids[t] = tr.Value.ID
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("create trackers: %w", err)
	}
	for t, id := range ids {
		f := s.cfg.FleetOf(t)
		s.fleets[f] = append(s.fleets[f], id)
	}
	for f := 0; f < nf; f++ {
		var a struct {
			Hash string `json:"hash"`
		}
		if err := s.post(ctx, "/v2/user/auth", false, map[string]any{"login": fmt.Sprintf("%sf%d", s.run, f), "password": s.password}, &a); err != nil {
			return fmt.Errorf("sign in fleet %d: %w", f, err)
		}
		s.hashes[f] = a.Hash
	}
	return nil
}

// wsURL is the Atmosphere endpoint as atmosphere.js 2.3 calls it.
func (s *fleetwireSys) wsURL() string {
	u, _ := url.Parse(strings.TrimRight(s.cfg.URL, "/") + "/v2/event/subscription")
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	q := url.Values{}
	q.Set("X-Atmosphere-tracking-id", "0")
	q.Set("X-Atmosphere-Framework", "2.3.8-javascript")
	q.Set("X-Atmosphere-Transport", "websocket")
	q.Set("X-atmo-protocol", "true")
	q.Set("Content-Type", "application/json")
	u.RawQuery = q.Encode()
	return u.String()
}

// subscribeRequest is what connection i asks for.
func (s *fleetwireSys) subscribeRequest(i int) []byte {
	f := s.cfg.ConnFleet(i)
	kind := s.cfg.Mode
	if kind == "mixed" {
		kind = [2]string{"state_batch", "state"}[i%2]
	}
	req := map[string]any{"type": kind}
	if kind == "state" {
		req["trackers"] = s.fleets[f]
	} else {
		target := s.cfg.Target
		if target == "mixed" {
			target = [2]string{"all", "selected"}[(i/2)%2]
		}
		if target == "all" {
			req["target"] = map[string]any{"type": "all"}
		} else {
			req["target"] = map[string]any{"type": "selected", "tracker_ids": s.fleets[f]}
		}
		if s.cfg.RateLimit != "" {
			req["rate_limit"] = s.cfg.RateLimit
		}
	}
	if s.cfg.Format != "" {
		req["format"] = s.cfg.Format
	}
	b, _ := json.Marshal(map[string]any{"action": "subscribe", "hash": s.hashes[f], "requests": []any{req}})
	return b
}

// Connect opens connection i, waits for the Atmosphere handshake, subscribes
// and waits for the answer. Frames that arrive meanwhile (the current
// states) go through c.handle.
func (s *fleetwireSys) Connect(ctx context.Context, c *client, d *websocket.Dialer) error {
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
	gotHandshake := false
	for {
		frame, err := c.read()
		if err != nil {
			return fmt.Errorf("wait for %s: %w", map[bool]string{false: "handshake", true: "subscribe answer"}[gotHandshake], err)
		}
		switch classifyFleet(frame) {
		case frameHandshake:
			if gotHandshake {
				continue
			}
			gotHandshake = true
			if err := ws.WriteMessage(websocket.TextMessage, s.subscribeRequest(c.id)); err != nil {
				return fmt.Errorf("send subscribe: %w", err)
			}
		case frameResponse:
			_ = ws.SetReadDeadline(time.Time{})
			return nil
		case frameError:
			return fmt.Errorf("subscribe refused: %.300s", frame)
		default:
			s.Handle(c, frame)
		}
	}
}

// Handle accounts for one frame.
func (s *fleetwireSys) Handle(c *client, frame []byte) {
	switch classifyFleet(frame) {
	case frameState:
		c.stats.countStates(frame)
	case frameHeartbeat:
		c.stats.heartbeats.Add(1)
	case frameError:
		c.stats.errorFrames.Add(1)
		c.stats.noteError("error frame: %.200s", frame)
	case frameEvent:
		c.stats.otherEvents.Add(1)
	}
}

// Ingest sends one OsmAnd update for tracker t.
func (s *fleetwireSys) Ingest(ctx context.Context, t int, lat float64) error {
	// With several ingest URLs (a cluster's nodes), each device reports
	// to one of them, as a device sticks to the node it connected to.
	targets := strings.Split(s.cfg.Osmand, ",")
	u := fmt.Sprintf("%s/?id=%s&lat=%s&lon=%s&timestamp=%d&speed=%d&bearing=%d&altitude=120",
		strings.TrimRight(targets[t%len(targets)], "/"), s.devices[t], FormatLat(lat),
		strconv.FormatFloat(13+float64(t%1000)*1e-3, 'f', 5, 64), time.Now().Unix(), 10+t%40, t%360)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := s.ingest.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("osmand: %s", resp.Status)
	}
	return nil
}

// compile-time check
var _ system = (*fleetwireSys)(nil)

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// useAccount signs in to an existing account (the demo user of
// "fleetwire demo", say) and follows all its trackers from every connection;
// the server's own updates are what gets measured.
func (s *fleetwireSys) useAccount(ctx context.Context) error {
	var a struct {
		Hash string `json:"hash"`
	}
	if err := s.post(ctx, "/v2/user/auth", false, map[string]any{"login": s.cfg.Login, "password": s.cfg.Password}, &a); err != nil {
		return fmt.Errorf("sign in %s: %w", s.cfg.Login, err)
	}
	var list struct {
		List []struct {
			ID int64 `json:"id"`
		} `json:"list"`
	}
	if err := s.post(ctx, "/v2/tracker/list", false, map[string]any{"hash": a.Hash}, &list); err != nil {
		return fmt.Errorf("list trackers of %s: %w", s.cfg.Login, err)
	}
	if len(list.List) == 0 {
		return fmt.Errorf("user %s has no trackers", s.cfg.Login)
	}
	ids := make([]int64, len(list.List))
	for i, t := range list.List {
		ids[i] = t.ID
	}
	s.cfg.Trackers, s.cfg.FleetSize = len(ids), len(ids)
	s.fleets, s.hashes = [][]int64{ids}, []string{a.Hash}
	return nil
}

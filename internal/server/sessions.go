package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/events"
	"github.com/fleetwire/fleetwire/internal/outbox"
	"github.com/fleetwire/fleetwire/internal/wire/atmosphere"
)

// hubHandler serves the event hub over the Atmosphere transports of a
// single node.
type hubHandler struct{ hub *events.Hub }

func (h hubHandler) Open(_ *http.Request, id string, b atmosphere.Binding) (atmosphere.Session, error) {
	return h.hub.Open(id, b.Addr, b.Secret), nil
}

var _ interface{ Outbox() *outbox.Queue } = (*events.Client)(nil)

// clusterHandler serves the event hub on a cluster node: sessions are
// kept where every node finds them, taken over when their client comes
// to this node, and reached on the node holding them.
type clusterHandler struct {
	hubHandler
	sessions bus.Sessions
	nodes    bus.Nodes
	node     string
	bind     atmosphere.Bind
	log      *slog.Logger
	atmo     *atmosphere.Server // set once the server exists
}

// Resume takes session id over: the node holding it hands it off first.
func (h *clusterHandler) Resume(r *http.Request, id string, b atmosphere.Binding, received uint64, acked bool) (*atmosphere.Resumed, error) {
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	rec, err := h.load(ctx, id, b)
	if err != nil {
		return nil, err
	}
	if rec.Node != "" && rec.Node != h.node {
		if _, err := h.nodes.Ask(ctx, rec.Node, opHandoff, id, nil); err != nil && !errors.Is(err, bus.ErrNoNode) {
			return nil, fmt.Errorf("hand session over from %s: %w", rec.Node, err)
		}
		// What the node saved up to handing off.
		if rec, err = h.load(ctx, id, b); err != nil {
			return nil, err
		}
	}
	journal, err := h.sessions.ReadJournal(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("resume session: %w", err)
	}
	c, err := h.hub.Restore(ctx, rec, journal)
	if err != nil {
		return nil, fmt.Errorf("resume session: %w", err)
	}
	res := &atmosphere.Resumed{Session: c, Binding: atmosphere.Binding{Addr: rec.Addr, Secret: rec.Secret}}
	res.Last, res.Replay = replayOf(rec, journal, received, acked)
	h.log.Debug("session taken over", "tracking_id", atmosphere.ShortID(id), "from", rec.Node,
		"last", res.Last, "replay", len(res.Replay))
	return res, nil
}

// replayOf is the number of the last message delivered and, for a client
// that acknowledged received, the delivered messages after those, as the
// journal holds them: the longest run of consecutive numbers that ends
// at the last one.
func replayOf(rec *bus.SessionRecord, journal []*bus.JournalEntry, received uint64, acked bool) (last uint64, replay [][]byte) {
	last = rec.Last
	byNum := map[uint64][]byte{}
	for _, e := range journal {
		if e.Count > 0 {
			last = max(last, e.First+uint64(e.Count)-1)
		}
		for i, m := range e.Msgs {
			// A later delivery under a number given back wins.
			byNum[e.First+uint64(i)] = m
		}
	}
	if !acked || received >= last {
		return last, nil
	}
	first := last + 1
	for first > received+1 {
		if _, ok := byNum[first-1]; !ok {
			break
		}
		first--
	}
	for n := first; n <= last; n++ {
		replay = append(replay, byNum[n])
	}
	return last, replay
}

// load reads session id's record and checks the request may use it.
func (h *clusterHandler) load(ctx context.Context, id string, b atmosphere.Binding) (*bus.SessionRecord, error) {
	rec, err := h.sessions.LoadSession(ctx, id)
	if errors.Is(err, bus.ErrNoSession) {
		return nil, atmosphere.ErrUnknownSession
	}
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	if !(atmosphere.Binding{Addr: rec.Addr, Secret: rec.Secret}).Admits(b, h.bind) {
		return nil, atmosphere.ErrNotAdmitted
	}
	return rec, nil
}

// Forward passes a client message on to the node holding session id.
func (h *clusterHandler) Forward(r *http.Request, id string, b atmosphere.Binding, msg []byte) error {
	return h.ask(r, id, b, opPush, msg)
}

// End passes a close request on to the node holding session id; a
// session no node holds is forgotten.
func (h *clusterHandler) End(r *http.Request, id string, b atmosphere.Binding) error {
	err := h.ask(r, id, b, opEnd, nil)
	if errors.Is(err, atmosphere.ErrUnknownSession) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if _, lerr := h.load(ctx, id, b); lerr == nil {
			return h.sessions.DeleteSession(ctx, id)
		}
	}
	return err
}

func (h *clusterHandler) ask(r *http.Request, id string, b atmosphere.Binding, op string, body []byte) error {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	rec, err := h.load(ctx, id, b)
	if err != nil {
		return err
	}
	if rec.Node == "" || rec.Node == h.node {
		return atmosphere.ErrUnknownSession
	}
	held, err := h.nodes.Ask(ctx, rec.Node, op, id, body)
	if errors.Is(err, bus.ErrNoNode) || (err == nil && !held) {
		return atmosphere.ErrUnknownSession
	}
	return err
}

// Node requests.
const (
	opHandoff = "handoff"
	opPush    = "push"
	opEnd     = "end"
)

// serve answers the other nodes' requests about the sessions this node
// holds.
func (h *clusterHandler) serve(op, id string, body []byte) bool {
	switch op {
	case opHandoff:
		return h.atmo.Handoff(id)
	case opPush:
		return h.atmo.Deliver(id, body)
	case opEnd:
		return h.atmo.End(id)
	}
	return false
}

// idKey returns the key tracking ids are signed with: the cluster's, or
// on a single node one kept in the data directory, so that ids issued
// before a restart are still recognised.
func (s *Server) idKey(ctx context.Context) ([]byte, error) {
	if s.cluster != nil {
		return s.cluster.Key(ctx, "tracking-id-key")
	}
	dir := s.cfg.DataDir
	if dir == "" {
		dir = "data"
	}
	path := filepath.Join(dir, "tracking-id.key")
	if key, err := os.ReadFile(path); err == nil && len(key) >= 32 {
		return key, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tracking id key: %w", err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := os.WriteFile(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("tracking id key: %w", err)
	}
	return key, nil
}

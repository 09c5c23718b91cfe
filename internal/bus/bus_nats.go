package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// DefaultSubject is the NATS subject fleetwire nodes share.
const DefaultSubject = "fleetwire.events"

// NATS is a Bus over a NATS server, for running several fleetwire nodes
// behind one load balancer: every node receives every message, its own
// included, in the order the NATS server received them.
type NATS struct {
	conn    *nats.Conn
	subject string
	sub     *nats.Subscription
	log     *slog.Logger

	mu   sync.Mutex
	subs atomic.Pointer[[]*subscriber]
}

// NewNATS connects to url and subscribes to subject (DefaultSubject when
// empty).
func NewNATS(url, subject string, log *slog.Logger) (*NATS, error) {
	if subject == "" {
		subject = DefaultSubject
	}
	if log == nil {
		log = slog.Default()
	}
	conn, err := nats.Connect(url, nats.Name("fleetwire"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", url, err)
	}
	b := &NATS{conn: conn, subject: subject, log: log}
	b.subs.Store(&[]*subscriber{})
	b.sub, err = conn.Subscribe(subject, b.deliver)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("subscribe %s: %w", subject, err)
	}
	if err := b.sub.SetPendingLimits(1<<20, 256<<20); err != nil {
		conn.Close()
		return nil, fmt.Errorf("set pending limits: %w", err)
	}
	if err := conn.Flush(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("flush nats subscription: %w", err)
	}
	return b, nil
}

func (b *NATS) deliver(msg *nats.Msg) {
	m := new(Message)
	if err := json.Unmarshal(msg.Data, m); err != nil {
		b.log.Warn("bus: undecodable message", "subject", msg.Subject, "err", err)
		return
	}
	for _, s := range *b.subs.Load() {
		s.fn(m)
	}
}

// Publish sends m to every node.
func (b *NATS) Publish(_ context.Context, m *Message) error {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode bus message: %w", err)
	}
	if err := b.conn.Publish(b.subject, data); err != nil {
		return fmt.Errorf("publish to nats: %w", err)
	}
	return nil
}

// Subscribe adds fn; the returned func removes it. fn runs on the bus's
// delivery goroutine.
func (b *NATS) Subscribe(fn func(*Message)) (cancel func()) {
	s := &subscriber{fn: fn}
	b.mu.Lock()
	old := *b.subs.Load()
	next := append(append(make([]*subscriber, 0, len(old)+1), old...), s)
	b.subs.Store(&next)
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		cur := *b.subs.Load()
		next := make([]*subscriber, 0, len(cur))
		for _, x := range cur {
			if x != s {
				next = append(next, x)
			}
		}
		b.subs.Store(&next)
	}
}

// Close drains the subscription and closes the connection.
func (b *NATS) Close() error {
	if err := b.conn.Drain(); err != nil {
		b.conn.Close()
		return fmt.Errorf("drain nats: %w", err)
	}
	return nil
}

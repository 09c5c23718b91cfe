package trackers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetwire/fleetwire/internal/ingest/gt06"
	"github.com/fleetwire/fleetwire/internal/state"
)

// GT06 relay commands: output 1 is the fuel/power cut relay the GT06
// family has.
const (
	GT06RelayOn  = "RELAY,1#"
	GT06RelayOff = "RELAY,0#"
)

type gt06Proto struct {
	// peers are the UDP senders that logged in, by address.
	mu    sync.Mutex
	peers map[string]string
	order []string
}

func newGT06Proto() *gt06Proto { return &gt06Proto{peers: make(map[string]string)} }

func (*gt06Proto) name() string { return "gt06" }

func (p *gt06Proto) serve(ctx context.Context, c *conn) error {
	l := c.l
	c.deadline(l.opts.HandshakeTimeout)
	var buf []byte
	m, buf, err := p.read(c.br, buf, l.opts.MaxPacket)
	if err != nil {
		return err
	}
	if m.Type != gt06.TypeLogin {
		mGT06.badRequest.Inc()
		return fmt.Errorf("first packet is 0x%02x, not a login", m.Type)
	}
	imei := m.IMEI
	if err := admit(l.app, imei); err != nil {
		mGT06.count(0, err)
		return err
	}
	var serial atomic.Uint32
	send := func(ctx context.Context, cmd string) (string, error) {
		n := serial.Add(1)
		pkt, err := gt06.EncodeCommand(n, cmd, uint16(n))
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrUnsupported, err)
		}
		return c.command(ctx, pkt)
	}
	lk := &link{
		c: c, protocol: p.name(),
		raw: func(ctx context.Context, payload []byte) (string, error) {
			if !printableASCII(payload) {
				return "", fmt.Errorf("%w: GT06 commands are ASCII text", ErrUnsupported)
			}
			return send(ctx, string(payload))
		},
		outputs: func(ctx context.Context, states []*bool) (string, error) {
			if len(states) != 1 || states[0] == nil {
				return "", fmt.Errorf("%w: GT06 devices have one relay output", ErrUnsupported)
			}
			if *states[0] {
				return send(ctx, GT06RelayOn)
			}
			return send(ctx, GT06RelayOff)
		},
	}
	if err := c.login(imei, lk, gt06.Reply(m, l.opts.Now())); err != nil {
		return err
	}
	mGT06.conns.Add(1)
	defer mGT06.conns.Add(-1)

	for {
		c.deadline(l.opts.IdleTimeout)
		m, buf, err = p.read(c.br, buf, l.opts.MaxPacket)
		if err != nil {
			return err
		}
		if m.Type == gt06.TypeLogin && m.IMEI != imei {
			mGT06.badRequest.Inc()
			return fmt.Errorf("login as %s on the connection of %s", m.IMEI, imei)
		}
		if m.Type == gt06.TypeStringInfo || m.Type == gt06.TypeCommandReply {
			if !c.answer(m.Text) {
				l.log.Debug("trackers: answer without a command", "device", imei, "text", m.Text)
			}
		}
		if err := p.take(ctx, l, imei, m, c.write); err != nil {
			return err
		}
	}
}

// read reads and decodes the next packet.
func (*gt06Proto) read(br *bufio.Reader, buf []byte, max int) (*gt06.Message, []byte, error) {
	f, err := gt06.ReadFrame(br, buf, max)
	if err != nil {
		if errors.Is(err, gt06.ErrMalformed) {
			mGT06.badRequest.Inc()
		}
		return nil, buf, err
	}
	m, err := gt06.Decode(f)
	if err != nil {
		mGT06.badRequest.Inc()
		return nil, f.Raw[:0], err
	}
	return m, f.Raw[:0], nil
}

// take applies a packet's record and answers it as the protocol wants,
// only once the record was taken.
func (*gt06Proto) take(ctx context.Context, l *Listener, imei string, m *gt06.Message, reply func([]byte) error) error {
	if m.Record != nil {
		_, err := l.app.Apply(ctx, gt06Fix(imei, m.Record, l.opts.Now()))
		if err == nil {
			mGT06.count(1, nil)
		} else {
			mGT06.count(0, err)
			return fmt.Errorf("apply: %w", err)
		}
	}
	if r := gt06.Reply(m, l.opts.Now()); r != nil {
		return reply(r)
	}
	return nil
}

func (p *gt06Proto) datagram(ctx context.Context, l *Listener, b []byte, addr net.Addr) {
	br := bufio.NewReaderSize(bytes.NewReader(b), len(b)+16)
	reply := func(r []byte) error { l.replyUDP(r, addr); return nil }
	for {
		m, _, err := p.read(br, nil, l.opts.MaxPacket)
		if err != nil {
			if err != io.EOF {
				l.log.Debug("trackers: gt06 datagram", "remote", addr, "err", err)
			}
			return
		}
		if m.Type == gt06.TypeLogin {
			if err := admit(l.app, m.IMEI); err != nil {
				mGT06.count(0, err)
				return
			}
			p.remember(addr.String(), m.IMEI, l.opts.UDPPeers)
			_ = reply(gt06.Reply(m, l.opts.Now()))
			continue
		}
		p.mu.Lock()
		imei, ok := p.peers[addr.String()]
		p.mu.Unlock()
		if !ok {
			mGT06.unknownDevice.Inc()
			return
		}
		if err := p.take(ctx, l, imei, m, reply); err != nil {
			return
		}
	}
}

// remember keeps the device of a UDP address, forgetting the oldest
// beyond max.
func (p *gt06Proto) remember(addr, imei string, max int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.peers[addr]; !ok {
		p.order = append(p.order, addr)
		for len(p.order) > max {
			delete(p.peers, p.order[0])
			p.order = p.order[1:]
		}
	}
	p.peers[addr] = imei
}

// gt06Fix turns a record into a fix: a location only when the GPS fix
// is valid, the relay bit as output 1.
func gt06Fix(imei string, r *gt06.Record, now time.Time) *state.Fix {
	attrs := make(map[string]string, len(r.Attributes)+1)
	for k, v := range r.Attributes {
		attrs[k] = v
	}
	attrs["protocol"] = "gt06"
	f := &state.Fix{DeviceID: imei, Time: r.Time, ReceivedAt: now, Ignition: r.Ignition, Battery: r.BatteryLevel, Attributes: attrs}
	if relay, ok := attrs["relay"]; ok {
		f.Outputs = []bool{relay == "true"}
		delete(attrs, "relay")
	}
	if r.HasLocation && r.Valid && validLocation(r.Lat, r.Lon) {
		alt := 0.0
		if r.Altitude != nil {
			alt = float64(*r.Altitude)
		}
		setLocation(f, r.Lat, r.Lon, float64(r.Speed), float64(r.Course), alt, r.Satellites)
		if r.Altitude == nil {
			f.Alt = nil
		}
	}
	return f
}

func printableASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7E {
			return false
		}
	}
	return len(b) > 0
}

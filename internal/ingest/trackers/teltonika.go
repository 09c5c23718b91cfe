package trackers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"time"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/ingest/teltonika"
	"github.com/fleetwire/fleetwire/internal/state"
)

type teltonikaProto struct{}

func (teltonikaProto) name() string { return "teltonika" }

// MaxTeltonikaOutputs is the highest digital output tracker/output/set
// switches on a Teltonika device (setdigout takes one character per
// output).
const MaxTeltonikaOutputs = 4

func (p teltonikaProto) serve(ctx context.Context, c *conn) error {
	l := c.l
	c.deadline(l.opts.HandshakeTimeout)
	f, err := teltonika.ReadFrame(c.br, nil, l.opts.MaxPacket)
	if err != nil {
		return p.readErr(err)
	}
	if f.Kind != teltonika.FrameIMEI {
		mTeltonika.badRequest.Inc()
		return errors.New("first frame is not an IMEI")
	}
	imei := f.IMEI
	if err := admit(l.app, imei); err != nil {
		mTeltonika.count(0, err)
		_ = c.write([]byte{teltonika.Refuse})
		return err
	}
	lk := &link{
		c: c, protocol: p.name(),
		raw: func(ctx context.Context, payload []byte) (string, error) {
			pkt, err := teltonika.EncodeCommand(payload)
			if err != nil {
				return "", fmt.Errorf("%w: %w", ErrUnsupported, err)
			}
			return c.command(ctx, pkt)
		},
		outputs: func(ctx context.Context, states []*bool) (string, error) {
			if len(states) == 0 || len(states) > MaxTeltonikaOutputs {
				return "", fmt.Errorf("%w: %d outputs (the device has at most %d)", ErrUnsupported, len(states), MaxTeltonikaOutputs)
			}
			pkt, _ := teltonika.EncodeCommand([]byte("setdigout " + digout(states)))
			return c.command(ctx, pkt)
		},
	}
	if err := c.login(imei, lk, []byte{teltonika.Accept}); err != nil {
		return err
	}
	mTeltonika.conns.Add(1)
	defer mTeltonika.conns.Add(-1)

	var buf []byte
	for {
		c.deadline(l.opts.IdleTimeout)
		f, err := teltonika.ReadFrame(c.br, buf, l.opts.MaxPacket)
		if err != nil {
			return p.readErr(err)
		}
		switch f.Kind {
		case teltonika.FramePing:
			continue
		case teltonika.FrameIMEI:
			mTeltonika.badRequest.Inc()
			return errors.New("second IMEI on a connection")
		}
		buf = f.Data[:0]
		pk, err := teltonika.Decode(f.Data)
		if err != nil {
			mTeltonika.badRequest.Inc()
			return err
		}
		if len(pk.Records) > 0 {
			n, err := applyAll(ctx, l.app, teltonikaFixes(imei, pk.Records, l.opts.Now()))
			mTeltonika.count(n, err)
			if werr := c.write(teltonika.AppendAck(nil, n)); werr != nil {
				return werr
			}
			if err != nil {
				return fmt.Errorf("apply: %w", err)
			}
		}
		for _, m := range pk.Messages {
			if err := p.message(ctx, c, imei, pk.Codec, m); err != nil {
				return err
			}
		}
	}
}

// digout is setdigout's argument: one character per output, '1' on,
// '0' off, '?' as it is.
func digout(states []*bool) string {
	var b strings.Builder
	for _, s := range states {
		switch {
		case s == nil:
			b.WriteByte('?')
		case *s:
			b.WriteByte('1')
		default:
			b.WriteByte('0')
		}
	}
	return b.String()
}

func (teltonikaProto) readErr(err error) error {
	if errors.Is(err, teltonika.ErrMalformed) {
		mTeltonika.badRequest.Inc()
	}
	return err
}

// message handles a Codec 12 to 15 message: a command's answer goes to
// the command waiting for it, a driver sign-in (Codec 13 GTSL) to the
// tracker's state.
func (teltonikaProto) message(ctx context.Context, c *conn, imei string, codec teltonika.Codec, m teltonika.Message) error {
	switch {
	case m.Type == teltonika.TypeResponse, codec == teltonika.Codec14 && m.Type == teltonika.TypeNack:
		if !c.answer(m.Text()) {
			c.l.log.Debug("trackers: answer without a command", "device", imei, "text", m.Text())
		}
	case codec == teltonika.Codec13 || codec == teltonika.Codec15:
		if id, ok := m.DriverID(); ok {
			f := &state.Fix{DeviceID: imei, Time: m.Time, ReceivedAt: c.l.opts.Now(), Attributes: map[string]string{"driver_id": id, "protocol": "teltonika"}}
			_, err := c.l.app.Apply(ctx, f)
			mTeltonika.count(1, err)
			return err
		}
	}
	return nil
}

func (p teltonikaProto) datagram(ctx context.Context, l *Listener, b []byte, addr net.Addr) {
	d, err := teltonika.ParseUDP(b)
	if err != nil {
		mTeltonika.badRequest.Inc()
		return
	}
	pk, err := teltonika.Decode(d.Data)
	if err != nil || len(pk.Records) == 0 {
		mTeltonika.badRequest.Inc()
		return
	}
	if err := admit(l.app, d.IMEI); err != nil {
		// No answer: the device keeps its records until a server takes
		// them.
		mTeltonika.count(0, err)
		return
	}
	n, err := applyAll(ctx, l.app, teltonikaFixes(d.IMEI, pk.Records, l.opts.Now()))
	mTeltonika.count(n, err)
	l.replyUDP(teltonika.AppendUDPAck(nil, d, n), addr)
}

// admit checks that a device may send: its tracker exists and is not
// blocked.
func admit(app Applier, device string) error {
	t, ok := app.TrackerByDevice(device)
	switch {
	case !ok:
		return fmt.Errorf("%w: %q", state.ErrUnknownDevice, device)
	case t.Blocked:
		return state.ErrBlocked
	}
	return nil
}

// teltonikaFixes turns records into fixes. A record has a location when
// it has coordinates from satellites; its IO elements map as
// teltonika.Interpret describes.
func teltonikaFixes(imei string, recs []teltonika.Record, now time.Time) []*state.Fix {
	out := make([]*state.Fix, len(recs))
	for i := range recs {
		r := &recs[i]
		v := teltonika.Interpret(r)
		attrs := v.Attributes
		if attrs == nil {
			attrs = make(map[string]string, 2)
		}
		attrs["protocol"] = "teltonika"
		if r.Priority == 2 {
			attrs["alarm"] = "panic"
		}
		f := &state.Fix{
			DeviceID: imei, Time: r.Time, ReceivedAt: now,
			Ignition: v.Ignition, Battery: v.BatteryLevel,
			Inputs: v.Inputs, Outputs: v.Outputs, Attributes: attrs,
		}
		if r.HasGPS && r.Satellites > 0 && validLocation(r.Lat, r.Lon) {
			setLocation(f, r.Lat, r.Lon, float64(r.Speed), float64(r.Angle), float64(r.Altitude), r.Satellites)
		}
		out[i] = f
	}
	return out
}

func validLocation(lat, lon float64) bool {
	return !math.IsNaN(lat) && !math.IsNaN(lon) && math.Abs(lat) <= 90 && math.Abs(lon) <= 180 && (lat != 0 || lon != 0)
}

func setLocation(f *state.Fix, lat, lon, speed, heading, alt float64, sats int) {
	f.Location = &fleet.Location{Lat: lat, Lng: lon}
	f.Speed, f.Heading, f.Alt, f.Satellites = &speed, &heading, &alt, &sats
}

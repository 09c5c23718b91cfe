package state

import (
	"slices"
	"strconv"
	"time"

	"github.com/fleetwire/fleetwire/internal/fleet"
)

// HistorySize is how many recent messages per tracker the registry keeps
// for the stream analyzer (iot_monitor).
const HistorySize = 12

// Message is one device message as the stream analyzer shows it.
type Message = fleet.Record

// Field is one attribute of a Message.
type Field = fleet.Field

// history is a ring of a tracker's last HistorySize messages. Fixes
// applied on this node are kept as received (ingest hands them over and
// never touches them again) and turned into Messages only when the stream
// analyzer asks, so the ingest path pays for one pointer store; messages
// from other nodes arrive rendered.
type history struct {
	fixes [HistorySize]recorded
	n     int // messages ever recorded
}

type recorded struct {
	fix *Fix
	at  time.Time
	rec *fleet.Record // instead of fix, for a message rendered elsewhere
}

func (h *history) add(r recorded) {
	h.fixes[h.n%HistorySize] = r
	h.n++
}

// newest returns the messages, newest first.
func (h *history) newest() []Message {
	k := min(h.n, HistorySize)
	out := make([]Message, 0, k)
	for i := 1; i <= k; i++ {
		r := h.fixes[(h.n-i)%HistorySize]
		if r.rec != nil {
			out = append(out, *r.rec)
			continue
		}
		out = append(out, messageOf(r.fix, r.at, r.fix.ReceivedAt))
	}
	return out
}

// messageOf lists the attributes of fix f, received at srv, taken at at.
func messageOf(f *Fix, at, srv time.Time) Message {
	m := Message{MsgTime: at, SrvTime: srv}
	num := func(name string, v float64) {
		m.Fields = append(m.Fields, Field{Name: name, Value: strconv.AppendFloat(nil, v, 'f', -1, 64)})
	}
	str := func(name, v string) {
		m.Fields = append(m.Fields, Field{Name: name, Value: strconv.AppendQuote(nil, v)})
	}
	if f.Location != nil {
		str("latitude", strconv.FormatFloat(f.Location.Lat, 'f', -1, 64))
		str("longitude", strconv.FormatFloat(f.Location.Lng, 'f', -1, 64))
	}
	if f.Speed != nil {
		num("speed", *f.Speed)
	}
	if f.Heading != nil {
		num("heading", *f.Heading)
	}
	if f.Alt != nil {
		num("altitude", *f.Alt)
	}
	if f.Accuracy != nil {
		num("hdop", *f.Accuracy)
	}
	if f.Satellites != nil {
		num("satellites", float64(*f.Satellites))
	}
	if f.Battery != nil {
		num("battery_level", *f.Battery)
	}
	if f.Ignition != nil {
		m.Fields = append(m.Fields, Field{Name: "ignition", Value: strconv.AppendBool(nil, *f.Ignition)})
	}
	for i, in := range f.Inputs {
		m.Fields = append(m.Fields, Field{Name: "input_" + strconv.Itoa(i+1), Value: strconv.AppendBool(nil, in)})
	}
	for i, out := range f.Outputs {
		m.Fields = append(m.Fields, Field{Name: "output_" + strconv.Itoa(i+1), Value: strconv.AppendBool(nil, out)})
	}
	keys := make([]string, 0, len(f.Attributes))
	for k := range f.Attributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		str(k, f.Attributes[k])
	}
	return m
}

// History returns tracker id's last messages, newest first.
func (r *Registry) History(id int64) []Message {
	r.histMu.Lock()
	defer r.histMu.Unlock()
	h := r.hist[id]
	if h == nil {
		return nil
	}
	return h.newest()
}

func (r *Registry) record(id int64, rec recorded) {
	r.histMu.Lock()
	h := r.hist[id]
	if h == nil {
		h = &history{}
		r.hist[id] = h
	}
	h.add(rec)
	r.histMu.Unlock()
}

package state

import (
	"slices"
	"strconv"
	"time"
)

// HistorySize is how many recent messages per tracker the registry keeps
// for the stream analyzer (iot_monitor).
const HistorySize = 12

// Message is one device message as the stream analyzer shows it: every
// attribute it carried, by name. Values are JSON literals.
type Message struct {
	MsgTime, SrvTime time.Time
	Fields           []Field
}

// Field is one attribute of a Message.
type Field struct {
	Name  string
	Value []byte // JSON literal: a number, a string, true or false
}

// history is a ring of a tracker's last HistorySize fixes. The fixes are
// kept as received (ingest hands them over and never touches them again)
// and turned into Messages only when the stream analyzer asks, so the
// ingest path pays for one pointer store.
type history struct {
	fixes [HistorySize]recorded
	n     int // fixes ever recorded
}

type recorded struct {
	fix *Fix
	at  time.Time
}

func (h *history) add(f *Fix, at time.Time) {
	h.fixes[h.n%HistorySize] = recorded{f, at}
	h.n++
}

// newest returns the messages, newest first.
func (h *history) newest() []Message {
	k := min(h.n, HistorySize)
	out := make([]Message, 0, k)
	for i := 1; i <= k; i++ {
		r := h.fixes[(h.n-i)%HistorySize]
		out = append(out, messageOf(r.fix, r.at, r.fix.ReceivedAt))
	}
	return out
}

// messageOf lists the attributes of fix f, received at srv, taken at at.
func messageOf(f *Fix, at, srv time.Time) Message {
	m := Message{MsgTime: at, SrvTime: srv}
	num := func(name string, v float64) {
		m.Fields = append(m.Fields, Field{name, strconv.AppendFloat(nil, v, 'f', -1, 64)})
	}
	str := func(name, v string) {
		m.Fields = append(m.Fields, Field{name, strconv.AppendQuote(nil, v)})
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
		m.Fields = append(m.Fields, Field{"ignition", strconv.AppendBool(nil, *f.Ignition)})
	}
	for i, in := range f.Inputs {
		m.Fields = append(m.Fields, Field{"input_" + strconv.Itoa(i+1), strconv.AppendBool(nil, in)})
	}
	for i, out := range f.Outputs {
		m.Fields = append(m.Fields, Field{"output_" + strconv.Itoa(i+1), strconv.AppendBool(nil, out)})
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

func (r *Registry) record(id int64, f *Fix, at time.Time) {
	r.histMu.Lock()
	h := r.hist[id]
	if h == nil {
		h = &history{}
		r.hist[id] = h
	}
	h.add(f, at)
	r.histMu.Unlock()
}

package main

import (
	"math"
	"strconv"
	"sync/atomic"
	"time"
)

// Every update the load tool ingests carries a unique sequence number coded
// into its latitude, so a delivered state can be matched to the moment its
// update was sent without any help from the server: the server keeps the
// coordinate as it got it. The send times live in a ring indexed by the
// sequence number; the ring outlives any run this tool allows.
const (
	ringBits = 22
	ringSize = 1 << ringBits
	ringMask = ringSize - 1
	latBase  = -80.0
	latStep  = 1e-5
)

// SendLog records when each sequence number was sent.
type SendLog struct {
	next  atomic.Uint64
	sent  []atomic.Int64 // unix ns, 0 = unused
	start int64          // sends before this instant do not exist
}

// NewSendLog returns an empty log.
func NewSendLog() *SendLog {
	return &SendLog{sent: make([]atomic.Int64, ringSize), start: time.Now().UnixNano()}
}

// Next reserves a sequence number and stamps it with now. The returned
// latitude carries the sequence number.
func (l *SendLog) Next(now time.Time) (seq uint64, lat float64) {
	seq = l.next.Add(1) & ringMask
	l.sent[seq].Store(now.UnixNano())
	return seq, SeqLat(seq)
}

// Forget marks a sequence number as never delivered (its send failed).
func (l *SendLog) Forget(seq uint64) { l.sent[seq&ringMask].Store(0) }

// SentAt returns when the update behind a latitude was sent, or false when
// the latitude is not one of ours or was never sent in this run.
func (l *SendLog) SentAt(lat float64) (int64, bool) {
	seq, ok := LatSeq(lat)
	if !ok {
		return 0, false
	}
	t := l.sent[seq].Load()
	return t, t != 0 && t >= l.start
}

// SeqLat codes a sequence number as a latitude.
func SeqLat(seq uint64) float64 { return latBase + float64(seq&ringMask)*latStep }

// LatSeq recovers the sequence number from a latitude made by SeqLat, even
// after the latitude went through a decimal rendering with at least five
// fractional digits.
func LatSeq(lat float64) (uint64, bool) {
	k := math.Round((lat - latBase) / latStep)
	if k < 0 || k >= ringSize || math.IsNaN(k) {
		return 0, false
	}
	if math.Abs(SeqLat(uint64(k))-lat) > latStep/4 {
		return 0, false
	}
	return uint64(k), true
}

// FormatLat renders a latitude the way the tool sends it.
func FormatLat(lat float64) string { return strconv.FormatFloat(lat, 'f', 5, 64) }

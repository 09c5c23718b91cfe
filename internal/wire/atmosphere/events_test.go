package atmosphere

import (
	"testing"
	"time"
)

// TestEvents: a channel is closed by fire whether it was asked for before
// or after, every caller gets the same channel, firing again changes
// nothing and runs nothing, and events do not fire one another.
func TestEvents(t *testing.T) {
	closed := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	var e events
	c := e.C(0)
	if closed(c) || e.happened(0) {
		t.Fatal("fired before fire")
	}
	go func() { time.Sleep(10 * time.Millisecond); e.fire(0, nil) }()
	<-c
	if !e.happened(0) || e.C(0) != c {
		t.Fatal("after fire: not happened, or another channel")
	}
	if e.fire(0, func() { t.Error("before ran on a second fire") }) {
		t.Fatal("a second fire reported that it fired")
	}
	if e.happened(1) || e.happened(2) || closed(e.C(1)) {
		t.Fatal("firing event 0 fired another")
	}
	ran := false
	if !e.fire(1, func() { ran = true }) || !ran {
		t.Fatal("the first fire of event 1 did not fire or did not run before")
	}
	if !closed(e.C(1)) {
		t.Fatal("a channel asked for after fire is not closed")
	}
	if !e.fire(2, nil) || !e.happened(2) || e.fire(2, nil) {
		t.Fatal("a flag event fires once")
	}
}

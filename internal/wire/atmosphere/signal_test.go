package atmosphere

import (
	"testing"
	"time"
)

// TestSignal: the channel is closed by fire whether it was asked for
// before or after, every caller gets the same channel, and firing again
// changes nothing.
func TestSignal(t *testing.T) {
	closed := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	var before signal
	c := before.C()
	if closed(c) || before.happened() {
		t.Fatal("fired before fire")
	}
	go func() { time.Sleep(10 * time.Millisecond); before.fire() }()
	<-c
	if !before.happened() || before.C() != c {
		t.Fatal("after fire: not happened, or another channel")
	}
	before.fire()
	var after signal
	after.fire()
	after.fire()
	if !after.happened() || !closed(after.C()) {
		t.Fatal("a channel asked for after fire is not closed")
	}
}

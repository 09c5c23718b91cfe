package trackers

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// link is a connected device's command channel.
type link struct {
	c        *conn
	protocol string
	// raw sends a command as the protocol carries it and returns the
	// device's answer.
	raw func(ctx context.Context, payload []byte) (string, error)
	// outputs switches digital outputs from output 1 on, nil leaving
	// one as it is, and returns the device's answer.
	outputs func(ctx context.Context, states []*bool) (string, error)
}

// Links are the devices connected to this node's tracker listeners, by
// device id, for commands. It is safe for concurrent use.
type Links struct {
	mu   sync.RWMutex
	m    map[string]*link
	seen map[string]string // device id → protocol, for every device that connected
}

// NewLinks returns an empty set of links, shared by the listeners of a
// node and the API.
func NewLinks() *Links {
	return &Links{m: make(map[string]*link), seen: make(map[string]string)}
}

// add makes l the device's link; an older connection of the same device
// is closed (devices reconnect before the old connection times out).
func (ls *Links) add(device string, l *link) {
	ls.mu.Lock()
	old := ls.m[device]
	ls.m[device] = l
	ls.seen[device] = l.protocol
	ls.mu.Unlock()
	if old != nil && old.c != l.c {
		old.c.nc.Close()
	}
}

// remove drops the device's link if it is still c's.
func (ls *Links) remove(device string, c *conn) {
	ls.mu.Lock()
	if l, ok := ls.m[device]; ok && l.c == c {
		delete(ls.m, device)
	}
	ls.mu.Unlock()
}

func (ls *Links) get(device string) (*link, bool) {
	ls.mu.RLock()
	defer ls.mu.RUnlock()
	l, ok := ls.m[device]
	return l, ok
}

// Protocol returns the protocol a device connected with since this node
// started ("teltonika", "gt06"), or "" for a device never seen here.
func (ls *Links) Protocol(device string) string {
	ls.mu.RLock()
	defer ls.mu.RUnlock()
	return ls.seen[device]
}

// Connected reports whether the device has an open connection here.
func (ls *Links) Connected(device string) bool {
	_, ok := ls.get(device)
	return ok
}

// RawCommand sends payload to the device as its protocol carries
// commands (Teltonika Codec 12, GT06 0x80) and returns the device's
// answer; answered is false when the command was written but the device
// did not answer within the command timeout. ErrOffline: no connection
// here; ErrUnsupported: the protocol cannot carry payload.
func (ls *Links) RawCommand(ctx context.Context, device string, payload []byte) (answer string, answered bool, err error) {
	l, ok := ls.get(device)
	if !ok {
		return "", false, ErrOffline
	}
	return answered3(l.raw(ctx, payload))
}

// SetOutput switches digital output index (from 1) of the device; see
// RawCommand for the results.
func (ls *Links) SetOutput(ctx context.Context, device string, index int, on bool) (string, bool, error) {
	if index < 1 {
		return "", false, fmt.Errorf("%w: output %d", ErrUnsupported, index)
	}
	states := make([]*bool, index)
	states[index-1] = &on
	return ls.SetOutputs(ctx, device, states)
}

// SetOutputs switches the device's outputs from output 1 on (nil leaves
// an output as it is) with one command; see RawCommand for the results.
func (ls *Links) SetOutputs(ctx context.Context, device string, states []*bool) (string, bool, error) {
	l, ok := ls.get(device)
	if !ok {
		return "", false, ErrOffline
	}
	return answered3(l.outputs(ctx, states))
}

func answered3(answer string, err error) (string, bool, error) {
	if errors.Is(err, errNoAnswer) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return answer, true, nil
}

package api

import (
	"context"
	"encoding/hex"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/fleet"
)

// Links carries commands to trackers connected to this node over their
// own protocols (Teltonika, GT06); *trackers.Links provides it. Its
// methods return the device's answer, and answered false when the
// command was written to the device but not answered in time; their
// errors carry the API's codes (213 offline, 214 not supported).
type Links interface {
	Protocol(deviceID string) string
	Connected(deviceID string) bool
	RawCommand(ctx context.Context, deviceID string, payload []byte) (answer string, answered bool, err error)
	SetOutput(ctx context.Context, deviceID string, index int, on bool) (string, bool, error)
	SetOutputs(ctx context.Context, deviceID string, states []*bool) (string, bool, error)
}

// commandAnswer is a command action's success answer: the published
// {"success": true}, and the device's answer when it sent one in time.
type commandAnswer struct {
	Success  bool    `json:"success"`
	Response *string `json:"response,omitempty"`
}

// viaLink reports whether commands for t go over a tracker listener: its
// device is connected here, or has been since this node started (then an
// absent device is offline, not an MQTT topic nobody reads).
func (x *API) viaLink(t *fleet.Tracker) bool {
	l := x.opts.Links
	return l != nil && (l.Connected(t.DeviceID) || l.Protocol(t.DeviceID) != "")
}

func answered(answer string, ok bool, err error) (any, error) {
	if err != nil {
		return nil, apierr.From(err)
	}
	if !ok {
		return commandAnswer{Success: true}, nil
	}
	return commandAnswer{Success: true, Response: &answer}, nil
}

// setOutput switches one output, over the tracker's link or MQTT.
func (x *API) setOutput(ctx context.Context, t *fleet.Tracker, index int, on bool) (any, error) {
	if x.viaLink(t) {
		return answered(x.opts.Links.SetOutput(ctx, t.DeviceID, index, on))
	}
	if err := x.opts.Commander.SetOutput(ctx, t.DeviceID, index, on); err != nil {
		return nil, apierr.From(err)
	}
	return success, nil
}

// setOutputs switches every output at once over the tracker's link; ok
// is false for trackers whose commands go over MQTT.
func (x *API) setOutputs(ctx context.Context, t *fleet.Tracker, outs []bool) (res any, ok bool, err error) {
	if !x.viaLink(t) {
		return nil, false, nil
	}
	states := make([]*bool, len(outs))
	for i := range outs {
		states[i] = &outs[i]
	}
	res, err = answered(x.opts.Links.SetOutputs(ctx, t.DeviceID, states))
	return res, true, err
}

// rawCommand sends a text or hex command over the tracker's link; ok is
// false for trackers whose commands go over MQTT.
func (x *API) rawCommand(ctx context.Context, t *fleet.Tracker, cmd, typ string) (res any, ok bool, err error) {
	if !x.viaLink(t) {
		return nil, false, nil
	}
	payload := []byte(cmd)
	if typ == "hex" {
		if payload, err = hex.DecodeString(cmd); err != nil {
			return nil, true, apierr.InvalidParameters.With("command is not hexadecimal")
		}
	}
	res, err = answered(x.opts.Links.RawCommand(ctx, t.DeviceID, payload))
	return res, true, err
}

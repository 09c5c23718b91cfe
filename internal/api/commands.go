package api

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/fleet"
)

// Commander sends commands to devices; *commands.Commander provides it.
// Without one the command actions answer 214.
type Commander interface {
	SetOutput(ctx context.Context, deviceID string, index int, on bool) error
	Send(ctx context.Context, deviceID, name string, payload json.RawMessage) error
}

// commandTarget is the caller's tracker the command goes to: notFound
// (204 for the output actions, 201 for raw_command/send, as documented)
// for another user's or a missing tracker, 208 for a blocked one, 213 for
// one that is not connected (its live state is offline).
func (x *API) commandTarget(c *call, notFound *apierr.Error) (*fleet.Tracker, error) {
	id, err := c.p.requiredID("tracker_id")
	if err != nil {
		return nil, err
	}
	t, ok := x.userTracker(c, id)
	if !ok {
		return nil, notFound
	}
	if t.Blocked {
		return nil, apierr.DeviceBlocked
	}
	if s, ok := x.reg.State(t.ID); ok && s.ConnectionStatus == fleet.Offline {
		return nil, apierr.DeviceOffline
	}
	if x.opts.Commander == nil && !x.viaLink(t) {
		return nil, apierr.NotSupported.With("no command channel is configured")
	}
	return t, nil
}

func (x *API) rawParam(c *call, name string) (json.RawMessage, bool) {
	v, ok := c.p.lookup(name)
	if !ok {
		return nil, false
	}
	if v.raw != nil {
		return v.raw, true
	}
	if len(v.text) == 1 && json.Valid([]byte(v.text[0])) {
		return json.RawMessage(v.text[0]), true
	}
	return nil, false
}

// trackerOutputSet is tracker/output/set: output (1-based) on or off.
func (x *API) trackerOutputSet(ctx context.Context, c *call) (any, error) {
	t, err := x.commandTarget(c, apierr.EntityNotFound)
	if err != nil {
		return nil, err
	}
	n, ok, err := c.p.int64("output")
	if err != nil {
		return nil, err
	}
	if !ok || n < 1 || n > 64 {
		return nil, apierr.InvalidParameters.With("output must be a number from 1")
	}
	on, err := c.p.optBool("enable", false)
	if err != nil {
		return nil, err
	}
	if !c.p.has("enable") {
		return nil, apierr.InvalidParameters.With("enable is required")
	}
	return x.setOutput(ctx, t, int(n), on)
}

// trackerOutputSetAll is tracker/output/set_all: every output at once.
func (x *API) trackerOutputSetAll(ctx context.Context, c *call) (any, error) {
	t, err := x.commandTarget(c, apierr.EntityNotFound)
	if err != nil {
		return nil, err
	}
	raw, ok := x.rawParam(c, "outputs")
	var outs []bool
	if !ok || json.Unmarshal(raw, &outs) != nil || len(outs) == 0 || len(outs) > 64 {
		return nil, apierr.InvalidParameters.With("outputs must be an array of booleans")
	}
	if res, ok, err := x.setOutputs(ctx, t, outs); ok {
		return res, err
	}
	payload, _ := json.Marshal(map[string]any{"outputs": outs})
	if err := x.opts.Commander.Send(ctx, t.DeviceID, "outputs", payload); err != nil {
		return nil, apierr.From(err)
	}
	return success, nil
}

// trackerRawCommandSend is tracker/raw_command/send: a text or hex
// command passed through to the device.
func (x *API) trackerRawCommandSend(ctx context.Context, c *call) (any, error) {
	t, err := x.commandTarget(c, apierr.NotFound)
	if err != nil {
		return nil, err
	}
	// Parameter errors are answered with the documented "errors" list.
	cmd, ok, err := c.p.str("command")
	switch {
	case err != nil:
		return nil, apierr.InvalidParameters.WithParam("command", "Not a string")
	case !ok || cmd == "":
		return nil, apierr.InvalidParameters.WithParam("command", "Required")
	}
	typ, _, err := c.p.str("type")
	if err != nil {
		return nil, apierr.InvalidParameters.WithParam("type", "Not a string")
	}
	switch typ {
	case "":
		typ = "text"
	case "text":
	case "hex":
		if len(cmd)%2 != 0 || strings.Trim(strings.ToLower(cmd), "0123456789abcdef") != "" {
			return nil, apierr.InvalidParameters.WithParam("command", "Non-hex string")
		}
	default:
		return nil, apierr.InvalidParameters.WithParam("type", `Must be "text" or "hex"`)
	}
	reliable, err := c.p.optBool("reliable", true)
	if err != nil {
		return nil, apierr.InvalidParameters.WithParam("reliable", "Not a boolean")
	}
	if res, ok, err := x.rawCommand(ctx, t, cmd, typ); ok {
		return res, err
	}
	payload, _ := json.Marshal(map[string]any{"command": cmd, "type": typ, "reliable": reliable})
	if err := x.opts.Commander.Send(ctx, t.DeviceID, "raw", payload); err != nil {
		return nil, apierr.From(err)
	}
	return success, nil
}

// trackerSendCommand is tracker/send_command: a named command object
// ({"name": ..., ...}) passed through to the device.
func (x *API) trackerSendCommand(ctx context.Context, c *call) (any, error) {
	t, err := x.commandTarget(c, apierr.EntityNotFound)
	if err != nil {
		return nil, err
	}
	raw, ok := x.rawParam(c, "command")
	var cmd struct {
		Name string `json:"name"`
	}
	if !ok || json.Unmarshal(raw, &cmd) != nil || cmd.Name == "" {
		return nil, apierr.InvalidParameters.With("command must be an object with a name")
	}
	if x.viaLink(t) {
		return nil, apierr.NotSupported.With("named commands are not defined for the device's protocol; use tracker/raw_command/send")
	}
	if err := x.opts.Commander.Send(ctx, t.DeviceID, "command", raw); err != nil {
		return nil, apierr.From(err)
	}
	return success, nil
}

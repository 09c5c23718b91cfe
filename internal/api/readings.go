package api

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/readings"
)

// readingsFilter reads sensor_type and include_components.
func readingsFilter(c *call) (readings.Filter, error) {
	var f readings.Filter
	st, _, err := c.p.str("sensor_type")
	if err != nil {
		return f, err
	}
	if st != "" && !readings.ValidSensorType(st) {
		return f, apierr.InvalidParameters.With("sensor_type " + strconv.Quote(truncate(st, 40)) +
			" is not a metering or virtual sensor type (" + strings.Join(readings.SensorTypes, ", ") + ")")
	}
	inc, err := c.p.optBool("include_components", true)
	if err != nil {
		return f, err
	}
	f.SensorType, f.ExcludeComponents = st, !inc
	return f, nil
}

// trackerReadingsList is tracker/readings/list: the latest readings of one
// tracker, fields at the top level next to "success".
func (x *API) trackerReadingsList(_ context.Context, c *call) (any, error) {
	id, err := c.p.requiredID("tracker_id")
	if err != nil {
		return nil, err
	}
	f, err := readingsFilter(c)
	if err != nil {
		return nil, err
	}
	t, ok := x.userTracker(c, id)
	if !ok {
		return nil, apierr.EntityNotFound
	}
	if t.Blocked {
		return nil, apierr.DeviceBlocked
	}
	s, _ := x.reg.State(id)
	body := readings.Of(id, s, f).AppendJSONDates(make([]byte, 0, 512), c.dates)
	// {"inputs":...} → {"success":true,"inputs":...}
	out := append([]byte(`{"success":true,`), body[1:]...)
	return json.RawMessage(out), nil
}

// trackerReadingsBatchList is tracker/readings/batch_list: readings of
// several trackers in "result", keyed by tracker id.
func (x *API) trackerReadingsBatchList(_ context.Context, c *call) (any, error) {
	ids, ok, err := c.p.int64s("trackers")
	if err != nil {
		return nil, err
	}
	if !ok || len(ids) == 0 {
		return nil, apierr.InvalidParameters.With("trackers is required")
	}
	if len(ids) > maxStatesTrackers {
		return nil, apierr.InvalidParameters.With("trackers holds too many ids")
	}
	f, err := readingsFilter(c)
	if err != nil {
		return nil, err
	}
	buf := append(make([]byte, 0, 256), `{"result":{`...)
	n := 0
	for _, id := range ids {
		t, ok := x.userTracker(c, id)
		if !ok {
			return nil, apierr.NonexistentEntities
		}
		if t.Blocked {
			continue
		}
		s, _ := x.reg.State(id)
		if n > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '"')
		buf = strconv.AppendInt(buf, id, 10)
		buf = append(buf, `":`...)
		buf = readings.Of(id, s, f).AppendJSONDates(buf, c.dates)
		n++
	}
	buf = append(buf, `},"success":true}`...)
	return json.RawMessage(buf), nil
}

// truncate cuts s to n bytes for an error description.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

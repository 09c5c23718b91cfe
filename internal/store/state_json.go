package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/fleetwire/fleetwire/internal/fleet"
)

// The states table keeps each tracker's fleet.State as one JSON document.
// The document has its own explicit shape (stateDoc below) rather than
// fleet.State's default encoding, so renaming a Go field never silently
// changes what is on disk. Times are RFC 3339 with nanoseconds in UTC; a
// zero time is left out. Unknown keys are ignored when reading, so a newer
// binary may add fields without breaking an older one.

// stateDocVersion is written as "v" so a future format change can be told
// apart from this one.
const stateDocVersion = 1

type stateDoc struct {
	V                    int                      `json:"v"`
	SourceID             int64                    `json:"source_id,omitempty"`
	GPS                  gpsDoc                   `json:"gps,omitzero"`
	ConnectionStatus     string                   `json:"connection_status,omitempty"`
	MovementStatus       string                   `json:"movement_status,omitempty"`
	MovementStatusUpdate docTime                  `json:"movement_status_update,omitzero"`
	Ignition             *bool                    `json:"ignition,omitempty"`
	IgnitionUpdate       docTime                  `json:"ignition_update,omitzero"`
	GSM                  *gsmDoc                  `json:"gsm,omitempty"`
	LastUpdate           docTime                  `json:"last_update,omitzero"`
	BatteryLevel         *int                     `json:"battery_level,omitempty"`
	BatteryUpdate        docTime                  `json:"battery_update,omitzero"`
	Inputs               []bool                   `json:"inputs,omitempty"`
	InputsUpdate         docTime                  `json:"inputs_update,omitzero"`
	Outputs              []bool                   `json:"outputs,omitempty"`
	OutputsUpdate        docTime                  `json:"outputs_update,omitzero"`
	Additional           map[string]additionalDoc `json:"additional,omitempty"`
	ActualTrackUpdate    docTime                  `json:"actual_track_update,omitzero"`
	IngestedAt           docTime                  `json:"ingested_at,omitzero"`
}

type gpsDoc struct {
	Updated     docTime         `json:"updated,omitzero"`
	SignalLevel *int            `json:"signal_level,omitempty"`
	Location    *fleet.Location `json:"location,omitempty"`
	Heading     int             `json:"heading,omitempty"`
	Speed       int             `json:"speed,omitempty"`
	Alt         int             `json:"alt,omitempty"`
	Precision   *int            `json:"precision,omitempty"`
	GSMLBS      bool            `json:"gsm_lbs,omitempty"`
}

type gsmDoc struct {
	Updated     docTime `json:"updated,omitzero"`
	SignalLevel *int    `json:"signal_level,omitempty"`
	NetworkName *string `json:"network_name,omitempty"`
	Roaming     *bool   `json:"roaming,omitempty"`
}

type additionalDoc struct {
	Value   string  `json:"value"`
	Updated docTime `json:"updated,omitzero"`
}

// docTime is a time.Time encoded as an RFC 3339 string in UTC with
// nanoseconds.
type docTime time.Time

// IsZero lets `omitzero` leave zero times out.
func (t docTime) IsZero() bool { return time.Time(t).IsZero() }

// MarshalJSON encodes t in UTC.
func (t docTime) MarshalJSON() ([]byte, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return []byte("null"), nil
	}
	tt = tt.UTC()
	if y := tt.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("time %v: year outside 0..9999", tt)
	}
	return json.Marshal(tt.Format(time.RFC3339Nano))
}

// UnmarshalJSON accepts an RFC 3339 string or null.
func (t *docTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = docTime{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("time: %w", err)
	}
	tt, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("time: %w", err)
	}
	tt = tt.UTC()
	if y := tt.Year(); y < 0 || y > 9999 {
		return fmt.Errorf("time %q: year outside 0..9999 in UTC", s)
	}
	*t = docTime(tt)
	return nil
}

// EncodeState renders s in the on-disk form. TrackerID is the row key and is
// not repeated in the document.
func EncodeState(s *fleet.State) ([]byte, error) {
	d := stateDoc{
		V:                    stateDocVersion,
		SourceID:             s.SourceID,
		ConnectionStatus:     s.ConnectionStatus,
		MovementStatus:       s.MovementStatus,
		MovementStatusUpdate: docTime(s.MovementStatusUpdate),
		Ignition:             s.Ignition,
		IgnitionUpdate:       docTime(s.IgnitionUpdate),
		LastUpdate:           docTime(s.LastUpdate),
		BatteryLevel:         s.BatteryLevel,
		BatteryUpdate:        docTime(s.BatteryUpdate),
		Inputs:               s.Inputs,
		InputsUpdate:         docTime(s.InputsUpdate),
		Outputs:              s.Outputs,
		OutputsUpdate:        docTime(s.OutputsUpdate),
		ActualTrackUpdate:    docTime(s.ActualTrackUpdate),
		IngestedAt:           docTime(s.IngestedAt),
		GPS: gpsDoc{
			Updated:     docTime(s.GPS.Updated),
			SignalLevel: s.GPS.SignalLevel,
			Location:    s.GPS.Location,
			Heading:     s.GPS.Heading,
			Speed:       s.GPS.Speed,
			Alt:         s.GPS.Alt,
			Precision:   s.GPS.Precision,
			GSMLBS:      s.GPS.GSMLBS,
		},
	}
	if s.GSM != nil {
		d.GSM = &gsmDoc{
			Updated:     docTime(s.GSM.Updated),
			SignalLevel: s.GSM.SignalLevel,
			NetworkName: s.GSM.NetworkName,
			Roaming:     s.GSM.Roaming,
		}
	}
	if len(s.Additional) > 0 {
		d.Additional = make(map[string]additionalDoc, len(s.Additional))
		for k, v := range s.Additional {
			d.Additional[k] = additionalDoc{Value: v.Value, Updated: docTime(v.Updated)}
		}
	}
	b, err := json.Marshal(&d)
	if err != nil {
		return nil, fmt.Errorf("encode state of tracker %d: %w", s.TrackerID, err)
	}
	return b, nil
}

// DecodeState parses a document written by EncodeState for trackerID.
func DecodeState(trackerID int64, b []byte) (*fleet.State, error) {
	var d stateDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decode state of tracker %d: %w", trackerID, err)
	}
	if d.V != stateDocVersion {
		return nil, fmt.Errorf("decode state of tracker %d: unsupported document version %d", trackerID, d.V)
	}
	s := &fleet.State{
		TrackerID:            trackerID,
		SourceID:             d.SourceID,
		ConnectionStatus:     d.ConnectionStatus,
		MovementStatus:       d.MovementStatus,
		MovementStatusUpdate: time.Time(d.MovementStatusUpdate),
		Ignition:             d.Ignition,
		IgnitionUpdate:       time.Time(d.IgnitionUpdate),
		LastUpdate:           time.Time(d.LastUpdate),
		BatteryLevel:         d.BatteryLevel,
		BatteryUpdate:        time.Time(d.BatteryUpdate),
		Inputs:               d.Inputs,
		InputsUpdate:         time.Time(d.InputsUpdate),
		Outputs:              d.Outputs,
		OutputsUpdate:        time.Time(d.OutputsUpdate),
		ActualTrackUpdate:    time.Time(d.ActualTrackUpdate),
		IngestedAt:           time.Time(d.IngestedAt),
		GPS: fleet.GPS{
			Updated:     time.Time(d.GPS.Updated),
			SignalLevel: d.GPS.SignalLevel,
			Location:    d.GPS.Location,
			Heading:     d.GPS.Heading,
			Speed:       d.GPS.Speed,
			Alt:         d.GPS.Alt,
			Precision:   d.GPS.Precision,
			GSMLBS:      d.GPS.GSMLBS,
		},
	}
	if d.GSM != nil {
		s.GSM = &fleet.GSM{
			Updated:     time.Time(d.GSM.Updated),
			SignalLevel: d.GSM.SignalLevel,
			NetworkName: d.GSM.NetworkName,
			Roaming:     d.GSM.Roaming,
		}
	}
	if len(d.Additional) > 0 {
		s.Additional = make(map[string]fleet.Additional, len(d.Additional))
		for k, v := range d.Additional {
			s.Additional[k] = fleet.Additional{Value: v.Value, Updated: time.Time(v.Updated)}
		}
	}
	return s, nil
}

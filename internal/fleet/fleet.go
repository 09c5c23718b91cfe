// Package fleet holds the domain types shared by every layer of fleetwire:
// users, sessions, API keys, trackers and the live source state of a tracker.
//
// Times are kept in UTC as time.Time; the zero time means "never" and is
// rendered as JSON null. Rendering into a user's timezone happens only when a
// value is encoded for that user.
package fleet

import "time"

// User is an account that owns trackers and signs in to the API.
type User struct {
	ID           int64
	Login        string
	PasswordHash string // KDF output, never the password itself
	Title        string
	TimeZone     string // IANA name, e.g. "Europe/Berlin"; empty means UTC
	Blocked      bool
	CreatedAt    time.Time
	Profile      UserProfile
}

// UserProfile is what the API's user object tells about a user beyond
// login, title and time zone: contact, preferences, legal and address
// details. The zero profile is a verified, non-demo user with every
// preference at its default: an empty preference means "not set", and
// the API shows its default for it.
type UserProfile struct {
	Phone string
	// Locale is "language[_country]", e.g. "en_US".
	Locale string
	// Demo marks a demo account.
	Demo bool
	// Unverified is set for a user whose email is not verified; users
	// an operator creates are verified.
	Unverified bool
	// LegalType is "individual", "legal_entity" or "sole_trader".
	LegalType string
	// DefaultGeocoder is "google", "yandex", "progorod", "osm" or
	// "locationiq"; RouteProvider "progorod", "google" or "osrm".
	DefaultGeocoder, RouteProvider string
	// MeasurementSystem is "metric", "imperial", "us", "metric_gal_us" or
	// "nautical".
	MeasurementSystem string
	// DateFormat ("ddMMyyyy_dots", ...) and HourMode
	// ("TWENTY_FOUR_HOURS", "TWELVE_HOURS") are display preferences.
	DateFormat, HourMode string
	// TIN is the taxpayer identification number, IEC the industrial
	// enterprises classifier (KPP).
	TIN, IEC string

	PostCountry, PostRegion, PostIndex, PostCity, PostStreetAddress                               string
	RegisteredCountry, RegisteredRegion, RegisteredIndex, RegisteredCity, RegisteredStreetAddress string
	FirstName, MiddleName, LastName, LegalName                                                    string
}

// Location returns the user's timezone, falling back to UTC when the name is
// empty or unknown.
func (u *User) Location() *time.Location {
	if u == nil || u.TimeZone == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(u.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// SessionKind tells a user session from an API key; both are used as "hash".
type SessionKind string

// Session kinds.
const (
	KindSession SessionKind = "session"
	KindAPIKey  SessionKind = "api_key"
)

// Session is a credential accepted as the API's "hash" parameter: either a
// session created by user/auth or an API key.
type Session struct {
	Hash      string // 32 lower-case hex characters; the store keeps CredentialDigest(Hash)
	UserID    int64
	Kind      SessionKind
	Title     string // API keys only
	CreatedAt time.Time
	ExpiresAt time.Time // zero for API keys: they do not expire
}

// Expired reports whether the session is no longer valid at now.
func (s *Session) Expired(now time.Time) bool {
	return !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt)
}

// Tracker is a registered device. ID is the tracker_id clients use; SourceID
// is the id of its data source and appears as "source_id" in states.
type Tracker struct {
	ID        int64
	Label     string
	UserID    int64
	SourceID  int64
	DeviceID  string // identifier the device reports with (OsmAnd "id", MQTT client, IMEI)
	Model     string // NodeModel for an IoT node
	Phone     string
	Blocked   bool
	Deleted   bool // "corrupted" in API terms
	CreatedAt time.Time
}

// NodeModel is the model of an IoT node: a device of relays and sensors
// that the topic bridge addresses by default when it is the user's only
// one (see package bridge).
const NodeModel = "iot_node"

// Movement statuses of a source state.
const (
	Moving  = "moving"
	Stopped = "stopped"
	Parked  = "parked"
)

// Connection statuses of a source state.
const (
	JustRegistered = "just_registered"
	Active         = "active"
	Idle           = "idle"
	Offline        = "offline"
	SignalLost     = "signal_lost"
)

// Lifecycle events of a tracker.
const (
	LifecycleBlock   = "block"
	LifecycleUnblock = "unblock"
	LifecycleCorrupt = "corrupt"
)

// State is the live source state of one tracker, the object the API calls
// "source state" (tracker/get_state, state and state_batch events).
type State struct {
	TrackerID int64 // not encoded: clients see SourceID
	SourceID  int64

	GPS GPS

	ConnectionStatus     string
	MovementStatus       string
	MovementStatusUpdate time.Time

	Ignition       *bool
	IgnitionUpdate time.Time

	GSM *GSM

	LastUpdate time.Time

	BatteryLevel  *int
	BatteryUpdate time.Time

	Inputs       []bool
	InputsUpdate time.Time

	Outputs       []bool
	OutputsUpdate time.Time

	Additional map[string]Additional

	ActualTrackUpdate time.Time

	// ReadingsUpdate is when the sensor attributes (Additional) last
	// changed. It is not part of the state's API shape.
	ReadingsUpdate time.Time

	// IngestedAt is when the message that produced this state reached the
	// server. It is not part of the API shape; it measures ingest-to-client
	// latency.
	IngestedAt time.Time

	// Seq is the bus sequence number of the change that produced this
	// state; 0 when it was never published.
	Seq uint64
}

// Record is one device message as the stream analyzer (iot_monitor) shows
// it: every attribute the message carried, by name.
type Record struct {
	// MsgTime is when the device took the message, SrvTime when the
	// server received it.
	MsgTime, SrvTime time.Time
	// Fields are the attributes in the order the analyzer lists them.
	Fields []Field
}

// Field is one attribute of a Record.
type Field struct {
	// Name is the attribute's name ("speed", "fuel_level").
	Name string
	// Value is a JSON literal: a number, a string, true or false.
	Value []byte
}

// GPS is the position part of a source state.
type GPS struct {
	Updated     time.Time
	SignalLevel *int
	Location    *Location // nil until the first fix
	Heading     int
	Speed       int // km/h
	Alt         int // metres
	Precision   *int
	// GSMLBS is set when the location was found from cell towers (GSM
	// LBS) rather than satellites; "gsm_lbs" in the API.
	GSMLBS bool
}

// Location is a point in WGS 84 degrees.
type Location struct {
	Lat float64 `json:"lat"`
	Lng float64 `json:"lng"`
}

// GSM is the cellular part of a source state.
type GSM struct {
	Updated     time.Time
	SignalLevel *int
	NetworkName *string
	Roaming     *bool
}

// Additional is one model-specific value in a state's "additional" map.
type Additional struct {
	Value   string
	Updated time.Time
}

// Clone returns a deep copy of s, so that a published state is never mutated.
func (s *State) Clone() *State {
	c := *s
	if s.GPS.Location != nil {
		l := *s.GPS.Location
		c.GPS.Location = &l
	}
	if s.GSM != nil {
		g := *s.GSM
		c.GSM = &g
	}
	c.Inputs = append([]bool(nil), s.Inputs...)
	c.Outputs = append([]bool(nil), s.Outputs...)
	if s.Additional != nil {
		c.Additional = make(map[string]Additional, len(s.Additional))
		for k, v := range s.Additional {
			c.Additional[k] = v
		}
	}
	return &c
}

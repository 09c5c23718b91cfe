package api

import (
	"regexp"
	"slices"
	"strings"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/fleet"
)

// profileJSON is the part of the documented user object that
// fleet.UserProfile holds, with the defaults of preferences not set.
// fleetwire keeps no accounts: balance and bonus are always 0.
type profileJSON struct {
	Phone                   string  `json:"phone,omitempty"`
	Balance                 float64 `json:"balance"`
	Bonus                   float64 `json:"bonus"`
	Locale                  string  `json:"locale"`
	Demo                    bool    `json:"demo"`
	Verified                bool    `json:"verified"`
	LegalType               string  `json:"legal_type"`
	DefaultGeocoder         string  `json:"default_geocoder"`
	RouteProvider           string  `json:"route_provider"`
	MeasurementSystem       string  `json:"measurement_system"`
	DateFormat              string  `json:"date_format"`
	HourMode                string  `json:"hour_mode"`
	TIN                     string  `json:"tin"`
	IEC                     string  `json:"iec,omitempty"`
	PostCountry             string  `json:"post_country"`
	PostRegion              string  `json:"post_region"`
	PostIndex               string  `json:"post_index"`
	PostCity                string  `json:"post_city"`
	PostStreetAddress       string  `json:"post_street_address"`
	RegisteredCountry       string  `json:"registered_country"`
	RegisteredRegion        string  `json:"registered_region"`
	RegisteredIndex         string  `json:"registered_index"`
	RegisteredCity          string  `json:"registered_city"`
	RegisteredStreetAddress string  `json:"registered_street_address"`
	FirstName               string  `json:"first_name"`
	MiddleName              string  `json:"middle_name"`
	LastName                string  `json:"last_name"`
	LegalName               string  `json:"legal_name,omitempty"`
}

// defaultLocale is the locale of a user who has none set.
const defaultLocale = "en_US"

// profileEnums are the documented values of the user object's enum
// fields; the first of each is the default for a user who has none set:
// an open geocoder and router, and the date and time layout of the API
// itself.
var profileEnums = map[string][]string{
	"legal_type":         {"individual", "legal_entity", "sole_trader"},
	"default_geocoder":   {"osm", "google", "yandex", "progorod", "locationiq"},
	"route_provider":     {"osrm", "google", "progorod"},
	"measurement_system": {"metric", "imperial", "us", "metric_gal_us", "nautical"},
	"date_format":        {"yyyyMMdd_hyphens", "ddMMyyyy_dots", "ddMMyyyy_slashes", "MMddyyyy_hyphens", "dMMMy", "dMMMMy"},
	"hour_mode":          {"TWENTY_FOUR_HOURS", "TWELVE_HOURS"},
}

// localeRE is the documented locale format, language[_country]: ISO 639
// alpha-2, then ISO 3166 alpha-2.
var localeRE = regexp.MustCompile(`^[a-z]{2}(_[A-Z]{2})?$`)

// or is s, or def when s is empty.
func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func profileOf(p *fleet.UserProfile) profileJSON {
	return profileJSON{
		Phone:                   p.Phone,
		Locale:                  or(p.Locale, defaultLocale),
		Demo:                    p.Demo,
		Verified:                !p.Unverified,
		LegalType:               or(p.LegalType, profileEnums["legal_type"][0]),
		DefaultGeocoder:         or(p.DefaultGeocoder, profileEnums["default_geocoder"][0]),
		RouteProvider:           or(p.RouteProvider, profileEnums["route_provider"][0]),
		MeasurementSystem:       or(p.MeasurementSystem, profileEnums["measurement_system"][0]),
		DateFormat:              or(p.DateFormat, profileEnums["date_format"][0]),
		HourMode:                or(p.HourMode, profileEnums["hour_mode"][0]),
		TIN:                     p.TIN,
		IEC:                     p.IEC,
		PostCountry:             p.PostCountry,
		PostRegion:              p.PostRegion,
		PostIndex:               p.PostIndex,
		PostCity:                p.PostCity,
		PostStreetAddress:       p.PostStreetAddress,
		RegisteredCountry:       p.RegisteredCountry,
		RegisteredRegion:        p.RegisteredRegion,
		RegisteredIndex:         p.RegisteredIndex,
		RegisteredCity:          p.RegisteredCity,
		RegisteredStreetAddress: p.RegisteredStreetAddress,
		FirstName:               p.FirstName,
		MiddleName:              p.MiddleName,
		LastName:                p.LastName,
		LegalName:               p.LegalName,
	}
}

// maxProfileText is the longest free-text profile field, in characters.
const maxProfileText = 255

// profileTexts lists the text parameters of a profile with the field each
// sets.
func profileTexts(p *fleet.UserProfile) []struct {
	name string
	dst  *string
} {
	return []struct {
		name string
		dst  *string
	}{
		{"phone", &p.Phone}, {"locale", &p.Locale}, {"legal_type", &p.LegalType},
		{"default_geocoder", &p.DefaultGeocoder}, {"route_provider", &p.RouteProvider},
		{"measurement_system", &p.MeasurementSystem}, {"date_format", &p.DateFormat}, {"hour_mode", &p.HourMode},
		{"tin", &p.TIN}, {"iec", &p.IEC},
		{"post_country", &p.PostCountry}, {"post_region", &p.PostRegion}, {"post_index", &p.PostIndex},
		{"post_city", &p.PostCity}, {"post_street_address", &p.PostStreetAddress},
		{"registered_country", &p.RegisteredCountry}, {"registered_region", &p.RegisteredRegion},
		{"registered_index", &p.RegisteredIndex}, {"registered_city", &p.RegisteredCity},
		{"registered_street_address", &p.RegisteredStreetAddress},
		{"first_name", &p.FirstName}, {"middle_name", &p.MiddleName}, {"last_name", &p.LastName},
		{"legal_name", &p.LegalName},
	}
}

// readProfile sets the fields of p that c's parameters name: the text
// fields above (an empty value clears a field, so a preference falls back
// to its default), demo and verified. Enum fields take their documented
// values only, locale the documented format, the rest printable text of at
// most 255 characters; anything else is error 7 naming the parameter.
func readProfile(c *call, p *fleet.UserProfile) error {
	for _, f := range profileTexts(p) {
		v, ok, err := c.p.str(f.name)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch values, isEnum := profileEnums[f.name]; {
		case v == "":
		case isEnum:
			if !slices.Contains(values, v) {
				return apierr.InvalidParameters.With(f.name + " must be one of " + strings.Join(values, ", "))
			}
		case f.name == "locale":
			if !localeRE.MatchString(v) {
				return apierr.InvalidParameters.With(`locale must be language[_country], e.g. "en_US" or "de"`)
			}
		default:
			if err := checkTitle(f.name, v, maxProfileText); err != nil {
				return err
			}
		}
		*f.dst = v
	}
	if v, ok, err := c.p.bool("demo"); err != nil {
		return err
	} else if ok {
		p.Demo = v
	}
	if v, ok, err := c.p.bool("verified"); err != nil {
		return err
	} else if ok {
		p.Unverified = !v
	}
	return nil
}

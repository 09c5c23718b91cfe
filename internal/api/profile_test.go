package api

import (
	"fmt"
	"strings"
	"testing"
)

// documentedUserInfo are the user object's fields that are always
// present; phone, iec and legal_name appear when set.
var documentedUserInfo = []string{
	"id", "login", "title", "creation_date", "balance", "bonus", "locale", "demo", "verified", "legal_type",
	"default_geocoder", "route_provider", "time_zone", "measurement_system", "date_format", "hour_mode", "tin",
	"post_country", "post_region", "post_index", "post_city", "post_street_address",
	"registered_country", "registered_region", "registered_index", "registered_city", "registered_street_address",
	"first_name", "middle_name", "last_name",
}

// TestUserProfile: user/get_info carries the documented user object with
// sensible defaults; the admin API sets its fields, and the change shows
// at once to a signed-in session.
func TestUserProfile(t *testing.T) {
	e := newEnv(t, testAdminKey)
	uid := e.createUser("pro", "pw-pro-secret", "Europe/Berlin")
	hash := e.login("pro", "pw-pro-secret")

	m := mustOK(t, "get_info", e.post("/v2/user/get_info", map[string]any{"hash": hash}))
	if m["paas_id"] != float64(DefaultDealerID) {
		t.Errorf("paas_id %v", m["paas_id"])
	}
	info := m["user_info"].(map[string]any)
	for _, k := range documentedUserInfo {
		if _, ok := info[k]; !ok {
			t.Errorf("user_info lacks %s: %v", k, info)
		}
	}
	for k, want := range map[string]any{
		"locale": "en_US", "demo": false, "verified": true, "legal_type": "individual", "measurement_system": "metric",
		"default_geocoder": "osm", "route_provider": "osrm", "date_format": "yyyyMMdd_hyphens", "hour_mode": "TWENTY_FOUR_HOURS",
		"balance": 0.0, "bonus": 0.0, "tin": "", "first_name": "", "time_zone": "Europe/Berlin",
	} {
		if info[k] != want {
			t.Errorf("default %s = %v, want %v", k, info[k], want)
		}
	}
	for _, k := range []string{"phone", "iec", "legal_name"} {
		if v, ok := info[k]; ok {
			t.Errorf("empty %s shown as %v", k, v)
		}
	}

	set := map[string]any{
		"locale": "de_DE", "measurement_system": "imperial", "legal_type": "legal_entity", "verified": false, "demo": true,
		"phone": "4917612345678", "iec": "770101001", "legal_name": "Fleet GmbH", "first_name": "Jo", "last_name": "Smith",
		"post_city": "Berlin", "registered_street_address": "Invalidenstr. 1", "hour_mode": "TWELVE_HOURS",
		"date_format": "ddMMyyyy_dots", "default_geocoder": "google", "route_provider": "google", "tin": "DE123",
		"title": "Jo Smith", "time_zone": "Europe/Paris",
	}
	v := mustOK(t, "update", e.admin("POST", fmt.Sprintf("/admin/users/%d/update", uid), set))["value"].(map[string]any)
	info = mustOK(t, "get_info after update", e.post("/v2/user/get_info", map[string]any{"hash": hash}))["user_info"].(map[string]any)
	for k, want := range set {
		if info[k] != want || v[k] != want {
			t.Errorf("%s: get_info %v, admin %v, want %v", k, info[k], v[k], want)
		}
	}
	// Only the named fields change; "" clears one back to its default.
	mustOK(t, "clear locale", e.admin("POST", fmt.Sprintf("/admin/users/%d/update", uid), map[string]any{"locale": ""}))
	info = mustOK(t, "get_info after clearing", e.post("/v2/user/get_info", map[string]any{"hash": hash}))["user_info"].(map[string]any)
	if info["locale"] != "en_US" || info["measurement_system"] != "imperial" || info["title"] != "Jo Smith" {
		t.Errorf("after clearing locale: %v", info)
	}

	// Profile fields at creation, and in the admin list.
	mustOK(t, "create with profile", e.admin("POST", "/admin/users", map[string]any{"login": "nat", "password": "pw-nat-secret",
		"locale": "fr", "measurement_system": "nautical", "demo": "true"}))
	found := false
	for _, it := range mustOK(t, "list", e.admin("GET", "/admin/users", nil))["list"].([]any) {
		u := it.(map[string]any)
		if u["login"] == "nat" {
			found = u["locale"] == "fr" && u["measurement_system"] == "nautical" && u["demo"] == true && u["verified"] == true
		}
	}
	if !found {
		t.Error("the admin list does not show nat's profile")
	}

	for _, c := range []struct {
		what   string
		params map[string]any
		code   int
		status int
	}{
		{"unknown locale form", map[string]any{"locale": "german"}, 7, 400},
		{"unknown measurement system", map[string]any{"measurement_system": "metrics"}, 7, 400},
		{"unknown legal type", map[string]any{"legal_type": "company"}, 7, 400},
		{"bad boolean", map[string]any{"demo": "maybe"}, 5, 400},
		{"control character", map[string]any{"first_name": "Jo\u0007"}, 7, 400},
		{"too long", map[string]any{"post_city": strings.Repeat("x", 256)}, 7, 400},
		{"empty title", map[string]any{"title": ""}, 7, 400},
		{"unknown zone", map[string]any{"time_zone": "Mars/Olympus"}, 7, 400},
		{"not a string", map[string]any{"phone": []int{1}}, 5, 400},
	} {
		wantErr(t, c.what, e.admin("POST", fmt.Sprintf("/admin/users/%d/update", uid), c.params), c.code, c.status)
	}
	wantErr(t, "unknown user", e.admin("POST", "/admin/users/9999/update", map[string]any{"locale": "fr"}), 204, 404)
	wantErr(t, "create with a bad profile", e.admin("POST", "/admin/users", map[string]any{"login": "bad", "password": "pw", "hour_mode": "24h"}), 7, 400)
	wantErr(t, "the bad user was not created", e.post("/v2/user/auth", map[string]any{"login": "bad", "password": "pw"}), 102, 400)
	wantErr(t, "update by GET", e.do("GET", fmt.Sprintf("/admin/users/%d/update", uid), "", nil, map[string]string{"X-Admin-Key": testAdminKey}), 112, 400)
}

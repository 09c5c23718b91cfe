package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/fleetwire/fleetwire/internal/auth"
	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/state"
	"github.com/fleetwire/fleetwire/internal/store/sqlite"
)

const testAdminKey = "s3cret-admin-key"

// testNow is the fixed clock: 11:45:23 UTC is 13:45:23 in Berlin.
var testNow = time.Date(2024, 8, 1, 11, 45, 23, 0, time.UTC)

var hashRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// env is the API over the real auth service, registry, SQLite store and
// in-process bus, served on a real socket.
type env struct {
	t    *testing.T
	url  string
	auth *auth.Service
	reg  *state.Registry
}

func newEnv(t *testing.T, adminKey string) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "api.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	b := bus.NewMemory()
	a := auth.New(st, b, auth.Options{BcryptCost: bcrypt.MinCost})
	reg := state.New(st, b, state.Options{})
	if err := reg.Load(ctx); err != nil {
		t.Fatalf("load registry: %v", err)
	}
	x := New(a, reg, Options{AdminKey: adminKey, MaxBody: 64 << 10, Now: func() time.Time { return testNow }, Store: st})
	srv := httptest.NewServer(x.Handler())
	t.Cleanup(func() {
		srv.Close()
		_ = b.Close()
		_ = st.Close()
	})
	return &env{t: t, url: srv.URL, auth: a, reg: reg}
}

// answer is one HTTP answer, decoded.
type answer struct {
	status int
	ctype  string
	m      map[string]any
	raw    string
}

func (a answer) code() int {
	st, _ := a.m["status"].(map[string]any)
	c, _ := st["code"].(float64)
	return int(c)
}

func (a answer) description() string {
	st, _ := a.m["status"].(map[string]any)
	d, _ := st["description"].(string)
	return d
}

func (e *env) do(method, path, ctype string, body io.Reader, header map[string]string) answer {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), raw: string(raw)}
	if err := json.Unmarshal(raw, &a.m); err != nil {
		e.t.Fatalf("%s %s: answer is not a JSON object: %q", method, path, raw)
	}
	if a.ctype != "application/json" {
		e.t.Errorf("%s %s: Content-Type %q", method, path, a.ctype)
	}
	return a
}

// post calls path with a JSON body.
func (e *env) post(path string, body map[string]any) answer {
	e.t.Helper()
	b, _ := json.Marshal(body)
	return e.do("POST", path, "application/json", bytes.NewReader(b), nil)
}

// get calls path with a query string.
func (e *env) get(path string, q url.Values) answer {
	e.t.Helper()
	return e.do("GET", path+"?"+q.Encode(), "", nil, nil)
}

func (e *env) admin(method, path string, body map[string]any) answer {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	return e.do(method, path, "application/json", rd, map[string]string{"X-Admin-Key": testAdminKey})
}

func mustOK(t *testing.T, what string, a answer) map[string]any {
	t.Helper()
	if a.status != 200 || a.m["success"] != true {
		t.Fatalf("%s: %d %s", what, a.status, a.raw)
	}
	return a.m
}

func wantErr(t *testing.T, what string, a answer, code, status int) {
	t.Helper()
	if a.status != status || a.m["success"] != false || a.code() != code || a.description() == "" {
		t.Errorf("%s: got HTTP %d %s, want HTTP %d code %d", what, a.status, a.raw, status, code)
	}
}

func (e *env) createUser(login, password, tz string) int64 {
	e.t.Helper()
	m := mustOK(e.t, "create user "+login, e.admin("POST", "/admin/users",
		map[string]any{"login": login, "password": password, "title": "Title of " + login, "time_zone": tz}))
	return int64(m["value"].(map[string]any)["id"].(float64))
}

func (e *env) createTracker(userID int64, label, device string) (id, sourceID int64) {
	e.t.Helper()
	m := mustOK(e.t, "create tracker "+label, e.admin("POST", "/admin/trackers",
		map[string]any{"user_id": userID, "label": label, "device_id": device, "model": "osmand", "phone": "4917612345678"}))
	v := m["value"].(map[string]any)
	return int64(v["id"].(float64)), int64(v["source"].(map[string]any)["id"].(float64))
}

func (e *env) login(login, password string) string {
	e.t.Helper()
	m := mustOK(e.t, "user/auth", e.post("/v2/user/auth", map[string]any{"login": login, "password": password}))
	return m["hash"].(string)
}

// num is a JSON number as int64, or -1 when v is not a number.
func num(v any) int64 {
	f, ok := v.(float64)
	if !ok {
		return -1
	}
	return int64(f)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestUserAuth: user/auth over every calling convention, and its errors.
func TestUserAuth(t *testing.T) {
	e := newEnv(t, testAdminKey)
	e.createUser("ann@example.com", "pw-ann-secret", "Europe/Berlin")

	m := mustOK(t, "auth", e.post("/v2/user/auth", map[string]any{"login": "ann@example.com", "password": "pw-ann-secret"}))
	if !reflect.DeepEqual(keys(m), []string{"hash", "success", "type"}) || m["type"] != "authenticated" || !hashRE.MatchString(m["hash"].(string)) {
		t.Errorf("auth answer %v", m)
	}
	calls := map[string]answer{
		"no prefix":      e.post("/user/auth", map[string]any{"login": "ann@example.com", "password": "pw-ann-secret"}),
		"trailing slash": e.post("/v2/user/auth/", map[string]any{"login": "ann@example.com", "password": "pw-ann-secret"}),
		"GET query":      e.get("/v2/user/auth", url.Values{"login": {"ann@example.com"}, "password": {"pw-ann-secret"}}),
		"POST form": e.do("POST", "/v2/user/auth", "application/x-www-form-urlencoded",
			strings.NewReader("login=ann%40example.com&password=pw-ann-secret"), nil),
	}
	seen := map[string]bool{m["hash"].(string): true}
	for name, a := range calls {
		m := mustOK(t, name, a)
		h, _ := m["hash"].(string)
		if !hashRE.MatchString(h) || seen[h] {
			t.Errorf("%s: hash %q not a fresh session hash", name, h)
		}
		seen[h] = true
	}

	wantErr(t, "wrong password", e.post("/v2/user/auth", map[string]any{"login": "ann@example.com", "password": "nope"}), 102, 400)
	wantErr(t, "unknown login", e.post("/v2/user/auth", map[string]any{"login": "bob@example.com", "password": "pw-ann-secret"}), 102, 400)
	a := e.post("/v2/user/auth", map[string]any{"password": "pw-ann-secret"})
	wantErr(t, "no login", a, 7, 400)
	if !strings.Contains(a.description(), "login") {
		t.Errorf("description %q does not name login", a.description())
	}
	wantErr(t, "empty password", e.post("/v2/user/auth", map[string]any{"login": "ann@example.com", "password": ""}), 7, 400)
	wantErr(t, "login of wrong type", e.post("/v2/user/auth", map[string]any{"login": []int{1}, "password": "x"}), 5, 400)

	// dealer_id: the installation's (default 1) signs in, any other is 102.
	mustOK(t, "own dealer", e.post("/v2/user/auth", map[string]any{"login": "ann@example.com", "password": "pw-ann-secret", "dealer_id": DefaultDealerID}))
	mustOK(t, "own dealer as text", e.get("/v2/user/auth", url.Values{"login": {"ann@example.com"}, "password": {"pw-ann-secret"}, "dealer_id": {"1"}}))
	wantErr(t, "other dealer", e.post("/v2/user/auth", map[string]any{"login": "ann@example.com", "password": "pw-ann-secret", "dealer_id": 7}), 102, 400)
	wantErr(t, "negative dealer", e.post("/v2/user/auth", map[string]any{"login": "ann@example.com", "password": "pw-ann-secret", "dealer_id": -1}), 102, 400)
	wantErr(t, "dealer of wrong type", e.post("/v2/user/auth", map[string]any{"login": "ann@example.com", "password": "pw-ann-secret", "dealer_id": "x"}), 5, 400)
}

// TestCallingErrors: unknown paths, methods, malformed and oversized bodies.
func TestCallingErrors(t *testing.T) {
	e := newEnv(t, testAdminKey)
	uid := e.createUser("cal", "pw-cal-secret", "UTC")
	e.createTracker(uid, "Van", "dev-cal")
	hash := e.login("cal", "pw-cal-secret")

	wantErr(t, "unknown action", e.post("/v2/tracker/fly", map[string]any{"hash": hash}), 111, 400)
	wantErr(t, "root", e.do("GET", "/", "", nil, nil), 111, 400)
	wantErr(t, "v2 root", e.do("GET", "/v2/", "", nil, nil), 111, 400)
	wantErr(t, "PUT", e.do("PUT", "/v2/tracker/list", "application/json", strings.NewReader(`{"hash":"`+hash+`"}`), nil), 112, 400)
	wantErr(t, "malformed JSON", e.do("POST", "/v2/tracker/list", "application/json", strings.NewReader(`{"hash":`), nil), 5, 400)
	wantErr(t, "JSON array", e.do("POST", "/v2/tracker/list", "application/json", strings.NewReader(`["x"]`), nil), 5, 400)
	wantErr(t, "bad form", e.do("POST", "/v2/tracker/list", "application/x-www-form-urlencoded", strings.NewReader(`hash=%zz`), nil), 5, 400)
	big := `{"hash":"` + hash + `","pad":"` + strings.Repeat("x", 70<<10) + `"}`
	wantErr(t, "too large", e.do("POST", "/v2/tracker/list", "application/json", strings.NewReader(big), nil), 9, 412)
	wantErr(t, "wrong type tracker_id", e.post("/v2/tracker/read", map[string]any{"hash": hash, "tracker_id": "abc"}), 5, 400)
	a := e.post("/v2/tracker/read", map[string]any{"hash": hash})
	wantErr(t, "missing tracker_id", a, 7, 400)
	if !strings.Contains(a.description(), "tracker_id") {
		t.Errorf("description %q does not name tracker_id", a.description())
	}
}

// TestHashTransports: the hash is taken from the JSON body, a form body,
// the query string and the NVX header; bad hashes are 3 and 4.
func TestHashTransports(t *testing.T) {
	e := newEnv(t, testAdminKey)
	uid := e.createUser("hal", "pw-hal-secret", "UTC")
	e.createTracker(uid, "Van", "dev-hal")
	hash := e.login("hal", "pw-hal-secret")

	listLen := func(what string, a answer) {
		t.Helper()
		m := mustOK(t, what, a)
		if l, _ := m["list"].([]any); len(l) != 1 {
			t.Errorf("%s: list %v", what, m["list"])
		}
	}
	listLen("json body", e.post("/v2/tracker/list", map[string]any{"hash": hash}))
	listLen("form body", e.do("POST", "/v2/tracker/list", "application/x-www-form-urlencoded", strings.NewReader("hash="+hash), nil))
	listLen("query", e.get("/v2/tracker/list", url.Values{"hash": {hash}}))
	listLen("query on POST", e.do("POST", "/v2/tracker/list?hash="+hash, "application/json", strings.NewReader(`{}`), nil))
	listLen("header GET", e.do("GET", "/v2/tracker/list", "", nil, map[string]string{"Authorization": "NVX " + hash}))
	listLen("header POST", e.do("POST", "/tracker/list", "application/json", strings.NewReader(`{}`), map[string]string{"Authorization": "NVX " + hash}))

	wantErr(t, "no hash", e.post("/v2/tracker/list", map[string]any{}), 3, 400)
	wantErr(t, "short hash", e.post("/v2/tracker/list", map[string]any{"hash": "abc"}), 3, 400)
	wantErr(t, "unknown hash", e.post("/v2/tracker/list", map[string]any{"hash": strings.Repeat("a", 32)}), 4, 400)
	wantErr(t, "unknown hash in header", e.do("GET", "/v2/tracker/list", "", nil,
		map[string]string{"Authorization": "NVX " + strings.Repeat("b", 32)}), 4, 400)
	wantErr(t, "hash of wrong type", e.post("/v2/tracker/list", map[string]any{"hash": 5.5}), 3, 400)
}

// TestUserInfoAndLogout: get_info's shape; logout ends the session only.
func TestUserInfoAndLogout(t *testing.T) {
	e := newEnv(t, testAdminKey)
	e.createUser("ida", "pw-ida-secret", "Europe/Berlin")
	hash := e.login("ida", "pw-ida-secret")
	other := e.login("ida", "pw-ida-secret")

	m := mustOK(t, "get_info", e.do("GET", "/v2/user/get_info", "", nil, map[string]string{"Authorization": "NVX " + hash}))
	info, _ := m["user_info"].(map[string]any)
	if info["login"] != "ida" || info["title"] != "Title of ida" || info["time_zone"] != "Europe/Berlin" || info["id"].(float64) <= 0 {
		t.Errorf("user_info %v", info)
	}
	if d, _ := info["creation_date"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`).MatchString(d) {
		t.Errorf("creation_date %q", info["creation_date"])
	}
	if _, ok := info["password"]; ok {
		t.Error("get_info leaks a password field")
	}

	mustOK(t, "logout", e.get("/v2/user/logout", url.Values{"hash": {hash}}))
	wantErr(t, "ended hash", e.post("/v2/user/get_info", map[string]any{"hash": hash}), 4, 400)
	wantErr(t, "logout twice", e.post("/v2/user/logout", map[string]any{"hash": hash}), 4, 400)
	mustOK(t, "other session still works", e.post("/v2/user/get_info", map[string]any{"hash": other}))
}

// TestAPIKeys: api/key/create, list and delete as documented, keys as
// hashes, and the session-only rules.
func TestAPIKeys(t *testing.T) {
	e := newEnv(t, testAdminKey)
	uid := e.createUser("kay", "pw-kay-secret", "Europe/Berlin")
	e.createTracker(uid, "Van", "dev-kay")
	hash := e.login("kay", "pw-kay-secret")

	m := mustOK(t, "create", e.post("/v2/api/key/create", map[string]any{"hash": hash, "title": "My Super App"}))
	v, _ := m["value"].(map[string]any)
	if !reflect.DeepEqual(keys(v), []string{"create_date", "hash", "title"}) || v["title"] != "My Super App" || !hashRE.MatchString(v["hash"].(string)) {
		t.Fatalf("create answer %v", m)
	}
	key := v["hash"].(string)
	m = mustOK(t, "create by GET", e.get("/v2/api/key/create", url.Values{"hash": {hash}, "title": {"AmoCRM integration"}}))
	key2 := m["value"].(map[string]any)["hash"].(string)

	m = mustOK(t, "list", e.post("/v2/api/key/list", map[string]any{"hash": hash}))
	list, _ := m["list"].([]any)
	if len(list) != 2 {
		t.Fatalf("list %v", m)
	}
	first := list[0].(map[string]any)
	// Keys are stored as digests: the list names each by its id, which
	// has the documented form (32 hex characters) and deletes it too.
	if first["hash"] != auth.KeyID(key) || first["hash"] == key || !hashRE.MatchString(first["hash"].(string)) ||
		first["title"] != "My Super App" || !reflect.DeepEqual(keys(first), []string{"create_date", "hash", "title"}) {
		t.Errorf("list item %v", first)
	}

	// An API key is a hash for everything else, and survives logout.
	mustOK(t, "tracker/list with key", e.post("/v2/tracker/list", map[string]any{"hash": key}))
	mustOK(t, "get_info with key in header", e.do("GET", "/v2/user/get_info", "", nil, map[string]string{"Authorization": "NVX " + key}))
	wantErr(t, "create with key", e.post("/v2/api/key/create", map[string]any{"hash": key, "title": "x"}), 4, 400)
	wantErr(t, "list with key", e.post("/v2/api/key/list", map[string]any{"hash": key}), 4, 400)
	wantErr(t, "delete with key", e.post("/v2/api/key/delete", map[string]any{"hash": key, "key": key2}), 4, 400)
	wantErr(t, "logout with key", e.post("/v2/user/logout", map[string]any{"hash": key}), 276, 403)

	wantErr(t, "no title", e.post("/v2/api/key/create", map[string]any{"hash": hash}), 7, 400)
	wantErr(t, "blank title", e.post("/v2/api/key/create", map[string]any{"hash": hash, "title": "   "}), 7, 400)
	wantErr(t, "control char title", e.post("/v2/api/key/create", map[string]any{"hash": hash, "title": "a\x07b"}), 7, 400)
	wantErr(t, "long title", e.post("/v2/api/key/create", map[string]any{"hash": hash, "title": strings.Repeat("t", 256)}), 7, 400)
	wantErr(t, "delete without key", e.post("/v2/api/key/delete", map[string]any{"hash": hash}), 7, 400)
	wantErr(t, "delete unknown key", e.post("/v2/api/key/delete", map[string]any{"hash": hash, "key": strings.Repeat("c", 32)}), 201, 400)

	// Another user's key cannot be deleted through this account.
	e.createUser("lee", "pw-lee-secret", "UTC")
	leeHash := e.login("lee", "pw-lee-secret")
	wantErr(t, "delete someone else's key", e.post("/v2/api/key/delete", map[string]any{"hash": leeHash, "key": key}), 201, 400)

	m = mustOK(t, "delete", e.post("/v2/api/key/delete", map[string]any{"hash": hash, "key": key2}))
	if !reflect.DeepEqual(keys(m), []string{"success"}) {
		t.Errorf("delete answer %v", m)
	}
	wantErr(t, "deleted key", e.post("/v2/tracker/list", map[string]any{"hash": key2}), 4, 400)

	mustOK(t, "logout", e.post("/v2/user/logout", map[string]any{"hash": hash}))
	mustOK(t, "key after logout", e.post("/v2/tracker/list", map[string]any{"hash": key}))

	// Quota: 20 keys per account.
	hash = e.login("kay", "pw-kay-secret")
	for i := 1; i < maxAPIKeys; i++ { // one key exists already
		mustOK(t, "create to quota", e.post("/v2/api/key/create", map[string]any{"hash": hash, "title": fmt.Sprint("k", i)}))
	}
	wantErr(t, "over quota", e.post("/v2/api/key/create", map[string]any{"hash": hash, "title": "one too many"}), 268, 402)
}

// TestTrackerListAndRead: the documented tracker object, label filters and
// ownership.
func TestTrackerListAndRead(t *testing.T) {
	e := newEnv(t, testAdminKey)
	uid := e.createUser("tia", "pw-tia-secret", "Europe/Berlin")
	id1, src1 := e.createTracker(uid, "aa1", "dev-1")
	id2, _ := e.createTracker(uid, "bb2", "dev-2")
	e.createTracker(uid, "cc3", "dev-3")
	otherUID := e.createUser("ned", "pw-ned-secret", "UTC")
	otherID, _ := e.createTracker(otherUID, "aa-other", "dev-9")
	hash := e.login("tia", "pw-tia-secret")

	m := mustOK(t, "list", e.post("/v2/tracker/list", map[string]any{"hash": hash}))
	list := m["list"].([]any)
	if len(list) != 3 {
		t.Fatalf("list has %d trackers, want 3: %v", len(list), m)
	}
	tr := list[0].(map[string]any)
	if !reflect.DeepEqual(keys(tr), []string{"clone", "group_id", "id", "label", "source", "tag_bindings"}) {
		t.Errorf("tracker keys %v", keys(tr))
	}
	src := tr["source"].(map[string]any)
	if !reflect.DeepEqual(keys(src), []string{"blocked", "creation_date", "device_id", "id", "model", "phone", "status_listing_id", "tariff_end_date", "tariff_id"}) {
		t.Errorf("source keys %v", keys(src))
	}
	if int64(tr["id"].(float64)) != id1 || tr["label"] != "aa1" || tr["clone"] != false || tr["group_id"].(float64) != 0 ||
		int64(src["id"].(float64)) != src1 || src["device_id"] != "dev-1" || src["model"] != "osmand" || src["blocked"] != false ||
		src["status_listing_id"] != nil || src["tariff_end_date"] != nil || src["phone"] != "4917612345678" {
		t.Errorf("tracker %v", tr)
	}
	if d, _ := src["creation_date"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\d$`).MatchString(d) {
		t.Errorf("creation_date %v", src["creation_date"])
	}
	if tb, ok := tr["tag_bindings"].([]any); !ok || len(tb) != 0 {
		t.Errorf("tag_bindings %v", tr["tag_bindings"])
	}

	labelsOf := func(a answer) []string {
		t.Helper()
		var out []string
		for _, x := range mustOK(t, "filtered list", a)["list"].([]any) {
			out = append(out, x.(map[string]any)["label"].(string))
		}
		return out
	}
	if got := labelsOf(e.post("/v2/tracker/list", map[string]any{"hash": hash, "labels": []string{"aa", "b"}})); !reflect.DeepEqual(got, []string{"aa1", "bb2"}) {
		t.Errorf("labels [aa b] gave %v", got)
	}
	if got := labelsOf(e.get("/v2/tracker/list", url.Values{"hash": {hash}, "labels": {`["C"]`}})); !reflect.DeepEqual(got, []string{"cc3"}) {
		t.Errorf("labels [C] by GET gave %v", got)
	}
	if got := labelsOf(e.post("/v2/tracker/list", map[string]any{"hash": hash, "labels": []string{"zz"}})); len(got) != 0 {
		t.Errorf("labels [zz] gave %v", got)
	}
	wantErr(t, "empty labels", e.post("/v2/tracker/list", map[string]any{"hash": hash, "labels": []string{}}), 7, 400)
	wantErr(t, "duplicate labels", e.post("/v2/tracker/list", map[string]any{"hash": hash, "labels": []string{"a", "a"}}), 7, 400)
	wantErr(t, "empty label", e.post("/v2/tracker/list", map[string]any{"hash": hash, "labels": []string{""}}), 7, 400)
	wantErr(t, "long label", e.post("/v2/tracker/list", map[string]any{"hash": hash, "labels": []string{strings.Repeat("l", 61)}}), 7, 400)
	wantErr(t, "null label", e.post("/v2/tracker/list", map[string]any{"hash": hash, "labels": []any{"a", nil}}), 7, 400)
	wantErr(t, "labels not a list", e.post("/v2/tracker/list", map[string]any{"hash": hash, "labels": 5}), 5, 400)

	m = mustOK(t, "read", e.post("/v2/tracker/read", map[string]any{"hash": hash, "tracker_id": id2}))
	v := m["value"].(map[string]any)
	if int64(v["id"].(float64)) != id2 || v["label"] != "bb2" {
		t.Errorf("read %v", m)
	}
	wantErr(t, "read someone else's", e.post("/v2/tracker/read", map[string]any{"hash": hash, "tracker_id": otherID}), 201, 400)
	wantErr(t, "read unknown", e.post("/v2/tracker/read", map[string]any{"hash": hash, "tracker_id": 999999}), 201, 400)
	wantErr(t, "read id 0", e.post("/v2/tracker/read", map[string]any{"hash": hash, "tracker_id": 0}), 7, 400)

	// A blocked tracker is listed as blocked; a deleted one disappears.
	mustOK(t, "block", e.admin("POST", fmt.Sprintf("/admin/trackers/%d/block", id1), nil))
	m = mustOK(t, "list after block", e.post("/v2/tracker/list", map[string]any{"hash": hash}))
	if b := m["list"].([]any)[0].(map[string]any)["source"].(map[string]any)["blocked"]; b != true {
		t.Errorf("blocked tracker listed with blocked=%v", b)
	}
	mustOK(t, "delete", e.admin("POST", fmt.Sprintf("/admin/trackers/%d/delete", id1), nil))
	if got := labelsOf(e.post("/v2/tracker/list", map[string]any{"hash": hash})); !reflect.DeepEqual(got, []string{"bb2", "cc3"}) {
		t.Errorf("list after delete %v", got)
	}
	wantErr(t, "read deleted", e.post("/v2/tracker/read", map[string]any{"hash": hash, "tracker_id": id1}), 201, 400)
}

// TestGetState: the state envelope in the user's timezone, 201 and 208.
func TestGetState(t *testing.T) {
	e := newEnv(t, testAdminKey)
	uid := e.createUser("sam", "pw-sam-secret", "Europe/Berlin")
	id, src := e.createTracker(uid, "Van", "dev-sam")
	otherUID := e.createUser("oli", "pw-oli-secret", "UTC")
	otherID, _ := e.createTracker(otherUID, "Car", "dev-oli")
	hash := e.login("sam", "pw-sam-secret")

	m := mustOK(t, "get_state", e.post("/v2/tracker/get_state", map[string]any{"hash": hash, "tracker_id": id}))
	if m["user_time"] != "2024-08-01 13:45:23" {
		t.Errorf("user_time %v, want Berlin time", m["user_time"])
	}
	st, _ := m["state"].(map[string]any)
	if num(st["source_id"]) != src || st["connection_status"] == nil || st["movement_status"] == nil {
		t.Errorf("state %v", m["state"])
	}
	mustOK(t, "get_state by GET with header", e.do("GET", fmt.Sprintf("/tracker/get_state?tracker_id=%d", id), "", nil,
		map[string]string{"Authorization": "NVX " + hash}))
	mustOK(t, "get_state by form", e.do("POST", "/v2/tracker/get_state", "application/x-www-form-urlencoded",
		strings.NewReader(fmt.Sprintf("hash=%s&tracker_id=%d", hash, id)), nil))

	wantErr(t, "unknown", e.post("/v2/tracker/get_state", map[string]any{"hash": hash, "tracker_id": 987654}), 201, 400)
	wantErr(t, "not owned", e.post("/v2/tracker/get_state", map[string]any{"hash": hash, "tracker_id": otherID}), 201, 400)
	wantErr(t, "no tracker_id", e.post("/v2/tracker/get_state", map[string]any{"hash": hash}), 7, 400)
	wantErr(t, "tracker_id of wrong type", e.post("/v2/tracker/get_state", map[string]any{"hash": hash, "tracker_id": []int{1}}), 5, 400)

	mustOK(t, "block", e.admin("POST", fmt.Sprintf("/admin/trackers/%d/block", id), nil))
	wantErr(t, "blocked", e.post("/v2/tracker/get_state", map[string]any{"hash": hash, "tracker_id": id}), 208, 403)
	mustOK(t, "unblock", e.admin("POST", fmt.Sprintf("/admin/trackers/%d/unblock", id), nil))
	mustOK(t, "after unblock", e.post("/v2/tracker/get_state", map[string]any{"hash": hash, "tracker_id": id}))
	mustOK(t, "delete", e.admin("POST", fmt.Sprintf("/admin/trackers/%d/delete", id), nil))
	wantErr(t, "deleted", e.post("/v2/tracker/get_state", map[string]any{"hash": hash, "tracker_id": id}), 201, 400)
}

// TestGetStates: the states map and the list_blocked / allow_not_exist
// switches, with 208 and 217 when they are off.
func TestGetStates(t *testing.T) {
	e := newEnv(t, testAdminKey)
	uid := e.createUser("gus", "pw-gus-secret", "Europe/Berlin")
	a, srcA := e.createTracker(uid, "A", "dev-a")
	b, _ := e.createTracker(uid, "B", "dev-b")
	c, _ := e.createTracker(uid, "C", "dev-c")
	otherUID := e.createUser("vic", "pw-vic-secret", "UTC")
	foreign, _ := e.createTracker(otherUID, "F", "dev-f")
	hash := e.login("gus", "pw-gus-secret")
	mustOK(t, "block b", e.admin("POST", fmt.Sprintf("/admin/trackers/%d/block", b), nil))
	mustOK(t, "delete c", e.admin("POST", fmt.Sprintf("/admin/trackers/%d/delete", c), nil))

	m := mustOK(t, "plain", e.post("/v2/tracker/get_states", map[string]any{"hash": hash, "trackers": []int64{a, a}}))
	if !reflect.DeepEqual(keys(m), []string{"states", "success", "user_time"}) || m["user_time"] != "2024-08-01 13:45:23" {
		t.Errorf("plain answer %v", m)
	}
	states := m["states"].(map[string]any)
	stA, _ := states[fmt.Sprint(a)].(map[string]any)
	if len(states) != 1 || num(stA["source_id"]) != srcA {
		t.Errorf("states %v", states)
	}

	wantErr(t, "blocked without list_blocked", e.post("/v2/tracker/get_states", map[string]any{"hash": hash, "trackers": []int64{a, b}}), 208, 403)
	wantErr(t, "corrupted without allow_not_exist", e.post("/v2/tracker/get_states", map[string]any{"hash": hash, "trackers": []int64{a, c}}), 201, 400)
	wantErr(t, "corrupted and foreign without allow_not_exist", e.post("/v2/tracker/get_states", map[string]any{"hash": hash, "trackers": []int64{foreign, c}}), 201, 400)
	wantErr(t, "foreign without allow_not_exist", e.post("/v2/tracker/get_states", map[string]any{"hash": hash, "trackers": []int64{a, foreign}}), 217, 400)
	wantErr(t, "unknown and blocked", e.post("/v2/tracker/get_states", map[string]any{"hash": hash, "trackers": []int64{b, 424242}, "list_blocked": true}), 217, 400)

	m = mustOK(t, "both switches", e.post("/v2/tracker/get_states", map[string]any{
		"hash": hash, "trackers": []int64{a, b, c, foreign, 424242}, "list_blocked": true, "allow_not_exist": true}))
	if s := m["states"].(map[string]any); len(s) != 1 || s[fmt.Sprint(a)] == nil {
		t.Errorf("states %v", s)
	}
	if !reflect.DeepEqual(m["blocked"], []any{float64(b)}) {
		t.Errorf("blocked %v", m["blocked"])
	}
	if !reflect.DeepEqual(m["not_exist"], []any{float64(c), float64(foreign), float64(424242)}) {
		t.Errorf("not_exist %v", m["not_exist"])
	}
	m = mustOK(t, "switches, nothing to report", e.get("/v2/tracker/get_states", url.Values{
		"hash": {hash}, "trackers": {fmt.Sprintf("[%d]", a)}, "list_blocked": {"true"}, "allow_not_exist": {"true"}}))
	if bl, ok := m["blocked"].([]any); !ok || len(bl) != 0 {
		t.Errorf("blocked %v, want []", m["blocked"])
	}
	if ne, ok := m["not_exist"].([]any); !ok || len(ne) != 0 {
		t.Errorf("not_exist %v, want []", m["not_exist"])
	}

	wantErr(t, "no trackers", e.post("/v2/tracker/get_states", map[string]any{"hash": hash}), 7, 400)
	wantErr(t, "empty trackers", e.post("/v2/tracker/get_states", map[string]any{"hash": hash, "trackers": []int64{}}), 7, 400)
	wantErr(t, "trackers not a list", e.post("/v2/tracker/get_states", map[string]any{"hash": hash, "trackers": "x"}), 5, 400)
	wantErr(t, "null item", e.post("/v2/tracker/get_states", map[string]any{"hash": hash, "trackers": []any{a, nil}}), 7, 400)
	wantErr(t, "bad switch", e.post("/v2/tracker/get_states", map[string]any{"hash": hash, "trackers": []int64{a}, "list_blocked": "maybe"}), 5, 400)
	many := make([]int64, maxStatesTrackers+1)
	for i := range many {
		many[i] = int64(i + 1)
	}
	wantErr(t, "too many", e.post("/v2/tracker/get_states", map[string]any{"hash": hash, "trackers": many}), 7, 400)
	mustOK(t, "2000 is fine", e.post("/v2/tracker/get_states", map[string]any{"hash": hash, "trackers": many[:maxStatesTrackers], "allow_not_exist": true, "list_blocked": true}))
}

// TestAdminAccess: the admin surface needs the key, and is off without one.
func TestAdminAccess(t *testing.T) {
	off := newEnv(t, "")
	wantErr(t, "admin disabled", off.do("GET", "/admin/users", "", nil, map[string]string{"X-Admin-Key": ""}), 11, 403)
	wantErr(t, "admin disabled with a key", off.do("GET", "/admin/users", "", nil, map[string]string{"Authorization": "Bearer x"}), 11, 403)

	e := newEnv(t, testAdminKey)
	wantErr(t, "no key", e.do("GET", "/admin/users", "", nil, nil), 11, 403)
	wantErr(t, "wrong key", e.do("GET", "/admin/users", "", nil, map[string]string{"X-Admin-Key": "nope"}), 11, 403)
	wantErr(t, "key prefix", e.do("GET", "/admin/users", "", nil, map[string]string{"X-Admin-Key": testAdminKey[:5]}), 11, 403)
	wantErr(t, "wrong scheme", e.do("GET", "/admin/users", "", nil, map[string]string{"Authorization": "NVX " + testAdminKey}), 11, 403)
	wantErr(t, "unknown path without key", e.do("GET", "/admin/nothing", "", nil, nil), 11, 403)
	mustOK(t, "bearer", e.do("GET", "/admin/users", "", nil, map[string]string{"Authorization": "Bearer " + testAdminKey}))
	mustOK(t, "x-admin-key", e.do("GET", "/admin/users", "", nil, map[string]string{"X-Admin-Key": testAdminKey}))
	wantErr(t, "unknown admin path", e.admin("GET", "/admin/nothing", nil), 111, 400)
	wantErr(t, "unknown verb", e.admin("POST", "/admin/trackers/1/paint", nil), 111, 400)
	wantErr(t, "bad id", e.admin("POST", "/admin/trackers/abc/block", nil), 7, 400)
	wantErr(t, "wrong method", e.admin("GET", "/admin/trackers/1/block", nil), 112, 400)
	wantErr(t, "DELETE users", e.admin("DELETE", "/admin/users", nil), 112, 400)
}

// TestAdminUsers: create, list, password and end_sessions.
func TestAdminUsers(t *testing.T) {
	e := newEnv(t, testAdminKey)
	m := mustOK(t, "create", e.admin("POST", "/admin/users", map[string]any{"login": "uma", "password": "pw-1-secret", "title": "Uma", "time_zone": "America/New_York"}))
	u := m["value"].(map[string]any)
	uid := int64(u["id"].(float64))
	if u["login"] != "uma" || u["title"] != "Uma" || u["time_zone"] != "America/New_York" || uid <= 0 {
		t.Errorf("created %v", u)
	}
	if _, ok := u["password"]; ok {
		t.Error("admin answer leaks a password field")
	}
	wantErr(t, "duplicate login", e.admin("POST", "/admin/users", map[string]any{"login": "uma", "password": "long-enough"}), 206, 400)
	// New passwords have at least 8 characters (auth.MinPasswordLen).
	wantErr(t, "7-character password", e.admin("POST", "/admin/users", map[string]any{"login": "zed", "password": "1234567"}), 7, 400)
	wantErr(t, "bad tz", e.admin("POST", "/admin/users", map[string]any{"login": "zed", "password": "x", "time_zone": "Mars/Olympus"}), 7, 400)
	wantErr(t, "no password", e.admin("POST", "/admin/users", map[string]any{"login": "zed"}), 7, 400)
	wantErr(t, "no login", e.admin("POST", "/admin/users", map[string]any{"password": "x"}), 7, 400)
	// Form bodies work on the admin surface too; title defaults to the login.
	a := e.do("POST", "/admin/users", "application/x-www-form-urlencoded", strings.NewReader("login=vera&password=pw-vera-secret"),
		map[string]string{"X-Admin-Key": testAdminKey})
	if v := mustOK(t, "create by form", a)["value"].(map[string]any); v["title"] != "vera" || v["time_zone"] != "UTC" {
		t.Errorf("form-created user %v", v)
	}

	m = mustOK(t, "list", e.admin("GET", "/admin/users", nil))
	if l := m["list"].([]any); len(l) != 2 || l[0].(map[string]any)["login"] != "uma" {
		t.Errorf("users %v", m)
	}

	hash := e.login("uma", "pw-1-secret")
	mustOK(t, "password", e.admin("POST", fmt.Sprintf("/admin/users/%d/password", uid), map[string]any{"password": "pw-2-secret"}))
	wantErr(t, "old session after password change", e.post("/v2/user/get_info", map[string]any{"hash": hash}), 4, 400)
	wantErr(t, "old password", e.post("/v2/user/auth", map[string]any{"login": "uma", "password": "pw-1-secret"}), 102, 400)
	hash = e.login("uma", "pw-2-secret")
	wantErr(t, "password missing", e.admin("POST", fmt.Sprintf("/admin/users/%d/password", uid), map[string]any{}), 7, 400)
	wantErr(t, "short new password", e.admin("POST", fmt.Sprintf("/admin/users/%d/password", uid), map[string]any{"password": "short"}), 7, 400)
	e.login("uma", "pw-2-secret") // the refused change changed nothing
	wantErr(t, "password unknown user", e.admin("POST", "/admin/users/999/password", map[string]any{"password": "long-enough"}), 204, 404)

	mustOK(t, "end_sessions", e.admin("POST", fmt.Sprintf("/admin/users/%d/end_sessions", uid), nil))
	wantErr(t, "session after end_sessions", e.post("/v2/user/get_info", map[string]any{"hash": hash}), 4, 400)
	wantErr(t, "end_sessions unknown user", e.admin("POST", "/admin/users/999/end_sessions", nil), 204, 404)
}

// TestAdminTrackers: create, list, block, unblock, delete.
func TestAdminTrackers(t *testing.T) {
	e := newEnv(t, testAdminKey)
	uid := e.createUser("tom", "pw-tom-secret", "UTC")
	m := mustOK(t, "create", e.admin("POST", "/admin/trackers", map[string]any{"user_id": uid, "label": "Truck", "device_id": "imei-1", "model": "osmand"}))
	v := m["value"].(map[string]any)
	id := int64(v["id"].(float64))
	if v["label"] != "Truck" || int64(v["user_id"].(float64)) != uid || v["source"].(map[string]any)["device_id"] != "imei-1" {
		t.Errorf("created %v", v)
	}
	wantErr(t, "device id in use", e.admin("POST", "/admin/trackers", map[string]any{"user_id": uid, "label": "Dup", "device_id": "imei-1"}), 224, 400)
	wantErr(t, "unknown user", e.admin("POST", "/admin/trackers", map[string]any{"user_id": 999, "label": "X", "device_id": "imei-2"}), 204, 404)
	wantErr(t, "no device id", e.admin("POST", "/admin/trackers", map[string]any{"user_id": uid, "label": "X"}), 7, 400)
	wantErr(t, "no label", e.admin("POST", "/admin/trackers", map[string]any{"user_id": uid, "device_id": "imei-3"}), 7, 400)
	wantErr(t, "no user", e.admin("POST", "/admin/trackers", map[string]any{"label": "X", "device_id": "imei-3"}), 7, 400)
	wantErr(t, "user_id of wrong type", e.admin("POST", "/admin/trackers", map[string]any{"user_id": "tom", "label": "X", "device_id": "imei-3"}), 5, 400)

	m = mustOK(t, "list", e.admin("GET", "/admin/trackers", nil))
	if l := m["list"].([]any); len(l) != 1 || int64(l[0].(map[string]any)["id"].(float64)) != id {
		t.Errorf("trackers %v", m)
	}
	for _, verb := range []string{"block", "unblock", "delete"} {
		mustOK(t, verb, e.admin("POST", fmt.Sprintf("/admin/trackers/%d/%s", id, verb), nil))
		wantErr(t, verb+" unknown", e.admin("POST", fmt.Sprintf("/admin/trackers/%d/%s", 999, verb), nil), 204, 404)
	}
	if tr, ok := e.reg.Tracker(id); ok {
		t.Errorf("deleted tracker still live: %+v", tr)
	}
	wantErr(t, "delete twice", e.admin("POST", fmt.Sprintf("/admin/trackers/%d/delete", id), nil), 252, 400)
	wantErr(t, "block deleted", e.admin("POST", fmt.Sprintf("/admin/trackers/%d/block", id), nil), 204, 404)
	m = mustOK(t, "list after delete", e.admin("GET", "/admin/trackers", nil))
	if l := m["list"].([]any); len(l) != 0 {
		t.Errorf("trackers after delete %v", l)
	}
	// The freed device id can be registered again.
	mustOK(t, "re-register device", e.admin("POST", "/admin/trackers", map[string]any{"user_id": uid, "label": "Truck 2", "device_id": "imei-1"}))
}

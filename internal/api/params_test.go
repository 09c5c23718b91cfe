package api

import (
	"bytes"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/fleetwire/fleetwire/internal/apierr"
)

func request(method, target, contentType, body string) *http.Request {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
	}
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r
}

func mustParse(t *testing.T, r *http.Request) *params {
	t.Helper()
	p, err := parseParams(nil, r, DefaultMaxBody)
	if err != nil {
		t.Fatalf("parseParams: %v", err)
	}
	return p
}

func codeOf(err error) int {
	var e *apierr.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return -1
}

// TestParamsSources: the same call as JSON, form, query string, multipart
// and a body without a content type reads the same values.
func TestParamsSources(t *testing.T) {
	mp := func() (string, string) {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		_ = w.WriteField("tracker_id", "42")
		_ = w.WriteField("label", "Van 1")
		_ = w.WriteField("trackers", "[1,2,3]")
		_ = w.WriteField("list_blocked", "true")
		_ = w.Close()
		return w.FormDataContentType(), b.String()
	}
	mpType, mpBody := mp()
	cases := []struct {
		name string
		r    *http.Request
	}{
		{"json", request("POST", "/tracker/read", "application/json",
			`{"tracker_id": 42, "label": "Van 1", "trackers": [1, 2, 3], "list_blocked": true}`)},
		{"json charset", request("POST", "/tracker/read", "application/json; charset=utf-8",
			`{"tracker_id": "42", "label": "Van 1", "trackers": ["1", 2, 3], "list_blocked": "true"}`)},
		{"form", request("POST", "/tracker/read", "application/x-www-form-urlencoded",
			`tracker_id=42&label=Van+1&trackers=1,2,3&list_blocked=true`)},
		{"form repeated", request("POST", "/tracker/read", "application/x-www-form-urlencoded",
			`tracker_id=42&label=Van%201&trackers=1&trackers=2&trackers=3&list_blocked=1`)},
		{"query", request("GET", "/tracker/read?tracker_id=42&label=Van+1&trackers=%5B1,2,3%5D&list_blocked=TRUE", "", "")},
		{"sniffed json", request("POST", "/tracker/read", "",
			` {"tracker_id": 42, "label": "Van 1", "trackers": [1,2,3], "list_blocked": true}`)},
		{"sniffed form", request("POST", "/tracker/read", "text/plain",
			`tracker_id=42&label=Van+1&trackers=1,2,3&list_blocked=true`)},
		{"multipart", request("POST", "/tracker/read", mpType, mpBody)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, tc.r)
			if n, ok, err := p.int64("tracker_id"); err != nil || !ok || n != 42 {
				t.Errorf("tracker_id = %d %v %v", n, ok, err)
			}
			if s, ok, err := p.str("label"); err != nil || !ok || s != "Van 1" {
				t.Errorf("label = %q %v %v", s, ok, err)
			}
			if ids, ok, err := p.int64s("trackers"); err != nil || !ok || !reflect.DeepEqual(ids, []int64{1, 2, 3}) {
				t.Errorf("trackers = %v %v %v", ids, ok, err)
			}
			if b, ok, err := p.bool("list_blocked"); err != nil || !ok || !b {
				t.Errorf("list_blocked = %v %v %v", b, ok, err)
			}
			if p.has("missing") {
				t.Error("missing parameter reported present")
			}
		})
	}
}

// TestParamsBodyWinsOverQuery: a body value replaces a query value.
func TestParamsBodyWinsOverQuery(t *testing.T) {
	p := mustParse(t, request("POST", "/x?hash=fromquery&only=q", "application/json", `{"hash":"frombody"}`))
	if s, _, _ := p.str("hash"); s != "frombody" {
		t.Errorf("hash = %q, want the body's", s)
	}
	if s, _, _ := p.str("only"); s != "q" {
		t.Errorf("only = %q, want the query's", s)
	}
}

// TestParamsErrors: malformed bodies and wrong types are 5, oversized
// bodies 9, null items 7.
func TestParamsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, ct, body string
		code           int
	}{
		{"malformed json", "application/json", `{"a":`, 5},
		{"json array body", "application/json", `[1,2]`, 5},
		{"json trailing garbage", "application/json", `{"a":1} x`, 5},
		{"json string body", "application/json", `"x"`, 5},
		{"bad form escape", "application/x-www-form-urlencoded", `a=%zz`, 5},
		{"multipart no boundary", "multipart/form-data", `--x--`, 5},
		{"multipart broken", "multipart/form-data; boundary=zz", `--zz\r\nnot a part`, 5},
	} {
		_, err := parseParams(nil, request("POST", "/x", tc.ct, tc.body), DefaultMaxBody)
		if codeOf(err) != tc.code {
			t.Errorf("%s: error %v, want code %d", tc.name, err, tc.code)
		}
	}
	if _, err := parseParams(nil, request("GET", "/x?a=%zz", "", ""), DefaultMaxBody); codeOf(err) != 5 {
		t.Errorf("bad query: %v, want 5", err)
	}
	big := `{"a":"` + strings.Repeat("x", 2000) + `"}`
	if _, err := parseParams(nil, request("POST", "/x", "application/json", big), 1000); codeOf(err) != 9 {
		t.Errorf("oversized body: %v, want 9", err)
	}
	if _, err := parseParams(nil, request("POST", "/x", "application/json", big), 5000); err != nil {
		t.Errorf("body under the limit: %v", err)
	}

	p := mustParse(t, request("POST", "/x", "application/json",
		`{"obj":{"a":1},"arr":[1],"float":1.5,"big":99999999999999999999,"word":"abc","bool":true,"nullitem":[1,null],"strs_null":["a",null],"strs_num":["a",1],"notarr":5,"null":null}`))
	typeErrs := []struct {
		name string
		get  func() error
		code int
	}{
		{"str of object", func() error { _, _, err := p.str("obj"); return err }, 5},
		{"str of array", func() error { _, _, err := p.str("arr"); return err }, 5},
		{"int of float", func() error { _, _, err := p.int64("float"); return err }, 5},
		{"int overflow", func() error { _, _, err := p.int64("big"); return err }, 5},
		{"int of word", func() error { _, _, err := p.int64("word"); return err }, 5},
		{"int of bool", func() error { _, _, err := p.int64("bool"); return err }, 5},
		{"bool of word", func() error { _, _, err := p.bool("word"); return err }, 5},
		{"bool of object", func() error { _, _, err := p.bool("obj"); return err }, 5},
		{"ints with null", func() error { _, _, err := p.int64s("nullitem"); return err }, 7},
		{"ints of scalar", func() error { _, _, err := p.int64s("notarr"); return err }, 5},
		{"ints of words", func() error { _, _, err := p.int64s("strs_null"); return err }, 5},
		{"strs with null", func() error { _, _, err := p.strs("strs_null"); return err }, 7},
		{"strs with number", func() error { _, _, err := p.strs("strs_num"); return err }, 5},
		{"required missing", func() error { _, err := p.requiredStr("nope"); return err }, 7},
		{"required null", func() error { _, err := p.requiredID("null"); return err }, 7},
	}
	for _, tc := range typeErrs {
		err := tc.get()
		if codeOf(err) != tc.code {
			t.Errorf("%s: %v, want code %d", tc.name, err, tc.code)
		}
		if err != nil && tc.code == 5 && !strings.Contains(err.Error(), ":") {
			t.Errorf("%s: description %q does not name the parameter", tc.name, err)
		}
	}
	if s, ok, err := p.str("float"); err != nil || !ok || s != "1.5" {
		t.Errorf("str of number = %q %v %v, want its text", s, ok, err)
	}
	if _, ok, err := p.str("null"); ok || err != nil {
		t.Errorf("null parameter: present=%v err=%v, want absent", ok, err)
	}
	if _, err := p.requiredID("null"); err == nil || !strings.Contains(err.Error(), "null") {
		t.Errorf("requiredID description %v does not name the parameter", err)
	}
	q := mustParse(t, request("GET", "/x?id=0&neg=-5&ids=1,x&flag=maybe&empty=", "", ""))
	if _, err := q.requiredID("id"); codeOf(err) != 7 || !strings.Contains(err.Error(), "id") {
		t.Errorf("zero id: %v, want 7 naming id", err)
	}
	if _, err := q.requiredID("neg"); codeOf(err) != 7 {
		t.Errorf("negative id: %v, want 7", err)
	}
	if _, _, err := q.int64s("ids"); codeOf(err) != 5 {
		t.Errorf("bad list item: %v, want 5", err)
	}
	if _, _, err := q.bool("flag"); codeOf(err) != 5 {
		t.Errorf("bad bool: %v, want 5", err)
	}
	if b, err := q.optBool("empty", true); err != nil || !b {
		t.Errorf("empty bool text: %v %v, want the default", b, err)
	}
}

// TestHashFrom: hash from the body, the query string or the NVX header.
func TestHashFrom(t *testing.T) {
	const h = "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name string
		r    *http.Request
		want string
	}{
		{"json body", request("POST", "/x", "application/json", `{"hash":"`+h+`"}`), h},
		{"form body", request("POST", "/x", "application/x-www-form-urlencoded", "hash="+h), h},
		{"query", request("GET", "/x?hash="+h, "", ""), h},
		{"none", request("GET", "/x", "", ""), ""},
	} {
		got, err := hashFrom(tc.r, mustParse(t, tc.r))
		if err != nil || got != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.name, got, err, tc.want)
		}
	}
	r := request("GET", "/x", "", "")
	r.Header.Set("Authorization", "nvx  "+h)
	if got, _ := hashFrom(r, mustParse(t, r)); got != h {
		t.Errorf("header: %q", got)
	}
	r = request("GET", "/x", "", "")
	r.Header.Set("Authorization", "Bearer "+h)
	if got, _ := hashFrom(r, mustParse(t, r)); got != "" {
		t.Errorf("Bearer header taken as hash: %q", got)
	}
	r = request("POST", "/x", "application/json", `{"hash":{"x":1}}`)
	if _, err := hashFrom(r, mustParse(t, r)); codeOf(err) != 5 {
		t.Errorf("object hash: %v, want 5", err)
	}
}

// TestActionName: /v2 and slashes are dropped.
func TestActionName(t *testing.T) {
	for in, want := range map[string]string{
		"/tracker/list":       "tracker/list",
		"/v2/tracker/list":    "tracker/list",
		"/v2/tracker/list/":   "tracker/list",
		"/api/key/create":     "api/key/create",
		"/v2":                 "",
		"/":                   "",
		"/v2x/tracker/list":   "v2x/tracker/list",
		"/v2/v2/tracker/list": "v2/tracker/list",
	} {
		if got := actionName(in); got != want {
			t.Errorf("actionName(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParams: no input panics the parser or its accessors, and a JSON
// body's string parameters read back as sent.
func FuzzParams(f *testing.F) {
	f.Add("POST", "application/json", `{"hash":"22eac1c27af4be7b9d04da2ce1af111b","tracker_id":123456}`, "")
	f.Add("POST", "application/json", `{"hash":"a6aa75587e5c59c32d347da438505fc3","trackers":[1234567,888999,111333],"allow_not_exist":true,"list_blocked":true}`, "")
	f.Add("POST", "application/json", `{"labels":["aa","b"]}`, "")
	f.Add("POST", "application/json", `{"login":"user@email.com","password":"D9#YoBaQd@RMjMSb"}`, "")
	f.Add("POST", "application/x-www-form-urlencoded", "param1=value&hash=a6aa75587e5c59c32d347da438505fc3", "")
	f.Add("GET", "", "", "hash=a6aa75587e5c59c32d347da438505fc3&title=My+Super+App")
	f.Add("GET", "", "", "trackers=%5B1,2%5D&list_blocked=true")
	f.Add("POST", "multipart/form-data; boundary=zz", "--zz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--zz--\r\n", "")
	f.Add("POST", "", `{"a":[null,{"b":[]}],"c":1e400}`, "a=%")
	names := []string{"hash", "tracker_id", "trackers", "labels", "login", "password", "title", "list_blocked", "a", "c", "param1"}
	f.Fuzz(func(t *testing.T, method, ct, body, query string) {
		if method != "GET" && method != "POST" {
			method = "POST"
		}
		r, err := http.NewRequest(method, "http://x/tracker/list", strings.NewReader(body))
		if err != nil {
			return
		}
		r.URL.RawQuery = query
		r.Header.Set("Content-Type", ct)
		p, err := parseParams(nil, r, 4096)
		if err != nil {
			if codeOf(err) != 5 && codeOf(err) != 9 {
				t.Fatalf("parse error %v is not 5 or 9", err)
			}
			return
		}
		for _, n := range names {
			_, _, _ = p.str(n)
			_, _, _ = p.int64(n)
			_, _, _ = p.bool(n)
			_, _, _ = p.int64s(n)
			_, _, _ = p.strs(n)
			_, _ = p.requiredID(n)
		}
		_, _ = hashFrom(r, p)
	})
}

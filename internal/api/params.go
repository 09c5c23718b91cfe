package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/fleetwire/fleetwire/internal/apierr"
)

// value is one request parameter as it arrived: raw JSON from a JSON body,
// or the text values of a form body or query string key.
type value struct {
	raw  json.RawMessage
	text []string
}

// params are the parameters of one action call, merged from the query
// string and the body; a body value wins over a query value of the same name.
type params struct {
	m map[string]value
}

// parseParams reads the query string and, for requests with a body, the
// body as JSON, form or multipart form. Malformed input is error 5; a body
// over maxBody bytes is error 9. w may be nil; when set, an oversized body
// makes the server close the connection after the answer.
func parseParams(w http.ResponseWriter, r *http.Request, maxBody int64) (*params, error) {
	p := &params{m: make(map[string]value)}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, apierr.WrongRequestFormat.With("query string")
	}
	for k, vs := range q {
		p.m[k] = value{text: vs}
	}
	if r.Body == nil || r.Body == http.NoBody {
		return p, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, apierr.TooLarge
		}
		return nil, apierr.WrongRequestFormat.With("unreadable body")
	}
	if err := p.parseBody(r.Header.Get("Content-Type"), body, maxBody); err != nil {
		return nil, err
	}
	return p, nil
}

// parseBody adds the parameters of body, read according to contentType.
// Without a usable content type, or with the form type that curl and many
// HTTP clients set by default, a body that is a JSON object is read as
// JSON; anything else as a form.
func (p *params) parseBody(contentType string, body []byte, maxBody int64) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil
	}
	mediaType, mp, _ := mime.ParseMediaType(contentType)
	switch {
	case mediaType == "application/json" || mediaType == "text/json" || strings.HasSuffix(mediaType, "+json"):
		return p.parseJSON(trimmed)
	case mediaType == "multipart/form-data":
		return p.parseMultipart(body, mp["boundary"], maxBody)
	case trimmed[0] == '{' && json.Valid(trimmed):
		return p.parseJSON(trimmed)
	case mediaType == "application/x-www-form-urlencoded":
		return p.parseForm(trimmed)
	case trimmed[0] == '{':
		return p.parseJSON(trimmed)
	default:
		return p.parseForm(trimmed)
	}
}

func (p *params) parseJSON(body []byte) error {
	if body[0] != '{' {
		return apierr.WrongRequestFormat.With("body is not a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return apierr.WrongRequestFormat.With("malformed JSON")
	}
	for k, raw := range m {
		p.m[k] = value{raw: raw}
	}
	return nil
}

func (p *params) parseForm(body []byte) error {
	f, err := url.ParseQuery(string(body))
	if err != nil {
		return apierr.WrongRequestFormat.With("malformed form body")
	}
	for k, vs := range f {
		p.m[k] = value{text: vs}
	}
	return nil
}

func (p *params) parseMultipart(body []byte, boundary string, maxBody int64) error {
	if boundary == "" {
		return apierr.WrongRequestFormat.With("multipart body without boundary")
	}
	form, err := multipart.NewReader(bytes.NewReader(body), boundary).ReadForm(maxBody)
	if err != nil {
		return apierr.WrongRequestFormat.With("malformed multipart body")
	}
	defer form.RemoveAll()
	for k, vs := range form.Value {
		p.m[k] = value{text: vs}
	}
	return nil
}

// lookup returns the parameter name, or false when it is absent or null.
func (p *params) lookup(name string) (value, bool) {
	v, ok := p.m[name]
	if !ok {
		return v, false
	}
	if v.raw != nil {
		return v, !bytes.Equal(bytes.TrimSpace(v.raw), []byte("null"))
	}
	return v, len(v.text) > 0
}

// has reports whether the parameter is present and not null.
func (p *params) has(name string) bool {
	_, ok := p.lookup(name)
	return ok
}

func wrongType(name string) error { return apierr.WrongRequestFormat.With(name) }

// str returns a string parameter. JSON numbers and booleans are taken as
// their text, as the reference server coerces scalars; objects and arrays
// are error 5.
func (p *params) str(name string) (string, bool, error) {
	v, ok := p.lookup(name)
	if !ok {
		return "", false, nil
	}
	if v.raw == nil {
		return v.text[0], true, nil
	}
	s, err := scalarText(v.raw)
	if err != nil {
		return "", false, wrongType(name)
	}
	return s, true, nil
}

// scalarText is the text of a JSON string, number or boolean.
func scalarText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", errors.New("empty value")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	case '{', '[', 'n':
		return "", errors.New("not a scalar")
	default:
		return string(raw), nil
	}
}

// int64 returns an integer parameter: a JSON integer, or text (in JSON or
// a form) holding one. Anything else is error 5.
func (p *params) int64(name string) (int64, bool, error) {
	v, ok := p.lookup(name)
	if !ok {
		return 0, false, nil
	}
	var s string
	if v.raw != nil {
		t, err := scalarText(v.raw)
		if err != nil {
			return 0, false, wrongType(name)
		}
		s = t
	} else {
		s = v.text[0]
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, false, wrongType(name)
	}
	return n, true, nil
}

// bool returns a boolean parameter: JSON true/false, or the text "true",
// "false", "1" or "0". Empty text counts as absent.
func (p *params) bool(name string) (bool, bool, error) {
	v, ok := p.lookup(name)
	if !ok {
		return false, false, nil
	}
	var s string
	if v.raw != nil {
		t, err := scalarText(v.raw)
		if err != nil {
			return false, false, wrongType(name)
		}
		s = t
	} else {
		s = v.text[0]
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1":
		return true, true, nil
	case "false", "0":
		return false, true, nil
	case "":
		if v.raw == nil {
			return false, false, nil
		}
	}
	return false, false, wrongType(name)
}

// int64s returns an integer array parameter: a JSON array, or in a form or
// query string a JSON array text ("[1,2]"), a comma-separated list
// ("1,2") or the key repeated. Null items are error 7, other non-integers 5.
func (p *params) int64s(name string) ([]int64, bool, error) {
	v, ok := p.lookup(name)
	if !ok {
		return nil, false, nil
	}
	if v.raw != nil {
		out, err := jsonInts(name, v.raw)
		return out, err == nil, err
	}
	if len(v.text) == 1 && strings.HasPrefix(strings.TrimSpace(v.text[0]), "[") {
		out, err := jsonInts(name, json.RawMessage(v.text[0]))
		return out, err == nil, err
	}
	out := []int64{}
	for _, t := range v.text {
		if strings.TrimSpace(t) == "" {
			continue
		}
		for _, part := range strings.Split(t, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(part), 10, 64)
			if err != nil {
				return nil, false, wrongType(name)
			}
			out = append(out, n)
		}
	}
	return out, true, nil
}

func jsonInts(name string, raw json.RawMessage) ([]int64, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, wrongType(name)
	}
	out := make([]int64, 0, len(items))
	for _, it := range items {
		if bytes.Equal(bytes.TrimSpace(it), []byte("null")) {
			return nil, apierr.InvalidParameters.With(name + ": null item")
		}
		t, err := scalarText(it)
		if err != nil {
			return nil, wrongType(name)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
		if err != nil {
			return nil, wrongType(name)
		}
		out = append(out, n)
	}
	return out, nil
}

// strs returns a string array parameter: a JSON array of strings, or in a
// form or query string a JSON array text or the key repeated. Null items
// are error 7, other non-strings 5.
func (p *params) strs(name string) ([]string, bool, error) {
	v, ok := p.lookup(name)
	if !ok {
		return nil, false, nil
	}
	raw := v.raw
	if raw == nil {
		if len(v.text) == 1 && strings.HasPrefix(strings.TrimSpace(v.text[0]), "[") {
			raw = json.RawMessage(v.text[0])
		} else {
			return append([]string(nil), v.text...), true, nil
		}
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, false, wrongType(name)
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		it = bytes.TrimSpace(it)
		if bytes.Equal(it, []byte("null")) {
			return nil, false, apierr.InvalidParameters.With(name + ": null item")
		}
		if len(it) == 0 || it[0] != '"' {
			return nil, false, wrongType(name)
		}
		var s string
		if err := json.Unmarshal(it, &s); err != nil {
			return nil, false, wrongType(name)
		}
		out = append(out, s)
	}
	return out, true, nil
}

// requiredStr returns a string parameter that must be present (error 7
// naming it otherwise).
func (p *params) requiredStr(name string) (string, error) {
	s, ok, err := p.str(name)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", apierr.InvalidParameters.With(name + " is required")
	}
	return s, nil
}

// requiredID returns a positive id parameter (error 7 naming it when
// missing or not positive).
func (p *params) requiredID(name string) (int64, error) {
	n, ok, err := p.int64(name)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, apierr.InvalidParameters.With(name + " is required")
	}
	if n <= 0 {
		return 0, apierr.InvalidParameters.With(name + " must be positive")
	}
	return n, nil
}

// optBool returns a boolean parameter or def when absent.
func (p *params) optBool(name string, def bool) (bool, error) {
	b, ok, err := p.bool(name)
	if err != nil || !ok {
		return def, err
	}
	return b, nil
}

// hashFrom returns the credential of a call: the hash parameter (body
// first, then query string, as merged in p), else the Authorization header
// in the form "NVX <hash>".
func hashFrom(r *http.Request, p *params) (string, error) {
	h, ok, err := p.str("hash")
	if err != nil {
		return "", err
	}
	if ok {
		return strings.TrimSpace(h), nil
	}
	scheme, rest, found := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if found && strings.EqualFold(scheme, "NVX") {
		return strings.TrimSpace(rest), nil
	}
	return "", nil
}

package api

import (
	"context"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/fleetwire/fleetwire/internal/apierr"
	"github.com/fleetwire/fleetwire/internal/auth"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/store"
)

// maxAPIKeys is how many API keys one account may hold.
const maxAPIKeys = 20

// maxKeyTitle is the longest API key title, in characters.
const maxKeyTitle = 255

type authBody struct {
	Success bool   `json:"success"`
	Type    string `json:"type"`
	Hash    string `json:"hash"`
}

// userAuth is user/auth: login and password in, a session hash out.
func (x *API) userAuth(ctx context.Context, c *call) (any, error) {
	login, err := c.p.requiredStr("login")
	if err != nil {
		return nil, err
	}
	password, err := c.p.requiredStr("password")
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(login) == "" {
		return nil, apierr.InvalidParameters.With("login is empty")
	}
	if password == "" {
		return nil, apierr.InvalidParameters.With("password is empty")
	}
	// The installation is one dealer: a user never belongs to another.
	if dealer, ok, err := c.p.int64("dealer_id"); err != nil {
		return nil, err
	} else if ok && dealer != x.opts.DealerID {
		return nil, apierr.WrongLogin
	}
	s, err := x.auth.Login(auth.WithClientAddr(ctx, c.r.RemoteAddr), login, password)
	if err != nil {
		return nil, err
	}
	return authBody{Success: true, Type: "authenticated", Hash: s.Hash}, nil
}

// userLogout is user/logout: it ends the calling session. API keys cannot
// be logged out (they are deleted with api/key/delete).
func (x *API) userLogout(ctx context.Context, c *call) (any, error) {
	if c.sess.Kind != fleet.KindSession {
		return nil, apierr.SessionTypeForbidden
	}
	if err := x.auth.Logout(ctx, c.sess.Hash); err != nil {
		return nil, err
	}
	return success, nil
}

// userInfo is the documented user object.
type userInfo struct {
	ID           int64   `json:"id"`
	Login        string  `json:"login"`
	Title        string  `json:"title"`
	CreationDate *string `json:"creation_date,omitempty"`
	TimeZone     string  `json:"time_zone"`
	profileJSON
}

type userInfoBody struct {
	Success  bool     `json:"success"`
	PaasID   int64    `json:"paas_id"`
	UserInfo userInfo `json:"user_info"`
}

// userGetInfo is user/get_info: the documented user object, and the
// installation's dealer id as paas_id.
func (x *API) userGetInfo(_ context.Context, c *call) (any, error) {
	return userInfoBody{Success: true, PaasID: x.opts.DealerID, UserInfo: userInfoOf(c.user, c.dates)}, nil
}

func userInfoOf(u *fleet.User, d fleet.Dates) userInfo {
	return userInfo{
		ID:           u.ID,
		Login:        u.Login,
		Title:        u.Title,
		CreationDate: dateTime(u.CreatedAt, d),
		TimeZone:     zoneName(u),
		profileJSON:  profileOf(&u.Profile),
	}
}

// zoneName is the user's time zone name, UTC when none is set.
func zoneName(u *fleet.User) string {
	if u.TimeZone == "" {
		return "UTC"
	}
	return u.TimeZone
}

// apiKey is the documented API key object.
type apiKey struct {
	Hash       string  `json:"hash"`
	CreateDate *string `json:"create_date"`
	Title      string  `json:"title"`
}

type apiKeyBody struct {
	Success bool   `json:"success"`
	Value   apiKey `json:"value"`
}

type apiKeyListBody struct {
	Success bool     `json:"success"`
	List    []apiKey `json:"list"`
}

// standardSession rejects API keys where the documentation asks for a
// session from user/auth; the documented answer is error 4.
func standardSession(c *call) error {
	if c.sess.Kind != fleet.KindSession {
		return apierr.SessionNotFound
	}
	return nil
}

// apiKeyCreate is api/key/create.
func (x *API) apiKeyCreate(ctx context.Context, c *call) (any, error) {
	if err := standardSession(c); err != nil {
		return nil, err
	}
	title, err := c.p.requiredStr("title")
	if err != nil {
		return nil, err
	}
	if err := checkTitle("title", title, maxKeyTitle); err != nil {
		return nil, err
	}
	keys, err := x.auth.APIKeys(ctx, c.user.ID)
	if err != nil {
		return nil, err
	}
	if len(keys) >= maxAPIKeys {
		return nil, apierr.OverQuota
	}
	k, err := x.auth.CreateAPIKey(ctx, c.user.ID, title)
	if err != nil {
		return nil, err
	}
	return apiKeyBody{Success: true, Value: apiKeyOf(k, c)}, nil
}

// apiKeyList is api/key/list.
func (x *API) apiKeyList(ctx context.Context, c *call) (any, error) {
	if err := standardSession(c); err != nil {
		return nil, err
	}
	keys, err := x.auth.APIKeys(ctx, c.user.ID)
	if err != nil {
		return nil, err
	}
	out := apiKeyListBody{Success: true, List: make([]apiKey, 0, len(keys))}
	for _, k := range keys {
		out.List = append(out.List, apiKeyOf(k, c))
	}
	return out, nil
}

// apiKeyDelete is api/key/delete; a key the account does not hold is 201.
func (x *API) apiKeyDelete(ctx context.Context, c *call) (any, error) {
	if err := standardSession(c); err != nil {
		return nil, err
	}
	key, err := c.p.requiredStr("key")
	if err != nil {
		return nil, err
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return nil, apierr.InvalidParameters.With("key is empty")
	}
	if err := x.auth.DeleteAPIKey(ctx, c.user.ID, key); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, apierr.NotFound
		}
		return nil, err
	}
	return success, nil
}

func apiKeyOf(k *fleet.Session, c *call) apiKey {
	return apiKey{Hash: k.Hash, CreateDate: dateTime(k.CreatedAt, c.dates), Title: k.Title}
}

// checkTitle applies the documented string rules to a title: not empty
// nor only spaces, at most max characters, no control, private-use or
// surrogate characters, valid UTF-8.
func checkTitle(name, s string, max int) error {
	if strings.TrimSpace(s) == "" {
		return apierr.InvalidParameters.With(name + " is empty")
	}
	if !utf8.ValidString(s) {
		return apierr.InvalidParameters.With(name + " is not valid UTF-8")
	}
	if utf8.RuneCountInString(s) > max {
		return apierr.InvalidParameters.With(name + " is too long")
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Co, r) || unicode.Is(unicode.Cs, r) || r == utf8.RuneError {
			return apierr.InvalidParameters.With(name + " has characters that are not printable")
		}
	}
	return nil
}

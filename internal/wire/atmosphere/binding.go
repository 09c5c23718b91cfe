package atmosphere

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"strings"
)

// A tracking id is a bearer secret: whoever presents a live session's id
// could read its events, replace its connection or end it. So the server
// honours only ids it issued, and a request must show more than the id
// to use an existing session (Binding).
//
// Ids look like the UUIDs of the published handshake
// (`b623a15d-9623-4fd8-a9d3-697036635c29|30000|X|`): version-4 UUIDs
// whose first 9 bytes are random (66 random bits besides the version and
// variant bits) and whose last 7 are a MAC of them under Options.IDKey.
// An id the server did not issue is never adopted (no session fixation);
// an id it issued whose session is gone (expired, or the server restarted)
// is taken up again for a new, empty session under the same id, so that
// clients that keep their id carry on, and they are told to subscribe
// again.

// newID issues a tracking id.
func newID(key []byte) string {
	var b [16]byte
	_, _ = rand.Read(b[:9])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	copy(b[9:], idMAC(key, b[:9]))
	return formatUUID(b)
}

func idMAC(key, random []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("fleetwire tracking id\x00"))
	m.Write(random)
	return m.Sum(nil)[:7]
}

func formatUUID(b [16]byte) string {
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// issued reports whether id is one newID made with key.
func issued(key []byte, id string) bool {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return false
	}
	var b [16]byte
	for _, part := range []struct{ from, to, at int }{{0, 8, 0}, {9, 13, 4}, {14, 18, 6}, {19, 23, 8}, {24, 36, 10}} {
		if _, err := hex.Decode(b[part.at:], []byte(id[part.from:part.to])); err != nil {
			return false
		}
	}
	if strings.ToLower(id) != id {
		return false
	}
	return hmac.Equal(b[9:], idMAC(key, b[:9]))
}

// ShortID is the part of a tracking id fit for logs: enough to tell
// sessions apart, too little to use one.
func ShortID(id string) string {
	if len(id) <= 8 {
		return id
	}
	return id[:8] + "…"
}

// Bind says what, besides its tracking id, a request must show to use an
// existing session: attach a transport to it, push a message to it or end
// it.
type Bind int

const (
	// BindAddress: a session opened with a resume secret
	// (X-Fleetwire-Resume) needs that secret; any other needs the address
	// it was opened from. A plain client that changes address (a phone
	// moving between networks) then gets a new, empty session and is told
	// to subscribe again. The default.
	BindAddress Bind = iota
	// BindNone: like BindAddress for sessions opened with a resume
	// secret, but sessions opened without one need nothing more than the
	// id: plain clients keep their sessions across address changes, at the
	// price that a leaked tracking id gives its session away.
	BindNone
)

// ParseBind reads a Bind from its flag form, "address" or "none".
func ParseBind(s string) (Bind, bool) {
	switch s {
	case "address", "":
		return BindAddress, true
	case "none":
		return BindNone, true
	}
	return 0, false
}

// Binding is what ties a session to its client besides the tracking id.
type Binding struct {
	// Addr is the client's address (without the port).
	Addr string
	// Secret is the SHA-256 of the resume secret the client presented in
	// X-Fleetwire-Resume; all zero without one.
	Secret [32]byte
}

// HasSecret reports whether the binding carries a resume secret.
func (b Binding) HasSecret() bool { return b.Secret != [32]byte{} }

// Admits reports whether a request showing req may use a session bound
// to b, under mode.
func (b Binding) Admits(req Binding, mode Bind) bool {
	if b.HasSecret() {
		return subtle.ConstantTimeCompare(b.Secret[:], req.Secret[:]) == 1
	}
	if mode == BindAddress {
		return b.Addr == req.Addr
	}
	return true
}

// binding reads what r shows: its address (the first X-Forwarded-For hop
// or X-Real-IP when the server trusts a proxy in front) and its resume
// secret.
func (srv *Server) binding(r *http.Request, p params) Binding {
	b := Binding{Addr: clientAddr(r, srv.opts.TrustProxy)}
	if p.resume != "" {
		b.Secret = sha256.Sum256([]byte(p.resume))
	}
	return b
}

func clientAddr(r *http.Request, trustProxy bool) string {
	if trustProxy {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			first, _, _ := strings.Cut(xff, ",")
			if a := strings.TrimSpace(first); a != "" {
				return a
			}
		}
		if a := strings.TrimSpace(r.Header.Get("X-Real-IP")); a != "" {
			return a
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

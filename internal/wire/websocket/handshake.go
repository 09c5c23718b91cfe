package websocket

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// acceptGUID is the GUID of RFC 6455 §1.3.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

const (
	defaultReadBuffer = 4096
	minReadBuffer     = 256
	defaultReadLimit  = 1 << 20
)

// Upgrader checks WebSocket opening handshakes (RFC 6455 §4.2) and
// upgrades the connections that pass. Its zero value is usable: no
// compression, every origin admitted, no subprotocol.
type Upgrader struct {
	// CheckOrigin decides whether a request's Origin may connect; a
	// refused one is answered 403. nil admits every origin.
	CheckOrigin func(r *http.Request) bool
	// Subprotocol picks one of the subprotocols the client offered in
	// Sec-WebSocket-Protocol (in the client's order), or "" for none.
	// A name the client did not offer is not answered. nil picks none.
	Subprotocol func(r *http.Request, offered []string) string
	// Compression negotiates permessage-deflate (RFC 7692) with clients
	// that offer it.
	Compression bool
	// CompressionThreshold is the smallest payload a connection
	// compresses (default DefaultCompressionThreshold); smaller messages
	// go out plain.
	CompressionThreshold int
	// ClientContextTakeover lets clients compress each message with the
	// window of the ones before (better ratios), at the cost of a 32 KiB
	// window the server keeps per connection. By default the server
	// answers client_no_context_takeover and keeps nothing.
	ClientContextTakeover bool
	// ReadBufferSize is the size of each connection's read buffer
	// (default 4096, at least 256); larger payloads are read straight
	// into the message.
	ReadBufferSize int
	// ReadLimit is the largest message accepted, after inflating
	// (default 1 MiB); a larger one fails the connection with 1009.
	ReadLimit int64
	// IdleTimeout fails reads when no frame has arrived for this long
	// (0: never).
	IdleTimeout time.Duration
	// WriteTimeout bounds every write, the handshake's included (0:
	// never); a stalled write fails after between 7/8 of it and all of it.
	WriteTimeout time.Duration
	// Error answers a refused handshake; the Upgrader has set the headers
	// the answer needs (Allow, Sec-WebSocket-Version). nil writes reason
	// as plain text.
	Error func(w http.ResponseWriter, r *http.Request, status int, reason string)
}

// HandshakeError is a refused handshake, already answered with Status.
type HandshakeError struct {
	// Status is the HTTP status the request was answered with.
	Status int
	// Reason says what was wrong with the request.
	Reason string
}

func (e *HandshakeError) Error() string { return "websocket: handshake refused: " + e.Reason }

// IsUpgrade reports whether r asks for a WebSocket: a Connection header
// with the token "upgrade" and an Upgrade header with "websocket".
func IsUpgrade(r *http.Request) bool {
	return hasToken(r.Header["Connection"], "upgrade") && hasToken(r.Header["Upgrade"], "websocket")
}

// hasToken reports whether a comma-separated header list holds token,
// compared case-insensitively.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// tokens returns the elements of comma-separated header lists.
func tokens(values []string) []string {
	var out []string
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// AcceptKey is the Sec-WebSocket-Accept answer to key (§4.2.2).
func AcceptKey(key string) string {
	h := sha1.Sum([]byte(key + acceptGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// validKey reports whether key is the base64 of 16 bytes (§4.1).
func validKey(key string) bool {
	if len(key) != 24 {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(key)
	return err == nil && len(b) == 16
}

func (u *Upgrader) refuse(w http.ResponseWriter, r *http.Request, status int, reason string) error {
	if u.Error != nil {
		u.Error(w, r, status, reason)
	} else {
		http.Error(w, reason, status)
	}
	return &HandshakeError{Status: status, Reason: reason}
}

// Upgrade checks r's opening handshake and, if it passes, answers 101
// Switching Protocols with the headers in w.Header() and h, takes the
// connection over from net/http, and returns it. A refused handshake is
// answered (400, 403, 405, or 426 with Sec-WebSocket-Version: 13 for any
// version but 13) and returned as a *HandshakeError.
func (u *Upgrader) Upgrade(w http.ResponseWriter, r *http.Request, h http.Header) (*Conn, error) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		return nil, u.refuse(w, r, http.StatusMethodNotAllowed, "a WebSocket handshake is a GET")
	}
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 {
		return nil, u.refuse(w, r, http.StatusBadRequest, "a WebSocket handshake needs HTTP/1.1")
	}
	if !hasToken(r.Header["Connection"], "upgrade") {
		return nil, u.refuse(w, r, http.StatusBadRequest, "the Connection header has no upgrade token")
	}
	if !hasToken(r.Header["Upgrade"], "websocket") {
		return nil, u.refuse(w, r, http.StatusBadRequest, "the Upgrade header has no websocket token")
	}
	if v := r.Header["Sec-Websocket-Version"]; len(v) != 1 || strings.TrimSpace(v[0]) != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		return nil, u.refuse(w, r, http.StatusUpgradeRequired, "unsupported WebSocket version: this server speaks 13")
	}
	keys := r.Header["Sec-Websocket-Key"]
	if len(keys) != 1 || !validKey(strings.TrimSpace(keys[0])) {
		return nil, u.refuse(w, r, http.StatusBadRequest, "Sec-WebSocket-Key is not the base64 of 16 bytes")
	}
	key := strings.TrimSpace(keys[0])
	if u.CheckOrigin != nil && !u.CheckOrigin(r) {
		return nil, u.refuse(w, r, http.StatusForbidden, "origin not allowed")
	}

	hdr := w.Header()
	for k, vs := range h {
		hdr[k] = vs
	}
	hdr.Set("Upgrade", "websocket")
	hdr.Set("Connection", "Upgrade")
	hdr.Set("Sec-WebSocket-Accept", AcceptKey(key))
	var proto string
	if u.Subprotocol != nil {
		offered := tokens(r.Header["Sec-Websocket-Protocol"])
		if p := u.Subprotocol(r, offered); p != "" {
			for _, o := range offered {
				if o == p {
					proto = p
					hdr.Set("Sec-WebSocket-Protocol", p)
					break
				}
			}
		}
	}
	var deflate deflateAgreement
	compress := false
	if u.Compression {
		if deflate, compress = negotiateDeflate(parseExtensions(r.Header["Sec-Websocket-Extensions"]), u.ClientContextTakeover); compress {
			hdr.Set("Sec-WebSocket-Extensions", deflate.response)
		}
	}

	rc := http.NewResponseController(w)
	if u.WriteTimeout > 0 {
		_ = rc.SetWriteDeadline(time.Now().Add(u.WriteTimeout))
	}
	w.WriteHeader(http.StatusSwitchingProtocols)
	nc, brw, err := rc.Hijack()
	if err != nil {
		return nil, fmt.Errorf("websocket: hijack: %w", err)
	}

	size := u.ReadBufferSize
	if size <= 0 {
		size = defaultReadBuffer
	}
	size = max(size, minReadBuffer)
	c := &Conn{
		nc:           nc,
		rsize:        size,
		subprotocol:  proto,
		readLimit:    u.ReadLimit,
		idle:         u.IdleTimeout,
		inflate:      compress,
		takeover:     deflate.clientTakeover,
		deflate:      compress,
		threshold:    int32(min(u.CompressionThreshold, math.MaxInt32)),
		writeTimeout: u.WriteTimeout,
	}
	if c.readLimit <= 0 {
		c.readLimit = defaultReadLimit
	}
	if c.threshold <= 0 {
		c.threshold = DefaultCompressionThreshold
	}
	// Bytes the client sent after its request wait in net/http's reader.
	c.rbuf = make([]byte, max(size, brw.Reader.Buffered()))
	c.rend, _ = brw.Reader.Read(c.rbuf[:brw.Reader.Buffered()])
	if c.idle > 0 {
		_ = nc.SetReadDeadline(time.Now().Add(c.idle))
	}
	return c, nil
}

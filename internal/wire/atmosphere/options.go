package atmosphere

import (
	"crypto/rand"
	"log/slog"
	"time"

	"github.com/fleetwire/fleetwire/internal/wire/websocket"
)

// Options configure a Server. Zero values take the defaults.
type Options struct {
	// Heartbeat is how often the server writes the padding `X` on an idle
	// connection (default 60s; negative disables). A client's
	// X-Heartbeat-Server wish (seconds) is honoured only when it is longer,
	// or 0, which disables heartbeats for that connection.
	Heartbeat time.Duration
	// ClientHeartbeat is how often the client should send `X` to the
	// server, announced in the handshake (default 0: never).
	ClientHeartbeat time.Duration
	// SessionGrace is how long a session without an attached transport is
	// kept before it is closed (default 60s).
	SessionGrace time.Duration
	// LongPollTimeout is the longest a long-poll GET is held (default 30s).
	LongPollTimeout time.Duration
	// IdleTimeout closes a WebSocket that received nothing (no frame, no
	// pong) for this long (default 0: never).
	IdleTimeout time.Duration
	// WriteTimeout bounds every write to a client (default 10s).
	WriteTimeout time.Duration
	// MaxSessionsPerAddr caps the sessions opened from one client address
	// that are alive at once (default 256; negative: no cap); past it a new
	// session is refused with 429.
	MaxSessionsPerAddr int
	// SubscribeWithin closes a WebSocket whose session has not
	// authenticated (see Binder) this long after it connected, with 1008
	// (default 60s; negative: never).
	SubscribeWithin time.Duration
	// Bind says what a request must show besides the tracking id to use
	// an existing session (default BindAddress).
	Bind Bind
	// TrustProxy takes the client's address from X-Forwarded-For (first
	// hop) or X-Real-IP, for a server behind a reverse proxy.
	TrustProxy bool
	// IDKey signs the tracking ids the server issues (default: a random
	// key, good until the process ends). The nodes of a cluster share one.
	IDKey []byte
	// AllowedOrigins are the origins allowed to call the endpoint from
	// another origin (CORS), with credentials; "*" allows any origin,
	// without credentials. Empty allows none.
	AllowedOrigins []string
	// ResetNotice is the first message of a session opened because the
	// client's tracking id could not be honoured (unknown, expired, or the
	// request did not show what the session is bound to), telling the
	// client to subscribe again. Empty sends none.
	ResetNotice []byte
	// CompressionThreshold is the smallest message compressed on a
	// WebSocket that negotiated permessage-deflate (default 256 bytes);
	// negative turns compression off. Each message is compressed once and
	// the same frame goes to every connection that sends it.
	CompressionThreshold int
	// GoroutineReads reads each WebSocket with a goroutine of its own,
	// parked in Read while the client is silent, instead of waiting for
	// readiness on the shared poller (package readiness). It is the
	// portable path, taken anyway where there is no poller or the
	// connection is not a plain socket.
	GoroutineReads bool
	// Logger receives diagnostics (default slog.Default()).
	Logger *slog.Logger
}

const (
	defaultHeartbeat       = 60 * time.Second
	defaultSessionGrace    = 60 * time.Second
	defaultLongPollTimeout = 30 * time.Second
	defaultWriteTimeout    = 10 * time.Second

	// maxMessage bounds a client message: a WebSocket frame or a POST body.
	// The application applies its own, smaller limit and answers in its
	// own error format; past this one the transport refuses (1009, 413).
	maxMessage = 1 << 20
	// paddingLen is the whitespace written first on streaming responses for
	// legacy clients.
	paddingLen = 2048
	// drainBatch is how many messages a streaming transport takes at once.
	drainBatch = 64
)

func (o Options) withDefaults() Options {
	if o.Heartbeat == 0 {
		o.Heartbeat = defaultHeartbeat
	}
	if o.ClientHeartbeat < 0 {
		o.ClientHeartbeat = 0
	}
	if o.SessionGrace <= 0 {
		o.SessionGrace = defaultSessionGrace
	}
	if o.LongPollTimeout <= 0 {
		o.LongPollTimeout = defaultLongPollTimeout
	}
	if o.IdleTimeout < 0 {
		o.IdleTimeout = 0
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = defaultWriteTimeout
	}
	if o.MaxSessionsPerAddr == 0 {
		o.MaxSessionsPerAddr = 256
	}
	if o.SubscribeWithin == 0 {
		o.SubscribeWithin = 60 * time.Second
	}
	if o.CompressionThreshold == 0 {
		o.CompressionThreshold = websocket.DefaultCompressionThreshold
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if len(o.IDKey) == 0 {
		o.IDKey = make([]byte, 32)
		_, _ = rand.Read(o.IDKey)
	}
	return o
}

// Package atmosphere serves the Atmosphere protocol, as the atmosphere.js
// clients speak it, on one HTTP endpoint: the WebSocket, long-polling,
// streaming, SSE, JSONP and polling transports, the protocol handshake,
// heartbeats, trackMessageLength framing, and sessions keyed by tracking id
// that survive reconnects. It knows nothing of what the messages mean: the
// application behind it is a Handler.
package atmosphere

import (
	"net/http"

	"github.com/fleetwire/fleetwire/internal/outbox"
)

// Handler is the application served over the protocol.
type Handler interface {
	// Open starts the application session for a new tracking id. r is the
	// client's first request. An error refuses the connection.
	Open(r *http.Request, trackingID string) (Session, error)
}

// Session is one client's application state, independent of the transport
// that carries it at the moment.
type Session interface {
	// Outbox is the queue of encoded messages the transports drain. When the
	// application closes it, the transport delivers what is queued, then
	// ends the connection with the close code given.
	Outbox() *outbox.Queue
	// Receive handles one client message (a WebSocket text frame or a POST
	// body). Heartbeats never reach it.
	Receive(msg []byte)
	// Close releases the session: the client asked to disconnect, or it did
	// not come back within the grace period.
	Close()
}

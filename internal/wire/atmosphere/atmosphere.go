// Package atmosphere serves the Atmosphere protocol, as the atmosphere.js
// clients speak it, on one HTTP endpoint: the WebSocket, long-polling,
// streaming, SSE, JSONP and polling transports, the protocol handshake,
// heartbeats, trackMessageLength framing, and sessions keyed by tracking id
// that survive reconnects. It knows nothing of what the messages mean: the
// application behind it is a Handler.
package atmosphere

import (
	"errors"
	"net/http"

	"github.com/fleetwire/fleetwire/internal/outbox"
)

// Handler is the application served over the protocol.
type Handler interface {
	// Open starts the application session for a new tracking id. r is the
	// client's first request and b what binds the session to the client.
	// An error refuses the connection.
	Open(r *http.Request, trackingID string, b Binding) (Session, error)
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

// Journal is implemented by sessions whose delivered messages must be
// kept outside this server before a transport writes them (a cluster
// node's, so that another node can take the session over). Deliver gets
// the messages numbered first, first+1, … as they are taken from the
// outbox; they are written only once it returns nil. acked tells whether
// the client acknowledges (X-Fleetwire-Received), and so may ask for them
// again.
type Journal interface {
	Deliver(first uint64, msgs []outbox.Entry, acked bool) error
}

// Handoffer is implemented by sessions that can leave this server without
// ending: Handoff releases the session here and leaves it for another
// node to take over (when its client reconnects there, or when this
// server shuts down).
type Handoffer interface {
	Handoff()
}

// Binder is implemented by sessions that tell whether their client has
// authenticated (subscribed with a valid credential). A connection whose
// session is bound no longer counts against the per-address cap of
// unauthenticated connections (package netlimit); a WebSocket or stream
// whose session is not bound within Options.SubscribeWithin is closed.
type Binder interface {
	Bound() bool
}

// ErrUnknownSession is returned by a Resumer for a tracking id no node
// holds a session of.
var ErrUnknownSession = errors.New("atmosphere: unknown session")

// ErrNotAdmitted is returned by a Resumer for a request that does not
// show what the session is bound to (see Binding).
var ErrNotAdmitted = errors.New("atmosphere: request not admitted to the session")

// Resumer is implemented by handlers whose sessions outlive this server (a
// cluster): a tracking id this server holds no session of may be one
// another node serves, or this node served before it restarted.
type Resumer interface {
	// Resume takes session id over for a request showing b. received is
	// the client's X-Fleetwire-Received count (acked false without one).
	// It fails with ErrUnknownSession or ErrNotAdmitted, or another error
	// when it cannot tell.
	Resume(r *http.Request, id string, b Binding, received uint64, acked bool) (*Resumed, error)
	// Forward hands a client message for session id to the node holding it.
	Forward(r *http.Request, id string, b Binding, msg []byte) error
	// End ends session id wherever it is held (a close request).
	End(r *http.Request, id string, b Binding) error
}

// Resumed is a session taken over from another node.
type Resumed struct {
	// Session is the application session, restored.
	Session Session
	// Binding is what the session is bound to.
	Binding Binding
	// Last is the number of the last message delivered so far, on any node.
	Last uint64
	// Replay holds the delivered messages the client may still ask for, in
	// order, numbered up to Last (empty for a client that does not
	// acknowledge).
	Replay [][]byte
}

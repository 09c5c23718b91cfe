// Package websocket is fleetwire's WebSocket layer: the server side of
// RFC 6455 with the permessage-deflate extension of RFC 7692, strict about
// what clients send and built for fan-out.
//
// An Upgrader checks the opening handshake and hands over a Conn. A Conn
// reads whole messages with ReadMessage, which answers pings, echoes a
// close and fails the connection with the close code the RFC gives for
// every protocol violation (1002), invalid UTF-8 (1007) and oversized
// messages (1009). Writes take several messages at once and put all their
// frames into one buffer and one write; a PreparedMessage is encoded once,
// and compressed once, for every connection that sends it.
//
// The server always negotiates server_no_context_takeover: each compressed
// message stands alone, so its frame is the same bytes on every
// connection, and a connection keeps no compressor between writes.
//
// A Conn runs no goroutines of its own. Its reader state lives in the Conn
// (a small read buffer and the message being assembled), so the same
// reader can later be driven by a readiness loop instead of a blocked
// goroutine.
package websocket

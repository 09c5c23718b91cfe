// Package netlimit bounds what one client can hold on fleetwire's HTTP
// listeners: how long a request body may take to arrive, how many
// unauthenticated connections one source address may keep open, and, for
// any other per-address budget, a concurrent counter.
//
// The pieces, all safe for concurrent use:
//
//   - AddrKey(remoteAddr) names the source a limit applies to: the IP
//     address of an IPv4 client, the /64 prefix of an IPv6 one (a single
//     IPv6 host commonly holds a whole /64).
//
//   - Counter counts concurrent holders per key with a cap:
//
//     c := netlimit.NewCounter(16)
//     key := netlimit.AddrKey(r.RemoteAddr)
//     if !c.Take(key) { refuse (429 or close 1013) }
//     defer c.Give(key) // or when the session ends: once for each Take that succeeded
//
//     A Counter with cap 0 admits everything (and still counts). It keeps
//     no entry for a key whose count is back at zero, so its memory is
//     bounded by what is held.
//
//   - Listen wraps a net.Listener so that each source address holds at most
//     Options.MaxUnauthenticated connections that no handler has marked
//     authenticated. A connection over the cap is answered with a bare
//     HTTP/1.1 429 (Retry-After: 1) and closed before any request is read.
//     A handler that has authenticated its client calls
//     Authenticated(r.Context()) (or Conn.Authenticated on a hijacked
//     connection) to give the connection's slot back, so long-lived
//     authenticated connections (event WebSockets, the topic bridge) do not
//     use up the budget. For that, the http.Server needs
//     ConnContext: netlimit.ConnContext.
//
//   - BodyTimeout wraps a handler so that a request body must arrive
//     within a bounded time from the start of the request; a body
//     trickled slower fails its Read with a timeout, and the server closes
//     the connection after the handler answers.
package netlimit

import (
	"net"
	"net/netip"
)

// AddrKey returns the source key of a client address given as
// http.Request.RemoteAddr or net.Addr.String() ("host:port", or a bare
// host): the IP address for IPv4 (and IPv4-mapped IPv6), the /64 prefix
// for IPv6. A prefix ("2001:db8::/48", as a forwarded address could claim)
// is keyed by its first address, so it shares the key of the addresses
// it names and never stands apart as a key of its own. An address without
// an IP address in it is returned whole, so that a key is always its own
// key.
func AddrKey(remoteAddr string) string {
	host := remoteAddr
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		p, perr := netip.ParsePrefix(host)
		if perr != nil {
			return remoteAddr
		}
		a = p.Masked().Addr()
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return a.String()
	}
	return p.String()
}

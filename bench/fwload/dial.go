package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// requireLoopback refuses any address that does not resolve to loopback
// only: the tool is a local benchmark, never a load generator for others.
func requireLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("parse %q: %w", raw, err)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	ips, err := net.DefaultResolver.LookupIPAddr(context.Background(), host)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return fmt.Errorf("%s resolves to %s, which is not loopback: this tool only loads local servers", host, ip.IP)
		}
	}
	return nil
}

// dialers spreads client connections over several loopback source
// addresses, 127.0.0.2 and up, so that more connections fit than one
// address's ephemeral port range allows.
type dialers struct {
	list []*websocket.Dialer
}

func newDialers(n int, compress bool) *dialers {
	if n < 1 {
		n = 1
	}
	if n > 250 {
		n = 250
	}
	pool := &sync.Pool{} // gorilla keeps no write buffer on idle connections with a pool
	d := &dialers{}
	for i := 0; i < n; i++ {
		nd := &net.Dialer{Timeout: 10 * time.Second}
		if n > 1 {
			nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}
		}
		d.list = append(d.list, &websocket.Dialer{
			NetDialContext:   nd.DialContext,
			HandshakeTimeout: 15 * time.Second,
			ReadBufferSize:   1024,
			WriteBufferSize:  1024,
			WriteBufferPool:  pool,
			// Offering permessage-deflate: the server may compress
			// what it sends, as it does for browsers.
			EnableCompression: compress,
		})
	}
	return d
}

// For returns the dialer of connection i.
func (d *dialers) For(i int) *websocket.Dialer { return d.list[i%len(d.list)] }

// noteExtensions counts the connection as compressed when the server
// accepted permessage-deflate in its handshake response.
func (c *client) noteExtensions(resp *http.Response) {
	if resp != nil && strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		c.stats.compressed.Add(1)
	}
}

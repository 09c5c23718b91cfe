package websocket

import (
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchConn is a server Conn on a real loopback TCP connection whose other
// end reads everything and throws it away.
func benchConn(b *testing.B, compress bool) *Conn {
	b.Helper()
	server, client := loopbackPair(b)
	go func() { _, _ = io.Copy(io.Discard, client) }()
	return &Conn{nc: server, rbuf: make([]byte, minReadBuffer), readLimit: defaultReadLimit,
		deflate: compress, inflate: compress, threshold: DefaultCompressionThreshold}
}

// event is a state event of the size the event API sends.
var event = []byte(`{"type":"event","event":"state","data":{"source_id":10284,"gps":{"updated":"2026-12-01 10:00:00","signal_level":100,` +
	`"location":{"lat":52.520008,"lng":13.404954},"heading":90,"speed":42,"alt":35},"connection_status":"active","movement_status":"moving",` +
	`"gsm":null,"last_update":"2026-12-01 10:00:00","battery_level":null,"inputs":[false,false],"outputs":[false],"additional":{}},"user_time":"2026-12-01 11:00:00"}`)

// BenchmarkWrite writes 16 messages per op to a socket, one write per
// message ("one"; "one_timeout" with a write timeout, as the server sets)
// against all 16 in one write ("coalesced16").
func BenchmarkWrite(b *testing.B) {
	m, err := NewPreparedMessage(OpText, event)
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]*PreparedMessage, 16)
	for i := range batch {
		batch[i] = m
	}
	for _, one := range []struct {
		name    string
		timeout time.Duration
	}{{"one", 0}, {"one_timeout", 10 * time.Second}} {
		b.Run(one.name, func(b *testing.B) {
			c := benchConn(b, false)
			c.writeTimeout = one.timeout
			b.SetBytes(int64(16 * len(event)))
			for b.Loop() {
				for i := range batch {
					if _, err := c.WritePrepared(batch[i : i+1]); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(16*b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
	b.Run("coalesced16", func(b *testing.B) {
		c := benchConn(b, false)
		b.SetBytes(int64(16 * len(event)))
		for b.Loop() {
			if _, err := c.WritePrepared(batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(16*b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}

// BenchmarkCompressedFanOut sends each message to 100 compressing
// connections: compressed once and shared ("once"), or compressed by
// every connection ("per_connection"), which is what a server without
// server_no_context_takeover or without prepared messages must do.
func BenchmarkCompressedFanOut(b *testing.B) {
	const conns = 100
	cs := make([]*Conn, conns)
	for i := range cs {
		cs[i] = &Conn{nc: discardConn{}, deflate: true, threshold: DefaultCompressionThreshold}
	}
	msgs := make([][]byte, 64)
	for i := range msgs {
		msgs[i] = []byte(strings.Replace(string(event), "10284", strconv.Itoa(10000+i), 1))
	}
	b.Run("once", func(b *testing.B) {
		i := 0
		for b.Loop() {
			m, _ := NewPreparedMessage(OpText, msgs[i%len(msgs)])
			i++
			ms := []*PreparedMessage{m}
			for _, c := range cs {
				if _, err := c.WritePrepared(ms); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(conns*b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("per_connection", func(b *testing.B) {
		i := 0
		for b.Loop() {
			p := msgs[i%len(msgs)]
			i++
			for _, c := range cs {
				if err := c.WriteMessage(OpText, p); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(conns*b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}

// discardConn is a net.Conn that accepts every write.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }

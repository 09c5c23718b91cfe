package websocket

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// rawClient is a WebSocket client on a plain TCP socket that sends frames
// byte for byte as a test says, however wrong, and reads the server's
// frames as they come.
type rawClient struct {
	t    *testing.T
	nc   net.Conn
	br   *bufio.Reader
	resp *http.Response
}

// dialRaw opens a TCP connection to srv and sends a handshake with the
// given extra header lines ("Name: value").
func dialRaw(t *testing.T, srv *httptest.Server, lines ...string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := "GET / HTTP/1.1\r\nHost: " + srv.Listener.Addr().String() +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	hasVersion := false
	for _, l := range lines {
		if strings.HasPrefix(strings.ToLower(l), "sec-websocket-version:") {
			hasVersion = true
		}
		req += l + "\r\n"
	}
	if !hasVersion {
		req += "Sec-WebSocket-Version: 13\r\n"
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	c := &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	c.resp, err = http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("handshake response: %v", err)
	}
	return c
}

// frameBytes builds a frame. rsv holds RSV bits as they sit in the first
// byte (0x40 RSV1, 0x20 RSV2, 0x10 RSV3). Client frames are masked with a
// random key.
func frameBytes(fin bool, rsv byte, op Opcode, payload []byte, masked bool) []byte {
	b0 := byte(op) | rsv
	if fin {
		b0 |= finBit
	}
	var mb byte
	if masked {
		mb = maskBit
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, mb|byte(n))
	case n <= 0xffff:
		b = append(b, mb|126, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, mb|127), uint64(n))
	}
	if !masked {
		return append(b, payload...)
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, payload...)
	maskBytes(key, 0, b[start:])
	return b
}

// wire is bytes the client sends, in pieces of chunk bytes (0: at once).
type wire struct {
	b     []byte
	chunk int
}

func (c *rawClient) send(w wire) {
	c.t.Helper()
	b := w.b
	for len(b) > 0 {
		n := len(b)
		if w.chunk > 0 {
			n = min(n, w.chunk)
		}
		if _, err := c.nc.Write(b[:n]); err != nil {
			c.t.Fatalf("send: %v", err)
		}
		b = b[n:]
	}
}

// rframe is a frame as the client read it; compressed payloads are
// inflated and compressed is set.
type rframe struct {
	op         Opcode
	payload    []byte
	compressed bool
}

// read reads one whole message or control frame from the server.
func (c *rawClient) read() (rframe, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var msg rframe
	started := false
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return msg, err
		}
		if h[1]&maskBit != 0 {
			return msg, errors.New("server frame is masked")
		}
		n := int64(h[1] & 0x7f)
		switch n {
		case 126:
			var l [2]byte
			if _, err := io.ReadFull(c.br, l[:]); err != nil {
				return msg, err
			}
			n = int64(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			if _, err := io.ReadFull(c.br, l[:]); err != nil {
				return msg, err
			}
			n = int64(binary.BigEndian.Uint64(l[:]))
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(c.br, p); err != nil {
			return msg, err
		}
		op := Opcode(h[0] & 0x0f)
		if op.isControl() {
			return rframe{op: op, payload: p}, nil
		}
		if !started {
			msg.op, msg.compressed, started = op, h[0]&rsv1Bit != 0, true
		}
		msg.payload = append(msg.payload, p...)
		if h[0]&finBit != 0 {
			break
		}
	}
	if msg.compressed {
		fr := flate.NewReader(io.MultiReader(bytes.NewReader(msg.payload), bytes.NewReader(inflateTail)))
		out, err := io.ReadAll(fr)
		if err != nil {
			return msg, err
		}
		msg.payload = out
	}
	return msg, nil
}

// closeCode is the code of a close frame's payload, CloseNoStatus for
// none.
func closeCode(p []byte) int {
	if len(p) < 2 {
		return CloseNoStatus
	}
	return int(binary.BigEndian.Uint16(p))
}

// expectClose reads until a close frame and checks its code, then that
// the server closes the TCP connection.
func (c *rawClient) expectClose(code int) {
	c.t.Helper()
	for {
		f, err := c.read()
		if err != nil {
			c.t.Fatalf("reading for close %d: %v", code, err)
		}
		if f.op == OpClose {
			if got := closeCode(f.payload); got != code {
				c.t.Fatalf("close code %d (%q), want %d", got, f.payload, code)
			}
			break
		}
		c.t.Fatalf("frame %#x %q before the expected close %d", byte(f.op), trunc(f.payload), code)
	}
	c.expectEOF()
}

// expectEOF checks that the server closed the TCP connection without
// sending anything more.
func (c *rawClient) expectEOF() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := c.br.ReadByte()
	if err != io.EOF {
		c.t.Fatalf("after the close: byte %#x, err %v; want EOF", b, err)
	}
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// deflateMessage compresses p as a client does: with fw (shared for
// context takeover) or a fresh compressor.
func deflateMessage(fw *flate.Writer, buf *bytes.Buffer, p []byte) []byte {
	if fw == nil {
		buf = &bytes.Buffer{}
		fw, _ = flate.NewWriter(buf, flate.BestCompression)
	}
	buf.Reset()
	_, _ = fw.Write(p)
	_ = fw.Flush()
	out := bytes.Clone(buf.Bytes())
	return out[:len(out)-4]
}

func newReader(nc net.Conn) *bufio.Reader { return bufio.NewReader(nc) }

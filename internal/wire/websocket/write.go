package websocket

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"
	"unicode/utf8"
)

const (
	// largePayload is the payload size from which a frame's payload is
	// handed to the kernel where it lies (writev) instead of being copied
	// into the write buffer.
	largePayload = 4 << 10
	// maxPooledBuffer is the largest write buffer kept for reuse.
	maxPooledBuffer = 64 << 10
)

// writeBuf collects the frames of one coalesced write: headers and small
// payloads are copied into b, large payloads are referenced as segments
// of their own, and the whole goes out in one write (or one writev).
type writeBuf struct {
	b     []byte
	start int // where the part of b not yet in segs begins
	segs  net.Buffers
}

var writeBufs = sync.Pool{New: func() any { return &writeBuf{b: make([]byte, 0, 4096)} }}

func getWriteBuf() *writeBuf { return writeBufs.Get().(*writeBuf) }

func putWriteBuf(w *writeBuf) {
	clear(w.segs)
	w.segs = w.segs[:0]
	w.start = 0
	if cap(w.b) > maxPooledBuffer {
		return
	}
	w.b = w.b[:0]
	writeBufs.Put(w)
}

// add appends bytes that go out as they are: copied when small, referenced
// when large.
func (w *writeBuf) add(p []byte) {
	if len(p) < largePayload {
		w.b = append(w.b, p...)
		return
	}
	w.seal()
	w.segs = append(w.segs, p)
}

// seal moves the unsegmented tail of b into segs.
func (w *writeBuf) seal() {
	if len(w.b) > w.start {
		w.segs = append(w.segs, w.b[w.start:len(w.b):len(w.b)])
		w.start = len(w.b)
	}
}

// frame appends a whole frame.
func (w *writeBuf) frame(op Opcode, rsv1 bool, payload []byte) {
	w.b = appendHeader(w.b, op, rsv1, len(payload))
	w.add(payload)
}

// writeTo writes everything collected to nc in one call.
func (w *writeBuf) writeTo(nc net.Conn) (int64, error) {
	if len(w.segs) == 0 {
		n, err := nc.Write(w.b)
		return int64(n), err
	}
	w.seal()
	segs := w.segs
	return segs.WriteTo(nc)
}

// PreparedMessage is a message encoded once for any number of
// connections: its frame header and payload, and, made the first time a
// compressing connection sends it, its compressed frame. With
// server_no_context_takeover a compressed message does not depend on the
// connection, so every connection shares the same bytes. A
// PreparedMessage is safe for concurrent use.
type PreparedMessage struct {
	op      Opcode
	payload []byte

	once     sync.Once
	deflated []byte // the compressed frame, header included; nil if no smaller
}

// NewPreparedMessage prepares a message of type op (OpText or OpBinary).
// A text payload must be valid UTF-8. The payload is not copied and must
// not change afterwards.
func NewPreparedMessage(op Opcode, payload []byte) (*PreparedMessage, error) {
	if err := checkData(op, payload); err != nil {
		return nil, err
	}
	return &PreparedMessage{op: op, payload: payload}, nil
}

// Payload returns the message's payload.
func (m *PreparedMessage) Payload() []byte { return m.payload }

// deflatedFrame returns the compressed frame, compressing on first use,
// or nil when compressing does not make the message smaller.
func (m *PreparedMessage) deflatedFrame() []byte {
	m.once.Do(func() {
		z := appendDeflate(make([]byte, maxHeader, maxHeader+len(m.payload)/2), m.payload)
		n := len(z) - maxHeader
		if n >= len(m.payload) {
			return
		}
		hl := headerLen(n)
		appendHeader(z[maxHeader-hl:maxHeader-hl], m.op, true, n)
		m.deflated = z[maxHeader-hl:]
	})
	return m.deflated
}

// appendTo adds m's frame for a connection compressing from threshold
// bytes (0: not compressing). It returns the frame's length.
func (m *PreparedMessage) appendTo(w *writeBuf, threshold int) int {
	if threshold > 0 && len(m.payload) >= threshold {
		if z := m.deflatedFrame(); z != nil {
			w.add(z)
			return len(z)
		}
	}
	w.frame(m.op, false, m.payload)
	return headerLen(len(m.payload)) + len(m.payload)
}

// checkData checks a data message before it is written.
func checkData(op Opcode, payload []byte) error {
	switch op {
	case OpText:
		if !utf8.Valid(payload) {
			return fmt.Errorf("websocket: write: %w", ErrInvalidUTF8)
		}
	case OpBinary:
	default:
		return fmt.Errorf("websocket: write: opcode %#x is not a data opcode", byte(op))
	}
	return nil
}

// compressFrom is the threshold appendTo takes for c (0: c does not
// compress). Call with wmu held.
func (c *Conn) compressFrom() int {
	if !c.deflate {
		return 0
	}
	return int(c.threshold)
}

// WritePrepared writes ms in order, all their frames in one buffer and one
// write. It returns how many messages were written whole before an error.
func (c *Conn) WritePrepared(ms []*PreparedMessage) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writable(); err != nil {
		return 0, err
	}
	w := getWriteBuf()
	defer putWriteBuf(w)
	th := c.compressFrom()
	var ends [16]int64
	lens := ends[:0]
	var total int64
	for _, m := range ms {
		total += int64(m.appendTo(w, th))
		lens = append(lens, total)
	}
	n, err := c.flush(w)
	if err != nil {
		return written(lens, n), err
	}
	return len(ms), nil
}

// written counts the frames whose end offsets in ends lie within n bytes.
func written(ends []int64, n int64) int {
	i := 0
	for i < len(ends) && ends[i] <= n {
		i++
	}
	return i
}

// WriteMessage writes one data message of type op (OpText, which must be
// valid UTF-8, or OpBinary), compressed if the connection negotiated
// compression and it is at least the compression threshold long.
func (c *Conn) WriteMessage(op Opcode, payload []byte) error {
	_, err := c.WriteMessages(op, [][]byte{payload})
	return err
}

// WriteMessages writes the payloads as messages of type op, all their
// frames in one buffer and one write. Text payloads are validated first:
// if one is not UTF-8 nothing is written. It returns how many messages
// were written whole before an error.
func (c *Conn) WriteMessages(op Opcode, payloads [][]byte) (int, error) {
	for _, p := range payloads {
		if err := checkData(op, p); err != nil {
			return 0, err
		}
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writable(); err != nil {
		return 0, err
	}
	w := getWriteBuf()
	defer putWriteBuf(w)
	th := c.compressFrom()
	var ends [16]int64
	lens := ends[:0]
	var total int64
	var z []byte
	for _, p := range payloads {
		if th > 0 && len(p) >= th {
			z = appendDeflate(z[:0], p)
			if len(z) < len(p) {
				w.b = appendHeader(w.b, op, true, len(z))
				w.b = append(w.b, z...)
				total += int64(headerLen(len(z)) + len(z))
				lens = append(lens, total)
				continue
			}
		}
		w.frame(op, false, p)
		total += int64(headerLen(len(p)) + len(p))
		lens = append(lens, total)
	}
	n, err := c.flush(w)
	if err != nil {
		return written(lens, n), err
	}
	return len(payloads), nil
}

// WritePing sends a ping with payload (at most 125 bytes).
func (c *Conn) WritePing(payload []byte) error {
	if len(payload) > maxControlPayload {
		return fmt.Errorf("websocket: ping payload of %d bytes", len(payload))
	}
	return c.writeControl(OpPing, payload)
}

// WriteClose sends a close frame with code and reason, once; later data
// writes fail with ErrClosed. A code that may not be sent (see
// ValidCloseCode) is sent as 1000; the reason is cut to the longest valid
// UTF-8 prefix that fits a control frame (123 bytes).
func (c *Conn) WriteClose(code int, reason string) error {
	if !ValidCloseCode(code) {
		code = CloseNormal
	}
	var p [maxControlPayload]byte
	binary.BigEndian.PutUint16(p[:], uint16(code))
	n := 2 + copy(p[2:], validUTF8Prefix(reason, maxCloseReason))
	return c.writeControl(OpClose, p[:n])
}

// writeControl sends a control frame; a close frame only once.
func (c *Conn) writeControl(op Opcode, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writable(); err != nil {
		return err
	}
	if op == OpClose {
		c.closeSent = true
	}
	w := getWriteBuf()
	defer putWriteBuf(w)
	w.frame(op, false, payload)
	if op == OpClose {
		// A peer that cannot take a few bytes in closeLinger is not
		// reading: do not hold up whoever closes.
		_ = c.nc.SetWriteDeadline(time.Now().Add(closeLinger))
		_, err := w.writeTo(c.nc)
		return err
	}
	_, err := c.flush(w)
	return err
}

// writable reports why nothing more may be written, if so.
func (c *Conn) writable() error {
	switch {
	case c.writeErr != nil:
		return c.writeErr
	case c.closeSent:
		return ErrClosed
	}
	return nil
}

// flush writes w under the write deadline. A failed write makes every
// later write fail.
//
// Moving the deadline is a runtime timer update, so it is not done for
// every write: a deadline still more than 7/8 of writeTimeout away is
// left where it is, and a write may take between 7/8 of writeTimeout and
// writeTimeout before it fails.
func (c *Conn) flush(w *writeBuf) (int64, error) {
	if c.writeTimeout > 0 {
		d := time.Now().Add(c.writeTimeout).UnixNano()
		if d-c.wdeadline > int64(c.writeTimeout/8) {
			_ = c.nc.SetWriteDeadline(time.Unix(0, d))
			c.wdeadline = d
		}
	}
	n, err := w.writeTo(c.nc)
	if err != nil {
		c.writeErr = fmt.Errorf("%w: %w", ErrClosed, err)
		return n, fmt.Errorf("websocket: write: %w", err)
	}
	return n, nil
}

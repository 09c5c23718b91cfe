package websocket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// closeLinger bounds how long a failed or closed connection is read (and
// what is read discarded) after the close frame, so that the peer sees
// the close frame and a FIN rather than a reset.
const closeLinger = time.Second

// Conn is a server WebSocket connection. One goroutine at a time may read
// (ReadMessage); writes may come from any goroutine and are serialised.
// A Conn runs no goroutines of its own.
type Conn struct {
	nc          net.Conn
	subprotocol string

	// Read side: owned by the reader. (The small fields of both sides
	// sit together, so that a connection takes no padding.)
	rbuf        []byte // nil while idle after TryReadMessage (see releaseReadBuf)
	rbufp       *[]byte
	rsize       int // the read buffer's size
	raw         syscall.RawConn
	rpos, rend  int
	readLimit   int64
	idle        time.Duration
	dict        []byte // the window the client's next message refers to
	msg         []byte // the message being assembled
	msgOp       Opcode // its opcode, 0 between messages
	msgDeflated bool
	text        utf8State
	inflate     bool // permessage-deflate negotiated
	takeover    bool // the client keeps its window between messages
	readErr     error
	try         bool // inside TryReadMessage

	// Write side: under wmu.
	deflate      bool // compress messages at least threshold long
	closeSent    bool
	wmu          sync.Mutex
	threshold    int32
	writeTimeout time.Duration
	wdeadline    int64 // the write deadline last set, Unix nanoseconds
	writeErr     error
}

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Subprotocol returns the negotiated subprotocol, "" for none.
func (c *Conn) Subprotocol() string { return c.subprotocol }

// Compressed reports whether permessage-deflate was negotiated.
func (c *Conn) Compressed() bool { return c.inflate }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Close closes the TCP connection at once, without a close frame.
func (c *Conn) Close() error { return c.nc.Close() }

// SetReadDeadline sets the deadline of the reads ReadMessage makes; it
// replaces the idle deadline until the next frame arrives.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// ReadMessage returns the next data message, its opcode OpText or
// OpBinary; a text message is valid UTF-8. Control frames are handled on
// the way: a ping is answered with a pong carrying its payload, a pong is
// taken as a sign of life, and a close is echoed and reported as a
// *CloseError. A protocol violation fails the connection: the close frame
// with the RFC's code is sent (1002, 1007 or 1009), the socket is shut
// for writing, and the error wraps ErrProtocol, ErrInvalidUTF8 or
// ErrMessageTooBig. After any error, ReadMessage returns it again; the
// caller closes the Conn. The returned slice is the caller's.
func (c *Conn) ReadMessage() (Opcode, []byte, error) {
	if c.readErr != nil {
		return 0, nil, c.readErr
	}
	c.takeReadBuf()
	op, msg, err := c.readMessage()
	if err != nil {
		if errors.Is(err, ErrWouldBlock) {
			c.releaseReadBuf()
			return 0, nil, err
		}
		var f *failure
		var ce *CloseError
		switch {
		case errors.As(err, &f):
			c.fail(f)
		case errors.As(err, &ce):
			// The close is echoed; what the peer sends after it is
			// read and dropped, so that closing the socket does not
			// reset it under our close frame.
			c.linger()
		}
		c.readErr = err
		c.msg = nil
		return 0, nil, err
	}
	return op, msg, nil
}

// ErrWouldBlock is returned by TryReadMessage when no byte of a next
// frame has arrived. It does not end the connection.
var ErrWouldBlock = errors.New("websocket: no data to read")

// TryReadMessage is ReadMessage for readiness-driven readers: whenever
// it stands between messages with nothing buffered (at the start, and
// after a control frame) it reads what the socket holds without waiting,
// and if that is nothing it returns ErrWouldBlock, with the read buffer
// given back to a pool. Once a frame has begun it reads like ReadMessage,
// waiting for the rest of the message, so every check of ReadMessage
// applies. On connections without raw access (not a syscall.Conn, or
// not on a Unix system) it is ReadMessage.
func (c *Conn) TryReadMessage() (Opcode, []byte, error) {
	c.try = true
	defer func() { c.try = false }()
	return c.ReadMessage()
}

// fillNow is fill without waiting, between messages of TryReadMessage.
func (c *Conn) fillNow() error {
	n, err := c.readNow(c.rbuf)
	switch {
	case errors.Is(err, errNoRaw):
		return nil // fill waits, as ReadMessage does
	case errors.Is(err, ErrWouldBlock):
		return err
	case err != nil:
		return fmt.Errorf("websocket: read: %w", err)
	}
	c.rpos, c.rend = 0, n
	return nil
}

// errNoRaw: the connection offers no non-blocking read.
var errNoRaw = errors.New("websocket: no raw connection")

// readBufs pools read buffers by size (*sync.Pool of *[]byte).
var readBufs sync.Map

func readBufPool(size int) *sync.Pool {
	if p, ok := readBufs.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := readBufs.LoadOrStore(size, &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}})
	return p.(*sync.Pool)
}

// takeReadBuf gives the reader a read buffer if it gave its back.
func (c *Conn) takeReadBuf() {
	if c.rbuf != nil {
		return
	}
	c.rbufp = readBufPool(c.rsize).Get().(*[]byte)
	c.rbuf = *c.rbufp
	c.rpos, c.rend = 0, 0
}

// releaseReadBuf gives an empty read buffer back: an idle connection
// holds none.
func (c *Conn) releaseReadBuf() {
	if c.rbuf == nil || c.rpos != c.rend {
		return
	}
	if c.rbufp != nil {
		readBufPool(c.rsize).Put(c.rbufp)
	}
	c.rbuf, c.rbufp = nil, nil
	c.rpos, c.rend = 0, 0
}

func protocolError(format string, a ...any) error {
	return &failure{kind: ErrProtocol, code: CloseProtocolError, detail: fmt.Sprintf(format, a...)}
}

func (c *Conn) readMessage() (Opcode, []byte, error) {
	for {
		if c.try && c.rpos == c.rend && c.msgOp == 0 {
			if err := c.fillNow(); err != nil {
				return 0, nil, err
			}
		}
		h, err := c.nextHeader()
		if err != nil {
			return 0, nil, err
		}
		if h.op.isControl() {
			if err := c.control(h); err != nil {
				return 0, nil, err
			}
			continue
		}
		if err := c.data(h); err != nil {
			return 0, nil, err
		}
		if h.fin {
			return c.finish()
		}
	}
}

// nextHeader reads and checks the next frame header.
func (c *Conn) nextHeader() (header, error) {
	for {
		h, n, err := parseHeader(c.rbuf[c.rpos:c.rend])
		if err != nil {
			return h, protocolError("%v", err)
		}
		if n == 0 {
			if err := c.fill(); err != nil {
				return h, err
			}
			continue
		}
		c.rpos += n
		if c.idle > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(c.idle))
		}
		return h, c.check(h)
	}
}

// check applies RFC 6455 §5 and RFC 7692 §6 to a frame header.
func (c *Conn) check(h header) error {
	switch {
	case !h.op.known():
		return protocolError("reserved opcode %#x", byte(h.op))
	case h.rsv&(rsv2Bit|rsv3Bit) != 0:
		return protocolError("RSV2 or RSV3 set")
	case h.rsv&rsv1Bit != 0 && !c.inflate:
		return protocolError("RSV1 set without a negotiated extension")
	case h.rsv&rsv1Bit != 0 && (h.op.isControl() || h.op == OpContinuation):
		return protocolError("RSV1 set on a control or continuation frame")
	case !h.masked:
		return protocolError("unmasked client frame")
	case h.op.isControl() && !h.fin:
		return protocolError("fragmented control frame")
	case h.op.isControl() && h.length > maxControlPayload:
		return protocolError("control frame of %d bytes", h.length)
	case h.op == OpContinuation && c.msgOp == 0:
		return protocolError("continuation frame without a message to continue")
	case h.op != OpContinuation && !h.op.isControl() && c.msgOp != 0:
		return protocolError("new data frame inside a fragmented message")
	case !h.op.isControl() && int64(len(c.msg))+h.length > c.readLimit:
		return &failure{kind: ErrMessageTooBig, code: CloseMessageTooBig,
			detail: fmt.Sprintf("message over %d bytes", c.readLimit)}
	}
	return nil
}

// fill reads more bytes into the read buffer, moving what is buffered to
// its front first.
func (c *Conn) fill() error {
	if c.rpos > 0 {
		c.rend = copy(c.rbuf, c.rbuf[c.rpos:c.rend])
		c.rpos = 0
	}
	n, err := c.nc.Read(c.rbuf[c.rend:])
	c.rend += n
	if n > 0 {
		return nil
	}
	if err == nil {
		return nil
	}
	return fmt.Errorf("websocket: read: %w", err)
}

// control handles a ping, pong or close frame.
func (c *Conn) control(h header) error {
	n := int(h.length)
	for c.rend-c.rpos < n {
		if err := c.fill(); err != nil {
			return err
		}
	}
	p := c.rbuf[c.rpos : c.rpos+n]
	c.rpos += n
	maskBytes(h.mask, 0, p)
	switch h.op {
	case OpPing:
		// A failed pong shows on the next read or write.
		_ = c.writeControl(OpPong, p)
		return nil
	case OpPong:
		return nil
	}
	code, reason := CloseNoStatus, ""
	switch {
	case n == 1:
		return protocolError("close frame with a 1-byte payload")
	case n >= 2:
		code = int(binary.BigEndian.Uint16(p))
		if !ValidCloseCode(code) {
			return protocolError("close code %d", code)
		}
		if !utf8.Valid(p[2:]) {
			return &failure{kind: ErrInvalidUTF8, code: CloseInvalidPayload, detail: "close reason is not UTF-8"}
		}
		reason = string(p[2:])
	}
	// Echo the close (§5.5.1): its code, or none if none came.
	_ = c.writeControl(OpClose, p[:min(n, 2)])
	return &CloseError{Code: code, Reason: reason}
}

// data adds a data frame's payload to the message, validating text as it
// arrives.
func (c *Conn) data(h header) error {
	if h.op != OpContinuation {
		c.msgOp = h.op
		c.msgDeflated = h.rsv&rsv1Bit != 0
		c.text = utf8State{}
		// Sized for this frame, but never beyond what a small buffer
		// holds just because a header announces more.
		c.msg = make([]byte, 0, min(h.length, 16<<10))
	}
	checkText := c.msgOp == OpText && !c.msgDeflated
	remaining := h.length
	pos := 0
	took := func(chunk []byte) error {
		remaining -= int64(len(chunk))
		pos = maskBytes(h.mask, pos, chunk)
		if checkText && !c.text.feed(chunk) {
			return &failure{kind: ErrInvalidUTF8, code: CloseInvalidPayload, detail: "text message is not UTF-8"}
		}
		return nil
	}
	for remaining > 0 {
		if c.rpos == c.rend && remaining >= int64(len(c.rbuf)) {
			// A large payload: read it straight into the message, which
			// grows as the bytes arrive, not as the header announces.
			start := len(c.msg)
			if start == cap(c.msg) {
				c.msg = slices.Grow(c.msg, int(min(remaining, int64(max(start, 4096)))))
			}
			n, err := c.nc.Read(c.msg[start:min(int64(cap(c.msg)), int64(start)+remaining)])
			if n == 0 && err != nil {
				return fmt.Errorf("websocket: read: %w", err)
			}
			c.msg = c.msg[:start+n]
			if err := took(c.msg[start:]); err != nil {
				return err
			}
			continue
		}
		if c.rpos == c.rend {
			if err := c.fill(); err != nil {
				return err
			}
		}
		chunk := c.rbuf[c.rpos:min(int64(c.rend), int64(c.rpos)+remaining)]
		c.rpos += len(chunk)
		if err := took(chunk); err != nil {
			return err
		}
		c.msg = append(c.msg, chunk...)
	}
	return nil
}

// finish completes the message whose last frame was read.
func (c *Conn) finish() (Opcode, []byte, error) {
	op, msg := c.msgOp, c.msg
	c.msgOp, c.msg = 0, nil
	if c.msgDeflated {
		out, err := inflate(append(msg, inflateTail...), c.dict, c.readLimit)
		switch {
		case errors.Is(err, ErrMessageTooBig):
			return 0, nil, &failure{kind: ErrMessageTooBig, code: CloseMessageTooBig, detail: err.Error()}
		case err != nil:
			return 0, nil, &failure{kind: ErrInvalidUTF8, code: CloseInvalidPayload, detail: err.Error()}
		}
		if c.takeover {
			c.dict = slideWindow(c.dict, out)
		}
		if op == OpText && !utf8.Valid(out) {
			return 0, nil, &failure{kind: ErrInvalidUTF8, code: CloseInvalidPayload, detail: "text message is not UTF-8"}
		}
		return op, out, nil
	}
	if op == OpText && !c.text.complete() {
		return 0, nil, &failure{kind: ErrInvalidUTF8, code: CloseInvalidPayload, detail: "text message ends inside a UTF-8 sequence"}
	}
	if msg == nil {
		msg = []byte{}
	}
	return op, msg, nil
}

// fail sends the close frame for f and lingers.
func (c *Conn) fail(f *failure) {
	_ = c.WriteClose(f.code, "")
	c.linger()
}

// linger, once the close frame is sent, shuts the socket for writing and
// reads (discarding) until the peer closes or closeLinger passes: a
// socket closed with unread input is reset, and a reset can destroy the
// close frame in the peer's receive buffer before it is read.
func (c *Conn) linger() {
	c.takeReadBuf()
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(closeLinger))
	for {
		if _, err := c.nc.Read(c.rbuf); err != nil {
			return
		}
	}
}

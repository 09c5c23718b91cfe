//go:build unix

package websocket

import (
	"errors"
	"io"
	"syscall"
)

// readNow reads what the socket holds into p without waiting: ErrWouldBlock
// when it holds nothing, io.EOF when the peer closed, errNoRaw when the
// connection gives no raw access. The read deadline still applies.
func (c *Conn) readNow(p []byte) (int, error) {
	if c.raw == nil {
		sc, ok := c.nc.(syscall.Conn)
		if !ok {
			return 0, errNoRaw
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return 0, errNoRaw
		}
		c.raw = raw
	}
	var n int
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		for {
			n, rerr = syscall.Read(int(fd), p)
			if rerr != syscall.EINTR {
				return true // never wait: EAGAIN is reported, not waited for
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errors.Is(rerr, syscall.EAGAIN):
		return 0, ErrWouldBlock
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

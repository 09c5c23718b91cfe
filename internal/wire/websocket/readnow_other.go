//go:build !unix

package websocket

// readNow has no non-blocking read here: TryReadMessage is ReadMessage.
func (c *Conn) readNow(p []byte) (int, error) { return 0, errNoRaw }

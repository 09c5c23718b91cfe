package websocket

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"sync"
)

// DefaultCompressionThreshold is the smallest payload a Conn compresses
// when permessage-deflate is negotiated. Below it the deflate block
// overhead and the CPU cost outweigh the bytes saved.
const DefaultCompressionThreshold = 256

// windowSize is the LZ77 window of a 15-bit deflate stream, the most a
// client's context can refer back.
const windowSize = 1 << 15

// appendWriter appends what is written to a byte slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

type compressor struct {
	fw *flate.Writer
	w  appendWriter
}

var compressors sync.Pool

// appendDeflate appends p compressed as one message of RFC 7692 §7.2.1:
// a raw deflate stream, flushed, without the final 0x00 0x00 0xff 0xff.
// The compressor starts fresh (no context takeover).
func appendDeflate(dst, p []byte) []byte {
	c, _ := compressors.Get().(*compressor)
	if c == nil {
		c = &compressor{}
		// BestSpeed cannot fail.
		c.fw, _ = flate.NewWriter(&c.w, flate.BestSpeed)
	}
	c.w.b = dst
	c.fw.Reset(&c.w)
	_, _ = c.fw.Write(p)
	_ = c.fw.Flush()
	out := c.w.b
	c.w.b = nil
	compressors.Put(c)
	// Flush ends with an empty stored block: 0x00 0x00 0xff 0xff.
	return out[:len(out)-4]
}

// inflateTail ends a message's deflate data for the inflater: the
// 0x00 0x00 0xff 0xff the sender removed, then a final empty stored block
// so that the reader reports a clean end.
var inflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

type decompressor struct {
	fr io.ReadCloser
	br bytes.Reader
}

var decompressors sync.Pool

var errInflate = errors.New("websocket: corrupt deflate data")

// inflate decompresses one message's payload (with inflateTail already
// appended) with dict as the window carried over from earlier messages.
// More than limit bytes of output is ErrMessageTooBig, so a small frame
// that inflates to gigabytes stops at limit.
func inflate(p, dict []byte, limit int64) ([]byte, error) {
	d, _ := decompressors.Get().(*decompressor)
	if d == nil {
		d = &decompressor{}
		d.br.Reset(p)
		d.fr = flate.NewReaderDict(&d.br, dict)
	} else {
		d.br.Reset(p)
		_ = d.fr.(flate.Resetter).Reset(&d.br, dict)
	}
	defer func() {
		d.br.Reset(nil)
		decompressors.Put(d)
	}()
	out := make([]byte, 0, min(limit+1, int64(max(512, 3*len(p)))))
	for {
		if len(out) == cap(out) {
			if int64(len(out)) > limit {
				return nil, fmt.Errorf("%w: inflates to more than %d bytes", ErrMessageTooBig, limit)
			}
			out = append(out, 0)[:len(out)]
			out = out[:len(out):min(int64(cap(out)), limit+1)]
		}
		n, err := d.fr.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if err == io.EOF {
			if int64(len(out)) > limit {
				return nil, fmt.Errorf("%w: inflates to more than %d bytes", ErrMessageTooBig, limit)
			}
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errInflate, err)
		}
	}
}

// slideWindow returns the last windowSize bytes of dict followed by out,
// reusing dict's storage.
func slideWindow(dict, out []byte) []byte {
	if len(out) >= windowSize {
		return append(dict[:0], out[len(out)-windowSize:]...)
	}
	keep := min(len(dict), windowSize-len(out))
	n := copy(dict, dict[len(dict)-keep:])
	return append(dict[:n], out...)
}

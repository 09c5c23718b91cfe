package atmosphere

import (
	"bytes"
	"log/slog"
	"sync"
	"unsafe"

	"github.com/fleetwire/fleetwire/internal/wire/websocket"
)

// prepared shares the WebSocket frames of each message between the
// connections that send it: the event API encodes a message once and
// queues the same bytes for every subscriber, so the first connection to
// write it frames it (and, when a client negotiated permessage-deflate,
// compresses it) and the others reuse the result.
var prepared = newPreparedCache()

const (
	cacheShards = 16
	// A shard's generation holds this many entries or bytes before it
	// becomes the old generation; two generations are kept.
	cacheShardEntries = 1024
	cacheShardBytes   = 1 << 20
)

// preparedCache maps a message (by the identity of its bytes, which are
// never modified after being queued) to its prepared frame. Each shard
// keeps two generations: a lookup that hits the old one moves the entry
// to the current one, and a full current generation replaces the old
// one, so recently sent messages stay and the rest go.
type preparedCache struct {
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	mu       sync.Mutex
	cur, old map[cacheKey]cacheEntry
	bytes    int
}

type cacheKey struct {
	p     *byte
	n     int
	track bool
}

// cacheEntry holds msg so that its address cannot be reused by another
// message while the entry lives.
type cacheEntry struct {
	msg []byte
	m   *websocket.PreparedMessage
}

func newPreparedCache() *preparedCache {
	pc := &preparedCache{}
	for i := range pc.shards {
		pc.shards[i].cur = make(map[cacheKey]cacheEntry)
	}
	return pc
}

// get returns msg's prepared text frame, framed with trackMessageLength
// when track is set. A message that is not UTF-8 (no event the
// application encodes is) goes out with U+FFFD for the invalid bytes,
// since a text frame must be UTF-8.
func (pc *preparedCache) get(msg []byte, track bool, log *slog.Logger) *websocket.PreparedMessage {
	k := cacheKey{p: unsafe.SliceData(msg), n: len(msg), track: track}
	sh := &pc.shards[(uint64(uintptr(unsafe.Pointer(k.p)))*0x9e3779b97f4a7c15)>>60]
	sh.mu.Lock()
	if e, ok := sh.cur[k]; ok {
		sh.mu.Unlock()
		return e.m
	}
	if e, ok := sh.old[k]; ok {
		delete(sh.old, k)
		sh.add(k, e)
		sh.mu.Unlock()
		return e.m
	}
	sh.mu.Unlock()

	m, err := websocket.NewPreparedMessage(websocket.OpText, appendMessageOnce(msg, track))
	if err != nil {
		log.Warn("atmosphere: message is not UTF-8; invalid bytes replaced", "len", len(msg))
		m, _ = websocket.NewPreparedMessage(websocket.OpText,
			appendMessageOnce(bytes.ToValidUTF8(msg, []byte("\uFFFD")), track))
	}
	sh.mu.Lock()
	if e, ok := sh.cur[k]; ok {
		// Another connection prepared it meanwhile: share theirs.
		m = e.m
	} else {
		sh.add(k, cacheEntry{msg: msg, m: m})
	}
	sh.mu.Unlock()
	return m
}

// appendMessageOnce is msg as a frame's payload: msg itself, or a new
// slice with the length prefix.
func appendMessageOnce(msg []byte, track bool) []byte {
	if !track {
		return msg
	}
	return appendFrame(make([]byte, 0, len(msg)+12), msg)
}

func (sh *cacheShard) add(k cacheKey, e cacheEntry) {
	if len(sh.cur) >= cacheShardEntries || sh.bytes >= cacheShardBytes {
		sh.old, sh.cur, sh.bytes = sh.cur, make(map[cacheKey]cacheEntry, len(sh.cur)), 0
	}
	sh.cur[k] = e
	sh.bytes += len(e.msg)
}

package atmosphere

import (
	"bytes"
	"log/slog"
	"sync"
	"time"
	"unsafe"

	"github.com/fleetwire/fleetwire/internal/wire/websocket"
)

// prepared shares the WebSocket frames of each message between the
// connections that send it: the event API encodes a message once and
// queues the same bytes for every subscriber, so the first connection to
// write it frames it (and, when a client negotiated permessage-deflate,
// compresses it) and the others reuse the result.
var prepared = newPreparedCache(time.Second)

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
//
// Generations also age: the current one turns old after age, and the old
// one is dropped then. A message goes to its subscribers within moments,
// so an entry not asked for over that time is of no more use; without
// the ageing, the last messages of idle connections (a subscription's
// answer and first batch, which only that connection sends) would stay
// in memory until enough other messages pushed them out.
type preparedCache struct {
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	age      time.Duration
	mu       sync.Mutex
	cur, old map[cacheKey]cacheEntry // nil when empty
	bytes    int
	timer    *time.Timer // ages the shard while it holds entries, else nil
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

func newPreparedCache(age time.Duration) *preparedCache {
	pc := &preparedCache{}
	for i := range pc.shards {
		pc.shards[i].age = age
	}
	return pc
}

// len is the number of entries held, for tests.
func (pc *preparedCache) len() int {
	n := 0
	for i := range pc.shards {
		sh := &pc.shards[i]
		sh.mu.Lock()
		n += len(sh.cur) + len(sh.old)
		sh.mu.Unlock()
	}
	return n
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

// add puts e in the current generation. Callers hold sh.mu.
func (sh *cacheShard) add(k cacheKey, e cacheEntry) {
	if len(sh.cur) >= cacheShardEntries || sh.bytes >= cacheShardBytes {
		sh.old, sh.cur, sh.bytes = sh.cur, make(map[cacheKey]cacheEntry, len(sh.cur)), 0
	}
	if sh.cur == nil {
		sh.cur = make(map[cacheKey]cacheEntry)
	}
	sh.cur[k] = e
	sh.bytes += len(e.msg)
	if sh.timer == nil {
		sh.timer = time.AfterFunc(sh.age, sh.ageOnce)
	}
}

// ageOnce turns the current generation old and drops the old one; the
// timer runs again while anything is left.
func (sh *cacheShard) ageOnce() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.old, sh.bytes = sh.cur, 0
	sh.cur = nil
	if len(sh.old) == 0 {
		sh.old, sh.timer = nil, nil
		return
	}
	sh.timer.Reset(sh.age)
}

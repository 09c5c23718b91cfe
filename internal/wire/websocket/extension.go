package websocket

import (
	"strings"
)

// extParam is one parameter of an extension offer.
type extParam struct {
	name, value string
	hasValue    bool
}

// extOffer is one element of a Sec-WebSocket-Extensions list: an
// extension name and its parameters. bad marks an element that does not
// follow the grammar of RFC 6455 §9.1 (with RFC 7692's quoted values).
type extOffer struct {
	name   string
	params []extParam
	bad    bool
}

// parseExtensions splits Sec-WebSocket-Extensions header values into
// offers, in order. A malformed element is returned marked bad and the
// parser resumes after the next comma outside a quoted string; empty list
// elements are skipped.
func parseExtensions(values []string) []extOffer {
	var out []extOffer
	for _, v := range values {
		s := extScanner{s: v}
		for {
			s.skipSpace()
			if s.done() {
				break
			}
			if s.peek() == ',' {
				s.i++
				continue
			}
			o := s.offer()
			if o.bad {
				s.skipElement()
			}
			out = append(out, o)
		}
	}
	return out
}

type extScanner struct {
	s string
	i int
}

func (s *extScanner) done() bool { return s.i >= len(s.s) }
func (s *extScanner) peek() byte { return s.s[s.i] }

func (s *extScanner) skipSpace() {
	for !s.done() && (s.peek() == ' ' || s.peek() == '\t') {
		s.i++
	}
}

// skipElement moves past the next comma that is not inside a quoted
// string.
func (s *extScanner) skipElement() {
	quoted := false
	for ; !s.done(); s.i++ {
		switch c := s.peek(); {
		case quoted && c == '\\':
			s.i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == ',':
			s.i++
			return
		}
	}
}

func (s *extScanner) token() string {
	start := s.i
	for !s.done() && isTokenChar(s.peek()) {
		s.i++
	}
	return s.s[start:s.i]
}

// quoted reads a quoted-string and returns its unescaped content.
func (s *extScanner) quoted() (string, bool) {
	s.i++ // the opening quote
	var b strings.Builder
	for !s.done() {
		c := s.peek()
		s.i++
		switch {
		case c == '"':
			return b.String(), true
		case c == '\\':
			if s.done() {
				return "", false
			}
			b.WriteByte(s.peek())
			s.i++
		case c < 0x20 && c != '\t', c == 0x7f:
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return "", false
}

// offer reads one extension element up to, and including, the comma that
// ends it.
func (s *extScanner) offer() extOffer {
	var o extOffer
	if o.name = s.token(); o.name == "" {
		o.bad = true
		return o
	}
	for {
		s.skipSpace()
		if s.done() {
			return o
		}
		switch s.peek() {
		case ',':
			s.i++
			return o
		case ';':
			s.i++
		default:
			o.bad = true
			return o
		}
		s.skipSpace()
		var p extParam
		if p.name = s.token(); p.name == "" {
			o.bad = true
			return o
		}
		s.skipSpace()
		if !s.done() && s.peek() == '=' {
			s.i++
			s.skipSpace()
			p.hasValue = true
			if !s.done() && s.peek() == '"' {
				v, ok := s.quoted()
				// RFC 7692 §7.1: a quoted value, unescaped, is a token.
				if !ok || v == "" || !isToken(v) {
					o.bad = true
					return o
				}
				p.value = v
			} else if p.value = s.token(); p.value == "" {
				o.bad = true
				return o
			}
		}
		o.params = append(o.params, p)
	}
}

// isTokenChar reports whether c may appear in an RFC 7230 token.
func isTokenChar(c byte) bool {
	if c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return s != ""
}

// deflateName is the extension token of RFC 7692.
const deflateName = "permessage-deflate"

// deflateAgreement is an accepted permessage-deflate offer.
type deflateAgreement struct {
	// clientTakeover is set when the client may keep its LZ77 window from
	// one message to the next, so the server must inflate with it.
	clientTakeover bool
	// response is the Sec-WebSocket-Extensions value that accepts it.
	response string
}

// negotiateDeflate accepts the first permessage-deflate offer the server
// can honour, trying the offers in the client's order of preference. An
// offer is declined for an unknown or repeated parameter, a parameter
// value out of its range, or a server_max_window_bits below 15, which the
// standard library's compressor (always a 32 KiB window) cannot honour.
// The answer always carries server_no_context_takeover; it carries
// client_no_context_takeover when the client offered it or allowTakeover
// is false; it never limits the client's window, which the inflater
// handles at any size.
func negotiateDeflate(offers []extOffer, allowTakeover bool) (deflateAgreement, bool) {
	for _, o := range offers {
		if o.bad || !strings.EqualFold(o.name, deflateName) {
			continue
		}
		if a, ok := acceptDeflate(o, allowTakeover); ok {
			return a, true
		}
	}
	return deflateAgreement{}, false
}

func acceptDeflate(o extOffer, allowTakeover bool) (deflateAgreement, bool) {
	var seen [4]bool
	var clientNoTakeover, serverWindow bool
	for _, p := range o.params {
		var i int
		switch strings.ToLower(p.name) {
		case "server_no_context_takeover":
			i = 0
			if p.hasValue {
				return deflateAgreement{}, false
			}
		case "client_no_context_takeover":
			i = 1
			if p.hasValue {
				return deflateAgreement{}, false
			}
			clientNoTakeover = true
		case "server_max_window_bits":
			i = 2
			bits, ok := windowBits(p.value)
			if !p.hasValue || !ok || bits != 15 {
				return deflateAgreement{}, false
			}
			serverWindow = true
		case "client_max_window_bits":
			i = 3
			if _, ok := windowBits(p.value); p.hasValue && !ok {
				return deflateAgreement{}, false
			}
		default:
			return deflateAgreement{}, false
		}
		if seen[i] {
			return deflateAgreement{}, false
		}
		seen[i] = true
	}
	resp := deflateName + "; server_no_context_takeover"
	if serverWindow {
		resp += "; server_max_window_bits=15"
	}
	takeover := allowTakeover && !clientNoTakeover
	if !takeover {
		resp += "; client_no_context_takeover"
	}
	return deflateAgreement{clientTakeover: takeover, response: resp}, true
}

// windowBits parses a window size parameter: a decimal 8 to 15 without
// leading zeros.
func windowBits(v string) (int, bool) {
	switch len(v) {
	case 1:
		if v[0] >= '8' && v[0] <= '9' {
			return int(v[0] - '0'), true
		}
	case 2:
		if v[0] == '1' && v[1] >= '0' && v[1] <= '5' {
			return 10 + int(v[1]-'0'), true
		}
	}
	return 0, false
}

package websocket

import (
	"net/http"
	"strings"
	"testing"
)

const (
	accepted        = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	acceptedWindow  = "permessage-deflate; server_no_context_takeover; server_max_window_bits=15; client_no_context_takeover"
	acceptedContext = "permessage-deflate; server_no_context_takeover"
)

// TestNegotiateDeflate: every offer is parsed strictly; a bad one is
// declined and the next one tried.
func TestNegotiateDeflate(t *testing.T) {
	cases := []struct {
		offers   []string
		takeover bool // Upgrader.ClientContextTakeover
		want     string
		context  bool // the client may keep its window
	}{
		{offers: []string{"permessage-deflate"}, want: accepted},
		{offers: []string{"permessage-deflate; client_max_window_bits"}, want: accepted},
		{offers: []string{"permessage-deflate; client_max_window_bits=10"}, want: accepted},
		{offers: []string{"permessage-deflate; client_max_window_bits=8"}, want: accepted},
		{offers: []string{"permessage-deflate; client_no_context_takeover"}, want: accepted},
		{offers: []string{"permessage-deflate; server_no_context_takeover"}, want: accepted},
		{offers: []string{"permessage-deflate; server_max_window_bits=15"}, want: acceptedWindow},
		{offers: []string{`permessage-deflate; server_max_window_bits="15"`}, want: acceptedWindow},
		{offers: []string{"permessage-deflate ;server_max_window_bits = 15 ; client_max_window_bits"}, want: acceptedWindow},
		{offers: []string{"PerMessage-Deflate; Client_Max_Window_Bits"}, want: accepted},
		{offers: []string{"permessage-deflate; server_max_window_bits=10"}, want: ""},
		{offers: []string{"permessage-deflate; server_max_window_bits=10, permessage-deflate"}, want: accepted},
		{offers: []string{"permessage-deflate; server_max_window_bits=10", "permessage-deflate; client_max_window_bits"}, want: accepted},
		{offers: []string{"permessage-deflate; server_max_window_bits"}, want: ""},
		{offers: []string{"permessage-deflate; server_max_window_bits=16"}, want: ""},
		{offers: []string{"permessage-deflate; server_max_window_bits=7"}, want: ""},
		{offers: []string{"permessage-deflate; server_max_window_bits=015"}, want: ""},
		{offers: []string{"permessage-deflate; server_max_window_bits=abc"}, want: ""},
		{offers: []string{`permessage-deflate; server_max_window_bits="1 5"`}, want: ""},
		{offers: []string{`permessage-deflate; server_max_window_bits="15`}, want: ""},
		{offers: []string{"permessage-deflate; client_max_window_bits=16"}, want: ""},
		{offers: []string{"permessage-deflate; client_max_window_bits=0"}, want: ""},
		{offers: []string{"permessage-deflate; client_max_window_bits="}, want: ""},
		{offers: []string{"permessage-deflate; unknown_param"}, want: ""},
		{offers: []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, want: ""},
		{offers: []string{"permessage-deflate; client_max_window_bits; client_max_window_bits=10"}, want: ""},
		{offers: []string{"permessage-deflate; server_no_context_takeover=1"}, want: ""},
		{offers: []string{"permessage-deflate; client_no_context_takeover=true"}, want: ""},
		{offers: []string{"permessage-deflate;;"}, want: ""},
		{offers: []string{"permessage-deflate; =15"}, want: ""},
		{offers: []string{"x-webkit-deflate-frame"}, want: ""},
		{offers: []string{"x-webkit-deflate-frame, permessage-deflate"}, want: accepted},
		{offers: []string{"x-webkit-deflate-frame", "permessage-deflate"}, want: accepted},
		{offers: []string{`foo; a="x, permessage-deflate"`}, want: ""},
		{offers: []string{`foo; a="x, \"permessage-deflate"; b, permessage-deflate`}, want: accepted},
		{offers: []string{", , permessage-deflate,"}, want: accepted},
		{offers: []string{"permessage-deflate"}, takeover: true, want: acceptedContext, context: true},
		{offers: []string{"permessage-deflate; client_max_window_bits"}, takeover: true, want: acceptedContext, context: true},
		{offers: []string{"permessage-deflate; client_no_context_takeover"}, takeover: true, want: accepted},
		{offers: nil, want: ""},
	}
	for _, tc := range cases {
		a, ok := negotiateDeflate(parseExtensions(tc.offers), tc.takeover)
		if a.response != tc.want || ok != (tc.want != "") || a.clientTakeover != tc.context {
			t.Errorf("%q (takeover %v): %q ok=%v context=%v, want %q context=%v",
				tc.offers, tc.takeover, a.response, ok, a.clientTakeover, tc.want, tc.context)
		}
	}
}

// TestDeclinedOfferOverSocket: an offer the server cannot honour gets no
// extension in the 101, and a compressed frame then fails with 1002.
func TestDeclinedOfferOverSocket(t *testing.T) {
	srv, errs := echoServer(t, &Upgrader{Compression: true})
	c := dialRaw(t, srv, "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10")
	if c.resp.StatusCode != http.StatusSwitchingProtocols || c.resp.Header.Get("Sec-WebSocket-Extensions") != "" {
		t.Fatalf("status %d, extensions %q", c.resp.StatusCode, c.resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	runCaseOn(t, c, errs, abCase{send: []wire{compressed(true, OpText, []byte(strings.Repeat("x", 300)))}, close: 1002})
}

package websocket

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestAcceptKey(t *testing.T) {
	// RFC 6455 §1.3.
	if got := AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("accept %q", got)
	}
}

// rawRequest sends a request text and returns the response.
func rawRequest(t *testing.T, srv *httptest.Server, req string) *http.Response {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	c := &rawClient{t: t, nc: nc}
	c.br = newReader(nc)
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestHandshake: RFC 6455 §4.2.1 checks, each answered with its status;
// 101 carries the accept key, the chosen subprotocol and the caller's
// headers.
func TestHandshake(t *testing.T) {
	u := &Upgrader{
		Subprotocol: func(_ *http.Request, offered []string) string {
			for _, p := range offered {
				if p == "chat" {
					return p
				}
			}
			return ""
		},
		CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") != "http://evil.example" },
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r, http.Header{"X-Custom": {"yes"}})
		if err != nil {
			return
		}
		_ = c.WriteClose(CloseNormal, "")
		c.Close()
	}))
	defer srv.Close()
	const key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	base := "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	cases := []struct {
		name, req string
		status    int
		check     func(t *testing.T, h http.Header)
	}{
		{"valid", "GET / HTTP/1.1\r\n" + base + key + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: superchat, chat\r\n\r\n", 101, func(t *testing.T, h http.Header) {
			if h.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" || h.Get("Sec-WebSocket-Protocol") != "chat" ||
				h.Get("X-Custom") != "yes" || !strings.EqualFold(h.Get("Upgrade"), "websocket") || !strings.EqualFold(h.Get("Connection"), "upgrade") {
				t.Fatalf("headers %v", h)
			}
			if h.Get("Sec-WebSocket-Extensions") != "" {
				t.Fatalf("extensions answered without compression: %v", h)
			}
		}},
		{"token lists and case", "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: foo, WebSocket\r\nConnection: keep-alive, UPGRADE\r\n" + key + "Sec-WebSocket-Version: 13\r\n\r\n", 101, func(t *testing.T, h http.Header) {
			if h.Get("Sec-WebSocket-Protocol") != "" {
				t.Fatalf("a subprotocol nobody offered: %v", h)
			}
		}},
		{"version 8", "GET / HTTP/1.1\r\n" + base + key + "Sec-WebSocket-Version: 8\r\n\r\n", 426, versionHeader},
		{"no version", "GET / HTTP/1.1\r\n" + base + key + "\r\n", 426, versionHeader},
		{"two versions", "GET / HTTP/1.1\r\n" + base + key + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8\r\n\r\n", 426, versionHeader},
		{"POST", "POST / HTTP/1.1\r\n" + base + key + "Sec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n", 405, func(t *testing.T, h http.Header) {
			if h.Get("Allow") != "GET" {
				t.Fatalf("Allow %q", h.Get("Allow"))
			}
		}},
		{"HTTP/1.0", "GET / HTTP/1.0\r\n" + base + key + "Sec-WebSocket-Version: 13\r\n\r\n", 400, nil},
		{"no Upgrade token in Connection", "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n" + key + "Sec-WebSocket-Version: 13\r\n\r\n", 400, nil},
		{"Upgrade without websocket", "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n" + key + "Sec-WebSocket-Version: 13\r\n\r\n", 400, nil},
		{"no key", "GET / HTTP/1.1\r\n" + base + "Sec-WebSocket-Version: 13\r\n\r\n", 400, nil},
		{"short key", "GET / HTTP/1.1\r\n" + base + "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n", 400, nil},
		{"key not base64", "GET / HTTP/1.1\r\n" + base + "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\nSec-WebSocket-Version: 13\r\n\r\n", 400, nil},
		{"two keys", "GET / HTTP/1.1\r\n" + base + key + key + "Sec-WebSocket-Version: 13\r\n\r\n", 400, nil},
		{"origin refused", "GET / HTTP/1.1\r\n" + base + key + "Sec-WebSocket-Version: 13\r\nOrigin: http://evil.example\r\n\r\n", 403, nil},
		{"origin admitted", "GET / HTTP/1.1\r\n" + base + key + "Sec-WebSocket-Version: 13\r\nOrigin: http://fleet.example\r\n\r\n", 101, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := rawRequest(t, srv, tc.req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.check != nil {
				tc.check(t, resp.Header)
			}
		})
	}
}

func versionHeader(t *testing.T, h http.Header) {
	t.Helper()
	if h.Get("Sec-WebSocket-Version") != "13" {
		t.Fatalf("426 without Sec-WebSocket-Version: 13: %v", h)
	}
}

// TestBytesAfterHandshake: frames the client sent right behind its
// request (already in net/http's buffer) are read, not lost.
func TestBytesAfterHandshake(t *testing.T) {
	srv, _ := echoServer(t, &Upgrader{})
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write(append([]byte(req), frameBytes(true, 0, OpText, []byte("early"), true)...)); err != nil {
		t.Fatal(err)
	}
	c := &rawClient{t: t, nc: nc, br: newReader(nc)}
	if resp, err := http.ReadResponse(c.br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake %v %v", resp, err)
	}
	if f, err := c.read(); err != nil || string(f.payload) != "early" {
		t.Fatalf("got %q, %v", f.payload, err)
	}
}

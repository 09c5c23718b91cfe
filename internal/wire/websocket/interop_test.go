package websocket

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
)

// TestInteropNodeWS drives the echo server with the Node `ws` client
// (test/interop/ws-echo.cjs): permessage-deflate as ws negotiates it,
// compressed and plain messages both ways, fragments, a ping, and 1007
// for a text frame that is not UTF-8.
func TestInteropNodeWS(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "test", "interop"))
	if err != nil {
		t.Fatal(err)
	}
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not installed"
	} else if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws")); err != nil {
		missing = "run `npm ci` in test/interop"
	}
	if missing != "" {
		if os.Getenv("FLEETWIRE_REQUIRE_NODE") == "1" {
			t.Fatalf("real-client test cannot run: %s", missing)
		}
		t.Skipf("real-client test skipped: %s", missing)
	}
	srv, errs := echoServer(t, &Upgrader{Compression: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "ws-echo.cjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "FLEETWIRE_WS_URL=ws"+strings.TrimPrefix(srv.URL, "http")+"/")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var out struct {
		Extensions string   `json:"extensions"`
		Echoes     []string `json:"echoes"`
		Pong       string   `json:"pong"`
		Close      int      `json:"close"`
		Failure    string   `json:"failure"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || runErr != nil {
		t.Fatalf("node: %v; output %q, stderr %q", runErr, stdout.String(), stderr.String())
	}
	want := []string{"text:hello", "text:20000", "binary:00fffe01", "text:fragmented"}
	if strings.Join(out.Echoes, ",") != strings.Join(want, ",") || out.Pong != "are you there" || out.Close != 1007 ||
		!strings.HasPrefix(out.Extensions, "permessage-deflate") {
		t.Fatalf("node saw %+v", out)
	}
	if err := <-errs; !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("server error %v, want invalid UTF-8", err)
	}
}

// TestInteropGorilla: gorilla/websocket as the client, with and without
// compression, including its own close handshake.
func TestInteropGorilla(t *testing.T) {
	srv, errs := echoServer(t, &Upgrader{Compression: true})
	for _, compress := range []bool{false, true} {
		d := gorilla.Dialer{EnableCompression: compress, HandshakeTimeout: 5 * time.Second}
		c, resp, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("Sec-WebSocket-Extensions") != ""; got != compress {
			t.Fatalf("compression %v negotiated %v", compress, got)
		}
		large := strings.Repeat("state ", 5000)
		for _, m := range []string{"hi", large, ""} {
			if err := c.WriteMessage(gorilla.TextMessage, []byte(m)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			typ, b, err := c.ReadMessage()
			if err != nil || typ != gorilla.TextMessage || string(b) != m {
				t.Fatalf("echo of %d bytes: %d bytes, %v", len(m), len(b), err)
			}
		}
		if err := c.WriteMessage(gorilla.CloseMessage, gorilla.FormatCloseMessage(4001, "done")); err != nil {
			t.Fatal(err)
		}
		_, _, err = c.ReadMessage()
		var ce *gorilla.CloseError
		if !errors.As(err, &ce) || ce.Code != 4001 {
			t.Fatalf("close echo: %v", err)
		}
		c.Close()
		var sce *CloseError
		if err := <-errs; !errors.As(err, &sce) || sce.Code != 4001 || sce.Reason != "done" {
			t.Fatalf("server saw %v", err)
		}
	}
}

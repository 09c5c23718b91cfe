// Package natstest runs NATS servers for tests: the machine's shared one
// (FLEETWIRE_TEST_NATS_URL, default nats://127.0.0.1:4222) with a fresh
// installation prefix per test, or a private nats-server process with
// JetStream on a free port, for tests that stop and restart it.
package natstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// URL is the shared NATS server's URL; the test is skipped when
// FLEETWIRE_TEST_NATS_URL is "off".
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("FLEETWIRE_TEST_NATS_URL")
	if u == "off" {
		t.Skip("FLEETWIRE_TEST_NATS_URL=off")
	}
	if u == "" {
		u = "nats://127.0.0.1:4222"
	}
	return u
}

// Prefix returns a fresh installation prefix and removes the streams and
// buckets it names from the server at url when the test ends.
func Prefix(t testing.TB, url string) string {
	t.Helper()
	var b [5]byte
	_, _ = rand.Read(b[:])
	p := "fwtest" + hex.EncodeToString(b[:])
	t.Cleanup(func() { Purge(url, p) })
	return p
}

// Purge deletes every stream whose name starts with prefix (KV buckets
// are streams named KV_<bucket>).
func Purge(url, prefix string) {
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	var del []string
	for n := range names.Name() {
		if strings.HasPrefix(n, prefix) || strings.HasPrefix(n, "KV_"+prefix) {
			del = append(del, n)
		}
	}
	for _, n := range del {
		_ = js.DeleteStream(ctx, n)
	}
}

// Server is a private nats-server process with JetStream.
type Server struct {
	t    testing.TB
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
}

// Start runs nats-server (from $NATS_SERVER, /usr/sbin or PATH) with
// JetStream on a free port and a storage directory of the test's; it is
// stopped when the test ends. The test is skipped if there is no binary.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := os.Getenv("NATS_SERVER")
	if bin == "" {
		bin = "/usr/sbin/nats-server"
		if _, err := os.Stat(bin); err != nil {
			if p, err := exec.LookPath("nats-server"); err == nil {
				bin = p
			}
		}
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no nats-server binary (%v)", err)
	}
	s := &Server{t: t, bin: bin, port: freePort(t), dir: t.TempDir()}
	s.run()
	t.Cleanup(s.Stop)
	return s
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// URL is the server's client URL.
func (s *Server) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

func (s *Server) run() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-js", "-sd", filepath.Join(s.dir, "js"))
	s.cmd.Stdout, s.cmd.Stderr = nil, nil
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start nats-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		nc, err := nats.Connect(s.URL(), nats.Timeout(time.Second))
		if err == nil {
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
			nc.Close()
			if err == nil {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("nats-server on port %d did not start", s.port)
}

// Stop kills the server (SIGKILL: nothing is flushed beyond what
// JetStream already wrote).
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port and storage.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.run()
}

// String describes the server for logs.
func (s *Server) String() string { return fmt.Sprintf("nats-server on %s", s.URL()) }

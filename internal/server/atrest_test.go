package server

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestCredentialsAtRest: the session hash and API key a client holds
// appear nowhere in the database files, though both keep working, and
// the data directory and database file are the owner's alone. A data
// directory that was open to others is tightened at start.
func TestCredentialsAtRest(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := startServerIn(t, dir, nil)
	h.createUser("rest-user", "rest-password", "UTC")
	hash := h.login("rest-user", "rest-password")
	_, m := h.call("POST", "/v2/api/key/create", map[string]any{"hash": hash, "title": "integration"}, nil)
	key, _ := m["value"].(map[string]any)["hash"].(string)
	if len(key) != 32 {
		t.Fatalf("api/key/create: %v", m)
	}
	for _, cred := range []string{hash, key} {
		if code, m := h.call("POST", "/v2/user/get_info", map[string]any{"hash": cred}, nil); code != 200 {
			t.Fatalf("get_info with a fresh credential: %d %v", code, m)
		}
	}
	// The listed key is its id, not the key.
	_, m = h.call("POST", "/v2/api/key/list", map[string]any{"hash": hash}, nil)
	listed := m["list"].([]any)[0].(map[string]any)["hash"].(string)
	if listed == key || len(listed) != 32 {
		t.Fatalf("api/key/list shows %q for key %q; want its 32-character id", listed, key)
	}
	h.stop() // everything on disk, WAL checkpointed or not

	db := filepath.Join(dir, "fleetwire.db")
	for _, p := range []string{db, db + "-wal"} {
		raw, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for name, cred := range map[string]string{"session hash": hash, "API key": key} {
			if bytes.Contains(raw, []byte(cred)) {
				t.Errorf("%s holds the %s in clear", filepath.Base(p), name)
			}
		}
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, db: 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode().Perm(), err, want)
		}
	}

	// After a restart both credentials still work; the listed id deletes
	// the key.
	h = startServerIn(t, dir, nil)
	for _, cred := range []string{hash, key} {
		if code, m := h.call("POST", "/v2/user/get_info", map[string]any{"hash": cred}, nil); code != 200 {
			t.Fatalf("get_info after restart: %d %v", code, m)
		}
	}
	if code, m := h.call("POST", "/v2/api/key/delete", map[string]any{"hash": hash, "key": listed}, nil); code != 200 {
		t.Fatalf("api/key/delete by the listed id: %d %v", code, m)
	}
	if code, _ := h.call("POST", "/v2/user/get_info", map[string]any{"hash": key}, nil); code == 200 {
		t.Fatal("the deleted key still works")
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fleetwire/fleetwire/internal/auth"
)

const adminUsage = `Usage: fleetwire admin [-url URL] [-admin-key KEY] <command> [flags]

Commands:
  users list
  users create -login L -password P [-title T] [-time-zone Z]   (passwords: 8 characters or more)
  users update -id N field=value ...    change title, time_zone or profile fields (locale=de_DE demo=true ...)
  users password -id N -password P      change a password (ends the user's sessions)
  users end-sessions -id N              end every session of a user
  trackers list
  trackers create -user N -label L -device D [-model M]
  trackers block -id N | trackers unblock -id N | trackers delete -id N
  trackers secret -id N [-secret S]     set the tracker's MQTT device secret (generated unless -secret;
                                        shown once: the server keeps only a digest)
`

// runAdmin calls the admin API of a running server and prints its JSON answer.
func runAdmin(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() { fmt.Fprint(os.Stderr, adminUsage) }
	base := fs.String("url", envOr("FLEETWIRE_URL", "http://127.0.0.1:8080"), "server base URL (default $FLEETWIRE_URL)")
	key := fs.String("admin-key", os.Getenv("FLEETWIRE_ADMIN_KEY"), "admin key (default $FLEETWIRE_ADMIN_KEY)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) < 2 {
		fs.Usage()
		return flag.ErrHelp
	}
	method, path, body, err := adminRequest(rest[0], rest[1], rest[2:])
	if err != nil {
		return err
	}
	return callAdmin(out, strings.TrimRight(*base, "/"), *key, method, path, body)
}

// adminRequest turns a command line into the admin API call it stands for.
func adminRequest(noun, verb string, args []string) (method, path string, body map[string]any, err error) {
	fs := flag.NewFlagSet(noun+" "+verb, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	id := fs.Int64("id", 0, "id of the user or tracker")
	login := fs.String("login", "", "login")
	password := fs.String("password", "", "password")
	title := fs.String("title", "", "title")
	tz := fs.String("time-zone", "UTC", "IANA time zone")
	user := fs.Int64("user", 0, "owner user id")
	label := fs.String("label", "", "tracker label")
	device := fs.String("device", "", "device id the tracker reports with")
	model := fs.String("model", "osmand", "device model")
	secret := fs.String("secret", "", "MQTT device secret (default: generated)")
	if err := fs.Parse(args); err != nil {
		return "", "", nil, err
	}
	needID := func() error {
		if *id <= 0 {
			return fmt.Errorf("%s %s: -id is required", noun, verb)
		}
		return nil
	}
	checkPassword := func() error {
		if utf8.RuneCountInString(*password) < auth.MinPasswordLen {
			return fmt.Errorf("%s %s: -password must have at least %d characters", noun, verb, auth.MinPasswordLen)
		}
		return nil
	}
	switch noun + " " + verb {
	case "users list":
		return http.MethodGet, "/admin/users", nil, nil
	case "users create":
		return http.MethodPost, "/admin/users", map[string]any{"login": *login, "password": *password, "title": *title, "time_zone": *tz}, checkPassword()
	case "users update":
		body := map[string]any{}
		for _, kv := range fs.Args() {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return "", "", nil, fmt.Errorf("users update: want field=value, not %q", kv)
			}
			body[k] = v
		}
		if len(body) == 0 {
			return "", "", nil, fmt.Errorf("users update: no field=value given")
		}
		return http.MethodPost, fmt.Sprintf("/admin/users/%d/update", *id), body, needID()
	case "users password":
		return http.MethodPost, fmt.Sprintf("/admin/users/%d/password", *id), map[string]any{"password": *password}, errors.Join(needID(), checkPassword())
	case "users end-sessions":
		return http.MethodPost, fmt.Sprintf("/admin/users/%d/end_sessions", *id), map[string]any{}, needID()
	case "trackers list":
		return http.MethodGet, "/admin/trackers", nil, nil
	case "trackers create":
		return http.MethodPost, "/admin/trackers", map[string]any{"user_id": *user, "label": *label, "device_id": *device, "model": *model}, nil
	case "trackers secret":
		return http.MethodPost, fmt.Sprintf("/admin/trackers/%d/secret", *id), map[string]any{"secret": *secret}, needID()
	case "trackers block", "trackers unblock", "trackers delete":
		return http.MethodPost, fmt.Sprintf("/admin/trackers/%d/%s", *id, verb), map[string]any{}, needID()
	}
	return "", "", nil, fmt.Errorf("unknown admin command %q\n\n%s", noun+" "+verb, adminUsage)
}

func callAdmin(out io.Writer, base, key, method, path string, body map[string]any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Admin-Key", key)
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, raw, "", "  ") == nil {
		raw = pretty.Bytes()
	}
	fmt.Fprintln(out, string(raw))
	if ra := resp.Header.Get("Retry-After"); resp.StatusCode == http.StatusTooManyRequests && ra != "" {
		return fmt.Errorf("server answered %s: too many failed attempts, try again in %s s", resp.Status, ra)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("server answered %s", resp.Status)
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

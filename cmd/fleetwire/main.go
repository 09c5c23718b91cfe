// Command fleetwire is a real-time event hub for GPS-tracker and IoT fleets.
//
//	fleetwire serve  [flags]   run the server
//	fleetwire demo   [flags]   run the server with a demo user and a simulated fleet
//	fleetwire admin  [flags] <command> ...   operator commands against a running server
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fleetwire/fleetwire/internal/auth"
	"github.com/fleetwire/fleetwire/internal/server"
	"github.com/fleetwire/fleetwire/internal/wire/atmosphere"
)

const usage = `fleetwire: a real-time event hub for GPS-tracker and IoT fleets

Usage:
  fleetwire serve [flags]            run the server
  fleetwire demo  [flags]            run the server with user demo/demo and a simulated fleet
  fleetwire admin [flags] <command>  operator commands against a running server (see: fleetwire admin -h)

Run "fleetwire <command> -h" for the flags of a command.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = runServer(os.Args[2:], false)
	case "demo":
		err = runServer(os.Args[2:], true)
	case "admin":
		err = runAdmin(os.Args[2:], os.Stdout)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "fleetwire:", err)
		os.Exit(1)
	}
}

// serverFlags holds the flags shared by serve and demo.
type serverFlags struct {
	cfg          server.Config
	pprofListen  string
	logLevel     string
	logJSON      bool
	demoTrackers int
	demoInterval time.Duration
}

func parseServerFlags(name string, args []string, out io.Writer) (*serverFlags, error) {
	f := &serverFlags{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&f.cfg.Listen, "listen", "127.0.0.1:8080", "address of the API, WebSocket and web page listener")
	fs.StringVar(&f.cfg.OsmandListen, "osmand-listen", ":5055", "address of the OsmAnd/Traccar Client ingest listener (empty disables)")
	fs.StringVar(&f.cfg.DataDir, "data", "data", "directory of the embedded SQLite store")
	fs.StringVar(&f.cfg.Store, "store", "", "store DSN: postgres://... or a SQLite file path (default <data>/fleetwire.db)")
	fs.StringVar(&f.cfg.Bus, "bus", os.Getenv("FLEETWIRE_BUS"), "NATS URL of the cluster's bus and log, NATS with JetStream, e.g. nats://127.0.0.1:4222 (default: in-process, a single node)")
	fs.StringVar(&f.cfg.Cluster, "cluster", "fleetwire", "name of the installation on the bus: prefix of its NATS subjects, streams and buckets")
	fs.StringVar(&f.cfg.Node, "node", os.Getenv("FLEETWIRE_NODE"), "name of this node in the cluster (default: host name and a random suffix)")
	fs.DurationVar(&f.cfg.BusRetention, "bus-retention", 24*time.Hour, "how long the cluster's log keeps changes (bounds session resume and the store writer's backlog)")
	fs.Int64Var(&f.cfg.BusMaxBytes, "bus-max-bytes", 1<<30, "size bound of the cluster's log in bytes")
	fs.IntVar(&f.cfg.BusReplicas, "bus-replicas", 1, "JetStream replicas of the cluster's streams and buckets (3 on a 3-node NATS cluster)")
	fs.StringVar(&f.cfg.AdminKey, "admin-key", os.Getenv("FLEETWIRE_ADMIN_KEY"), "key guarding the admin API (default $FLEETWIRE_ADMIN_KEY; empty disables the admin API)")
	fs.DurationVar(&f.cfg.Heartbeat, "heartbeat", 60*time.Second, "server heartbeat period on idle event connections")
	fs.DurationVar(&f.cfg.ClientHeartbeat, "client-heartbeat", 30*time.Second, "client heartbeat period announced in the Atmosphere handshake, as the published service does (0: clients send none)")
	fs.DurationVar(&f.cfg.SessionGrace, "session-grace", 60*time.Second, "how long a disconnected client session keeps its subscriptions and queued events")
	fs.BoolVar(&f.cfg.WSGoroutineReads, "ws-goroutine-reads", false, "read each event WebSocket with a goroutine of its own instead of waiting for readiness on the shared epoll poller (the portable path; always taken where there is no poller)")
	fs.DurationVar(&f.cfg.IdleTimeout, "idle-timeout", 2*time.Minute, "close event WebSockets silent for this long (pings every third of it count; clients are asked in the handshake to send heartbeats every third of it; 0: never)")
	fs.IntVar(&f.cfg.Events.AsyncShards, "delivery-workers", 0, "single node: deliver changes to subscribers on this many workers instead of the device's request (-1: one per CPU; 0: the request delivers, so a device is slowed while its subscribers' queues take its change)")
	fs.IntVar(&f.cfg.MaxSessionsPerAddr, "sessions-per-addr", 256, "event sessions alive at once per client address; more are refused with 429 (-1: no cap)")
	fs.DurationVar(&f.cfg.LongPollTimeout, "long-poll-timeout", 30*time.Second, "how long a long-poll request is held")
	fs.StringVar(&f.cfg.MQTTURL, "mqtt-url", os.Getenv("FLEETWIRE_MQTT_URL"), "MQTT broker for device telemetry, the topic bridge and commands, e.g. tcp://127.0.0.1:1883 (default: the embedded broker)")
	fs.StringVar(&f.cfg.MQTTListen, "mqtt-listen", "127.0.0.1:1883", "address of the embedded MQTT broker when --mqtt-url is empty (empty disables MQTT)")
	fs.StringVar(&f.cfg.NGPListen, "ngp-listen", ":47642", "address of the generic protocol (NGP) HTTP ingest listener (empty disables)")
	fs.StringVar(&f.cfg.TeltonikaListen, "teltonika-listen", ":5027", "address of the Teltonika TCP and UDP listener (empty disables)")
	fs.StringVar(&f.cfg.GT06Listen, "gt06-listen", ":5023", "address of the GT06 TCP and UDP listener (empty disables)")
	f.cfg.HistoryRetention = 90 * 24 * time.Hour
	fs.Var((*days)(&f.cfg.HistoryRetention), "history-retention", "how long track points are kept, e.g. 90d or 36h (0: forever)")
	fs.DurationVar(&f.cfg.BodyTimeout, "body-timeout", server.DefaultBodyTimeout, "how long a request body may take to arrive on every HTTP listener; a slower body is cut (0: no bound)")
	fs.DurationVar(&f.cfg.KeepAliveTimeout, "keepalive-timeout", server.DefaultKeepAliveTimeout, "close HTTP keep-alive connections idle this long between requests (0: never)")
	fs.IntVar(&f.cfg.MaxUnauthConns, "unauth-conns-per-addr", server.DefaultMaxUnauthConns, "connections one address may hold open on each HTTP listener before authenticating; more are answered 429 (0: no cap)")
	f.cfg.LoginLimit, f.cfg.AddressLimit = auth.DefaultLoginLimit, auth.DefaultAddressLimit
	fs.Func("signin-login-limit", "failed sign-ins allowed per login, as failures/period; past it sign-ins are refused with 429 (0: no limit) (default "+auth.DefaultLoginLimit.String()+")", limitFlag(&f.cfg.LoginLimit))
	fs.Func("signin-address-limit", "failed sign-ins (passwords, admin key, MQTT device secrets) allowed per client address, as failures/period (0: no limit) (default "+auth.DefaultAddressLimit.String()+")", limitFlag(&f.cfg.AddressLimit))
	fs.IntVar(&f.cfg.PasswordWorkers, "password-workers", 0, "password checks (bcrypt) run at once; more wait, and past 16 per worker are refused with 429 (default: half the CPUs, at least 1)")
	fs.StringVar(&f.cfg.TileURL, "tile-url", os.Getenv("FLEETWIRE_TILE_URL"), "raster tile URL template for the fleet page map, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png (default: offline map)")
	fs.Func("session-bind", "what a request must show besides its tracking id to use a live event session: address (the one the session was opened from, unless it was opened with a resume secret) or none (the id alone)", func(v string) error {
		b, ok := atmosphere.ParseBind(v)
		if !ok {
			return fmt.Errorf("want address or none")
		}
		f.cfg.Bind = b
		return nil
	})
	fs.DurationVar(&f.cfg.SubscribeWithin, "subscribe-within", 60*time.Second, "close event WebSockets that have not subscribed with a valid hash this long after connecting (negative: never)")
	fs.BoolVar(&f.cfg.TrustProxy, "trust-proxy", false, "take client addresses from X-Forwarded-For / X-Real-IP (behind a reverse proxy)")
	fs.Func("cors-origins", "comma-separated origins allowed to call the event endpoint from their pages (\"*\": any, without credentials; default none)", func(v string) error {
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				f.cfg.AllowedOrigins = append(f.cfg.AllowedOrigins, o)
			}
		}
		return nil
	})
	fs.Int64Var(&f.cfg.DealerID, "dealer-id", 1, "the installation's dealer id: user/auth refuses another dealer_id with 102")
	fs.Func("bridge-name", "NAME=DEVICE: a topic bridge connection to /auth/NAME talks to device DEVICE by default (repeatable)", func(v string) error {
		name, dev, ok := strings.Cut(v, "=")
		if name, dev = strings.TrimSpace(name), strings.TrimSpace(dev); !ok || name == "" || dev == "" || strings.Contains(name, "/") {
			return fmt.Errorf("want NAME=DEVICE, not %q", v)
		}
		if f.cfg.BridgeNames == nil {
			f.cfg.BridgeNames = map[string]string{}
		}
		f.cfg.BridgeNames[name] = dev
		return nil
	})
	fs.StringVar(&f.pprofListen, "pprof-listen", "", "address of a net/http/pprof listener for profiling, e.g. 127.0.0.1:6060 (default: none)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&f.logJSON, "log-json", false, "log as JSON instead of text")
	if name == "demo" {
		fs.IntVar(&f.demoTrackers, "trackers", 40, "number of simulated trackers")
		fs.DurationVar(&f.demoInterval, "interval", time.Second, "how often each simulated tracker reports")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	// On the command line 0 switches a limit off; in server.Config that is
	// a negative value (0 there takes the default).
	if f.cfg.BodyTimeout == 0 {
		f.cfg.BodyTimeout = -1
	}
	if f.cfg.KeepAliveTimeout == 0 {
		f.cfg.KeepAliveTimeout = -1
	}
	if f.cfg.MaxUnauthConns == 0 {
		f.cfg.MaxUnauthConns = -1
	}
	return f, nil
}

// limitFlag parses a --signin-*-limit value into l; "0" switches the
// limit off (auth.Options takes a negative count for that).
func limitFlag(l *auth.Limit) func(string) error {
	return func(s string) error {
		v, err := auth.ParseLimit(s)
		if err != nil {
			return err
		}
		if v.Failures == 0 {
			v.Failures = -1
		}
		*l = v
		return nil
	}
}

func newLogger(level string, asJSON bool) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	if asJSON {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
}

func runServer(args []string, demo bool) error {
	name := "serve"
	if demo {
		name = "demo"
	}
	f, err := parseServerFlags(name, args, os.Stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(f.logLevel, f.logJSON)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	f.cfg.Logger = log

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var run *demoRun
	if demo {
		if f.cfg.AdminKey == "" {
			f.cfg.AdminKey = randomKey()
		}
		run = demoConfig(&f.cfg)
	}
	if f.pprofListen != "" {
		startPprof(f.pprofListen, log)
	}
	srv, err := server.New(ctx, f.cfg)
	if err != nil {
		return err
	}
	if demo {
		if err := startDemo(ctx, srv, f, run, os.Stdout); err != nil {
			return err
		}
	}
	return srv.Run(ctx)
}

// days is a duration flag that also takes whole days ("90d").
type days time.Duration

func (d *days) String() string {
	if v := time.Duration(*d); v%(24*time.Hour) == 0 && v > 0 {
		return strconv.FormatInt(int64(v/(24*time.Hour)), 10) + "d"
	}
	return time.Duration(*d).String()
}

func (d *days) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.Atoi(n)
		if err != nil || v < 0 {
			return fmt.Errorf("%q is not a number of days", s)
		}
		*d = days(time.Duration(v) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a duration", s)
	}
	*d = days(v)
	return nil
}

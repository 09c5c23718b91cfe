// Package server assembles fleetwire: the store, the bus, live state, the
// event hub behind the Atmosphere endpoint, the REST and admin API, the
// fleet page and the device ingest listeners, with one lifecycle.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/fleetwire/fleetwire/internal/api"
	"github.com/fleetwire/fleetwire/internal/auth"
	"github.com/fleetwire/fleetwire/internal/bridge"
	"github.com/fleetwire/fleetwire/internal/broker"
	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/bus/jetstream"
	"github.com/fleetwire/fleetwire/internal/commands"
	"github.com/fleetwire/fleetwire/internal/events"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/history"
	"github.com/fleetwire/fleetwire/internal/ingest/mqtt"
	"github.com/fleetwire/fleetwire/internal/ingest/ngp"
	"github.com/fleetwire/fleetwire/internal/ingest/osmand"
	"github.com/fleetwire/fleetwire/internal/ingest/trackers"
	"github.com/fleetwire/fleetwire/internal/metrics"
	"github.com/fleetwire/fleetwire/internal/netlimit"
	"github.com/fleetwire/fleetwire/internal/state"
	"github.com/fleetwire/fleetwire/internal/store"
	storeopen "github.com/fleetwire/fleetwire/internal/store/open"
	"github.com/fleetwire/fleetwire/internal/wire/atmosphere"
	"github.com/fleetwire/fleetwire/web"
)

// Config is everything the server is started with. Zero values take the
// defaults noted on each field.
type Config struct {
	// Listen is the address of the API, WebSocket and page listener.
	Listen string
	// OsmandListen is the address of the OsmAnd/Traccar Client ingest
	// listener; empty disables it.
	OsmandListen string
	// DataDir holds the SQLite file when Store is empty; it is made (or
	// tightened to) 0700, the file 0600.
	DataDir string
	// Store is a store DSN ("postgres://..." or a SQLite path); empty means
	// DataDir/fleetwire.db.
	Store string
	// Bus is the NATS URL of the cluster's bus and log, NATS JetStream
	// ("nats://127.0.0.1:4222"); empty means the in-process bus of a single
	// node.
	Bus string
	// Cluster names the installation on the bus (default "fleetwire"):
	// the prefix of its subjects, streams and buckets, so that
	// installations sharing a NATS never see each other.
	Cluster string
	// Node names this node in the cluster (default: host name and a
	// random suffix).
	Node string
	// BusRetention bounds the age of the log (default 24h); BusMaxBytes
	// its size (default 1 GiB); BusReplicas is the number of JetStream
	// replicas (default 1).
	BusRetention time.Duration
	BusMaxBytes  int64
	BusReplicas  int
	// AdminKey guards the admin API; empty disables it.
	AdminKey string
	// Heartbeat is the server-to-client heartbeat period on idle
	// connections (default 60s).
	Heartbeat time.Duration
	// ClientHeartbeat is how often clients are asked to send heartbeats,
	// announced in the Atmosphere handshake (default 0: never).
	ClientHeartbeat time.Duration
	// SessionGrace is how long a client session with no open transport is
	// kept, with its subscriptions and queued events (default 60s).
	SessionGrace time.Duration
	// LongPollTimeout is how long a long-poll request is held (default 30s).
	LongPollTimeout time.Duration
	// IdleTimeout closes a WebSocket that sent nothing (no message, no
	// heartbeat, no pong) for this long (default 0: never). When set,
	// clients are asked in the handshake to send a heartbeat every third
	// of it, unless ClientHeartbeat is at most half of it.
	IdleTimeout time.Duration
	// WSGoroutineReads reads each event WebSocket with a goroutine of its
	// own instead of the shared readiness poller (the portable path).
	WSGoroutineReads bool
	// BodyTimeout bounds how long a request body may take to arrive on
	// every HTTP listener, counted from the start of the request (default
	// DefaultBodyTimeout; negative: no bound).
	BodyTimeout time.Duration
	// KeepAliveTimeout closes HTTP keep-alive connections idle this long
	// between requests (default DefaultKeepAliveTimeout; negative: never).
	KeepAliveTimeout time.Duration
	// MaxUnauthConns caps the connections one source address may hold open
	// on each HTTP listener before a handler has authenticated them;
	// connections over it are answered 429 and closed (default
	// DefaultMaxUnauthConns; negative: no cap). See package netlimit.
	MaxUnauthConns int
	// LoginLimit and AddressLimit are the budgets of failed sign-ins per
	// login and per source address, PasswordWorkers the password checks
	// run at once (zero values take auth's defaults; see auth.Options).
	LoginLimit, AddressLimit auth.Limit
	PasswordWorkers          int
	// State tunes the live state registry (status timers, persistence).
	State state.Options
	// Events tunes the event hub (queue bounds, slow clients).
	Events events.Options
	// MQTTURL is the MQTT broker devices publish to and commands go
	// through ("tcp://127.0.0.1:1883"); empty starts the embedded broker
	// on MQTTListen.
	MQTTURL string
	// MQTTListen is the address of the embedded MQTT broker, used when
	// MQTTURL is empty; empty too disables MQTT (ingest, bridge, commands).
	MQTTListen string
	// NGPListen is the address of the generic protocol (NGP) HTTP
	// listener; empty disables it.
	NGPListen string
	// Bind says what a request must show besides its tracking id to use an
	// existing event session (default atmosphere.BindAddress).
	Bind atmosphere.Bind
	// TrustProxy takes client addresses from X-Forwarded-For / X-Real-IP,
	// behind a reverse proxy.
	TrustProxy bool
	// MaxSessionsPerAddr caps the event sessions alive per client address
	// (default 256; negative: no cap).
	MaxSessionsPerAddr int
	// SubscribeWithin closes an event WebSocket that has not subscribed
	// this long after it connected (default 60s; negative: never).
	SubscribeWithin time.Duration
	// AllowedOrigins may call the event endpoint from other origins (CORS);
	// "*" any, without credentials.
	AllowedOrigins []string
	// DealerID is the installation's dealer id (default 1), the only
	// dealer_id user/auth accepts.
	DealerID int64
	// BridgeNames maps topic bridge names (the path element of
	// /auth/<name>) to the device id of the node a connection to that name
	// talks to by default (see package bridge).
	BridgeNames map[string]string
	// OnDeviceMessage, when set, is called with the device id of every
	// message an ingest listener (OsmAnd, NGP, MQTT) has parsed, before
	// the message is applied. The demo uses it to hand trackers whose
	// devices report for real over from the simulator.
	OnDeviceMessage func(deviceID string)
	// TeltonikaListen is the address of the Teltonika TCP and UDP
	// listener; empty disables it.
	TeltonikaListen string
	// GT06Listen is the address of the GT06 TCP and UDP listener; empty
	// disables it.
	GT06Listen string
	// Trackers tunes the Teltonika and GT06 listeners (deadlines, bounds).
	Trackers trackers.Options
	// HistoryRetention is how long track points are kept (0: forever).
	HistoryRetention time.Duration
	// TileURL is a raster map tile URL template for the fleet page
	// ("https://tile.openstreetmap.org/{z}/{x}/{y}.png"); empty draws an
	// offline map.
	TileURL string
	// Logger receives structured logs (default slog.Default()).
	Logger *slog.Logger
}

// Defaults of the listener limits in Config.
const (
	DefaultBodyTimeout      = 30 * time.Second
	DefaultKeepAliveTimeout = 60 * time.Second
	DefaultMaxUnauthConns   = 64
)

// Server is a running fleetwire.
type Server struct {
	cfg    Config
	log    *slog.Logger
	Store  store.Store
	Bus    bus.Bus
	Auth   *auth.Service
	State  *state.Registry
	Hub    *events.Hub
	atmo   *atmosphere.Server
	http   *http.Server
	osmand *http.Server
	ngp    *http.Server

	broker  *broker.Broker
	mqttSub *mqtt.Subscriber
	// cluster is the JetStream bus of a cluster node, nil on a single node.
	cluster     *jetstream.Bus
	storeWriter *jetstream.StoreWriter
	stopServe   func() // stops answering other nodes' session requests
	bridge      *bridge.Bridge
	commands    *commands.Commander

	ln, osmandLn, ngpLn net.Listener
	ready               chan struct{}

	links     *trackers.Links
	teltonika *trackers.Listener
	gt06      *trackers.Listener
	// History keeps every accepted fix with a location; the ingest
	// adapters apply through it. Nil when the store has no history.
	History *history.Recorder
}

// ingest is what the device ingest adapters apply fixes to: the history
// recorder (which applies to the live state and keeps the fix), or the
// live state alone.
func (s *Server) ingest() trackers.Applier {
	if s.History != nil && s.cluster == nil {
		return s.History
	}
	// In a cluster a fix is kept once it is in the log; the store
	// writer keeps the history from there.
	return s.State
}

// New opens the store, loads state and binds the listeners. Start serving
// with Run.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
	}
	s := &Server{cfg: cfg, log: cfg.Logger, ready: make(chan struct{})}

	dsn := cfg.Store
	if dsn == "" {
		dir := cfg.DataDir
		if dir == "" {
			dir = "data"
		}
		// The data directory is the owner's alone, created so or tightened.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("restrict data dir: %w", err)
		}
		dsn = filepath.Join(dir, "fleetwire.db")
	}
	st, err := storeopen.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s.Store = st
	if cfg.Bus == "" {
		s.Bus = bus.NewMemory()
	} else {
		nb, err := jetstream.Open(ctx, jetstream.Options{
			URL: cfg.Bus, Prefix: cfg.Cluster, Node: cfg.Node,
			Retention: cfg.BusRetention, MaxBytes: cfg.BusMaxBytes, Replicas: cfg.BusReplicas,
			Logger: cfg.Logger,
		})
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("open bus: %w", err)
		}
		s.Bus, s.cluster = nb, nb
		// Every series says which node it is from.
		metrics.SetNode(nb.Node())
		if s.storeWriter, err = nb.StoreWriter(ctx, st); err != nil {
			nb.Close()
			st.Close()
			return nil, fmt.Errorf("open bus: %w", err)
		}
	}
	s.Auth = auth.New(st, s.Bus, auth.Options{
		LoginLimit:      cfg.LoginLimit,
		AddressLimit:    cfg.AddressLimit,
		PasswordWorkers: cfg.PasswordWorkers,
		Logger:          cfg.Logger,
	})
	s.State = state.New(st, s.Bus, cfg.State)
	if err := s.State.Load(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("load state: %w", err)
	}
	evOpts := cfg.Events
	if evOpts.Logger == nil {
		evOpts.Logger = cfg.Logger
	}
	grace := cfg.SessionGrace
	if grace <= 0 {
		grace = 60 * time.Second
	}
	var sessions *jetstream.Sessions
	if s.cluster != nil {
		// A session whose node died can be taken over on another node for
		// as long as it would have waited for its client on its own.
		if sessions, err = s.cluster.Sessions(ctx, jetstream.SessionsOptions{TTL: grace + 30*time.Second}); err != nil {
			s.closeBackends()
			return nil, fmt.Errorf("open sessions: %w", err)
		}
		evOpts.Sessions, evOpts.Node = sessions, s.cluster.Node()
	} else if evOpts.AsyncShards < 0 {
		// Delivery workers, one per CPU: a device's answer does not wait
		// for its change to be queued for every subscriber. Off by
		// default: without the wait, a tracker followed by more clients
		// than the node can write to builds a backlog instead of slowing
		// its device, and the writes lose their coalescing (see README).
		evOpts.AsyncShards = runtime.GOMAXPROCS(0)
	}
	if hs, ok := st.(store.History); ok {
		s.History = history.New(s.State, hs, history.Options{Retention: cfg.HistoryRetention, Logger: cfg.Logger})
		if s.storeWriter != nil {
			s.storeWriter.KeepHistory(hs, s.History.PointOf)
		}
	}
	s.Hub = events.NewHub(s.Auth, s.State, evOpts)
	// The hub hears of every change through the registry, which takes
	// each in first, in the order of the log.
	s.State.Listen(s.Hub.HandleBus)
	metrics.RegisterRuntime(metrics.Default)

	clientHeartbeat := cfg.ClientHeartbeat
	if cfg.IdleTimeout > 0 && (clientHeartbeat == 0 || clientHeartbeat > cfg.IdleTimeout/2) {
		clientHeartbeat = cfg.IdleTimeout / 3
	}
	idKey, err := s.idKey(ctx)
	if err != nil {
		s.closeBackends()
		return nil, err
	}
	var handler atmosphere.Handler = hubHandler{s.Hub}
	var ch *clusterHandler
	if sessions != nil {
		ch = &clusterHandler{hubHandler: hubHandler{s.Hub}, sessions: sessions, nodes: sessions,
			node: s.cluster.Node(), bind: cfg.Bind, log: cfg.Logger}
		handler = ch
	}
	s.atmo = atmosphere.NewServer(handler, atmosphere.Options{
		Bind:               cfg.Bind,
		TrustProxy:         cfg.TrustProxy,
		SubscribeWithin:    cfg.SubscribeWithin,
		MaxSessionsPerAddr: cfg.MaxSessionsPerAddr,
		AllowedOrigins:     cfg.AllowedOrigins,
		IDKey:              idKey,
		ResetNotice:        events.ResetNotice,
		Heartbeat:          cfg.Heartbeat,
		ClientHeartbeat:    clientHeartbeat,
		IdleTimeout:        cfg.IdleTimeout,
		GoroutineReads:     cfg.WSGoroutineReads,
		SessionGrace:       cfg.SessionGrace,
		LongPollTimeout:    cfg.LongPollTimeout,
		Logger:             cfg.Logger,
	})
	if ch != nil {
		ch.atmo = s.atmo
		if s.stopServe, err = sessions.Serve(ch.serve); err != nil {
			s.closeBackends()
			return nil, fmt.Errorf("serve node requests: %w", err)
		}
	}

	mqttURL := cfg.MQTTURL
	if mqttURL == "" && cfg.MQTTListen != "" {
		// The embedded broker is a convenience: when its port is taken
		// (often by a real broker) it listens on a free port of the same
		// host instead, so the topic bridge and commands keep working, and
		// says where; devices must then be pointed there.
		bo := broker.Options{Devices: s.Auth, Logger: cfg.Logger}
		b, err := broker.Start(cfg.MQTTListen, bo)
		if errors.Is(err, syscall.EADDRINUSE) {
			if host, _, splitErr := net.SplitHostPort(cfg.MQTTListen); splitErr == nil {
				if b, err = broker.Start(net.JoinHostPort(host, "0"), bo); err == nil {
					cfg.Logger.Warn("embedded MQTT broker: port taken, listening on another", "wanted", cfg.MQTTListen, "listen", b.Addr())
				}
			}
		}
		if err != nil {
			cfg.Logger.Warn("embedded MQTT broker not started; MQTT ingest, topic bridge and commands are off (use --mqtt-url for an external broker)", "listen", cfg.MQTTListen, "err", err)
		} else {
			s.broker = b
			mqttURL = b.URL()
		}
	}
	s.links = trackers.NewLinks()
	ingest := ingestApplier{next: s.ingest(), seen: cfg.OnDeviceMessage}
	apiOpts := api.Options{AdminKey: cfg.AdminKey, Logger: cfg.Logger, Store: st, DealerID: cfg.DealerID, Links: s.links}
	if s.History != nil {
		apiOpts.History = s.History
	}
	if mqttURL != "" {
		// fleetwire's own clients sign in to the embedded broker with this
		// run's internal credential; an external broker's come in its URL.
		mo := mqtt.Options{URL: mqttURL, Logger: cfg.Logger}
		clientURL := mqttURL
		if s.broker != nil {
			mo.Username, mo.Password = s.broker.InternalCredentials()
			clientURL = s.broker.InternalURL()
		}
		if s.cluster != nil {
			// The nodes sharing a broker share its telemetry: each message
			// is ingested by one of them.
			mo.ShareGroup = "fleetwire-" + s.cluster.Prefix()
		}
		s.mqttSub = mqtt.New(ingest, mo)
		s.bridge = bridge.New(bridge.Options{Auth: s.Auth, Devices: s.State, MQTTURL: clientURL, Names: cfg.BridgeNames, Logger: cfg.Logger})
		s.commands = commands.New(clientURL, cfg.Logger)
		apiOpts.Commander = s.commands
	}
	restAPI := api.New(s.Auth, s.State, apiOpts)
	s.http = s.httpServer(s.routes(restAPI.Handler()))
	if s.ln, err = s.listen(cfg.Listen); err != nil {
		st.Close()
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	if cfg.OsmandListen != "" {
		s.osmand = s.httpServer(osmand.NewHandler(ingest, cfg.Logger))
		if s.osmandLn, err = s.listen(cfg.OsmandListen); err != nil {
			s.closeListeners()
			st.Close()
			return nil, fmt.Errorf("listen osmand %s: %w", cfg.OsmandListen, err)
		}
	}
	if cfg.NGPListen != "" {
		s.ngp = s.httpServer(ngp.NewHandler(ingest, cfg.Logger))
		s.ngp.Protocols = ngp.Protocols()
		if s.ngpLn, err = s.listen(cfg.NGPListen); err != nil {
			s.closeListeners()
			st.Close()
			return nil, fmt.Errorf("listen ngp %s: %w", cfg.NGPListen, err)
		}
	}
	trOpts := cfg.Trackers
	if trOpts.Logger == nil {
		trOpts.Logger = cfg.Logger
	}
	if cfg.TeltonikaListen != "" {
		if s.teltonika, err = trackers.ListenTeltonika(cfg.TeltonikaListen, s.ingest(), s.links, trOpts); err != nil {
			s.closeListeners()
			st.Close()
			return nil, fmt.Errorf("listen teltonika: %w", err)
		}
	}
	if cfg.GT06Listen != "" {
		if s.gt06, err = trackers.ListenGT06(cfg.GT06Listen, s.ingest(), s.links, trOpts); err != nil {
			s.closeListeners()
			st.Close()
			return nil, fmt.Errorf("listen gt06: %w", err)
		}
	}
	return s, nil
}

// closeBackends closes the bus and the store after a failed New.
func (s *Server) closeBackends() {
	if s.Bus != nil {
		s.Bus.Close()
	}
	s.Store.Close()
}

// httpServer returns an http.Server for h with the listener limits of the
// configuration: header and body deadlines, keep-alive timeout and the
// connection context netlimit.Authenticated needs.
func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           netlimit.BodyTimeout(h, orDefault(s.cfg.BodyTimeout, DefaultBodyTimeout)),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       orDefault(s.cfg.KeepAliveTimeout, DefaultKeepAliveTimeout),
		ConnContext:       netlimit.ConnContext,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
	}
}

// listen binds addr with the per-address cap on unauthenticated
// connections.
func (s *Server) listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return netlimit.Listen(ln, orDefault(s.cfg.MaxUnauthConns, DefaultMaxUnauthConns)), nil
}

// orDefault returns def for zero, zero for negative (off) and v otherwise.
func orDefault[T int | time.Duration](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

func (s *Server) closeListeners() {
	for _, ln := range []net.Listener{s.ln, s.osmandLn, s.ngpLn} {
		if ln != nil {
			ln.Close()
		}
	}
	for _, l := range []*trackers.Listener{s.teltonika, s.gt06} {
		if l != nil {
			l.Close()
		}
	}
	if s.broker != nil {
		s.broker.Close()
	}
}

// TeltonikaAddr is the bound TCP address of the Teltonika listener (UDP
// is on the same port), or "".
func (s *Server) TeltonikaAddr() string {
	if s.teltonika == nil {
		return ""
	}
	return s.teltonika.Addr()
}

// GT06Addr is the bound TCP address of the GT06 listener (UDP is on the
// same port), or "".
func (s *Server) GT06Addr() string {
	if s.gt06 == nil {
		return ""
	}
	return s.gt06.Addr()
}

// NGPAddr is the bound address of the generic protocol listener, or "".
func (s *Server) NGPAddr() string {
	if s.ngpLn == nil {
		return ""
	}
	return s.ngpLn.Addr().String()
}

// MQTTURL is the URL of the MQTT broker in use (embedded or external), or "".
func (s *Server) MQTTURL() string {
	switch {
	case s.cfg.MQTTURL != "":
		return s.cfg.MQTTURL
	case s.broker != nil:
		return s.broker.URL()
	}
	return ""
}

// Addr is the bound address of the main listener.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// OsmandAddr is the bound address of the OsmAnd listener, or "".
func (s *Server) OsmandAddr() string {
	if s.osmandLn == nil {
		return ""
	}
	return s.osmandLn.Addr().String()
}

// Ready is closed once Run serves requests.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Run serves until ctx is cancelled, then shuts down gracefully: WebSockets
// are closed with 1001, held requests end, changed states are written and the
// store is closed.
func (s *Server) Run(ctx context.Context) error {
	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	report := func(err error) {
		if err != nil {
			errc <- err
		}
	}
	wg.Add(2)
	go func() { defer wg.Done(); report(wrap("state", s.State.Run(bg))) }()
	go func() { defer wg.Done(); report(wrap("events", s.Hub.Run(bg))) }()
	wg.Add(1)
	go func() { defer wg.Done(); s.purgeSessions(bg) }()
	if s.storeWriter != nil {
		wg.Add(1)
		go func() { defer wg.Done(); report(wrap("store writer", s.storeWriter.Run(bg))) }()
	}

	serve := func(name string, srv *http.Server, ln net.Listener) {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("%s listener: %w", name, err)
		}
	}
	wg.Add(1)
	go serve("http", s.http, s.ln)
	if s.osmand != nil {
		wg.Add(1)
		go serve("osmand", s.osmand, s.osmandLn)
	}
	if s.ngp != nil {
		wg.Add(1)
		go serve("ngp", s.ngp, s.ngpLn)
	}
	for _, l := range []*trackers.Listener{s.teltonika, s.gt06} {
		if l != nil {
			wg.Add(1)
			go func() { defer wg.Done(); report(l.Serve(bg)) }()
		}
	}
	if s.History != nil {
		wg.Add(1)
		go func() { defer wg.Done(); report(wrap("history", s.History.Run(bg))) }()
	}
	if s.mqttSub != nil {
		wg.Add(2)
		go func() { defer wg.Done(); report(wrap("mqtt ingest", s.mqttSub.Run(bg))) }()
		go func() { defer wg.Done(); report(wrap("topic bridge", s.bridge.Run(bg))) }()
	}
	close(s.ready)
	s.log.Info("fleetwire serving", "listen", s.Addr(), "osmand", s.OsmandAddr(), "teltonika", s.TeltonikaAddr(), "gt06", s.GT06Addr())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.log.Info("shutting down")
	shCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.atmo.Shutdown(shCtx); err != nil {
		s.log.Warn("atmosphere shutdown", "err", err)
	}
	if s.stopServe != nil {
		s.stopServe()
	}
	if err := s.http.Shutdown(shCtx); err != nil {
		s.log.Warn("http shutdown", "err", err)
	}
	for name, srv := range map[string]*http.Server{"osmand": s.osmand, "ngp": s.ngp} {
		if srv != nil {
			if err := srv.Shutdown(shCtx); err != nil {
				s.log.Warn(name+" shutdown", "err", err)
			}
		}
	}
	if s.bridge != nil {
		s.bridge.Close()
	}
	stopBG()
	wg.Wait()
	if s.commands != nil {
		s.commands.Close()
	}
	if s.broker != nil {
		if err := s.broker.Close(); err != nil {
			s.log.Warn("mqtt broker close", "err", err)
		}
	}
	if err := s.Bus.Close(); err != nil {
		s.log.Warn("bus close", "err", err)
	}
	if err := s.Store.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("close store: %w", err)
	}
	return runErr
}

// purgeSessions removes expired sessions from the store once an hour. They
// are refused as soon as they expire; this only frees their rows.
func (s *Server) purgeSessions(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := s.Auth.PurgeExpired(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("purge expired sessions", "err", err)
		} else if n > 0 {
			s.log.Info("purged expired sessions", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func wrap(what string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (s *Server) routes(restAPI http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/event/subscription", s.atmo)
	mux.Handle("/event/subscription/", s.atmo)
	mux.Handle("/v2/event/subscription", s.atmo)
	mux.Handle("/v2/event/subscription/", s.atmo)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-s.ready:
		default:
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		if _, err := s.Store.Users(r.Context()); err != nil {
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
		if err := s.Bus.Healthy(); err != nil {
			http.Error(w, "bus unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", metrics.Default.Handler())
	if s.bridge != nil {
		mux.Handle("/bridge", s.bridge)
		mux.Handle("/bridge/", s.bridge)
		mux.Handle("/auth/", s.bridge)
	}
	page := web.New(web.Options{TileURL: s.cfg.TileURL})
	mux.Handle("GET /{$}", page)
	mux.Handle("GET /static/", page)
	mux.Handle("/", restAPI)
	return mux
}

// ingestApplier is the registry as the ingest listeners see it: it tells
// Config.OnDeviceMessage of each message before applying it. Embedding
// keeps the registry's lookups, which NGP uses to discard old messages.
type ingestApplier struct {
	next trackers.Applier
	seen func(deviceID string)
}

// Apply reports the device, then applies f.
func (a ingestApplier) Apply(ctx context.Context, f *state.Fix) (*fleet.State, error) {
	if a.seen != nil {
		a.seen(f.DeviceID)
	}
	return a.next.Apply(ctx, f)
}

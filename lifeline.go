// Package lifeline composes a node: the store, and the links around it (so
// far the HTTP API), under one Run. See docs/ and DESIGN.md.
//
// A Node has no global state: tests start several in one process.
package lifeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"lifeline/api"
	"lifeline/clock"
	"lifeline/gps"
	"lifeline/mesh"
	"lifeline/message"
	"lifeline/radio"
	"lifeline/store"
	"lifeline/web"
)

// StoreFile is the name of the store inside the data directory.
const StoreFile = "lifeline.db"

// Node is one Lifeline node. Create it with New and start it with Run.
type Node struct {
	cfg Config
	log *slog.Logger

	// injectedClock: cfg.Now came from the caller (a test, or
	// LIFELINE_CLOCK_SKEW), so the kernel's word on the system clock does
	// not apply to it.
	injectedClock bool
	// clock is the node's clock, made by Run.
	clock *clock.Clock

	ran   atomic.Bool
	ready chan struct{}
	// Set once before ready is closed, read-only after.
	apiAddr string
	id      message.PublicKey

	mu sync.Mutex
	// trial is the change of settings on probation, if any (settingspage.go).
	trial *trial
	// settingsErr says why the last change of settings was undone.
	settingsErr string
}

// New checks cfg and returns a node that has not started: nothing is read,
// created or opened until Run.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	injected := cfg.Now != nil
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Node{cfg: cfg, log: cfg.Logger, ready: make(chan struct{}), injectedClock: injected}, nil
}

// Ready is closed once the node has its identity and store and the API
// accepts connections. It is never closed if Run fails before that.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// APIAddr returns the address the API listens on (with the real port when
// the config said port 0); "" until Ready is closed.
func (n *Node) APIAddr() string {
	select {
	case <-n.ready:
		return n.apiAddr
	default:
		return ""
	}
}

// ID returns the node's public key; the zero key until Ready is closed.
func (n *Node) ID() message.PublicKey {
	select {
	case <-n.ready:
		return n.id
	default:
		return message.PublicKey{}
	}
}

// Run starts the node and blocks until ctx ends or a part fails. It loads
// or creates the identity, opens the store, serves the API, expires old
// messages periodically, and sends receipts for direct messages addressed to
// the node. On return everything it started has stopped and the store is
// closed. It returns nil after a shutdown asked for by ctx. Run may be
// called once.
//
// The settings of the operator's page (SettingsFile in the data directory)
// apply on top of the config. When the page changes them, the node stops
// its parts and starts again with them, in this call: same identity and
// clock, the store reopened, the API on the same address. Should the new
// settings fail at start, the previous ones are put back (settingspage.go).
func (n *Node) Run(ctx context.Context) error {
	if !n.ran.CompareAndSwap(false, true) {
		return errors.New("lifeline: Node.Run called twice")
	}
	if err := os.MkdirAll(n.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	clk, err := newClock(n.cfg, n.injectedClock)
	if err != nil {
		return err
	}
	n.clock = clk
	if st := clk.Status(); st.Quality == clock.Floor {
		n.log.Warn("the system clock is earlier than this node has ever run: counting from the last known time until a hub, peer, phone or GPS tells the time",
			"system", n.cfg.Now().UTC().Format(time.RFC3339), "floor", st.Floor.UTC().Format(time.RFC3339))
	}
	for {
		cfg, s, applied, err := n.effectiveConfig()
		if err != nil {
			return err
		}
		if len(applied) > 0 {
			n.log.Info("settings from the operator's page override the config", "settings", applied, "file", filepath.Join(cfg.DataDir, SettingsFile))
		}
		began := time.Now()
		err = n.run(ctx, cfg, s, applied)
		if errors.Is(err, errRestart) {
			n.log.Info("restarting with the settings of the operator's page")
			continue
		}
		if n.revertTrial(ctx, err, began) {
			continue
		}
		return err
	}
}

// run is one run of the node with cfg, the config with the page's
// settings s applied (applied names them).
func (n *Node) run(ctx context.Context, cfg Config, s Settings, applied []string) (err error) {
	id, created, err := LoadOrCreateIdentity(filepath.Join(cfg.DataDir, IdentityFile))
	if err != nil {
		return err
	}
	if created {
		n.log.Info("created a new node identity", "id", id.Public(), "file", filepath.Join(cfg.DataDir, IdentityFile))
	}
	mem, err := newMembers(cfg)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	clk := n.clock
	st, err := store.Open(filepath.Join(cfg.DataDir, StoreFile), store.Options{
		Quota:     cfg.Quota,
		MaxAge:    time.Duration(cfg.Retention),
		Own:       id.Public(),
		Members:   mem.has,
		Now:       clk.Now,
		NoSync:    cfg.NoSync,
		MaxDBSize: cfg.MaxDBSize,
	})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("data directory %s is in use by another lifeline process: %w", cfg.DataDir, err)
	}
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
		}
	}()

	var meshKey []byte
	if cfg.MeshKeyFile != "" {
		if meshKey, err = LoadMeshKey(cfg.MeshKeyFile); err != nil {
			return err
		}
	}
	hub := cfg.Role == RoleHub
	reports := make(chan mesh.UplinkEvent, uplinkEvents)
	m, err := mesh.New(mesh.Config{
		Identity:          id,
		Listen:            cfg.Listen,
		Peers:             cfg.Peers,
		MDNS:              cfg.MDNS && !hub, // a server's LAN is not the area's
		MeshKey:           meshKey,
		ReconcileInterval: time.Duration(cfg.ReconcileInterval),
		Hubs:              cfg.Hubs,
		ProbeInterval:     time.Duration(cfg.ProbeInterval),
		HubWindow:         time.Duration(cfg.HubWindow),
		Horizon:           time.Duration(cfg.Retention),
		OnUplink: func(ev mesh.UplinkEvent) {
			select {
			case reports <- ev:
			default:
				n.log.Warn("uplink change not recorded: reports are backed up", "up", ev.Up, "at", ev.At)
			}
		},
		Hub:    hub,
		Logger: n.log.With("part", "mesh"),
		Clock:  clk,
	}, st)
	if err != nil {
		return err
	}
	if meshKey != nil {
		mem.learnFrom(m.Host().Network())
	}
	// mesh.New is already listening. Mesh.Run closes the host when it
	// ends; until Run has been handed the mesh, every way out of here must
	// close it, or a failed start (the API port taken) keeps the mesh port
	// and its sockets until the process exits. Registered after the
	// store's deferred Close, so it runs before it: the host uses the store.
	meshRunning := false
	defer func() {
		if meshRunning {
			return
		}
		if cerr := m.Host().Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close mesh host: %w", cerr))
		}
	}()
	var stations []*radio.Station
	for _, rc := range cfg.Radios {
		s, err := newStation(rc, st, id.Public(), meshKey, clk, n.log)
		if err != nil {
			return err
		}
		stations = append(stations, s)
	}
	token, err := LoadOrCreateAdminToken(filepath.Join(cfg.DataDir, AdminTokenFile))
	if err != nil {
		return err
	}
	// wiped is closed once the operator had the node wipe itself: it
	// stops then.
	wiped := make(chan struct{})
	var wipeOnce sync.Once
	wipe := func() (err error) {
		wipeOnce.Do(func() {
			err = Wipe(cfg.DataDir, cfg.MeshKeyFile)
			n.log.Warn("wiped: keys and messages destroyed at the operator's request; stopping", "err", err)
			close(wiped)
		})
		return err
	}
	app, err := web.New()
	if err != nil {
		return err
	}
	kitMode, err := newKit(cfg, n.log)
	if err != nil {
		return err
	}
	hosts := cfg.APIHosts
	if kitMode != nil {
		// The kit's name leads to the app: the API answers to it.
		hosts = append(slices.Clone(hosts), kitMode.Name())
	}
	restart := make(chan struct{})
	var restartOnce sync.Once
	page := &settingsPage{n: n, cur: s, eff: cfg, applied: applied,
		restart: func() { restartOnce.Do(func() { close(restart) }) }}
	if meshKey != nil {
		page.fingerprint = MeshKeyFingerprint(meshKey)
	}
	srv, err := api.New(api.Options{
		Store:    st,
		Identity: id,
		Version:  Version,
		Now:      cfg.Now,
		Clock:    clk,
		Logger:   n.log,
		Mesh:     m.Status,
		Radio: func() []radio.StationStatus {
			out := make([]radio.StationStatus, len(stations))
			for i, s := range stations {
				out[i] = s.Status()
			}
			return out
		},
		AllowedHosts:   hosts,
		Public:         hub, // a hub's API faces the internet
		AdminToken:     token,
		DefaultChannel: cfg.DefaultChannel,
		App:            app,
		Members:        mem.has,
		Wipe:           wipe,
		Backup:         func(w io.Writer) error { return WriteBackup(st, cfg.DataDir, w) },
		Kit:            kitStatus(kitMode),
		Name:           cfg.Name,
		Settings:       page,
	})
	if err != nil {
		return err
	}
	apiAddr := cfg.APIAddr
	if n.apiAddr != "" {
		apiAddr = n.apiAddr // a restart: where clients know the API is
	}
	ln, err := net.Listen("tcp", apiAddr)
	if err != nil {
		return fmt.Errorf("API address %s: %w", apiAddr, err)
	}
	// Subscribe before anything can arrive, so no direct message misses
	// its receipt.
	dms := st.Subscribe(receiptBuffer)
	rc := &receipts{n: n, st: st, id: id, me: id.Public(), sub: dms, acked: make(map[message.ID]bool), vouched: mem.has}
	// Before anything starts: once the node is ready, every direct message
	// stored here has its receipt.
	rc.catchUp(ctx)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	// start runs a part of the node; the first part to fail stops the rest.
	start := func(name string, f func(context.Context) error) {
		wg.Go(func() {
			if err := f(ctx); err != nil {
				cancel(fmt.Errorf("%s: %w", name, err))
			}
		})
	}
	if apiServesKit(cfg) {
		// The API's listener takes every interface's port 80: the
		// captive portal goes in front of it there.
		h := kitMode.Handler(srv, srv.AnswersTo)
		start("api", func(ctx context.Context) error { return srv.ServeHandler(ctx, ln, h) })
	} else {
		start("api", func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	}
	meshRunning = true // from here on m.Run owns and closes the host
	start("mesh", m.Run)
	start("expiry", func(ctx context.Context) error { n.expireLoop(ctx, st); return nil })
	start("clock", func(ctx context.Context) error { n.clockLoop(ctx, wiped); return nil })
	start("wipe", func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return nil
		case <-wiped:
			return ErrWiped
		}
	})
	start("store", func(ctx context.Context) error {
		// A store that broke (an I/O error, not a full disk: that it
		// leaves by itself) fails every write from then on. Ending the
		// process lets its supervisor restart it, and reopening applies
		// what the store had acknowledged.
		select {
		case <-ctx.Done():
			return nil
		case <-st.Failed():
			return fmt.Errorf("%w; restart the node", st.Err())
		}
	})
	start("receipts", func(ctx context.Context) error { rc.run(ctx); return nil })
	keepKey := ""
	if filepath.Dir(cfg.MeshKeyFile) == filepath.Clean(cfg.DataDir) {
		keepKey = filepath.Base(cfg.MeshKeyFile)
	}
	start("settings", func(ctx context.Context) error { return n.settingsLoop(ctx, restart, keepKey) })
	start("reports", func(ctx context.Context) error { n.recordUplink(ctx, st, id, reports); return nil })
	for i, s := range stations {
		start(fmt.Sprintf("radio %s", cfg.Radios[i].Device), s.Run)
	}
	if cfg.GPS != "" {
		start("gps", func(ctx context.Context) error {
			gps.Run(ctx, gps.Config{Path: cfg.GPS, Logger: n.log.With("part", "gps")}, func(t time.Time) {
				// An RMC sentence arrives some hundreds of milliseconds
				// after the second it names.
				clk.Observe(clock.Sample{Channel: clock.ChannelGPS, Source: cfg.GPS, Time: t, Quality: clock.GPS, Uncertainty: time.Second})
			})
			return nil
		})
	}
	if kitMode != nil {
		// The app and the API on the kit's port 80, the captive portal in
		// front for the names that are not the node's.
		var serve func(context.Context, net.Listener) error
		if !apiServesKit(cfg) {
			h := kitMode.Handler(srv, srv.AnswersTo)
			serve = func(ctx context.Context, ln net.Listener) error { return srv.ServeHandler(ctx, ln, h) }
		}
		start("kit", func(ctx context.Context) error { return kitMode.Run(ctx, serve) })
	}

	if n.apiAddr == "" {
		n.apiAddr, n.id = ln.Addr().String(), id.Public()
		close(n.ready)
	}
	n.log.Info("lifeline node running", "id", id.Public(), "name", cfg.Name, "api", "http://"+n.apiAddr, "mesh", m.Addrs(), "data", cfg.DataDir, "version", Version)

	<-ctx.Done()
	wg.Wait()
	n.log.Info("lifeline node stopped", "id", id.Public())
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	return nil
}

// expireLoop removes expired messages now and every ExpireInterval.
// Failures are logged, not fatal: the next round tries again.
func (n *Node) expireLoop(ctx context.Context, st *store.Store) {
	t := time.NewTicker(time.Duration(n.cfg.ExpireInterval))
	defer t.Stop()
	for {
		if k, err := st.Expire(n.clock.Now()); err != nil {
			n.log.Warn("expiring messages failed", "err", err)
		} else if k > 0 {
			n.log.Info("expired messages", "count", k)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

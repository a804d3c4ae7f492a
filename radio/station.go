package radio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"lifeline/message"
	"lifeline/radio/link"
	"lifeline/radio/lora"
	"lifeline/store"
)

// Link is a radio device as the station drives it: radio/rnode's and
// radio/tnc's drivers.
type Link interface {
	// Run keeps the device up (reopening it when it fails) until ctx ends.
	Run(ctx context.Context) error
	// Send queues a frame for the air.
	Send(payload []byte) error
	// Received delivers frames from the air.
	Received() <-chan link.Packet
	// Done delivers the end of each transmission.
	Done() <-chan time.Time
	Status() link.Status
}

// Station joins a radio link to the store: what the store newly holds
// goes to the router, what the router completes from the air goes to the
// store, and the router's frames go to the link one at a time. It is the
// I/O edge around the Router.
type Station struct {
	link   Link
	store  *store.Store
	log    *slog.Logger
	region lora.Region
	preset string

	mu     sync.Mutex // guards router
	router *Router
	up     bool // the link was ready when last looked at
	// reopened and reboots are the link's counts when last looked at: a
	// link that went down and came back, or a board that restarted,
	// between two looks lost what it held as surely as one seen down.
	reopened, reboots int
	stored            int // envelopes from the air the store took as new
	refused           int
}

// StationConfig configures a Station. Router.Messages is set by the
// station (the store).
type StationConfig struct {
	Router RouterConfig
	// Preset names Router.Modem, for the status.
	Preset string
	Logger *slog.Logger
}

// NewStation returns a station for l and st; Run starts it.
func NewStation(l Link, st *store.Store, cfg StationConfig) *Station {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Router.Messages = storeMessages{st}
	if m, ok := l.(interface{ MaxFrame() int }); ok && cfg.Router.MaxFrame == 0 {
		// A link that carries less than a LoRa frame (an RNode keeps a
		// byte for its header, Meshtastic 233): fragments fit it.
		cfg.Router.MaxFrame = m.MaxFrame()
	}
	if a, ok := l.(interface{ Airtime(n int) time.Duration }); ok && cfg.Router.Airtime == nil {
		// What the link adds on air (a board's header, a device's
		// packet) counts against the budget too.
		cfg.Router.Airtime = a.Airtime
	}
	return &Station{link: l, store: st, log: cfg.Logger, region: cfg.Router.Region, preset: cfg.Preset,
		router: NewRouter(cfg.Router)}
}

// subscription is how many new messages may wait for the station before
// it lags; a lagging station resubscribes, and repair covers the gap.
const subscription = 256

// notReadyPoll is how often a station whose link is down looks again.
const notReadyPoll = 500 * time.Millisecond

// Run runs the link and the station until ctx ends.
func (s *Station) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.link.Run(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("radio link stopped", "err", err)
		}
	})
	defer func() { cancel(); wg.Wait() }() // however Run ends, the link stops

	sub := s.store.Subscribe(subscription)
	defer func() { sub.Close() }()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case rec, ok := <-sub.C:
			if !ok {
				if err := sub.Err(); errors.Is(err, store.ErrClosed) {
					return nil
				}
				s.log.Warn("radio fell behind the store: repair will cover what it missed", "err", sub.Err())
				sub = s.store.Subscribe(subscription)
				continue
			}
			s.mu.Lock()
			err := s.router.Stored(time.Now(), rec.Envelope.Raw())
			s.mu.Unlock()
			if err != nil {
				s.log.Warn("radio cannot send a message", "id", rec.Envelope.ID(), "err", err)
			}
		case p := <-s.link.Received():
			s.mu.Lock()
			envs := s.router.Heard(p.At, p.Payload)
			s.mu.Unlock()
			for _, env := range envs {
				s.put(ctx, env)
			}
		case end := <-s.link.Done():
			s.mu.Lock()
			s.router.Done(end)
			s.mu.Unlock()
		case <-timer.C:
		}
		timer.Reset(s.pump())
		s.markLeft(ctx)
	}
}

// markLeft records the messages the router has put on air in full.
func (s *Station) markLeft(ctx context.Context) {
	s.mu.Lock()
	ids := s.router.Left()
	s.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	if err := s.store.MarkLeft(ctx, ids); err != nil && ctx.Err() == nil {
		s.log.Warn("radio: recording sent messages failed", "err", err)
	}
}

// put stores an envelope from the air. Bad ones (a forged signature, a
// message from the future) are refused here and go no further.
func (s *Station) put(ctx context.Context, env []byte) {
	res, err := s.store.Put(ctx, env)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.refused++
		s.log.Info("radio: envelope refused", "err", err)
		return
	}
	if res.New {
		s.stored++
	}
}

// pump hands the link the router's next frame, if the link is up, and
// returns when to look again.
func (s *Station) pump() time.Duration {
	ls := s.link.Status()
	ready := ls.State == "ready"
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	restarted := ls.Reopened != s.reopened || ls.Reboots != s.reboots
	s.reopened, s.reboots = ls.Reopened, ls.Reboots
	if s.up && (!ready || restarted) {
		// What the board held is gone with it: the end of the frame in
		// flight will never come. Waited for, it would be taken at its
		// deadline, and every end after it for the frame before.
		s.router.Reset(now)
	}
	if !ready {
		s.up = false
		return notReadyPoll
	}
	s.up = true
	frame, wait := s.router.Next(now)
	if frame != nil {
		if err := s.link.Send(frame); err != nil {
			s.router.Done(now) // never went out
			s.log.Warn("radio: frame not sent", "err", err)
			return 0
		}
		// The link's Done wakes us; should it never come (a board
		// unplugged mid-frame), the router's deadline for the frame does.
		_, wait = s.router.Next(now)
	}
	if wait < 0 {
		return time.Hour
	}
	return wait
}

// StationStatus is what a station shows in the node's status.
type StationStatus struct {
	link.Status
	Region string       `json:"region"`
	Preset string       `json:"preset"`
	Router RouterStatus `json:"router"`
	// Stored: envelopes from the air the store took as new; Refused: those
	// it refused (bad signatures, ...).
	Stored  int `json:"stored"`
	Refused int `json:"refused"`
}

// Status reports the station.
func (s *Station) Status() StationStatus {
	ls := s.link.Status()
	s.mu.Lock()
	defer s.mu.Unlock()
	return StationStatus{Status: ls, Region: s.region.Name, Preset: s.preset, Router: s.router.Status(time.Now()),
		Stored: s.stored, Refused: s.refused}
}

// storeMessages is the store as the router reads it.
type storeMessages struct{ st *store.Store }

func (m storeMessages) Window(from, to int64, max int) ([]message.ID, error) {
	var out []message.ID
	err := m.st.Items(from, message.ID{}, func(created int64, id message.ID) bool {
		if created >= to || len(out) >= max {
			return false
		}
		out = append(out, id)
		return true
	})
	return out, err
}

func (m storeMessages) Envelope(id message.ID) ([]byte, error) {
	rec, err := m.st.Get(id)
	if err != nil {
		return nil, fmt.Errorf("radio: %w", err)
	}
	return rec.Envelope.Raw(), nil
}

func (m storeMessages) Has(id message.ID) (bool, error) { return m.st.Has(id) }

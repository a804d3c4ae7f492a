package lifeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"time"

	"lifeline/clock"
)

// built is the time the source was committed, unix seconds (make build
// sets it with -ldflags -X from git): no clock earlier than that is right.
// Only the linker sets it.
var built = ""

// buildTime is the earliest time this binary can be running at: the commit
// time make build records, else the one Go records (vcs.time), else zero.
func buildTime() time.Time {
	if s, err := strconv.ParseInt(built, 10, 64); err == nil && s > 0 {
		return time.Unix(s, 0)
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t
				}
			}
		}
	}
	return time.Time{}
}

// ClockFile, in the data directory, is the node's clock as saved: the time
// it last saved (the next start never trusts an earlier clock) and the last
// time it signed with (its stamps continue after it). Written every
// clockSaveInterval and at shutdown, like fake-hwclock, but of the time the
// node had learnt, not the system's.
const ClockFile = "clock.json"

const clockSaveInterval = time.Minute

type savedClock struct {
	// Saved and LastStamp are unix milliseconds.
	Saved     int64 `json:"saved"`
	LastStamp int64 `json:"last_stamp"`
}

// newClock makes the node's clock. Its floor is the build's time or the
// time last saved, whichever is later. A node whose system clock is the
// real one asks the kernel whether it is synchronised; a hub's is trusted
// as if it were (a hub is a server whose operator keeps NTP running;
// `lifeline doctor` checks). A clock injected by a test or by
// LIFELINE_CLOCK_SKEW is never synchronised.
func newClock(cfg Config, injected bool) (*clock.Clock, error) {
	saved, err := loadClock(filepath.Join(cfg.DataDir, ClockFile))
	if err != nil {
		return nil, err
	}
	floor := buildTime()
	if t := time.UnixMilli(saved.Saved); saved.Saved > 0 && t.After(floor) {
		floor = t
	}
	opts := clock.Options{System: cfg.Now, Floor: floor}
	if saved.LastStamp > 0 {
		opts.LastStamp = time.UnixMilli(saved.LastStamp)
	}
	switch {
	case cfg.Role == RoleHub:
		opts.Synced = func() bool { return true }
	case cfg.ClockSynced != nil:
		opts.Synced = cfg.ClockSynced
	case !injected:
		opts.Synced = clock.SystemSynced
	}
	return clock.New(opts), nil
}

// maxClockFile bounds what loadClock reads: the file is one short line.
const maxClockFile = 4096

// loadClock reads the saved clock; a missing file is a first start. A
// damaged one is ignored with the zero value: the floor then falls back to
// the build's time, which is safe.
func loadClock(path string) (savedClock, error) {
	var c savedClock
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("clock: %w", err)
	}
	if len(b) > maxClockFile || json.Unmarshal(b, &c) != nil || c.Saved < 0 || c.LastStamp < 0 {
		return savedClock{}, nil
	}
	return c, nil
}

// saveClock writes the clock's time and last stamp, replacing the file
// whole (replaceFile).
func saveClock(path string, c *clock.Clock) error {
	sc := savedClock{Saved: c.Now().UnixMilli()}
	if last := c.LastStamp(); !last.IsZero() {
		sc.LastStamp = last.UnixMilli()
	}
	b, err := json.Marshal(sc)
	if err != nil {
		return err
	}
	if err := replaceFile(path, append(b, '\n')); err != nil {
		return fmt.Errorf("save clock: %w", err)
	}
	return nil
}

// clockLoop saves the clock every clockSaveInterval and at shutdown (but
// not after a wipe: the data directory must stay empty), and logs when
// the source it follows changes.
func (n *Node) clockLoop(ctx context.Context, wiped <-chan struct{}) {
	path := filepath.Join(n.cfg.DataDir, ClockFile)
	t := time.NewTicker(clockSaveInterval)
	defer t.Stop()
	last := n.clock.Status()
	n.log.Info("clock", "source", last.Quality, "offset", last.Offset.Round(time.Millisecond))
	for {
		select {
		case <-ctx.Done():
			select {
			case <-wiped:
			default:
				if err := saveClock(path, n.clock); err != nil {
					n.log.Warn("clock not saved", "err", err)
				}
			}
			return
		case <-wiped:
			return
		case <-t.C:
		}
		st := n.clock.Status()
		if st.Quality != last.Quality || (st.Offset-last.Offset).Abs() > time.Second {
			n.log.Info("clock", "source", st.Quality, "via", st.Via, "sources", st.Sources,
				"offset", st.Offset.Round(time.Millisecond), "uncertainty", st.Uncertainty.Round(time.Millisecond))
		}
		if st.Stepped != last.Stepped {
			n.log.Warn("the node's clock had been ahead by more than 30 minutes: what it signs now is dated earlier than what it signed before",
				"stepped_back", st.Stepped.Round(time.Second))
		}
		last = st
		select {
		case <-wiped:
			return
		default:
		}
		if err := saveClock(path, n.clock); err != nil {
			n.log.Warn("clock not saved", "err", err)
		}
	}
}

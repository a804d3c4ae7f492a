package mesh

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// The uplink is this node's path to the internet, as far as Lifeline can
// tell: a connection to one of the hubs it was given. The monitor keeps one
// hub connected when it can, and reports every change.
//
// uplinkState is the monitor's logic, driven by the caller with the outcome
// of each probe; probing (dialling, pinging) is uplinkLoop's I/O.

// UplinkEvent is a change of the uplink, as the monitor detected it.
type UplinkEvent struct {
	Up bool
	// At is when the change was detected: within one probe period of the
	// real change. The times are the node's clock's (Config.Clock).
	At time.Time
	// LastUp is the last moment the uplink was known to work before the
	// loss (zero if it never worked since the node started). A gain
	// carries it too.
	LastUp time.Time
	// Since, for a gain, is when the loss this ends was detected (zero if
	// the uplink had not worked since the node started either).
	Since time.Time
	// Hub, for a gain, is the hub reached.
	Hub peer.ID
	// Peers is how many other peers (not hubs) were connected.
	Peers int
}

// UplinkStatus is the uplink part of the node status.
type UplinkStatus struct {
	Hubs      int       `json:"hubs"`  // configured
	State     string    `json:"state"` // "up", "down", or "unknown" before the first probe
	Hub       string    `json:"hub,omitempty"`
	Since     time.Time `json:"since,omitzero"` // of the current state
	LastUp    time.Time `json:"last_up,omitzero"`
	LastProbe time.Time `json:"last_probe,omitzero"`
	NextProbe time.Time `json:"next_probe,omitzero"`
	Failures  int       `json:"failures"` // failed probes in a row
}

// uplinkState tracks the uplink across probes.
type uplinkState struct {
	period  time.Duration // between probes while up, and the longest wait while down
	known   bool
	up      bool
	hub     peer.ID
	since   time.Time // of the current state
	lastUp  time.Time
	last    time.Time // last probe
	next    time.Time
	fails   int
	minWait time.Duration
}

func newUplinkState(period time.Duration) *uplinkState {
	return &uplinkState{period: period, minWait: min(time.Second, period)}
}

// probed records a probe's outcome at now: hub is the hub reached, or ""
// for none. It returns the change this makes, if any, and when to probe
// next: after period while up; while down after 1 s, doubling up to period,
// so a node that stays offline costs a few dials a minute.
func (u *uplinkState) probed(now time.Time, hub peer.ID, peers int) (*UplinkEvent, time.Time) {
	var ev *UplinkEvent
	switch {
	case hub != "" && (!u.known || !u.up):
		ev = &UplinkEvent{Up: true, At: now, Hub: hub, Peers: peers, LastUp: u.lastUp}
		if u.known {
			ev.Since = u.since
		}
		u.since = now
	case hub == "" && (!u.known || u.up):
		ev = &UplinkEvent{Up: false, At: now, LastUp: u.lastUp, Peers: peers}
		u.since = now
	}
	u.known, u.up, u.hub, u.last = true, hub != "", hub, now
	wait := u.period
	if u.up {
		u.lastUp, u.fails = now, 0
	} else {
		wait = min(u.minWait<<min(u.fails, 16), u.period)
		u.fails++
	}
	u.next = now.Add(wait)
	return ev, u.next
}

func (u *uplinkState) status(hubs int) UplinkStatus {
	s := UplinkStatus{Hubs: hubs, State: "unknown", Since: u.since, LastUp: u.lastUp, LastProbe: u.last, NextProbe: u.next, Failures: u.fails}
	if u.known {
		s.State = "down"
		if u.up {
			s.State, s.Hub = "up", u.hub.String()
		}
	}
	return s
}

// uplinkLoop keeps a hub connected and reports the uplink's changes to
// Config.OnUplink. A hub that stops answering pings is disconnected; a
// disconnection from a hub triggers a probe at once.
func (m *Mesh) uplinkLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-m.hubLost:
			// At once, but not more than once a second: a hub that
			// accepts connections and then drops them must not make this
			// a busy loop.
			m.mu.Lock()
			earliest := m.uplink.last.Add(m.uplink.minWait)
			m.mu.Unlock()
			if wait := time.Until(earliest); wait > 0 {
				timer.Reset(wait)
				continue
			}
		}
		hub := m.probeHubs(ctx)
		if ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		ev, next := m.uplink.probed(time.Now(), hub, m.localPeers())
		m.mu.Unlock()
		if hub != "" && ev != nil {
			// The hub's time before the record (dated by the probe, on
			// the system clock): a field node that booted days behind
			// would otherwise date the uplink's return wrong.
			if err := m.queryTime(ctx, hub); err != nil && ctx.Err() == nil {
				m.log.Debug("time query failed", "hub", hub, "err", err)
			}
		}
		if ev != nil {
			// The monitor paces itself by the system clock; the record
			// is dated by the node's clock, which knows what the system
			// clock is off by.
			off := m.cfg.Clock.Status().Offset
			for _, t := range []*time.Time{&ev.At, &ev.LastUp, &ev.Since} {
				if !t.IsZero() {
					*t = t.Add(off)
				}
			}
			if ev.Up {
				m.log.Info("uplink up", "hub", ev.Hub)
				// Reconcile both ways now, whoever dialled.
				m.kickPeer(ev.Hub)
			} else {
				m.log.Warn("uplink down", "last_up", ev.LastUp)
			}
			if m.cfg.OnUplink != nil {
				m.cfg.OnUplink(*ev)
			}
		}
		timer.Reset(time.Until(next))
	}
}

// probeHubs returns a hub that answers a ping: a connected one, else the
// first that can be dialled. "" if none. A connection that does not carry a
// ping (a hub refusing this node, a captive portal, a link that died
// silently) is closed and does not count.
func (m *Mesh) probeHubs(ctx context.Context) peer.ID {
	// Not tied to the probe period: on a loaded satellite link a ping
	// can queue behind a sync for seconds, and a lost ping closes the
	// connection.
	const timeout = 10 * time.Second
	answers := func(h peer.ID) bool {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		res := <-ping.Ping(pctx, m.host, h)
		if res.Error != nil {
			m.log.Debug("hub does not answer pings: disconnecting", "hub", h, "err", res.Error)
			m.host.Network().ClosePeer(h)
			return false
		}
		return true
	}
	for _, h := range m.hubs {
		if m.host.Network().Connectedness(h.ID) == network.Connected && answers(h.ID) {
			return h.ID
		}
	}
	for _, h := range m.hubs {
		if m.host.Network().Connectedness(h.ID) == network.Connected {
			continue // just failed a ping
		}
		// Direct, and past the swarm's dial backoff: a hub that was down a
		// moment ago is exactly what the probe is for.
		dctx, cancel := context.WithTimeout(network.WithForceDirectDial(ctx, "uplink probe"), timeout)
		err := m.host.Connect(dctx, h)
		cancel()
		if err != nil {
			m.log.Debug("hub unreachable", "hub", h.ID, "err", err)
			continue
		}
		if answers(h.ID) {
			return h.ID
		}
	}
	return ""
}

// localPeers counts connected peers that are not hubs. Called with mu held.
func (m *Mesh) localPeers() int {
	n := 0
	for _, p := range m.host.Network().Peers() {
		if !m.isHub(p) {
			n++
		}
	}
	return n
}

func (m *Mesh) isHub(p peer.ID) bool {
	for _, h := range m.hubs {
		if h.ID == p {
			return true
		}
	}
	return false
}

// disconnected wakes the uplink monitor when a hub's last connection
// closes.
func (m *Mesh) disconnected(_ network.Network, c network.Conn) {
	p := c.RemotePeer()
	if !m.isHub(p) || m.host.Network().Connectedness(p) == network.Connected {
		return
	}
	select {
	case m.hubLost <- struct{}{}:
	default:
	}
}

// Uplink reports the uplink's state; State is "none" without hubs.
func (m *Mesh) Uplink() UplinkStatus {
	if len(m.hubs) == 0 {
		return UplinkStatus{State: "none"}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.uplink.status(len(m.hubs))
}

// Package link holds what every radio driver shares with the node: a frame
// as received, and the status a driver shows. Drivers (radio/rnode,
// radio/tnc) produce these; the node's radio station (package radio)
// consumes them through its own Link interface.
package link

import (
	"sync"
	"time"
)

// Packet is a frame from the air.
type Packet struct {
	Payload []byte
	// RSSI (dBm) and SNR (dB) of the frame, when the device reported them
	// (HasStats).
	RSSI     int
	SNR      float64
	HasStats bool
	At       time.Time
}

// Status is what a driver shows.
type Status struct {
	Driver    string    `json:"driver"` // rnode, kiss
	Device    string    `json:"device"`
	State     string    `json:"state"` // down, detecting, configuring, ready, failed
	Since     time.Time `json:"since"`
	Platform  byte      `json:"platform,omitempty"`
	Firmware  string    `json:"firmware,omitempty"`
	Received  int       `json:"received"`
	Sent      int       `json:"sent"`
	Dropped   int       `json:"dropped"` // received frames nobody took in time
	Reopened  int       `json:"reopened"`
	Reboots   int       `json:"reboots"`
	LastRSSI  int       `json:"last_rssi,omitempty"`
	LastSNR   float64   `json:"last_snr,omitempty"`
	LastError string    `json:"last_error,omitempty"`
}

// Live is a driver's status as it changes, safe for concurrent use: the
// driver updates it, the node reads it.
type Live struct {
	mu sync.Mutex
	s  Status
}

// NewLive returns a Live starting at s.
func NewLive(s Status) *Live { return &Live{s: s} }

// Status returns a copy of the status.
func (l *Live) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s
}

// Update changes the status under the lock.
func (l *Live) Update(f func(*Status)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.s)
}

// SetState changes the state, and Since if it is a change.
func (l *Live) SetState(state string) {
	l.Update(func(s *Status) {
		if s.State != state {
			s.State, s.Since = state, time.Now()
		}
	})
}

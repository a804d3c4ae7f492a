// Package link holds what every radio driver shares with the node: a frame
// as received, and the status a driver shows. Drivers (radio/rnode,
// radio/tnc) produce these; the node's radio station (package radio)
// consumes them through its own Link interface.
package link

import (
	"maps"
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
	// Errors counts what the device reported as failed, by its meaning
	// ("queue full", "duty-cycle limit", ...).
	Errors map[string]int `json:"errors,omitempty"`
	// Warning is a problem with the device's setup the operator should
	// fix, said as what to do ("the device drops Lifeline's packets: set
	// its rebroadcast mode to ALL").
	Warning string `json:"warning,omitempty"`
	// Board is the device's own account of the channel, where it gives
	// one.
	Board *BoardStats `json:"board,omitempty"`
}

// BoardStats is what a board reports of its airtime and the channel.
type BoardStats struct {
	// AirtimeShort and AirtimeLong: the share of time it transmitted,
	// over its short window (seconds) and its long one (an hour).
	AirtimeShort float64 `json:"airtime_short"`
	AirtimeLong  float64 `json:"airtime_long"`
	// ChannelShort and ChannelLong: the share of time the channel was
	// busy (anyone transmitting).
	ChannelShort float64   `json:"channel_short"`
	ChannelLong  float64   `json:"channel_long"`
	NoiseFloor   int       `json:"noise_floor_dbm,omitempty"`
	At           time.Time `json:"at"`
}

// CountError adds one to the device's count of err (a meaning).
func (s *Status) CountError(meaning string) {
	if s.Errors == nil {
		s.Errors = map[string]int{}
	}
	s.Errors[meaning]++
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
	s := l.s
	if s.Errors != nil {
		s.Errors = maps.Clone(s.Errors)
	}
	if s.Board != nil {
		b := *s.Board
		s.Board = &b
	}
	return s
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

package radio

import (
	"errors"
	"fmt"
	"time"

	"lifeline/message"
	"lifeline/radio/lora"
)

// Scheduler decides what the radio sends next: the highest priority first
// (alerts before everything), in arrival order within a priority, and
// never beyond the duty-cycle budget. It is a pure state machine: the
// caller passes the time, sends what Next returns, and sleeps for the wait
// it is told.
//
// Priority is strict: while the head of the queue waits for the budget,
// nothing behind it jumps ahead, even a shorter frame that would fit. An
// alert is never held back by a chat message, and the wait ends as soon as
// the budget allows the alert.
type Scheduler struct {
	airtime  func(n int) time.Duration
	duty     *lora.DutyCycle
	maxDwell time.Duration
	maxQueue int
	queue    []*Queued // sorted: priority descending, then seq
	seq      uint64

	// Counters since creation.
	Sent, Refused, Cancelled int
}

// Queued is a frame waiting to be sent.
type Queued struct {
	Frame    []byte
	Priority message.Priority
	// Key names what the frame carries (a message's ID), so that a
	// rebroadcast made unnecessary can be cancelled.
	Key      string
	Enqueued time.Time
	Airtime  time.Duration
	seq      uint64
}

// ErrQueueFull: the queue holds maxQueue frames of at least this priority.
var ErrQueueFull = errors.New("radio queue full")

// NewScheduler returns a scheduler for region's rules and modem, keeping at
// most maxQueue frames.
func NewScheduler(region lora.Region, modem lora.Modem, maxQueue int) *Scheduler {
	return newScheduler(region, modem.Airtime, maxQueue)
}

// newScheduler is NewScheduler for a link whose frames cost airtime on
// air (see RouterConfig.Airtime).
func newScheduler(region lora.Region, airtime func(int) time.Duration, maxQueue int) *Scheduler {
	return &Scheduler{
		airtime:  airtime,
		duty:     &lora.DutyCycle{Window: region.Window, Fraction: region.DutyCycle},
		maxDwell: region.MaxDwell,
		maxQueue: maxQueue,
	}
}

// Enqueue adds a frame. A frame too long for the region (its airtime over
// the dwell limit or the whole budget) is refused. When the queue is full
// the newest frame of the lowest priority gives way, if it is below the
// new frame's; otherwise the new frame is refused with ErrQueueFull.
func (s *Scheduler) Enqueue(now time.Time, frame []byte, p message.Priority, key string) error {
	air := s.airtime(len(frame))
	switch {
	case len(frame) == 0 || len(frame) > MaxFrame:
		return fmt.Errorf("radio: frame of %d bytes", len(frame))
	case s.maxDwell > 0 && air > s.maxDwell:
		return fmt.Errorf("radio: a %d-byte frame takes %v on air, the region allows %v", len(frame), air, s.maxDwell)
	case s.duty.Fraction < 1 && air > s.duty.Budget():
		return fmt.Errorf("radio: a %d-byte frame takes %v on air, more than the whole budget of %v", len(frame), air, s.duty.Budget())
	}
	if len(s.queue) >= s.maxQueue {
		last := s.queue[len(s.queue)-1] // lowest priority, newest
		if last.Priority >= p {
			s.Refused++
			return fmt.Errorf("%w: %d frames of priority %s or higher wait", ErrQueueFull, len(s.queue), p)
		}
		s.queue = s.queue[:len(s.queue)-1]
		s.Refused++
	}
	s.seq++
	q := &Queued{Frame: frame, Priority: p, Key: key, Enqueued: now, Airtime: air, seq: s.seq}
	i := len(s.queue)
	for i > 0 && s.queue[i-1].Priority < p {
		i--
	}
	s.queue = append(s.queue, nil)
	copy(s.queue[i+1:], s.queue[i:])
	s.queue[i] = q
	return nil
}

// Next returns the frame to send now, and records its airtime against the
// budget; or nil and how long to wait before asking again (negative: the
// queue is empty), with the reason.
func (s *Scheduler) Next(now time.Time) (*Queued, time.Duration, string) {
	if len(s.queue) == 0 {
		return nil, -1, "queue empty"
	}
	head := s.queue[0]
	if w := s.duty.Wait(now, head.Airtime); w > 0 {
		return nil, w, fmt.Sprintf("duty cycle: %v of %v used in the last %v; a %s frame of %v waits %v",
			s.duty.Used(now).Round(time.Millisecond), s.duty.Budget(), s.duty.Window, head.Priority,
			head.Airtime.Round(time.Millisecond), w.Round(time.Millisecond))
	}
	s.queue = s.queue[1:]
	s.duty.Record(now, head.Airtime)
	s.Sent++
	return head, 0, ""
}

// Done reports that the frame Next returned last finished on air at end.
// Hand the radio one frame at a time and report each end: the budget is
// then counted where the frames really were.
func (s *Scheduler) Done(end time.Time) { s.duty.Ended(end) }

// Has reports whether a frame with key waits.
func (s *Scheduler) Has(key string) bool {
	for _, q := range s.queue {
		if q.Key == key {
			return true
		}
	}
	return false
}

// Cancel removes the queued frames with key, and reports how many.
func (s *Scheduler) Cancel(key string) int {
	n := 0
	kept := s.queue[:0]
	for _, q := range s.queue {
		if q.Key == key {
			n++
			continue
		}
		kept = append(kept, q)
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	s.Cancelled += n
	return n
}

// SchedulerStatus is what the scheduler shows: what waits, and why.
type SchedulerStatus struct {
	Queue      int            `json:"queue"`
	ByPriority map[string]int `json:"by_priority"`
	Used       time.Duration  `json:"airtime_used_ns"`
	Budget     time.Duration  `json:"airtime_budget_ns"`
	Window     time.Duration  `json:"window_ns"`
	Wait       time.Duration  `json:"wait_ns"`
	Why        string         `json:"why,omitempty"`
	Sent       int            `json:"sent"`
	Refused    int            `json:"refused"`
	Cancelled  int            `json:"cancelled"`
}

// Status reports the queue and the budget at now, without changing either.
func (s *Scheduler) Status(now time.Time) SchedulerStatus {
	st := SchedulerStatus{Queue: len(s.queue), ByPriority: map[string]int{}, Used: s.duty.Used(now), Budget: s.duty.Budget(),
		Window: s.duty.Window, Sent: s.Sent, Refused: s.Refused, Cancelled: s.Cancelled}
	for _, q := range s.queue {
		st.ByPriority[q.Priority.String()]++
	}
	if len(s.queue) > 0 {
		if w := s.duty.Wait(now, s.queue[0].Airtime); w > 0 {
			st.Wait = w
			st.Why = fmt.Sprintf("duty cycle: the next frame (%s) fits the budget in %v", s.queue[0].Priority, w.Round(time.Millisecond))
		}
	}
	return st
}

package lora

import "time"

// DutyCycle is a transmit budget: at most Fraction of any Window of time
// on air. It remembers the transmissions still inside the window; memory
// is bounded by the budget over the shortest frame (at 10 % of an hour,
// 6 minutes of airtime: under 10,000 of the shortest frames).
type DutyCycle struct {
	Window   time.Duration
	Fraction float64
	sent     []transmission // oldest first
}

type transmission struct {
	start time.Time
	dur   time.Duration
}

// Budget is the airtime allowed in one window.
func (d *DutyCycle) Budget() time.Duration {
	return time.Duration(float64(d.Window) * d.Fraction)
}

// Used is the airtime of the transmissions in the window ending at now
// (the parts of them inside it).
func (d *DutyCycle) Used(now time.Time) time.Duration {
	d.forget(now)
	return d.usedBetween(now.Add(-d.Window), now)
}

// Wait is how long to wait from now before a transmission of airtime d
// fits the budget: 0 if it fits now. A frame longer than the whole budget
// never fits: Wait returns a negative duration.
//
// Sent at now+w, the frame ends at now+w+airtime, and the window ending
// there must hold at most the budget. As w grows the window's start slides
// over past transmissions (which never overlap: the radio is half-duplex),
// and their airtime leaves it at the rate it slides; so the wait is where
// the start has passed exactly the excess of airtime, counted oldest first.
func (d *DutyCycle) Wait(now time.Time, airtime time.Duration) time.Duration {
	if d.Fraction >= 1 {
		return 0
	}
	room := d.Budget() - airtime
	if room < 0 {
		return -1
	}
	s0 := now.Add(airtime - d.Window) // the window's start for w = 0
	excess := d.usedBetween(s0, now) - room
	if excess <= 0 {
		return 0
	}
	for _, t := range d.sent {
		start, end := t.start, t.start.Add(t.dur)
		if !end.After(s0) {
			continue
		}
		if start.Before(s0) {
			start = s0
		}
		if part := end.Sub(start); part < excess {
			excess -= part
			continue
		}
		return start.Add(excess).Sub(s0)
	}
	return d.Window // not reached: the excess is made of these transmissions
}

// usedBetween is the airtime of past transmissions within [from, to].
func (d *DutyCycle) usedBetween(from, to time.Time) time.Duration {
	var used time.Duration
	for _, t := range d.sent {
		start, end := t.start, t.start.Add(t.dur)
		if start.Before(from) {
			start = from
		}
		if end.After(to) {
			end = to
		}
		if end.After(start) {
			used += end.Sub(start)
		}
	}
	return used
}

// Record notes a transmission of airtime d starting at start.
func (d *DutyCycle) Record(start time.Time, airtime time.Duration) {
	d.forget(start)
	d.sent = append(d.sent, transmission{start: start, dur: airtime})
}

// Ended moves the latest transmission to end at end, if that is later
// than recorded. A host records a frame when it hands it to the board,
// but the board may hold it (listen before talk, its own queue): the
// budget must follow the air. Moving a record later never makes past
// decisions wrong (windows that gain of it hold nothing sent before it),
// and decisions from now on see where the frame really was.
func (d *DutyCycle) Ended(end time.Time) {
	if len(d.sent) == 0 {
		return
	}
	t := &d.sent[len(d.sent)-1]
	if start := end.Add(-t.dur); start.After(t.start) {
		t.start = start
	}
}

// forget drops transmissions that ended before the window ending at now.
func (d *DutyCycle) forget(now time.Time) {
	from := now.Add(-d.Window)
	i := 0
	for i < len(d.sent) && !d.sent[i].start.Add(d.sent[i].dur).After(from) {
		i++
	}
	if i > 0 {
		d.sent = append(d.sent[:0], d.sent[i:]...)
	}
}

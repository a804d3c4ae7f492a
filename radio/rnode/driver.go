package rnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"lifeline/radio/kiss"
	"lifeline/radio/link"
	"lifeline/radio/lora"
	"lifeline/radio/serialport"
)

// DriverConfig configures a Driver.
type DriverConfig struct {
	// Path is the serial device: /dev/ttyUSB0, /dev/ttyACM0, a
	// /dev/serial/by-id/ link (which survives re-plugging into another
	// port), or a pseudo-terminal.
	Path  string
	Baud  int // 115200 if zero
	Radio Config
	// RetryMin and RetryMax bound the wait before reopening a port that
	// failed; 1 s and 30 s if zero.
	RetryMin, RetryMax time.Duration
	// Answer bounds the wait for the board to finish the handshake; 5 s
	// if zero.
	Answer time.Duration
	Logger *slog.Logger
}

// Driver keeps an RNode session running on a serial port: it opens the
// port, detects and configures the board, passes frames both ways, and
// when the port fails (the board unplugged, a cable pulled) or the board
// misbehaves, reports the link down and reopens it with backoff. It sends
// LEAVE when it stops.
type Driver struct {
	cfg   DriverConfig
	modem lora.Modem
	log   *slog.Logger
	rx    chan link.Packet
	tx    chan []byte
	done  chan time.Time

	live *link.Live
}

// rxQueue and txQueue bound the frames waiting each way.
const rxQueue, txQueue = 64, 64

// MTU is the most the board takes in one DATA frame (RNode's hardware
// MTU); it sends more than MaxFrame in two frames on air.
const MTU = 508

// MaxFrame is the most a node sends in one DATA frame: a LoRa frame holds
// 255 bytes, and RNode firmware gives the first to its own header, so a
// longer frame would go on air as two.
const MaxFrame = 254

// serialSlack is added to a frame's airtime when its end is estimated,
// with the board's longest wait before it transmits
// (lora.RNodeMaxWait): the serial line.
const serialSlack = 50 * time.Millisecond

// NewDriver returns a driver; Run starts it.
func NewDriver(cfg DriverConfig) *Driver {
	// Baud and the retry bounds left zero get serialport's defaults,
	// which are the ones documented above.
	if cfg.Answer <= 0 {
		cfg.Answer = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	bw, sf, cr := int(cfg.Radio.Bandwidth), int(cfg.Radio.SF), int(cfg.Radio.CR)
	modem := lora.Modem{Bandwidth: bw, SpreadingFactor: sf, CodingRate: cr, Preamble: 18}
	if modem.Validate() == nil {
		modem.Preamble = lora.RNodePreamble(bw, sf, cr)
	} // else the board refuses the settings, and nothing is sent to time
	return &Driver{cfg: cfg, modem: modem, log: cfg.Logger, rx: make(chan link.Packet, rxQueue), tx: make(chan []byte, txQueue),
		done: make(chan time.Time, txQueue), live: link.NewLive(link.Status{Driver: "rnode", Device: cfg.Path, State: "down", Since: time.Now()})}
}

// Received delivers frames from the air. A frame that waits while the
// channel is full is dropped (and counted): the air does not wait either.
func (d *Driver) Received() <-chan link.Packet { return d.rx }

// Done delivers the time of each transmission's end, as the board reports
// it (STAT_CHTM, on ESP32 and nRF52 boards) or, for a board that does
// not, as its airtime says: the host's duty-cycle accounting follows the
// air, not the serial line, and it hands the board one frame at a time.
func (d *Driver) Done() <-chan time.Time { return d.done }

// Airtime is what a frame of n bytes costs on air through the board: with
// RNode's header byte before it, at the modulation the driver sets and
// RNode's preamble for it. A board that does not report the end of its
// transmissions (AVR boards, and firmware that says no platform) is taken
// to have ended each frame this long after the host handed it over.
func (d *Driver) Airtime(n int) time.Duration { return d.modem.Airtime(n + 1) }

// MaxFrame is the most the node should send in one frame: MaxFrame.
func (d *Driver) MaxFrame() int { return MaxFrame }

// Send queues a payload for the air; it fails if the queue is full or the
// payload is longer than the board's MTU.
func (d *Driver) Send(payload []byte) error {
	if len(payload) == 0 || len(payload) > MTU {
		return fmt.Errorf("rnode: a frame of %d bytes: the board takes 1 to %d", len(payload), MTU)
	}
	select {
	case d.tx <- payload:
		return nil
	default:
		return errors.New("rnode: transmit queue full")
	}
}

// Status returns the driver's status.
func (d *Driver) Status() link.Status { return d.live.Status() }

// Run keeps the link up until ctx ends.
func (d *Driver) Run(ctx context.Context) error {
	port := serialport.Config{Path: d.cfg.Path, Baud: d.cfg.Baud, RetryMin: d.cfg.RetryMin, RetryMax: d.cfg.RetryMax, Logger: d.log}
	serialport.Run(ctx, port, d.session, d.down)
	d.live.SetState("down")
	return nil
}

// down is told why the port or the session failed, before the wait to
// reopen it.
func (d *Driver) down(err error, _ time.Duration) {
	d.live.Update(func(s *link.Status) { s.LastError, s.Reopened = err.Error(), s.Reopened+1 })
	d.live.SetState("down")
}

// session runs on one opening of the port, until it fails or ctx ends. It
// reports whether the board became ready.
func (d *Driver) session(ctx context.Context, port *serialport.Port) (ready bool, err error) {
	s := NewSession(d.cfg.Radio)
	write := func(frames []kiss.Frame) error {
		var b []byte
		for _, f := range frames {
			b = kiss.Append(b, f.Command, f.Data)
		}
		if len(b) == 0 {
			return nil
		}
		_, err := port.Write(b)
		return err
	}
	defer func() {
		if ctx.Err() != nil {
			write([]kiss.Frame{s.Leave()}) // best effort: the host is going; the port closes after this
		}
	}()
	d.live.SetState("detecting")
	if err := write(s.Start()); err != nil {
		return false, err
	}
	deframer := kiss.NewDeframer(MaxKISS)
	answer := time.NewTimer(d.cfg.Answer)
	defer answer.Stop()
	// The ends of frames handed to a board that does not report them,
	// oldest first, and the timer for the first; and the frames handed to
	// a board that does, until their STAT_CHTM.
	var ends endEstimates
	defer ends.stop()
	var handed handovers
	for {
		var txc chan []byte
		if s.State() == Ready {
			txc = d.tx
		}
		select {
		case <-ends.C():
			d.ended(ends.pop(time.Now()))
		case <-ctx.Done():
			return ready, ctx.Err()
		case err := <-port.Failed():
			return ready, err
		case <-answer.C:
			if s.State() != Ready {
				// Say what else it may be: a device on the wrong
				// driver is the likely mistake.
				return false, fmt.Errorf("%s: no RNode answered within %v (state %s): a Meshtastic device needs driver meshtastic, a plain KISS TNC driver kiss",
					d.cfg.Path, d.cfg.Answer, s.State())
			}
		case p := <-txc:
			f, err := s.Transmit(p)
			if err != nil {
				return ready, fmt.Errorf("%s: %w", d.cfg.Path, err)
			}
			// Before the write: the board may start as soon as the
			// bytes arrive, and its end is never sooner than this plus
			// the frame's airtime.
			handedAt := time.Now()
			if err := write([]kiss.Frame{f}); err != nil {
				return ready, err
			}
			d.live.Update(func(st *link.Status) { st.Sent++ })
			if !s.ReportsEnds() {
				// Not before the frame can have ended: an estimate that
				// comes early lets the next frame queue behind it on the
				// board, and the budget would count both too early.
				ends.push(time.Now(), d.maxWait()+d.Airtime(len(p)), d.Airtime(len(p)))
			} else {
				handed.push(handedAt, d.Airtime(len(p)))
			}
		case b := <-port.Incoming():
			for _, f := range deframer.Feed(b) {
				events, out := s.Handle(f)
				for _, ev := range events {
					if err := d.event(ev, answer, &ends, &handed); err != nil {
						return ready, err
					}
					if ev.Kind == EventReady {
						ready = true
					}
				}
				if err := write(out); err != nil {
					return ready, err
				}
				d.live.SetState(s.State().String())
			}
		}
	}
}

// ended reports the end of a transmission to whoever waits for it.
func (d *Driver) ended(at time.Time) {
	select {
	case d.done <- at:
	default: // nobody is taking them: the first few wait, later ones are dropped
	}
}

func (d *Driver) event(ev Event, answer *time.Timer, ends *endEstimates, handed *handovers) error {
	switch ev.Kind {
	case EventReady:
		d.dropStale()
		d.live.Update(func(s *link.Status) {
			s.Platform, s.Firmware, s.LastError = ev.Platform, fmt.Sprintf("%d.%02d", ev.Firmware[0], ev.Firmware[1]), ""
			s.Warning = ""
			if v := int(ev.Firmware[0])*100 + int(ev.Firmware[1]); v < 152 {
				s.Warning = fmt.Sprintf("firmware %s is older than 1.52: update the board (rnodeconf --autoinstall, or flash Lifeline's firmware)", s.Firmware)
			}
		})
		d.log.Info("radio ready", "device", d.cfg.Path, "platform", ev.Platform)
	case EventRebooted:
		d.live.Update(func(s *link.Status) { s.Reboots++ })
		d.log.Warn("radio board rebooted: configuring it again", "device", d.cfg.Path)
		ends.clear() // what it held is gone; the station forgets it too
		handed.clear()
		answer.Reset(d.cfg.Answer)
	case EventReceived:
		// A board that heard a frame end just now was not sending
		// (half duplex), and waits for the channel again: what it holds
		// ends no sooner than that.
		ends.heard(time.Now(), d.maxWait())
		r := link.Packet{Payload: ev.Frame, RSSI: ev.RSSI, SNR: ev.SNR, HasStats: ev.HasStats, At: time.Now()}
		select {
		case d.rx <- r:
			d.live.Update(func(s *link.Status) {
				s.Received++
				if r.HasStats {
					s.LastRSSI, s.LastSNR = r.RSSI, r.SNR
				}
			})
		default:
			d.live.Update(func(s *link.Status) { s.Dropped++ })
		}
	case EventTxDone:
		// A board of a platform not known to report ends, which does:
		// its report ends the oldest frame estimated, and the estimates
		// stop (the session now expects reports). Otherwise the report
		// ends the oldest frame handed over, if it can be its end.
		now := time.Now()
		if ends.pending() {
			ends.pop(time.Time{})
			d.ended(now)
		} else if handed.end(now) {
			d.ended(now)
		}
		b := ev.Board
		b.At = time.Now()
		d.live.Update(func(s *link.Status) { s.Board = &b })
	case EventBoardError:
		d.log.Warn("radio board error", "device", d.cfg.Path, "err", ev.Err)
		d.live.Update(func(s *link.Status) { s.LastError = ev.Err.Error(); s.CountError(ev.Meaning) })
		if ev.Lost {
			// The frame will not go on air: waiting for its end would
			// only hold back the next. Repair covers the loss.
			if ends.pending() {
				ends.pop(time.Time{})
			} else {
				handed.pop()
			}
			d.ended(time.Now())
		}
	case EventFailed:
		return ev.Err
	}
	return nil
}

// maxWait is the longest the board waits on a clear channel before it
// transmits, and the serial line before that.
func (d *Driver) maxWait() time.Duration {
	return serialSlack + lora.RNodeMaxWait(d.modem.Bandwidth, d.modem.SpreadingFactor)
}

// handovers are the frames handed to a board that reports the ends of its
// transmissions (STAT_CHTM), oldest first, until their ends. RNode firmware
// on ESP32 and nRF52 boards sends STAT_CHTM after each transmission, but
// also about once a second whatever it does, as it updates its channel
// statistics (UTIL_UPDATE_INTERVAL_MS, 1000, in its Config.h): a report
// that comes sooner after a frame was handed over than the frame's airtime
// cannot be its end. Taken as one, it would let the next frame queue behind
// it on the board, and the budget would count both too early.
type handovers struct {
	at  []time.Time
	air []time.Duration
}

// maxHandovers bounds the frames remembered: the station hands over one
// at a time, and one it takes as ended without a report (its deadline)
// is forgotten here by the reports that follow.
const maxHandovers = txQueue

// push adds a frame of airtime air handed over at now.
func (h *handovers) push(now time.Time, air time.Duration) {
	if len(h.at) == maxHandovers {
		h.pop()
	}
	h.at, h.air = append(h.at, now), append(h.air, air)
}

// end reports whether a STAT_CHTM at now is the end of the oldest frame
// (its airtime has passed since it was handed over), and forgets that
// frame if it is.
func (h *handovers) end(now time.Time) bool {
	if len(h.at) == 0 || now.Sub(h.at[0]) < h.air[0] {
		return false
	}
	h.pop()
	return true
}

// pop forgets the oldest frame: it will not go on air.
func (h *handovers) pop() {
	if len(h.at) > 0 {
		h.at, h.air = h.at[1:], h.air[1:]
	}
}

func (h *handovers) clear() { h.at, h.air = nil, nil }

// endEstimates are the estimated ends of frames handed to a board that
// does not report them, oldest first, with a timer for the first.
type endEstimates struct {
	at    []time.Time
	air   []time.Duration // each frame's airtime
	timer *time.Timer
}

// heard moves the first estimate to no sooner than the board's longest
// wait and its frame's airtime after now, when the board heard a frame.
func (e *endEstimates) heard(now time.Time, wait time.Duration) {
	if len(e.at) == 0 {
		return
	}
	if at := now.Add(wait + e.air[0]); at.After(e.at[0]) {
		e.at[0] = at
		e.arm()
	}
}

// pending reports whether an estimate waits.
func (e *endEstimates) pending() bool { return len(e.at) > 0 }

// C fires at the first estimated end; nil when there is none.
func (e *endEstimates) C() <-chan time.Time {
	if len(e.at) == 0 || e.timer == nil {
		return nil
	}
	return e.timer.C
}

// push adds a frame handed over at now, ending at the latest after
// within, of which air on air.
func (e *endEstimates) push(now time.Time, within, air time.Duration) {
	e.at, e.air = append(e.at, now.Add(within)), append(e.air, air)
	if len(e.at) == 1 {
		e.arm()
	}
}

// pop removes the oldest estimate and returns it, or now when now is not
// zero (a timer that fired: the end is when it fired).
func (e *endEstimates) pop(now time.Time) time.Time {
	if len(e.at) == 0 {
		return now
	}
	at := e.at[0]
	e.at, e.air = e.at[1:], e.air[1:]
	e.arm()
	if !now.IsZero() {
		return now
	}
	return at
}

func (e *endEstimates) arm() {
	if e.timer != nil {
		e.timer.Stop()
	}
	if len(e.at) == 0 {
		return
	}
	d := time.Until(e.at[0])
	if e.timer == nil {
		e.timer = time.NewTimer(d)
		return
	}
	e.timer.Reset(d)
}

func (e *endEstimates) clear() {
	e.at, e.air = nil, nil
	e.arm()
}

func (e *endEstimates) stop() {
	if e.timer != nil {
		e.timer.Stop()
	}
}

// dropStale empties the transmit queue when the device (re)starts: frames
// handed over before it was lost were given up by the station, which
// resets when it sees the link down; sent now, each one's end would be
// taken for a later frame's. Repair brings what they carried.
func (d *Driver) dropStale() {
	for {
		select {
		case <-d.tx:
		default:
			return
		}
	}
}

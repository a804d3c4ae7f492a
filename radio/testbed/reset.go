package testbed

import "time"

// Reset presses board i's reset button: its firmware starts again behind
// the same terminal, which the host keeps open (a board whose USB serial
// chip is not the microcontroller itself, as on most ESP32 boards: the
// port stays while the device reboots). What the device had queued is
// lost; a transmission it had started stays on air, and its end is no
// longer reported to it.
func (tb *Testbed) Reset(i int) {
	tb.mu.Lock()
	b := tb.boards[i]
	if b.off {
		tb.mu.Unlock()
		return
	}
	b.chip.sending = false
	b.dev = tb.firmware[i](b.chip)
	boot := b.dev.Boot(time.Now())
	tb.mu.Unlock()
	b.write(boot)
}

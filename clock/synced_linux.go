package clock

import "golang.org/x/sys/unix"

// SystemSynced reports whether the kernel says the system clock is
// synchronised: an NTP daemon (systemd-timesyncd, chrony, ntpd) clears
// STA_UNSYNC once it has disciplined the clock, and adjtimex(2) then
// returns TIME_OK rather than TIME_ERROR. A board that booted with the
// time it saved at shutdown, and has had no NTP since, is unsynchronised.
func SystemSynced() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx) // modes 0: read only
	return err == nil && state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
}

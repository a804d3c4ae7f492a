package message

import "time"

// DefaultTTL is the lifetime of an envelope that carries no TTL byte.
const DefaultTTL = 30 * 24 * time.Hour

// MaxTTL is the longest lifetime a TTL code can express (code 0xFF).
var MaxTTL = TTLFromCode(0xFF)

// TTL codes are a one-byte minifloat in minutes: exponent e = code>>4,
// mantissa m = code&15, minutes = (16+m)<<e - 16. Code 0 is 0 minutes; code 1
// is 1 minute; the step is at most 1/16 of the value, and 0xFF is about 705
// days. One byte keeps the envelope within its overhead budget while still
// letting a sender say "this matters for an hour" or "for a year".

// TTLFromCode returns the lifetime a TTL code stands for.
func TTLFromCode(code uint8) time.Duration {
	e, m := uint(code>>4), int64(code&15)
	return time.Duration((16+m)<<e-16) * time.Minute
}

// TTLCode returns the smallest code whose lifetime is at least d, and
// false if d is longer than MaxTTL. A d of zero or less gives code 0.
func TTLCode(d time.Duration) (uint8, bool) {
	if d <= 0 {
		return 0, true
	}
	for c := 0; c <= 0xFF; c++ {
		if TTLFromCode(uint8(c)) >= d {
			return uint8(c), true
		}
	}
	return 0xFF, false
}

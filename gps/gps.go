// Package gps reads the time from a GPS receiver on a serial port: the
// NMEA 0183 RMC sentence ("recommended minimum"), which every receiver
// sends once a second, with the UTC date and time of the fix and whether
// the fix is valid. A kit with a GPS board has the one clock that needs
// neither the internet nor a phone.
//
// Imports: the standard library and radio/serialport (which keeps the port
// open and reopens it when the board is unplugged).
package gps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"lifeline/radio/serialport"
)

// DefaultBaud is the line speed NMEA 0183 specifies, and most GPS boards
// (u-blox, MediaTek, Quectel) use out of the box.
const DefaultBaud = 9600

// MaxSentence is the longest NMEA sentence: 82 characters with "$" and
// CR LF, by the standard. Longer lines are not NMEA and are dropped, so a
// device that streams garbage cannot grow a buffer.
const MaxSentence = 82

// Errors of ParseRMC.
var (
	// ErrNotRMC: the line is some other sentence (GGA, GSV, ...).
	ErrNotRMC = errors.New("not an RMC sentence")
	// ErrNoFix: an RMC sentence whose status is V (void): the receiver
	// has no fix and its time may be its own guess.
	ErrNoFix = errors.New("no fix")
	// ErrMalformed: not a well-formed sentence, or its checksum is wrong.
	ErrMalformed = errors.New("malformed NMEA sentence")
)

// ParseRMC reads the UTC time of a valid fix from an RMC sentence
// ($GPRMC, $GNRMC, ... any talker), with or without the trailing CR LF:
//
//	$GPRMC,123519.00,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A
//
// Field 1 is hhmmss(.sss), field 2 the status (A valid, V void), field 9
// the date ddmmyy. The checksum, when present, must match. Two-digit years
// are read as 2000-2099.
func ParseRMC(line []byte) (time.Time, error) {
	line = bytes.TrimRight(line, "\r\n")
	if len(line) > MaxSentence || len(line) < 7 || line[0] != '$' {
		return time.Time{}, ErrMalformed
	}
	body := line[1:]
	if star := bytes.LastIndexByte(body, '*'); star >= 0 {
		want, err := strconv.ParseUint(string(body[star+1:]), 16, 8)
		if err != nil || len(body)-star-1 != 2 {
			return time.Time{}, fmt.Errorf("%w: checksum %q", ErrMalformed, body[star+1:])
		}
		var sum byte
		for _, c := range body[:star] {
			sum ^= c
		}
		if sum != byte(want) {
			return time.Time{}, fmt.Errorf("%w: checksum %02X, want %02X", ErrMalformed, want, sum)
		}
		body = body[:star]
	}
	f := bytes.Split(body, []byte{','})
	if len(f[0]) != 5 || string(f[0][2:]) != "RMC" {
		return time.Time{}, ErrNotRMC
	}
	if len(f) < 10 {
		return time.Time{}, fmt.Errorf("%w: RMC with %d fields", ErrMalformed, len(f))
	}
	if string(f[2]) != "A" {
		return time.Time{}, ErrNoFix
	}
	hms, date := f[1], f[9]
	if len(hms) < 6 || len(date) != 6 {
		return time.Time{}, fmt.Errorf("%w: time %q, date %q", ErrMalformed, hms, date)
	}
	num := func(b []byte) int {
		n, err := strconv.Atoi(string(b))
		if err != nil || n < 0 || b[0] == '+' || b[0] == '-' {
			return -1
		}
		return n
	}
	h, m, s := num(hms[0:2]), num(hms[2:4]), num(hms[4:6])
	dd, mo, yy := num(date[0:2]), num(date[2:4]), num(date[4:6])
	var frac time.Duration
	if len(hms) > 6 {
		if hms[6] != '.' || len(hms) > 10 {
			return time.Time{}, fmt.Errorf("%w: time %q", ErrMalformed, hms)
		}
		digits := hms[7:]
		v := num(digits)
		if len(digits) == 0 || v < 0 {
			return time.Time{}, fmt.Errorf("%w: time %q", ErrMalformed, hms)
		}
		frac = time.Duration(v) * time.Second
		for range digits {
			frac /= 10
		}
	}
	if h < 0 || h > 23 || m < 0 || m > 59 || s < 0 || s > 60 || dd < 1 || dd > 31 || mo < 1 || mo > 12 || yy < 0 {
		return time.Time{}, fmt.Errorf("%w: time %q, date %q", ErrMalformed, hms, date)
	}
	t := time.Date(2000+yy, time.Month(mo), dd, h, m, s, 0, time.UTC)
	if t.Day() != dd {
		return time.Time{}, fmt.Errorf("%w: date %q", ErrMalformed, date) // 31 February
	}
	return t.Add(frac), nil
}

// Config says where the receiver is.
type Config struct {
	Path   string
	Baud   int // DefaultBaud if zero
	Logger *slog.Logger
}

// Run reads the receiver until ctx ends, reopening the port when it fails,
// and calls fix with the time of every valid fix, as it arrives.
func Run(ctx context.Context, cfg Config, fix func(time.Time)) {
	if cfg.Baud == 0 {
		cfg.Baud = DefaultBaud
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	serialport.Run(ctx, serialport.Config{Path: cfg.Path, Baud: cfg.Baud, Logger: cfg.Logger},
		func(ctx context.Context, p *serialport.Port) (bool, error) { return session(ctx, p, fix, cfg.Logger) }, nil)
}

// session reads lines from one opening of the port. The port counts as
// ready once a valid fix came.
func session(ctx context.Context, p *serialport.Port, fix func(time.Time), log *slog.Logger) (bool, error) {
	var line []byte
	ready, noFix := false, false
	for {
		select {
		case <-ctx.Done():
			return ready, ctx.Err()
		case err := <-p.Failed():
			return ready, err
		case b := <-p.Incoming():
			for _, c := range b {
				if c != '\n' {
					if len(line) <= MaxSentence {
						line = append(line, c)
					}
					continue
				}
				t, err := ParseRMC(line)
				line = line[:0]
				switch {
				case err == nil:
					if !ready || noFix {
						log.Info("GPS fix", "time", t)
					}
					ready, noFix = true, false
					fix(t)
				case errors.Is(err, ErrNoFix) && !noFix:
					log.Info("GPS has no fix yet")
					noFix = true
				}
			}
		}
	}
}

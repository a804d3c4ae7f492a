package gps

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"lifeline/radio/testbed"
)

// sentence adds the checksum to an NMEA body.
func sentence(body string) string {
	var sum byte
	for i := range len(body) {
		sum ^= body[i]
	}
	return fmt.Sprintf("$%s*%02X\r\n", body, sum)
}

func TestParseRMC(t *testing.T) {
	for _, c := range []struct {
		line string
		want time.Time
		err  error
	}{
		// The classic example (NMEA 0183), checksum and all.
		{"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n",
			time.Date(2094, 3, 23, 12, 35, 19, 0, time.UTC), nil},
		// A u-blox receiver's GNSS talker, with hundredths and a mode field.
		{sentence("GNRMC,083559.25,A,4717.11437,N,00833.91522,E,0.004,77.52,071226,,,A"),
			time.Date(2026, 12, 7, 8, 35, 59, 250_000_000, time.UTC), nil},
		{sentence("GPRMC,235959.000,A,,,,,,,311226,,"), time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), nil},
		// No checksum is allowed.
		{"$GPRMC,000000,A,,,,,,,010127,,", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), nil},
		{sentence("GPRMC,083559.00,V,,,,,,,071226,,,N"), time.Time{}, ErrNoFix},
		{sentence("GPGGA,083559.00,4717.11437,N,00833.91522,E,1,08,1.0,499.6,M,48.0,M,,"), time.Time{}, ErrNotRMC},
		{"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6B", time.Time{}, ErrMalformed},
		{sentence("GPRMC,123519,A,,,,,,,310226,,"), time.Time{}, ErrMalformed}, // 31 February
		{sentence("GPRMC,256000,A,,,,,,,010126,,"), time.Time{}, ErrMalformed},
		{sentence("GPRMC,12351,A,,,,,,,010126,,"), time.Time{}, ErrMalformed},
		{sentence("GPRMC,123519.+1,A,,,,,,,010126,,"), time.Time{}, ErrMalformed},
		{sentence("GPRMC,123519,A,,,"), time.Time{}, ErrMalformed},
		{"GPRMC,123519,A,,,,,,,010126,,", time.Time{}, ErrMalformed},
		{"", time.Time{}, ErrMalformed},
	} {
		got, err := ParseRMC([]byte(c.line))
		if !errors.Is(err, c.err) || !got.Equal(c.want) {
			t.Errorf("ParseRMC(%q) = %s, %v; want %s, %v", c.line, got, err, c.want, c.err)
		}
	}
}

func FuzzParseRMC(f *testing.F) {
	f.Add([]byte("$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n"))
	f.Add([]byte(sentence("GNRMC,083559.25,A,4717.11437,N,00833.91522,E,0.004,77.52,071226,,,A")))
	f.Add([]byte(sentence("GPRMC,083559.00,V,,,,,,,071226,,,N")))
	f.Fuzz(func(t *testing.T, b []byte) {
		tm, err := ParseRMC(b)
		if err != nil {
			return
		}
		if tm.Year() < 2000 || tm.Year() > 2099 || tm.Location() != time.UTC {
			t.Fatalf("%q parsed to %s", b, tm)
		}
	})
}

// TestRunReadsAReceiver: a GPS board behind a pseudo-terminal, opened with
// tarm/serial as /dev/ttyACM0 would be, talking NMEA with debris between
// sentences. Run hands over the times of valid fixes only.
func TestRunReadsAReceiver(t *testing.T) {
	master, slave, err := testbed.OpenTerminal()
	if err != nil {
		t.Fatalf("no pseudo-terminals here: %v", err)
	}
	defer master.Close()
	defer slave.Close()
	var mu sync.Mutex
	var fixes []time.Time
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Config{Path: slave.Name(), Logger: slog.New(slog.DiscardHandler)}, func(tm time.Time) {
			mu.Lock()
			fixes = append(fixes, tm)
			mu.Unlock()
		})
	}()
	defer func() { cancel(); <-done }()
	stream := "garbage without end " + string(make([]byte, 300)) + "\r\n" +
		sentence("GPRMC,083558.00,V,,,,,,,071226,,,N") +
		sentence("GPGSV,1,1,01,05,45,120,30") +
		"$GPRMC,083559,A,,,,,,,071226,,*00\r\n" + // wrong checksum
		sentence("GNRMC,083600.00,A,4717.11437,N,00833.91522,E,0.004,77.52,071226,,,A")
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Written until read: the port may open after the first write.
		if _, err := master.WriteString(stream); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		n := len(fixes)
		var first time.Time
		if n > 0 {
			first = fixes[0]
		}
		mu.Unlock()
		if n > 0 {
			if want := time.Date(2026, 12, 7, 8, 36, 0, 0, time.UTC); !first.Equal(want) {
				t.Fatalf("fix %s, want %s", first, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no fix within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

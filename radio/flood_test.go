package radio

import (
	"strings"
	"testing"
	"time"
)

func TestFlood(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	fl := NewFlood(2*time.Second, time.Minute, 100)
	frames, _ := Fragment(envelope(t, "flood me"), 3)
	f := frames[0]

	d := fl.Heard(t0, f, 0.5)
	if !d.New || d.Cancel || !d.Relay.Equal(t0.Add(time.Second)) {
		t.Fatalf("first hearing: %+v", d)
	}
	// A neighbour relays it before we do: cancel ours.
	if d := fl.Heard(t0.Add(500*time.Millisecond), f, 0.1); d.New || !d.Cancel {
		t.Fatalf("a neighbour's relay: %+v", d)
	}
	// Heard again: nothing more to do.
	if d := fl.Heard(t0.Add(600*time.Millisecond), f, 0.1); d.New || d.Cancel || !d.Relay.IsZero() {
		t.Fatalf("third copy: %+v", d)
	}

	// Out of hops: delivered, not relayed.
	last, _ := Fragment(envelope(t, "last hop"), 0)
	if d := fl.Heard(t0, last[0], 0.3); !d.New || !d.Relay.IsZero() {
		t.Fatalf("no hops left: %+v", d)
	}

	// A node never relays what it sent itself.
	mine, _ := Fragment(envelope(t, "mine"), 3)
	fl.Sent(t0, mine[0])
	if d := fl.Heard(t0.Add(time.Second), mine[0], 0.3); d.New || d.Cancel {
		t.Fatalf("own frame heard back: %+v", d)
	}

	// Fragments of one message are separate frames.
	long, _ := Fragment(envelope(t, strings.Repeat("long ", 100)), 3)
	for _, fr := range long {
		if d := fl.Heard(t0, fr, 0); !d.New {
			t.Fatalf("fragment %d taken for a duplicate", fr.Index)
		}
	}

	// Forgotten after Remember, and never more than MaxSeen remembered.
	if d := fl.Heard(t0.Add(2*time.Minute), f, 0); !d.New {
		t.Fatal("remembered past Remember")
	}
	small := NewFlood(time.Second, time.Hour, 3)
	for i := range 10 {
		fr, _ := Fragment(envelope(t, strings.Repeat("m", i+1)), 1)
		small.Heard(t0, fr[0], 0)
	}
	if len(small.seen) != 3 || len(small.order) != 3 {
		t.Fatalf("remembers %d frames, bound 3", len(small.seen))
	}
}

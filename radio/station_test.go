package radio

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"lifeline/radio/link"
	"lifeline/radio/lora"
	"lifeline/store"
)

// fakeLink is a radio link driven by the test: it records what it is
// handed, and the test says when each frame ends and how the link is.
type fakeLink struct {
	mu   sync.Mutex
	st   link.Status
	sent chan []byte
	done chan time.Time
	rx   chan link.Packet
}

func newFakeLink() *fakeLink {
	return &fakeLink{st: link.Status{State: "ready"}, sent: make(chan []byte, 16), done: make(chan time.Time, 16), rx: make(chan link.Packet)}
}

func (f *fakeLink) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (f *fakeLink) Send(p []byte) error {
	f.sent <- p
	return nil
}
func (f *fakeLink) Received() <-chan link.Packet { return f.rx }
func (f *fakeLink) Done() <-chan time.Time       { return f.done }
func (f *fakeLink) Status() link.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

// TestStationLinkRestartedUnseen: a link that went down and came back
// between two looks of the station (a board unplugged and plugged back,
// a device that rebooted) lost the frame it held, whose end will never
// come. The station forgets it as it would had it seen the link down:
// waited for until its deadline, that end would be taken from the next
// frame, and every frame after would wait for its deadline too.
func TestStationLinkRestartedUnseen(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "store.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := newFakeLink()
	s := NewStation(l, st, StationConfig{Router: RouterConfig{Tag: 1, Region: lora.Regions["EU868"],
		Modem: lora.ModemPresets[lora.DefaultModem], RepairEvery: -1, Seed: 1}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() { s.Run(ctx) })

	put := func(text string) {
		t.Helper()
		e, err := testIdentity().NewText("general", text, time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Put(ctx, e.Raw()); err != nil {
			t.Fatal(err)
		}
	}
	frame := func(what string) {
		t.Helper()
		select {
		case <-l.sent:
		case <-time.After(3 * time.Second):
			t.Fatalf("no frame: %s", what)
		}
	}
	// The station subscribes to the store as it starts: wait for it to
	// take a first message.
	deadline := time.Now().Add(5 * time.Second)
	for {
		put("first " + time.Now().String())
		select {
		case <-l.sent:
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("the station sent nothing")
			}
			continue
		}
		break
	}
	// The board goes and comes back before the station looks; the first
	// frame's end never comes.
	l.mu.Lock()
	l.st.Reopened++
	l.mu.Unlock()
	put("second")
	frame("the second message, at once: the first frame went with the board")
	l.done <- time.Now()
	put("third")
	frame("the third message, at once: the second frame's end was its own")
}

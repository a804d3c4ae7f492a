package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lifeline/message"
)

func TestSubscribe(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now})
	alice := identity(1)
	sub := s.Subscribe(8)
	defer sub.Close()

	a := text(t, alice, "general", "a", clk.Now())
	b := text(t, alice, "general", "b", clk.Now())
	mustPut(t, s, a)
	r, ok := recv(t, sub)
	if !ok || r.Envelope.ID() != a.ID() {
		t.Fatalf("got %v, %v", r, ok)
	}
	// Notified after commit: another reader sees it already.
	if ok, _ := s.Has(a.ID()); !ok {
		t.Fatal("notified before the message is readable")
	}
	mustPut(t, s, a) // duplicate: no notification
	if _, err := s.PutOwn(t.Context(), a.Raw()); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, b)
	if r, _ := recv(t, sub); r.Envelope.ID() != b.ID() {
		t.Fatal("a duplicate was notified")
	}
	// Invalid puts notify nothing either.
	s.Put(t.Context(), a.Raw()[:10])
	select {
	case r := <-sub.C:
		t.Fatalf("unexpected notification %v", r)
	default:
	}

	sub.Close()
	if _, ok := <-sub.C; ok || sub.Err() != nil {
		t.Fatalf("after Close: open=%v err=%v", ok, sub.Err())
	}
	sub.Close() // idempotent
}

func TestSubscriberLags(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now})
	alice := identity(1)
	slow := s.Subscribe(1)
	fast := s.Subscribe(100)
	defer fast.Close()
	for i := range 5 {
		mustPut(t, s, text(t, alice, "general", fmt.Sprint(i), clk.Now()))
	}
	// Once fast has all five and the notify that delivered the last one
	// has finished (it holds subMu throughout), slow was offered all five
	// without reading any: it must have lagged at the second.
	for range 5 {
		recv(t, fast)
	}
	if fast.Err() != nil {
		t.Fatal(fast.Err())
	}
	s.subMu.Lock()
	s.subMu.Unlock() //nolint:staticcheck // a barrier, see above
	n := 0
	for range slow.C {
		n++
	}
	if !errors.Is(slow.Err(), ErrLagged) || n != 1 {
		t.Fatalf("slow subscriber: %d records, err %v", n, slow.Err())
	}
	slow.Close() // after lagging: harmless
	if !errors.Is(slow.Err(), ErrLagged) {
		t.Fatal("Close overwrote ErrLagged")
	}
}

func TestReopen(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "store.db")
	alice := identity(1)
	one := logicalSize(text(t, alice, "general", "m00", clk.Now()))
	opts := Options{Now: clk.Now, Quota: 3 * (one + 1)} // +1: the TTL byte
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	var es []*message.Envelope
	for i := range 5 {
		clk.Advance(time.Second)
		e := sign(t, alice, message.Draft{Kind: message.KindText, Priority: message.PriorityNormal, Created: clk.Now().UnixMilli(),
			TTL: time.Duration(i+1) * time.Hour, Channel: message.ChannelID{1}, Body: fmt.Appendf(nil, "m%02d", i)})
		mustPut(t, s, e)
		es = append(es, e)
	}
	clk.ms.Store(es[2].Expires())
	if n, err := s.Expire(clk.Now()); err != nil || n != 1 {
		t.Fatalf("expire = %d, %v", n, err)
	}
	before := s.Stats()
	if before.Evicted != 2 || before.Expired != 1 || before.Messages != 2 {
		t.Fatalf("stats = %+v", before)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v, %v", info.Mode(), err)
	}

	s, err = Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if after := s.Stats(); after != before {
		t.Fatalf("stats after reopen %+v, before %+v", after, before)
	}
	for _, e := range es[3:] {
		if rec, err := s.Get(e.ID()); err != nil || string(rec.Envelope.Raw()) != string(e.Raw()) {
			t.Fatalf("after reopen: %v", err)
		}
	}
	checkConsistent(t, s)
}

func TestClosed(t *testing.T) {
	clk := newClock()
	s, err := Open(filepath.Join(t.TempDir(), "store.db"), Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	sub := s.Subscribe(4)
	e := text(t, identity(1), "general", "x", clk.Now())
	s.Close()
	if _, err := s.Put(t.Context(), e.Raw()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if _, err := s.Expire(clk.Now()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Expire after Close: %v", err)
	}
	if _, err := s.Get(e.ID()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if _, err := s.List(Query{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("List after Close: %v", err)
	}
	if _, ok := <-sub.C; ok || !errors.Is(sub.Err(), ErrClosed) {
		t.Fatalf("subscription after Close: err %v", sub.Err())
	}
	if late := s.Subscribe(1); !errors.Is(late.Err(), ErrClosed) {
		t.Fatal("Subscribe after Close")
	}
}

func TestConcurrentPut(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now})
	const writers, each = 16, 40
	es := make([]*message.Envelope, writers*each)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			id := identity(byte(w))
			for i := range each {
				es[w*each+i] = text(t, id, fmt.Sprint("ch", w%3), fmt.Sprint(i), clk.Now())
			}
		})
	}
	wg.Wait()
	sub := s.Subscribe(len(es))
	defer sub.Close()
	var fresh atomic.Int64
	// Every message is put by two writers: exactly one sees New.
	for w := range 2 * writers {
		wg.Go(func() {
			for i := range each {
				e := es[(w%writers)*each+i]
				put := s.Put
				if w%4 == 0 {
					put = s.PutOwn
				}
				r, err := put(context.Background(), e.Raw())
				if err != nil {
					t.Error(err)
					return
				}
				if r.New {
					fresh.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := fresh.Load(); n != int64(len(es)) {
		t.Fatalf("%d puts were new, want %d", n, len(es))
	}
	if st := s.Stats(); st.Messages != int64(len(es)) {
		t.Fatalf("stats = %+v", st)
	}
	seen := map[message.ID]bool{}
	for range es {
		r, _ := recv(t, sub)
		if seen[r.Envelope.ID()] {
			t.Fatal("notified twice")
		}
		seen[r.Envelope.ID()] = true
	}
	checkConsistent(t, s)
}

func TestCanceledContext(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	e := text(t, identity(1), "general", "x", clk.Now())
	// Either outcome is allowed, but an error must say why.
	if _, err := s.Put(ctx, e.Raw()); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	checkConsistent(t, s)
}

// Child processes. bbolt's lock is an flock, which the tests want to see
// from another process, and kill -9 needs one too.
const helperEnv = "LIFELINE_STORE_HELPER"

func child(_ testing.TB, test, mode, path string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "LIFELINE_STORE_PATH="+path)
	cmd.Stderr = os.Stderr
	return cmd
}

func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := child(t, "TestHelperLocked", "locked", path).Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if got := string(out); len(got) < 6 || got[:6] != "LOCKED" {
		t.Fatalf("child said %q", got)
	}
	t.Logf("child: %s", out)
}

func TestHelperLocked(t *testing.T) {
	if os.Getenv(helperEnv) != "locked" {
		t.Skip("helper process")
	}
	path := os.Getenv("LIFELINE_STORE_PATH")
	start := time.Now()
	s, err := Open(path, Options{})
	if err == nil {
		s.Close()
		fmt.Println("OPENED")
		return
	}
	if !errors.Is(err, ErrLocked) || !contains(err.Error(), path) {
		fmt.Println("WRONG", err)
		return
	}
	fmt.Printf("LOCKED after %s: %v\n", time.Since(start).Round(time.Millisecond), err)
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestKill9 checks that every Put that returned survives kill -9 of the
// process, mid-ingest.
func TestKill9(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	cmd := child(t, "TestHelperIngest", "ingest", path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []message.ID
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		line := sc.Text()
		id, err := message.ParseID(line)
		if err != nil {
			continue // test framework chatter
		}
		acked = append(acked, id)
		if len(acked) == 500 {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
		}
	}
	cmd.Wait()
	if len(acked) < 500 {
		t.Fatalf("child acknowledged only %d messages", len(acked))
	}
	s := reopenHolding(t, path, Options{Now: newClock().Now}, acked)
	t.Logf("%d acknowledged before kill, %d stored (%d from the log)", len(acked), s.Stats().Messages, s.Stats().Replayed)
}

func TestHelperIngest(t *testing.T) {
	if os.Getenv(helperEnv) != "ingest" {
		t.Skip("helper process")
	}
	clk := newClock()
	s, err := Open(os.Getenv("LIFELINE_STORE_PATH"), Options{Now: clk.Now})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			id := identity(byte(w))
			for i := 0; ; i++ {
				e, err := id.NewText("general", fmt.Sprint(i), clk.Now(), 0)
				if err != nil {
					panic(err)
				}
				if _, err := s.Put(context.Background(), e.Raw()); err != nil {
					panic(err)
				}
				mu.Lock()
				os.Stdout.WriteString(e.ID().String() + "\n")
				mu.Unlock()
			}
		})
	}
	wg.Wait() // never: the parent kills us
}

func TestMaxDBSize(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now, NoSync: true, MaxDBSize: 1 << 20})
	alice := identity(1)
	body := make([]byte, message.MaxBody)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	var stored []*message.Envelope
	for i := range 1000 {
		copy(body, fmt.Sprintf("%06d", i))
		e := sign(t, alice, message.Draft{Kind: message.KindText, Priority: message.PriorityNormal,
			Created: clk.Now().UnixMilli(), Channel: message.ChannelID{1}, Body: body})
		_, err := s.Put(t.Context(), e.Raw())
		if err != nil {
			if !errors.Is(err, ErrQuota) {
				t.Fatalf("put %d: %v, want ErrQuota", i, err)
			}
			break
		}
		stored = append(stored, e)
	}
	if len(stored) == 0 || len(stored) == 1000 {
		t.Fatalf("stored %d messages of 4 KiB in a 1 MiB file", len(stored))
	}
	for _, e := range stored {
		if ok, err := s.Has(e.ID()); err != nil || !ok {
			t.Fatalf("lost a stored message after the file filled: %v", err)
		}
	}
	if st := s.Stats(); st.Messages != int64(len(stored)) {
		t.Fatalf("stats %+v after %d stored", st, len(stored))
	}
	checkConsistent(t, s)
}

// TestMaxDBSizeBatch: when concurrent Puts land in one batch that as a whole
// would grow the file past MaxDBSize, the messages that fit are still
// stored; only those that do not get ErrQuota.
func TestMaxDBSizeBatch(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now, NoSync: true, MaxDBSize: 1 << 20})
	alice := identity(1)
	// 400 messages of 4 KiB do not fit in a 1 MiB file; any one does.
	const n = 400
	envs := make([]*message.Envelope, n)
	body := make([]byte, message.MaxBody)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	for i := range envs {
		copy(body, fmt.Sprintf("%06d", i))
		envs[i] = sign(t, alice, message.Draft{Kind: message.KindText, Priority: message.PriorityNormal,
			Created: clk.Now().UnixMilli(), Channel: message.ChannelID{1}, Body: body})
	}

	// Pause the applier between two batches: after it commits m0 it
	// notifies subscribers, which waits for subMu, held here. So when Put
	// m0 has returned (PutOwn: answered after its commit), the applier has
	// finished its batch and has not yet started the next one. A MaxDBSize
	// this small sends every Put through the applier (roomFor).
	s.subMu.Lock()
	paused := true
	defer func() {
		if paused {
			s.subMu.Unlock()
		}
	}()
	if _, err := s.PutOwn(t.Context(), text(t, alice, "general", "m0", clk.Now()).Raw()); err != nil {
		t.Fatal(err)
	}
	taken := s.taken.Load()

	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, e := range envs {
		wg.Go(func() { _, errs[i] = s.Put(context.Background(), e.Raw()) })
	}
	// Wait until every Put is queued or handed to the applier, then let
	// the applier go: its first transaction holds several batches (up to
	// applyQueue of them), too much for the file as a whole.
	deadline := time.Now().Add(10 * time.Second)
	for q := 0; q < n; q = len(s.queue) + int(s.taken.Load()-taken) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d puts queued after 10s", q, n)
		}
		runtime.Gosched()
	}
	paused = false
	s.subMu.Unlock()
	wg.Wait()

	var stored int64
	for i, err := range errs {
		switch {
		case err == nil:
			stored++
			if ok, err := s.Has(envs[i].ID()); err != nil || !ok {
				t.Fatalf("put %d succeeded but the message is not stored (%v)", i, err)
			}
		case errors.Is(err, ErrQuota):
		default:
			t.Fatalf("put %d: %v, want nil or ErrQuota", i, err)
		}
	}
	if stored == 0 || stored == n {
		t.Fatalf("stored %d of %d messages of 4 KiB in a 1 MiB file", stored, n)
	}
	if st := s.Stats(); st.Messages != stored+1 {
		t.Fatalf("stats %+v after m0 and %d stored", st, stored)
	}
	checkConsistent(t, s)
}

// TestExpireMany expires more than one transaction's worth.
func TestExpireMany(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now, NoSync: true})
	alice := identity(1)
	n := expireChunk + 100
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		e := sign(t, alice, message.Draft{Kind: message.KindText, Created: clk.Now().UnixMilli(), TTL: time.Minute,
			Channel: message.ChannelID{1}, Body: fmt.Append(nil, i)})
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := s.Put(context.Background(), e.Raw()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	keep := text(t, alice, "general", "stays", clk.Now())
	mustPut(t, s, keep)
	clk.Advance(time.Hour)
	if got, err := s.Expire(clk.Now()); err != nil || got != n {
		t.Fatalf("expired %d, %v; want %d", got, err, n)
	}
	if st := s.Stats(); st.Messages != 1 || st.Expired != int64(n) {
		t.Fatalf("stats = %+v", st)
	}
	checkConsistent(t, s)
}

// TestMaxAge: with a retention, Expire also removes messages older than
// it that have not expired.
func TestMaxAge(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now, MaxAge: time.Hour})
	alice := identity(1)
	var old, recent []*message.Envelope
	for i := range 5 {
		e, err := alice.NewText("general", fmt.Sprint("old ", i), clk.Now().Add(time.Duration(i)*time.Second), 365*24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, e)
		old = append(old, e)
	}
	clk.Advance(2 * time.Hour)
	for i := range 5 {
		recent = append(recent, text(t, alice, "general", fmt.Sprint("recent ", i), clk.Now().Add(-time.Duration(i)*time.Minute)))
		mustPut(t, s, recent[i])
	}
	n, err := s.Expire(clk.Now())
	if err != nil || n != 5 {
		t.Fatalf("Expire removed %d (%v), want the 5 older than an hour", n, err)
	}
	for _, e := range old {
		if ok, _ := s.Has(e.ID()); ok {
			t.Fatalf("%q kept past the retention", e.Body)
		}
	}
	for _, e := range recent {
		if ok, _ := s.Has(e.ID()); !ok {
			t.Fatalf("%q removed", e.Body)
		}
	}
	if st := s.Stats(); st.Expired != 5 || st.Messages != 5 {
		t.Fatalf("stats %+v", st)
	}
	checkConsistent(t, s)
}

// TestMaxAgeRefusesOld: a message already past the retention is refused as
// expired, rather than stored, expired, and fetched again from a peer.
func TestMaxAgeRefusesOld(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now, MaxAge: time.Hour})
	e, err := identity(1).NewText("general", "from last week", clk.Now().Add(-7*24*time.Hour), 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(t.Context(), e.Raw()); !errors.Is(err, message.ErrExpired) || !strings.Contains(err.Error(), "retention") {
		t.Fatalf("put of a message past the retention: %v", err)
	}
}

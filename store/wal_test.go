package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"lifeline/message"
)

func walRecs(lsns ...uint64) []walRecord {
	recs := make([]walRecord, len(lsns))
	for i, lsn := range lsns {
		recs[i] = walRecord{lsn: lsn, received: int64(1000 + lsn), env: fmt.Appendf(nil, "envelope %d", lsn)}
	}
	return recs
}

func readWALFile(t *testing.T, path string) []walRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := readWAL(f)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func lsnsOf(recs []walRecord) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.lsn
	}
	return out
}

// TestWALRead: the log ends at the terminator, at a torn or corrupt record,
// and at a record left from before a rewind.
func TestWALRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	w, err := openWALFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	if err := w.write(walRecs(1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	if err := w.write(walRecs(4, 5)); err != nil {
		t.Fatal(err)
	}
	got := readWALFile(t, path)
	if fmt.Sprint(lsnsOf(got)) != "[1 2 3 4 5]" {
		t.Fatalf("read %v", lsnsOf(got))
	}
	if !bytes.Equal(got[2].env, []byte("envelope 3")) || got[2].received != 1003 {
		t.Fatalf("record 3 = %+v", got[2])
	}
	end := w.off

	// A torn last record: only part of record 5 reached the disk.
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path+".torn", data[:end-3], 0o600); err != nil {
		t.Fatal(err)
	}
	if got := lsnsOf(readWALFile(t, path+".torn")); fmt.Sprint(got) != "[1 2 3 4]" {
		t.Fatalf("torn: read %v", got)
	}
	// A flipped bit in record 2.
	bad := bytes.Clone(data)
	bad[walHeader+len("envelope 1")+walHeader+2] ^= 0x10
	if err := os.WriteFile(path+".bad", bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := lsnsOf(readWALFile(t, path+".bad")); fmt.Sprint(got) != "[1]" {
		t.Fatalf("corrupt: read %v", got)
	}

	// After a rewind, the records left behind the new batch are not read,
	// although they are intact: the terminator ends the log, and a stale
	// record's LSN would be older anyway.
	w.rewind()
	if err := w.write(walRecs(6)); err != nil {
		t.Fatal(err)
	}
	if got := lsnsOf(readWALFile(t, path)); fmt.Sprint(got) != "[6]" {
		t.Fatalf("after rewind: read %v", got)
	}
	// Without a terminator too, a stale record (LSN 2 after 6) is not
	// taken for the log's continuation.
	stale := appendWALRecord(appendWALRecord(nil, walRecs(6)[0]), walRecs(2)[0])
	if err := os.WriteFile(path+".stale", stale, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := lsnsOf(readWALFile(t, path+".stale")); fmt.Sprint(got) != "[6]" {
		t.Fatalf("stale: read %v", got)
	}
}

// FuzzReadWAL: whatever the file holds, readWAL returns records with
// consecutive LSNs whose encoding is exactly the file's beginning.
func FuzzReadWAL(f *testing.F) {
	f.Add([]byte{})
	f.Add(appendWALRecord(nil, walRecs(1)[0]))
	var b []byte
	for _, r := range walRecs(7, 8, 9) {
		b = appendWALRecord(b, r)
	}
	f.Add(b)
	f.Add(append(bytes.Clone(b), make([]byte, walTerm)...))
	f.Add(b[:len(b)-1])
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := readWAL(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		var enc []byte
		for i, r := range recs {
			if i > 0 && r.lsn != recs[i-1].lsn+1 {
				t.Fatalf("LSN %d after %d", r.lsn, recs[i-1].lsn)
			}
			if len(r.env) == 0 || len(r.env) > message.MaxEnvelope {
				t.Fatalf("record of %d bytes", len(r.env))
			}
			enc = appendWALRecord(enc, r)
		}
		if !bytes.HasPrefix(data, enc) {
			t.Fatal("records are not the file's beginning")
		}
	})
}

// TestReplay: Open applies the log records the database does not hold,
// skips those it does and any that does not verify, and empties the log.
func TestReplay(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	alice := identity(1)
	first := text(t, alice, "general", "stored before the crash", clk.Now())
	mustPut(t, s, first)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readWALFile(t, walPath(path)); len(got) != 0 {
		t.Fatalf("log after Close holds %d records", len(got))
	}

	// What a crash leaves: records the applier had not committed yet.
	// LSN 1 was committed (meta/wal = 1), so its record must be skipped
	// even though this one is another message.
	var envs []*message.Envelope
	for i := range 4 {
		envs = append(envs, text(t, alice, "general", fmt.Sprint("logged ", i), clk.Now()))
	}
	forged := bytes.Clone(text(t, alice, "general", "forged", clk.Now()).Raw())
	forged[len(forged)-1] ^= 1
	recs := []walRecord{
		{lsn: 1, received: 1, env: envs[0].Raw()},
		{lsn: 2, received: 2, env: envs[1].Raw()},
		{lsn: 3, received: 3, env: forged},
		{lsn: 4, received: 4, env: envs[2].Raw()},
		{lsn: 5, received: 5, env: envs[3].Raw()},
	}
	writeLog(t, path, recs)

	s, err = Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, e := range []*message.Envelope{first, envs[1], envs[2], envs[3]} {
		rec, err := s.Get(e.ID())
		if err != nil {
			t.Fatalf("%q after replay: %v", e.Body, err)
		}
		if e != first && rec.Received != recs[slicesIndex(recs, e.Raw())].received {
			t.Fatalf("replayed %q received %d", e.Body, rec.Received)
		}
	}
	if ok, _ := s.Has(envs[0].ID()); ok {
		t.Fatal("a record at or below meta/wal was applied")
	}
	st := s.Stats()
	if st.Messages != 4 || st.Refused != 1 || st.Replayed != 3 {
		t.Fatalf("stats after replay: %+v", st)
	}
	if got := readWALFile(t, walPath(path)); len(got) != 0 {
		t.Fatalf("log after replay holds %d records", len(got))
	}
	// New Puts take LSNs after the replayed ones.
	mustPut(t, s, text(t, alice, "general", "after", clk.Now()))
	if s.log.lsn != 6 {
		t.Fatalf("next LSN %d, want 6", s.log.lsn)
	}
	checkConsistent(t, s)
}

func slicesIndex(recs []walRecord, env []byte) int {
	for i, r := range recs {
		if bytes.Equal(r.env, env) {
			return i
		}
	}
	return -1
}

// TestLogRewind: a log that passes its capacity starts again from the
// beginning of its file once everything in it is applied, and nothing is
// lost across the rewinds or a reopen.
func TestLogRewind(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	s.log.file.capacity = 2048 // a few records
	alice := identity(1)
	var ids []message.ID
	for i := range 100 {
		e := text(t, alice, "general", fmt.Sprint(i), clk.Now().Add(time.Duration(i)*time.Millisecond))
		if r, err := s.Put(t.Context(), e.Raw()); err != nil || !r.New {
			t.Fatalf("put %d: %+v %v", i, r, err)
		}
		ids = append(ids, e.ID())
		if s.log.file.off > 2048+4096 {
			t.Fatalf("log at offset %d after put %d: not rewound", s.log.file.off, i)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range ids {
		if ok, err := s.Has(id); err != nil || !ok {
			t.Fatalf("%s lost", id)
		}
	}
	if st := s.Stats(); st.Messages != 100 || st.Replayed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestReadsSeeReturnedPuts: a Put answered from the log is seen by every
// read that starts after it returned, although the applier may not have
// committed it yet.
func TestReadsSeeReturnedPuts(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now})
	alice := identity(1)
	for i := range 50 {
		e := text(t, alice, "general", fmt.Sprint(i), clk.Now().Add(time.Duration(i)*time.Millisecond))
		mustPut(t, s, e)
		if _, err := s.Get(e.ID()); err != nil {
			t.Fatalf("Get after put %d: %v", i, err)
		}
		recs, err := s.List(Query{Limit: 1})
		if err != nil || len(recs) != 1 || recs[0].Envelope.ID() != e.ID() {
			t.Fatalf("List after put %d: %v", i, err)
		}
		page, err := s.ListAfter(Query{After: uint64(i), Limit: 10})
		if err != nil || len(page.Records) != 1 {
			t.Fatalf("ListAfter after put %d: %+v %v", i, page, err)
		}
		if st := s.Stats(); st.Messages != int64(i+1) {
			t.Fatalf("Stats after put %d: %+v", i, st)
		}
	}
}

// TestFullDisk fills a tmpfs with the free-space check off: writes fail
// with the system's error, and every Put that returned success is there
// once the store is reopened with room. (space_test.go shows the store
// recovering without reopening.) It needs root (mount); elsewhere it skips.
//
// "log" fills the disk before the log could be preallocated, so the log's
// own writes fail. "database" leaves the preallocated log room to write,
// so Puts are acknowledged from the log and the database's commit is what
// fails: the store breaks, and reopening it with room again applies the
// log.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	for _, tc := range []struct {
		name   string
		size   string
		filler int64 // bytes to leave free after Open
	}{
		{"log", "2m", -1},
		{"database", "48m", 256 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+tc.size, "tmpfs", dir).CombinedOutput(); err != nil {
				t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
			}
			t.Cleanup(func() { exec.Command("umount", dir).Run() })
			path := filepath.Join(dir, "store.db")
			clk := newClock()
			// MinFree off: the disk fills under the store's own writes.
			s, err := Open(path, Options{Now: clk.Now, MinFree: -1})
			if err != nil {
				t.Fatal(err)
			}
			if tc.filler >= 0 {
				var st syscall.Statfs_t
				if err := syscall.Statfs(dir, &st); err != nil {
					t.Fatal(err)
				}
				free := int64(st.Bavail) * int64(st.Bsize)
				if err := os.WriteFile(filepath.Join(dir, "filler"), make([]byte, free-tc.filler), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			alice := identity(1)
			body := strings.Repeat("x", message.MaxBody-16)
			var acked []message.ID
			var putErr error
			for i := 0; putErr == nil; i++ {
				if i > 20000 {
					t.Fatal("the disk never filled")
				}
				e := text(t, alice, "general", fmt.Sprint(i, body), clk.Now().Add(time.Duration(i)*time.Millisecond))
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				_, putErr = s.Put(ctx, e.Raw())
				cancel()
				if putErr == nil {
					acked = append(acked, e.ID())
				}
				if i%16 == 0 {
					s.Stats() // a reader: makes the applier commit now
				}
			}
			if !errors.Is(putErr, syscall.ENOSPC) {
				t.Fatalf("put on a full disk: %v, want ENOSPC", putErr)
			}
			t.Logf("%d acknowledged, then: %v", len(acked), putErr)
			s.Close()

			os.Remove(filepath.Join(dir, "filler"))
			if out, err := exec.Command("mount", "-o", "remount,size=64m", dir).CombinedOutput(); err != nil {
				t.Fatalf("remount: %v: %s", err, out)
			}
			s = reopenHolding(t, path, Options{Now: clk.Now, MinFree: -1}, acked)
			t.Logf("after reopening: %+v", s.Stats())
			mustPut(t, s, text(t, alice, "general", "room again", clk.Now().Add(time.Hour)))
		})
	}
}

// TestDuplicateAnsweredAfterWrite: a duplicate in the batch that logs a
// message is answered with that write's outcome, never before it.
func TestDuplicateAnsweredAfterWrite(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now, NoSync: true})
	e := text(t, identity(1), "general", "x", clk.Now())
	ro, err := os.Open(s.log.file.path)
	if err != nil {
		t.Fatal(err)
	}
	good := s.log.file.f
	s.log.file.f = ro // writes fail (EBADF) like a full disk / EIO
	mk := func() *op {
		return &op{kind: opPut, env: e, received: clk.Now().UnixMilli(), done: make(chan opResult, 1)}
	}
	o1, o2 := mk(), mk()
	s.logBatch([]*op{o1, o2})
	r1, r2 := <-o1.done, <-o2.done
	s.log.file.f = good
	ro.Close()
	if r1.err == nil || r2.err == nil {
		t.Fatalf("the log write failed, yet put1: %+v %v; put2: %+v %v", r1.res, r1.err, r2.res, r2.err)
	}
	if ok, _ := s.Has(e.ID()); ok {
		t.Fatal("a message whose log write failed is reported stored")
	}
}

// TestDuplicatePutsThenRead: whichever of several concurrent Puts of one
// message returns, a Get right after it finds the message.
func TestDuplicatePutsThenRead(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now})
	alice := identity(1)
	var misses atomic.Int64
	for i := range 300 {
		e := text(t, alice, "general", fmt.Sprint(i), clk.Now())
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := s.Put(context.Background(), e.Raw()); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Get(e.ID()); err != nil {
					misses.Add(1)
				}
			})
		}
		wg.Wait()
	}
	if misses.Load() > 0 {
		t.Errorf("%d Gets after a successful Put returned not found", misses.Load())
	}
}

// TestReplayTrailingBadRecord: a last log record that does not verify is
// skipped without leaving reads waiting for it.
func TestReplayTrailingBadRecord(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "store.db")
	alice := identity(1)
	good := text(t, alice, "general", "good", clk.Now())
	forged := bytes.Clone(text(t, alice, "general", "forged", clk.Now()).Raw())
	forged[len(forged)-1] ^= 1
	w, err := openWALFile(walPath(path), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.write([]walRecord{{lsn: 1, received: 1, env: good.Raw()}, {lsn: 2, received: 2, env: forged}}); err != nil {
		t.Fatal(err)
	}
	w.close()
	s, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan struct{})
	go func() { s.Stats(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Errorf("Stats blocked for 3 s after replay (applied %d, logged %d)", s.log.applied, s.log.logged)
		mustPut(t, s, text(t, alice, "general", "unblock", clk.Now())) // lets Stats return
		<-done
	}
}

// TestMaxDBSizeAfterReopen: right after reopening a file near MaxDBSize,
// Puts that do not fit get ErrQuota, rather than success and a silent refusal.
func TestMaxDBSizeAfterReopen(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "store.db")
	const max = 40 << 20
	s, err := Open(path, Options{Now: clk.Now, NoSync: true, MaxDBSize: max})
	if err != nil {
		t.Fatal(err)
	}
	alice := identity(1)
	body := make([]byte, message.MaxBody)
	i := 0
	next := func() *message.Envelope {
		i++
		copy(body, fmt.Sprintf("%08d", i))
		for j := 8; j < len(body); j++ {
			body[j] = byte('a' + (i*7+j)%26)
		}
		return sign(t, alice, message.Draft{Kind: message.KindText, Priority: message.PriorityNormal,
			Created: clk.Now().UnixMilli(), Channel: message.ChannelID{1}, Body: body})
	}
	// Fill the file, 64 Puts at a time, until they fail for room.
	for full := false; !full; {
		var wg sync.WaitGroup
		var failed atomic.Bool
		for range 64 {
			e := next()
			wg.Go(func() {
				if _, err := s.Put(context.Background(), e.Raw()); err != nil {
					if !errors.Is(err, ErrQuota) {
						t.Error(err)
					}
					failed.Store(true)
				}
			})
		}
		wg.Wait()
		full = failed.Load() || t.Failed()
	}
	before := s.Stats()
	s.Close()
	s, err = Open(path, Options{Now: clk.Now, NoSync: true, MaxDBSize: max})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t.Logf("fileSize after reopen: %d; stats before %+v", s.fileSize.Load(), before)
	var ok, quota atomic.Int64
	var wg sync.WaitGroup
	for range 300 {
		e := next()
		wg.Go(func() {
			_, err := s.Put(context.Background(), e.Raw())
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrQuota):
				quota.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	t.Logf("after reopen: %d acked, %d ErrQuota, stats %+v", ok.Load(), quota.Load(), st)
	if st.Refused > 0 {
		t.Errorf("%d Puts acknowledged, then refused when applied", st.Refused)
	}
}

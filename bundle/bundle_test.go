package bundle

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"lifeline/message"
)

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

// envelopes makes n byte strings of assorted sizes, the largest allowed
// among them. The bundle does not look inside: any bytes do.
func envelopes(n int, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([][]byte, n)
	for i := range out {
		size := 1 + rng.IntN(600)
		if i%7 == 3 {
			size = message.MaxEnvelope
		}
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		b[0] = 0x01
		out[i] = b
	}
	return out
}

func encode(t testing.TB, envs [][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range envs {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Count() != int64(len(envs)) {
		t.Fatalf("Count %d, want %d", w.Count(), len(envs))
	}
	return buf.Bytes()
}

// readAll reads every envelope and the error Next ended with.
func readAll(t testing.TB, b []byte) ([][]byte, Stats, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, Stats{}, err
	}
	var out [][]byte
	for {
		e, err := r.Next()
		if err != nil {
			return out, r.Stats(), err
		}
		out = append(out, e)
	}
}

func TestRoundTrip(t *testing.T) {
	envs := envelopes(50, 1)
	got, st, err := readAll(t, encode(t, envs))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("ended with %v, want io.EOF", err)
	}
	if len(got) != len(envs) {
		t.Fatalf("read %d of %d", len(got), len(envs))
	}
	for i := range envs {
		if !bytes.Equal(got[i], envs[i]) {
			t.Fatalf("entry %d differs", i)
		}
	}
	if st.Entries != 50 || st.Damaged != 0 || st.Lost != 0 || st.Bundles != 1 || !st.Created.Equal(t0) {
		t.Fatalf("stats %+v", st)
	}
}

func TestEmpty(t *testing.T) {
	got, st, err := readAll(t, encode(t, nil))
	if !errors.Is(err, io.EOF) || len(got) != 0 || st.Bundles != 1 {
		t.Fatalf("empty bundle: %d entries, %+v, %v", len(got), st, err)
	}
}

// TestBytesPinned pins version 1's bytes: a change here breaks every
// bundle already on a USB stick.
func TestBytesPinned(t *testing.T) {
	b := encode(t, [][]byte{{0x01, 0xaa}, {0x01}})
	const want = "4c4c42554e444c45" + "01" + "000001a24ff22900" + // magic, version, created
		"0002" + "2b6a723b" + "01aa" + // n, CRC-32C, envelope
		"0001" + "a016d052" + "01" +
		"0000" + "0000000000000002" + "6d13c27d" // end, count, CRC-32C of the count
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("bytes\n got %s\nwant %s", got, want)
	}
}

func TestWriterRefusesSizes(t *testing.T) {
	w, err := NewWriter(io.Discard, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, message.MaxEnvelope + 1} {
		if err := w.Add(make([]byte, n)); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Add of %d bytes: %v", n, err)
		}
	}
}

// TestTruncated cuts a bundle at every length: what was whole before the
// cut is read, nothing else, and the cut is said.
func TestTruncated(t *testing.T) {
	envs := envelopes(6, 2)
	full := encode(t, envs)
	ends := []int{headerLen} // where each entry ends
	for _, e := range envs {
		ends = append(ends, ends[len(ends)-1]+entryHead+len(e))
	}
	for cut := 0; cut < len(full); cut++ {
		got, _, err := readAll(t, full[:cut])
		if cut < len(Magic) && cut > 0 {
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("cut at %d (in the magic): %v", cut, err)
			}
			continue
		}
		if cut == 0 {
			if !errors.Is(err, ErrNotBundle) {
				t.Fatalf("empty file: %v", err)
			}
			continue
		}
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d of %d: %v, want ErrTruncated", cut, len(full), err)
		}
		whole := 0
		for whole < len(envs) && ends[whole+1] <= cut {
			whole++
		}
		if len(got) != whole {
			t.Fatalf("cut at %d: read %d entries, want the %d whole ones", cut, len(got), whole)
		}
		for i := range got {
			if !bytes.Equal(got[i], envs[i]) {
				t.Fatalf("cut at %d: entry %d differs", cut, i)
			}
		}
	}
}

// TestDamage: damage anywhere in an entry (its length, checksum or
// envelope) loses that entry only; a damaged block of a flash card loses
// the entries it covers, and the reader finds the rest.
func TestDamage(t *testing.T) {
	envs := envelopes(20, 3)
	full := encode(t, envs)
	start := headerLen
	for _, e := range envs[:5] {
		start += entryHead + len(e)
	}
	// envs[5] starts at start.
	for _, at := range []int{0, 1, 2, 5, entryHead, entryHead + len(envs[5]) - 1} {
		t.Run(fmt.Sprint("byte ", at), func(t *testing.T) {
			b := bytes.Clone(full)
			b[start+at] ^= 0x40
			got, st, err := readAll(t, b)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("ended with %v", err)
			}
			want := append(append([][]byte{}, envs[:5]...), envs[6:]...)
			if len(got) != len(want) {
				t.Fatalf("read %d entries, want %d", len(got), len(want))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("entry %d differs", i)
				}
			}
			if st.Damaged != 1 || st.Lost != 1 || st.FirstDamage != int64(start) || st.DamagedBytes != int64(entryHead+len(envs[5])) {
				t.Fatalf("stats %+v (damaged entry at %d, %d bytes)", st, start, entryHead+len(envs[5]))
			}
		})
	}
	t.Run("a block of zeros", func(t *testing.T) {
		b := bytes.Clone(full)
		copy(b[start+10:start+10+4096], make([]byte, 4096))
		got, st, err := readAll(t, b)
		if !errors.Is(err, io.EOF) {
			t.Fatalf("ended with %v", err)
		}
		if st.Damaged != 1 || st.Lost == 0 || int64(len(got))+st.Lost != int64(len(envs)) {
			t.Fatalf("read %d, stats %+v", len(got), st)
		}
		if !bytes.Equal(got[len(got)-1], envs[len(envs)-1]) {
			t.Fatal("the entries after the block were not found")
		}
	})
	t.Run("the end marker", func(t *testing.T) {
		b := bytes.Clone(full)
		b[len(b)-1] ^= 1
		got, _, err := readAll(t, b)
		if !errors.Is(err, ErrTruncated) || len(got) != len(envs) {
			t.Fatalf("damaged end marker: %d entries, %v", len(got), err)
		}
	})
}

func TestConcatenated(t *testing.T) {
	a, b := envelopes(3, 4), envelopes(4, 5)
	joined := append(encode(t, a), encode(t, b)...)
	got, st, err := readAll(t, joined)
	if !errors.Is(err, io.EOF) || len(got) != 7 || st.Bundles != 2 {
		t.Fatalf("concatenated: %d entries, %+v, %v", len(got), st, err)
	}
	// Bytes after the end that are no bundle are ignored.
	got, _, err = readAll(t, append(encode(t, a), "more to come"...))
	if !errors.Is(err, io.EOF) || len(got) != 3 {
		t.Fatalf("trailing bytes: %d entries, %v", len(got), err)
	}
}

func TestNotABundle(t *testing.T) {
	if _, _, err := readAll(t, []byte{0x01, 0x11, 0, 0, 0}); !errors.Is(err, ErrNotBundle) {
		t.Fatalf("an envelope: %v", err)
	}
	b := encode(t, nil)
	b[len(Magic)] = 2
	if _, _, err := readAll(t, b); !errors.Is(err, ErrVersion) {
		t.Fatalf("version 2: %v", err)
	}
	if IsBundle([]byte{0x01}) || !IsBundle([]byte("LLB")) || !IsBundle(b) || IsBundle(nil) {
		t.Fatal("IsBundle")
	}
}

// FuzzReader: any bytes. The reader never panics, never returns an entry
// over the size limit or one whose bytes are not in the input, and ends.
func FuzzReader(f *testing.F) {
	f.Add(encode(f, envelopes(3, 6)))
	f.Add(encode(f, nil))
	f.Add([]byte(Magic + "\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		var n int64
		for {
			e, err := r.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrTruncated) {
					t.Fatalf("Next: %v", err)
				}
				break
			}
			n++
			if len(e) == 0 || len(e) > message.MaxEnvelope || !bytes.Contains(b, e) {
				t.Fatalf("entry of %d bytes", len(e))
			}
		}
		if st := r.Stats(); st.Entries != n || st.DamagedBytes > int64(len(b)) {
			t.Fatalf("stats %+v after %d entries of %d bytes", st, n, len(b))
		}
	})
}

// FuzzRoundTrip: whatever envelopes are written are read back, in order.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{1, 2, 3}, uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, size uint16) {
		n := 1 + int(size)%message.MaxEnvelope
		var envs [][]byte
		for len(data) > 0 {
			k := min(n, len(data))
			envs = append(envs, data[:k])
			data = data[k:]
		}
		got, _, err := readAll(t, encode(t, envs))
		if !errors.Is(err, io.EOF) || len(got) != len(envs) {
			t.Fatalf("%d of %d entries, %v", len(got), len(envs), err)
		}
		for i := range envs {
			if !bytes.Equal(got[i], envs[i]) {
				t.Fatalf("entry %d differs", i)
			}
		}
	})
}

package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lifeline/message"
)

// TestSealedAtRest: no message body is written in clear, neither in the
// database nor in the log, and the key file is 0600. Without the key the
// store refuses to open rather than start afresh over sealed records.
func TestSealedAtRest(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path, Options{Now: clk.Now, MinFree: -1})
	if err != nil {
		t.Fatal(err)
	}
	secret := "meet at the north gate at dawn"
	alice := identity(1)
	var ids []message.ID
	for range 50 {
		e := text(t, alice, "general", secret, clk.Now())
		clk.Advance(1)
		mustPut(t, s, e)
		ids = append(ids, e.ID())
	}
	// The log holds what the applier has not committed yet; look at both
	// before and after Close.
	for _, f := range []string{FilesOf(path).DB, FilesOf(path).Log} {
		if b, _ := os.ReadFile(f); bytes.Contains(b, []byte(secret)) {
			t.Fatalf("%s holds a message in clear", f)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{FilesOf(path).DB, FilesOf(path).Log} {
		if b, _ := os.ReadFile(f); bytes.Contains(b, []byte(secret)) {
			t.Fatalf("%s holds a message in clear", f)
		}
	}
	info, err := os.Stat(FilesOf(path).Key)
	if err != nil || info.Mode().Perm() != 0o600 || info.Size() != keySize {
		t.Fatalf("key file: %v %v", info, err)
	}
	s = reopenHolding(t, path, Options{Now: clk.Now}, ids)
	s.Close()
	os.Chmod(FilesOf(path).Key, 0o644)
	if _, err := Open(path, Options{Now: clk.Now}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("open with a key others can read: %v, want a refusal saying how to fix it", err)
	}
	os.Chmod(FilesOf(path).Key, 0o600)

	os.Remove(FilesOf(path).Key)
	if _, err := Open(path, Options{Now: clk.Now}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open without the key: %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(FilesOf(path).Key); err == nil {
		t.Fatal("a new key was made for a sealed store")
	}
}

// TestReadsUnsealedRecords: records written before sealing (header 0x02,
// the envelope in clear) stay readable.
func TestReadsUnsealedRecords(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now})
	e := text(t, identity(1), "general", "from before sealing", clk.Now())
	v := append([]byte{hdrVersion, flagOwn}, make([]byte, 16)...)
	v = append(v, e.Raw()...)
	rec, flags, err := decodeRecord(s.seal, v)
	if err != nil || rec.Envelope.ID() != e.ID() || flags != flagOwn || !rec.Own {
		t.Fatalf("unsealed record: %+v %v %v", rec, flags, err)
	}
	sealed := encodeRecord(s.seal, e, 1, 0, 1)
	sealed[len(sealed)-1] ^= 1
	if _, _, err := decodeRecord(s.seal, sealed); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("tampered sealed record: %v, want ErrCorrupt", err)
	}
}

package store

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/chacha20poly1305"
)

// Envelopes are sealed at rest: in the database and in the log, the bytes
// of every message are encrypted (XChaCha20-Poly1305, a random 24-byte
// nonce each) with a 32-byte key kept in its own small file beside the
// database (keyPath). Destroying that file (Wipe) makes every message
// unrecoverable at once, however large the store and whatever the flash
// card's wear levelling kept of overwritten blocks: there is no time to
// overwrite a gigabyte when a kit is being seized. What stays readable
// without the key is the indexes' keys: message ids, created times,
// channel ids and recipients' public keys (docs/SECURITY.md).
//
// Stores written before sealing (record header 0x02) stay readable; what
// they store from then on is sealed.

const (
	// keySize is the store key's size.
	keySize = chacha20poly1305.KeySize
	// sealOverhead is what sealing adds to an envelope: nonce and tag.
	sealOverhead = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
)

// keyPath is where the key of the database at path lives.
func keyPath(path string) string { return path + "-key" }

// sealer seals and opens envelope bytes with the store key.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("store key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// seal appends nonce || ciphertext of raw to dst.
func (s *sealer) seal(dst, raw []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, chacha20poly1305.NonceSizeX)...)
	nonce := dst[start:]
	if _, err := rand.Read(nonce); err != nil {
		panic("store: no randomness for a nonce: " + err.Error()) // crypto/rand never fails on Linux
	}
	return s.aead.Seal(dst, nonce, raw, nil)
}

// open returns the envelope bytes sealed in b.
func (s *sealer) open(b []byte) ([]byte, error) {
	if len(b) < sealOverhead {
		return nil, errors.New("sealed envelope too short")
	}
	n := chacha20poly1305.NonceSizeX
	return s.aead.Open(nil, b[:n], b[n:], nil)
}

// loadKey reads the store key of the database at path, or creates it
// (0600, synced with its directory) when create is set and it is missing.
// A missing key for a store that has sealed records is an error: its
// messages cannot be read (the kit was wiped, or the file was lost).
func loadKey(path string, create bool) ([]byte, bool, error) {
	kp := keyPath(path)
	if fi, err := os.Stat(kp); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("store key %s is readable by other users (mode %04o): it must be private; run `chmod 600 %s` "+
			"(and consider the messages exposed if others could log in)", kp, fi.Mode().Perm(), kp)
	}
	key, err := os.ReadFile(kp)
	switch {
	case err == nil && len(key) == keySize:
		return key, false, nil
	case err == nil:
		return nil, false, fmt.Errorf("%w: store key %s holds %d bytes, want %d", ErrCorrupt, kp, len(key), keySize)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, fmt.Errorf("store key: %w", err)
	case !create:
		return nil, false, fmt.Errorf("%w: the store key %s is missing, so its messages cannot be read "+
			"(after a wipe, remove the database too and start afresh)", ErrCorrupt, kp)
	}
	key = make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("store key: %w", err)
	}
	f, err := os.OpenFile(kp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("store key: %w", err)
	}
	_, err = f.Write(key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(kp))
	}
	if err != nil {
		os.Remove(kp)
		return nil, false, fmt.Errorf("store key: %w", err)
	}
	return key, true, nil
}

// Files names the files of the store whose database is at path.
type Files struct {
	// Key is the store key. Destroying it makes every message in DB and
	// Log unrecoverable; what is left there is ids, times, channel ids
	// and recipients' keys (see the top of this file).
	Key string
	DB  string
	Log string
}

// FilesOf returns the files of the store whose database is at path.
func FilesOf(path string) Files {
	return Files{Key: keyPath(path), DB: path, Log: walPath(path)}
}

package lifeline

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Secret files (the node identity, a mesh key) are written and read by the
// two functions below, so both get the same guarantees: mode 0600, never
// replaced, complete or absent after a crash, and refused when others can
// read them.

// writeSecretFile creates path holding b with mode 0600. It never replaces
// an existing file (the error matches fs.ErrExist): losing a key loses an
// identity or splits a mesh for good. The file appears complete or not at
// all: it is written and synced under a temporary name, then linked.
func writeSecretFile(what, path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".secret-*.tmp")
	if err != nil {
		return fmt.Errorf("cannot create %s %s: %w", what, path, err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600 already; Chmod states the contract
	// and guards against a future change of that default.
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(b)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	// Link, unlike Rename, fails when path exists.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s %s already exists; not replacing a key: %w", what, path, fs.ErrExist)
		}
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable; best effort
		d.Close()
	}
	return nil
}

// readSecretFile reads at most max bytes of a file written by
// writeSecretFile. It checks the mode on the open file, so the file checked
// is the file read. A missing file gives an error matching fs.ErrNotExist.
func readSecretFile(what, path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s: not a regular file", what, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s %s is readable by other users (mode %04o): it must be private; run `chmod 600 %s` (and consider the key exposed if others could log in)", what, path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s %s: over %d bytes; is it the right file?", what, path, max)
	}
	return b, nil
}

// destroySecretFile overwrites path with random bytes, syncs them, removes
// the file and syncs its directory: the key is gone from the file system
// at once. (On flash, wear levelling may keep the old block until it is
// erased; see docs/SECURITY.md.) A missing file is not an error.
func destroySecretFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("destroy %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err == nil {
		junk := make([]byte, max(fi.Size(), 64))
		rand.Read(junk)
		if _, err = f.WriteAt(junk, 0); err == nil {
			err = f.Sync()
		}
	}
	f.Close()
	if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	if err != nil {
		return fmt.Errorf("destroy %s: %w", path, err)
	}
	return nil
}

// replaceFile writes b to path, mode 0600, replacing it whole: a temporary
// file in the same directory, synced, renamed over path, and the directory
// synced, so a power cut leaves the old file or the new one. For the small
// files the node rewrites (its settings, its saved clock); secrets are
// written once, by writeSecretFile, which never replaces.
func replaceFile(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(b)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the new name durable; best effort
		d.Close()
	}
	return nil
}

package lifeline

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"lifeline/message"
)

// IdentityFile is the name of the node's key inside its data directory.
const IdentityFile = "identity.pem"

// LoadOrCreateIdentity reads the identity at path, or creates one there
// (mode 0600) when the file does not exist. created reports which.
//
// A key file that group or others may read is refused rather than fixed:
// if it has been readable, the key may already be copied, and quietly
// tightening the mode would hide that. The error says how to fix it.
func LoadOrCreateIdentity(path string) (id *message.Identity, created bool, err error) {
	id, err = LoadIdentity(path)
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	id, err = message.NewIdentity(rand.Reader)
	if err != nil {
		return nil, false, err
	}
	if err := WriteIdentity(path, id); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created it between our read and write:
			// use theirs, so both agree on the node's identity.
			id, err = LoadIdentity(path)
			return id, false, err
		}
		return nil, false, err
	}
	return id, true, nil
}

// LoadIdentity reads an identity file written by WriteIdentity. A missing
// file gives an error matching fs.ErrNotExist.
func LoadIdentity(path string) (*message.Identity, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("identity %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("identity %s is readable by other users (mode %04o): the node's private key must be private; run `chmod 600 %s` (and consider the key exposed if others could log in)", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	id, err := message.ParsePEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

// WriteIdentity writes id to path with mode 0600. It never replaces an
// existing file (the error matches fs.ErrExist): losing a node's key loses
// its identity for good. The file appears complete or not at all.
func WriteIdentity(path string, id *message.Identity) error {
	b, err := id.MarshalPEM()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".identity-*.tmp")
	if err != nil {
		return fmt.Errorf("cannot create identity %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600 already; Chmod states the contract
	// and guards against a future change of that default.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	// Link, unlike Rename, fails when path exists.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("identity %s already exists; not replacing a key: %w", path, fs.ErrExist)
		}
		return fmt.Errorf("identity: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable; best effort
		d.Close()
	}
	return nil
}

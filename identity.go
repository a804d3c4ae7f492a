package lifeline

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"

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

// maxIdentityFile bounds what LoadIdentity reads: a PEM key is ~120 bytes.
const maxIdentityFile = 4096

// LoadIdentity reads an identity file written by WriteIdentity. A missing
// file gives an error matching fs.ErrNotExist.
func LoadIdentity(path string) (*message.Identity, error) {
	b, err := readSecretFile("identity", path, maxIdentityFile)
	if err != nil {
		return nil, err
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
	return writeSecretFile("identity", path, b)
}

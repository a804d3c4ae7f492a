package lifeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/libp2p/go-libp2p/core/pnet"
)

// Mesh keys are libp2p swarm keys (the "/key/swarm/psk/1.0.0/" format that
// IPFS also uses), so existing tools can make and read them.

// maxMeshKeyFile bounds what LoadMeshKey reads: a key file is 3 short lines.
const maxMeshKeyFile = 4096

// LoadMeshKey reads a private-mesh key file. Like the identity, it is a
// secret: a file readable by group or others is refused.
func LoadMeshKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mesh key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("mesh key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("mesh key %s is readable by others (mode %04o): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxMeshKeyFile))
	if err != nil {
		return nil, fmt.Errorf("mesh key %s: %w", path, err)
	}
	psk, err := pnet.DecodeV1PSK(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("mesh key %s is not a swarm key (make one with `lifeline meshkey --out FILE`): %w", path, err)
	}
	return psk, nil
}

// WriteMeshKey creates a new random mesh key file with mode 0600. It never
// overwrites: replacing a mesh key splits the mesh.
func WriteMeshKey(path string, rnd io.Reader) error {
	key := make([]byte, 32)
	if _, err := io.ReadFull(rnd, key); err != nil {
		return fmt.Errorf("mesh key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("mesh key %s already exists: not overwritten", path)
	}
	if err != nil {
		return fmt.Errorf("mesh key: %w", err)
	}
	_, err = fmt.Fprintf(f, "/key/swarm/psk/1.0.0/\n/base16/\n%x\n", key)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("mesh key %s: %w", path, err)
	}
	return nil
}

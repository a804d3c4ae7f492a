package lifeline

import (
	"bytes"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/pnet"
)

// Mesh keys are libp2p swarm keys (the "/key/swarm/psk/1.0.0/" format that
// IPFS also uses), so existing tools can make and read them.

// maxMeshKeyFile bounds what LoadMeshKey reads: a key file is 3 short lines.
const maxMeshKeyFile = 4096

// LoadMeshKey reads a private-mesh key file. Like the identity, it is a
// secret: a file readable by group or others is refused.
func LoadMeshKey(path string) ([]byte, error) {
	b, err := readSecretFile("mesh key", path, maxMeshKeyFile)
	if err != nil {
		return nil, err
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
	return writeSecretFile("mesh key", path, fmt.Appendf(nil, "/key/swarm/psk/1.0.0/\n/base16/\n%x\n", key))
}

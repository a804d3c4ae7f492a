package lifeline

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// AdminTokenFile, in the data directory, holds the token that lets the
// node's operator act as the node from another machine (api.Options.
// AdminToken): sign as it, read what is sealed to it, see its peers. It is
// made at the first start, mode 0600 like the node's key. People on the
// kit's Wi-Fi never need it: they sign with their own keys.
const AdminTokenFile = "admin.token"

// LoadOrCreateAdminToken reads the admin token at path, or creates one
// (32 random bytes, hex) when there is none.
func LoadOrCreateAdminToken(path string) (string, error) {
	tok, err := LoadAdminToken(path)
	if errors.Is(err, fs.ErrNotExist) {
		var k [32]byte
		rand.Read(k[:])
		tok := hex.EncodeToString(k[:])
		err = writeSecretFile("admin token", path, []byte(tok+"\n"))
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateAdminToken(path) // another process made it first
		}
		return tok, err
	}
	return tok, err
}

// LoadAdminToken reads the admin token at path and never makes one: a
// missing file is an error matching fs.ErrNotExist (the node makes it at
// its first start), one the caller may not read matches fs.ErrPermission.
func LoadAdminToken(path string) (string, error) {
	b, err := readSecretFile("admin token", path, 1024)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 32 {
		return "", fmt.Errorf("admin token %s is too short (%d characters): delete it and a new one is made at the next start", path, len(tok))
	}
	return tok, nil
}

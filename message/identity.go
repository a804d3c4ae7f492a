package message

import (
	"crypto/ed25519"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
)

// Identity is an Ed25519 key pair: a node's, or a person's.
type Identity struct {
	priv ed25519.PrivateKey
	pub  PublicKey
}

// NewIdentity makes a fresh identity from rand (crypto/rand.Reader in
// production).
func NewIdentity(rand io.Reader) (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("generate identity: %w", err)
	}
	return IdentityFromKey(priv), nil
}

// IdentityFromKey wraps an existing Ed25519 private key.
func IdentityFromKey(priv ed25519.PrivateKey) *Identity {
	id := &Identity{priv: priv}
	copy(id.pub[:], priv.Public().(ed25519.PublicKey))
	return id
}

// Public returns the identity's public key.
func (id *Identity) Public() PublicKey { return id.pub }

// PrivateKey returns the Ed25519 private key, for the libp2p host that
// shares this identity. Callers must not modify it.
func (id *Identity) PrivateKey() ed25519.PrivateKey { return id.priv }

// x25519Scalar returns the X25519 private scalar matching the Ed25519 key,
// as RFC 8032 derives the signing scalar; X25519 clamps it.
func (id *Identity) x25519Scalar() []byte {
	h := sha512.Sum512(id.priv.Seed())
	return h[:32]
}

const pemType = "PRIVATE KEY"

// MarshalPEM encodes the identity as a PKCS#8 PEM block, readable by
// openssl. The caller writes it with mode 0600.
func (id *Identity) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(id.priv)
	if err != nil {
		return nil, fmt.Errorf("encode identity: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), nil
}

// ParsePEM decodes what MarshalPEM wrote.
func ParsePEM(b []byte) (*Identity, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != pemType {
		return nil, errors.New("identity: no PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("identity: key is %T, want Ed25519", k)
	}
	return IdentityFromKey(priv), nil
}

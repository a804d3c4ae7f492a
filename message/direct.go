package message

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"io"

	"filippo.io/edwards25519"
	"golang.org/x/crypto/chacha20poly1305"
)

// A sealed direct-message body is
//
//	ephemeral X25519 public key (32) || ChaCha20-Poly1305 ciphertext and tag
//
// with key = HKDF-SHA256(secret = X25519(ephemeral, recipient),
// salt = ephemeral public, info = "lifeline/direct/v1" || author || recipient)
// and a zero nonce: every key is used once, because every ephemeral is fresh.
// The recipient's X25519 key is the Montgomery form of its Ed25519 key, so
// anyone can write to a key with no prior exchange. The author's key is in
// the derivation so a relay cannot re-sign the ciphertext under its own name.
const sealOverhead = 32 + chacha20poly1305.Overhead

// montgomery converts an Ed25519 public key to its X25519 form, rejecting
// encodings that are not points and points of small order.
func montgomery(k PublicKey) (*ecdh.PublicKey, error) {
	p, err := new(edwards25519.Point).SetBytes(k[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBadKey, k)
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return nil, fmt.Errorf("%w: small order point %s", ErrBadKey, k)
	}
	pub, err := ecdh.X25519().NewPublicKey(p.BytesMontgomery())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return pub, nil
}

func directKey(secret, ephemeral []byte, author, recipient PublicKey) ([]byte, error) {
	info := make([]byte, 0, 18+64)
	info = append(append(append(info, "lifeline/direct/v1"...), author[:]...), recipient[:]...)
	return hkdf.Key(sha256.New, secret, ephemeral, string(info), chacha20poly1305.KeySize)
}

// SealDirect encrypts plaintext for recipient as written by this identity,
// returning the body of a KindDirect envelope.
func (id *Identity) SealDirect(rand io.Reader, recipient PublicKey, plaintext []byte) ([]byte, error) {
	rpub, err := montgomery(recipient)
	if err != nil {
		return nil, err
	}
	// Read the ephemeral secret from rand rather than GenerateKey(rand):
	// since Go 1.26 GenerateKey ignores its reader, and the caller's rand
	// is what makes test vectors reproducible.
	var k [32]byte
	if _, err := io.ReadFull(rand, k[:]); err != nil {
		return nil, fmt.Errorf("ephemeral key: %w", err)
	}
	eph, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		return nil, fmt.Errorf("ephemeral key: %w", err)
	}
	secret, err := eph.ECDH(rpub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	ephPub := eph.PublicKey().Bytes()
	key, err := directKey(secret, ephPub, id.pub, recipient)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, sealOverhead+len(plaintext))
	out = append(out, ephPub...)
	return aead.Seal(out, make([]byte, chacha20poly1305.NonceSize), plaintext, nil), nil
}

// OpenDirect decrypts a KindDirect envelope addressed to this identity.
func (id *Identity) OpenDirect(e *Envelope) ([]byte, error) {
	if e.Kind != KindDirect {
		return nil, fmt.Errorf("%w: %s is not a direct message", ErrMalformed, e.Kind)
	}
	if e.Recipient != id.pub {
		return nil, fmt.Errorf("%w: addressed to %s", ErrNotForMe, e.Recipient)
	}
	priv, err := ecdh.X25519().NewPrivateKey(id.x25519Scalar())
	if err != nil {
		return nil, err
	}
	ephPub, err := ecdh.X25519().NewPublicKey(e.Body[:32])
	if err != nil {
		return nil, fmt.Errorf("%w: ephemeral key: %v", ErrDecrypt, err)
	}
	secret, err := priv.ECDH(ephPub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	key, err := directKey(secret, e.Body[:32], e.Author, id.pub)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, make([]byte, chacha20poly1305.NonceSize), e.Body[32:], nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	return pt, nil
}

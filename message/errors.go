package message

import "errors"

// Errors returned by Decode, Verify and the constructors. Each is wrapped
// with detail; test with errors.Is.
var (
	// ErrVersion: the first byte names a version this code does not know.
	ErrVersion = errors.New("unknown envelope version")
	// ErrTruncated: the bytes end before the fields they announce.
	ErrTruncated = errors.New("envelope truncated")
	// ErrTooLarge: the envelope or its body is over the size limit.
	ErrTooLarge = errors.New("envelope too large")
	// ErrMalformed: a field holds a value the format does not allow.
	ErrMalformed = errors.New("malformed envelope")
	// ErrSignature: the signature does not match the author and the bytes.
	ErrSignature = errors.New("bad signature")
	// ErrFuture: created is further ahead of the verifier's clock than
	// MaxClockSkew allows.
	ErrFuture = errors.New("created in the future")
	// ErrExpired: the envelope's expiry has passed.
	ErrExpired = errors.New("expired")
	// ErrNotForMe: a direct message addressed to another key.
	ErrNotForMe = errors.New("not addressed to this identity")
	// ErrDecrypt: the sealed body does not open with this identity's key.
	ErrDecrypt = errors.New("cannot decrypt")
	// ErrBadKey: a public key is not a usable Ed25519 point.
	ErrBadKey = errors.New("invalid public key")
)

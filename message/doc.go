// Package message defines Lifeline's signed envelope: identities, the wire
// format, signing, IDs, encryption of direct messages, and validation.
//
// The package is pure: no I/O, no goroutines, no clocks. Callers pass the
// current time and a source of randomness.
//
// # Envelope, version 1
//
// All integers are big-endian. The full layout is in docs/PROTOCOL.md; in
// short:
//
//	offset  size  field
//	0       1     version (0x01)
//	1       1     kind (bits 0-3) | priority (bits 4-5) | has-TTL (bit 6) | reserved (bit 7, zero)
//	2       6     created, unix milliseconds (uint48)
//	8       0/1   TTL code, present when has-TTL is set (see TTLCode)
//	...     8/32  destination: channel id (8) for channel kinds, recipient key (32) otherwise
//	...     32    author Ed25519 public key
//	...     n     body (to the signature; its length is implied by the envelope length)
//	end-64  64    Ed25519 signature over SignaturePrefix || every preceding byte
//
// A signed public channel text message without TTL byte costs 112 bytes of
// overhead: 8 header + 8 channel + 32 author + 64 signature.
//
// The ID of an envelope is the SHA-256 of its complete bytes, signature
// included. The signature covers the exact bytes on the wire, never a
// re-encoding, so any implementation that can copy bytes can verify.
package message

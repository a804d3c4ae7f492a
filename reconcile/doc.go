// Package reconcile implements range-based set reconciliation, Negentropy
// protocol version 1 (version byte 0x61), over items ordered by (timestamp,
// 32-byte id). It is wire compatible with the reference implementation
// (github.com/hoytech/negentropy) so independent implementations can check it.
//
// The engine is a pure state machine: the caller passes a message in and
// sends the message that comes out; the engine never touches a network,
// owns no goroutine and reads no clock. The items come from a Storage, which
// is walked by bounds rather than by position so that a database cursor can
// serve a set of millions without loading it into memory.
//
// # Messages
//
//	message = version (0x61) range*
//	range   = upperBound mode payload
//	bound   = timestamp(varint) idPrefixLen(varint) idPrefix
//	mode    = 0 Skip (no payload) | 1 Fingerprint (16 bytes) | 2 IdList (varint n, n×32 bytes)
//
// Varints are base-128, most significant group first, with the high bit set
// on every byte but the last. Timestamps in bounds are delta-coded within one
// message: 0 is infinity, otherwise value-1 is added to the previous
// timestamp. A fingerprint is the first 16 bytes of SHA-256 over the
// little-endian sum mod 2^256 of the ids in the range followed by the varint
// of their count. Ranges are consecutive: each starts where the previous one
// ended, the first at the lowest bound, and the last ends at infinity.
package reconcile

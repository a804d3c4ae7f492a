package reconcile

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/bits"
)

// IDSize is the size of an item id.
const IDSize = 32

// FingerprintSize is the size of a range fingerprint on the wire.
const FingerprintSize = 16

// Infinity is the timestamp of the upper bound of every set.
const Infinity = math.MaxUint64

// Item is one element of a reconciled set.
type Item struct {
	Timestamp uint64
	ID        [IDSize]byte
}

// Compare orders items by timestamp, then id.
func (a Item) Compare(b Item) int {
	if c := cmp.Compare(a.Timestamp, b.Timestamp); c != 0 {
		return c
	}
	return bytes.Compare(a.ID[:], b.ID[:])
}

// Bound separates ranges. It compares like an item whose id is the prefix
// padded with zeros; only the prefix travels on the wire.
type Bound struct {
	Item
	PrefixLen int
}

var (
	minBound = Bound{}
	maxBound = Bound{Item: Item{Timestamp: Infinity}}
)

// minimalBound returns the shortest bound b with prev < b <= curr.
func minimalBound(prev, curr Item) Bound {
	if curr.Timestamp != prev.Timestamp {
		return Bound{Item: Item{Timestamp: curr.Timestamp}}
	}
	n := 0
	for n < IDSize && curr.ID[n] == prev.ID[n] {
		n++
	}
	b := Bound{Item: Item{Timestamp: curr.Timestamp}, PrefixLen: n + 1}
	copy(b.ID[:n+1], curr.ID[:n+1])
	return b
}

// accumulator sums ids mod 2^256 and counts them.
type accumulator struct {
	sum   [4]uint64 // little-endian limbs
	count uint64
}

func (a *accumulator) add(id *[IDSize]byte) {
	var carry uint64
	for i := range 4 {
		a.sum[i], carry = bits.Add64(a.sum[i], binary.LittleEndian.Uint64(id[8*i:]), carry)
	}
	a.count++
}

func (a *accumulator) fingerprint() [FingerprintSize]byte {
	var buf [IDSize + binary.MaxVarintLen64]byte
	for i := range 4 {
		binary.LittleEndian.PutUint64(buf[8*i:], a.sum[i])
	}
	n := IDSize + len(appendVarint(buf[IDSize:IDSize], a.count))
	h := sha256.Sum256(buf[:n])
	var fp [FingerprintSize]byte
	copy(fp[:], h[:])
	return fp
}

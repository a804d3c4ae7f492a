package reconcile

import (
	"encoding/binary"
	"math"
)

// Rateless invertible Bloom lookup tables (Yang, Gilad, Alizadeh, "Practical
// Rateless Set Reconciliation", SIGCOMM 2024): a set is encoded as an
// endless sequence of coded symbols; a peer subtracts its own symbols and
// peels the difference out of the first few, about 1.35 per differing
// item whatever the sets' size. Over LoRa that is the repair: a node sends
// a handful of symbols (a dozen bytes each), and a neighbour learns which
// messages one of them lacks, in one direction, without listing either
// set.
//
// Items are 8-byte keys (short message IDs). The encoding here is
// Lifeline's own and documented in docs/PROTOCOL.md; it follows the
// paper's construction (each item lands in symbol 0, then at indices
// whose density falls as 1/(1+i/2)).

// Symbol is one coded symbol: how many items were added minus removed,
// the XOR of their keys, and the XOR of their checksums.
type Symbol struct {
	Count int64
	Key   uint64
	Check uint64
}

// SymbolSize is a symbol's size on the wire: count (int16), key, check
// (32 bits of it: enough to tell a pure symbol from a mixture).
const SymbolSize = 2 + 8 + 4

// check is an item's checksum, a keyed mix of the key (SplitMix64's
// finaliser), so that a symbol holding exactly one item can be told
// apart: its Check is the check of its Key.
func check(key uint64) uint64 {
	z := key + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// mapping walks the indices of the symbols an item lands in.
type mapping struct {
	state uint64
	index uint64
}

func newMapping(key uint64) mapping { return mapping{state: check(key) | 1, index: 0} }

// next moves to the item's next index: the gap is drawn so that the
// chance of landing in symbol i is about 1/(1+i/2) (the paper's
// equation for the gap, from a uniform 64-bit draw r: 2^32/sqrt(r) runs
// from 1 up).
func (m *mapping) next() uint64 {
	m.state = m.state*6364136223846793005 + 1442695040888963407 // a 64-bit LCG step
	r := float64(m.state) + 1
	gap := math.Ceil((float64(m.index) + 1.5) * ((1<<32)/math.Sqrt(r) - 1))
	if gap < 1 || math.IsInf(gap, 0) || gap > 1<<40 {
		gap = 1 << 40 // far enough: no sequence this long is ever asked for
	}
	m.index += uint64(gap)
	return m.index
}

// Encoder produces a set's coded symbols, as many as asked.
type Encoder struct {
	keys []uint64
}

// NewEncoder encodes the set of keys (duplicates are the caller's
// mistake: they cancel out).
func NewEncoder(keys []uint64) *Encoder { return &Encoder{keys: keys} }

// Symbols returns symbols [0, n).
func (e *Encoder) Symbols(n int) []Symbol {
	out := make([]Symbol, n)
	for _, k := range e.keys {
		add(out, k, 1)
	}
	return out
}

// add adds key with sign (+1 or -1) to every symbol of out it maps to.
func add(out []Symbol, key uint64, sign int64) {
	c := check(key)
	m := newMapping(key)
	for i := uint64(0); i < uint64(len(out)); i = m.next() {
		out[i].Count += sign
		out[i].Key ^= key
		out[i].Check ^= c
	}
}

// Diff is what decoding found: the keys only the remote set holds, and
// the keys only the local one holds.
type Diff struct {
	Remote, Local []uint64
}

// Decode subtracts the local set from the remote set's first symbols and
// peels the difference. It reports whether the symbols were enough: if
// not, ask for more (the next symbols continue the same sequence).
func Decode(remote []Symbol, local []uint64) (Diff, bool) {
	s := append([]Symbol(nil), remote...)
	for _, k := range local {
		add(s, k, -1)
	}
	var d Diff
	pure := func(x Symbol) bool {
		return (x.Count == 1 || x.Count == -1) && uint32(check(x.Key)) == uint32(x.Check)
	}
	queue := make([]int, 0, len(s))
	for i := range s {
		if pure(s[i]) {
			queue = append(queue, i)
		}
	}
	// Honest symbols peel each differing item once; symbols made up by a
	// peer could make an item seem to come and go. Bound the work.
	peels := 0
	for len(queue) > 0 {
		if peels++; peels > 4*len(s)+16 {
			return d, false
		}
		i := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if !pure(s[i]) {
			continue
		}
		key, sign := s[i].Key, s[i].Count
		if sign == 1 {
			d.Remote = append(d.Remote, key)
		} else {
			d.Local = append(d.Local, key)
		}
		// Take the item out of every symbol it is in.
		c := check(key)
		m := newMapping(key)
		for j := uint64(0); j < uint64(len(s)); j = m.next() {
			s[j].Count -= sign
			s[j].Key ^= key
			s[j].Check ^= c
			if pure(s[j]) {
				queue = append(queue, int(j))
			}
		}
	}
	for _, x := range s {
		if x.Count != 0 || x.Key != 0 || uint32(x.Check) != 0 {
			return d, false
		}
	}
	// Made-up symbols can peel into keys the local set does not hold, or
	// "remote" keys it does: a consistent difference has neither.
	have := make(map[uint64]bool, len(local))
	for _, k := range local {
		have[k] = true
	}
	for _, k := range d.Local {
		if !have[k] {
			return Diff{}, false
		}
	}
	for _, k := range d.Remote {
		if have[k] {
			return Diff{}, false
		}
	}
	return d, true
}

// AppendSymbols appends symbols in their wire form: count as int16, key,
// and the low 32 bits of the checksum, big-endian.
func AppendSymbols(dst []byte, syms []Symbol) []byte {
	for _, s := range syms {
		dst = binary.BigEndian.AppendUint16(dst, uint16(int16(s.Count)))
		dst = binary.BigEndian.AppendUint64(dst, s.Key)
		dst = binary.BigEndian.AppendUint32(dst, uint32(s.Check))
	}
	return dst
}

// ParseSymbols reads symbols in wire form; a trailing partial symbol is
// an error (false).
func ParseSymbols(b []byte) ([]Symbol, bool) {
	if len(b)%SymbolSize != 0 {
		return nil, false
	}
	out := make([]Symbol, len(b)/SymbolSize)
	for i := range out {
		p := b[i*SymbolSize:]
		out[i] = Symbol{Count: int64(int16(binary.BigEndian.Uint16(p))), Key: binary.BigEndian.Uint64(p[2:]),
			Check: uint64(binary.BigEndian.Uint32(p[10:]))}
	}
	return out, true
}

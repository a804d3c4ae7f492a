package reconcile

import (
	"slices"
)

// Storage is the sorted set the engine reconciles. The engine only walks it;
// implementations decide where the items live.
type Storage interface {
	// Iterate calls fn for each item i with from <= i < to, in ascending
	// order, until fn returns false. Bounds compare as items (see Bound).
	Iterate(from, to Item, fn func(Item) bool) error
}

// Vector is an in-memory Storage: a sorted, duplicate-free slice. It serves
// tests, benchmarks and small sets.
type Vector struct{ items []Item }

// NewVector sorts items and drops duplicates. It takes ownership of items.
func NewVector(items []Item) *Vector {
	slices.SortFunc(items, Item.Compare)
	return &Vector{items: slices.CompactFunc(items, func(a, b Item) bool { return a == b })}
}

// Len returns the number of items.
func (v *Vector) Len() int { return len(v.items) }

// Iterate implements Storage.
func (v *Vector) Iterate(from, to Item, fn func(Item) bool) error {
	lo, _ := slices.BinarySearchFunc(v.items, from, Item.Compare)
	for _, it := range v.items[lo:] {
		if it.Compare(to) >= 0 || !fn(it) {
			break
		}
	}
	return nil
}

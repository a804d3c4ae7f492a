// Package store keeps Lifeline's messages in a bbolt database: the single
// source of truth that every link reads from and writes to.
//
// Every new envelope is verified (signature and time) in the caller's
// goroutine before it reaches the database, so verification uses every core.
// A Put from a peer is then written to a write-ahead log, one fdatasync per
// batch of concurrent Puts, and returns; one applier goroutine copies the log
// into bbolt in large transactions. Requests whose answer depends on the
// database (PutOwn, Expire, a Put that may need eviction) are answered after
// the applier's commit. Reads wait for the applier, so they see every Put
// that returned before them. See docs/STORE.md, "Writes".
//
// The byte layout of every bucket is in docs/STORE.md; layout.go is the
// code side of the same description.
//
// Ownership: a *Record handed out by Get, List or a Subscription is shared
// and read-only; its Envelope is a private copy, never a view of the
// database's memory map.
package store

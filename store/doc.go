// Package store keeps Lifeline's messages in a bbolt database: the single
// source of truth that every link reads from and writes to.
//
// Every envelope is verified (message.Verify) in the caller's goroutine
// before it reaches the database, so verification uses every core. Verified
// envelopes then go to one committer goroutine that writes whole batches in
// one bbolt transaction (group commit): one fsync serves every Put waiting in
// the batch, and Put returns only after that fsync.
//
// The byte layout of every bucket is in docs/STORE.md; layout.go is the
// code side of the same description.
//
// Ownership: a *Record handed out by Get, List or a Subscription is shared
// and read-only; its Envelope is a private copy, never a view of the
// database's memory map.
package store

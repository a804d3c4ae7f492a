module lifeline

go 1.26.8

require (
	filippo.io/edwards25519 v1.2.0
	golang.org/x/crypto v0.58.0
)

require (
	go.etcd.io/bbolt v1.5.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

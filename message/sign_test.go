package message

import "crypto/ed25519"

func ed25519Sign(id *Identity, b []byte) []byte { return ed25519.Sign(id.priv, b) }

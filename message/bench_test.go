package message

import (
	"crypto/rand"
	"testing"
)

func BenchmarkSignText(b *testing.B) {
	alice := newID(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := alice.NewText("general", "water and food at the school gym, 200 people", fixedNow, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	e, _ := newID(b, 1).NewText("general", "water and food at the school gym, 200 people", fixedNow, 0)
	raw := e.Raw()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	e, _ := newID(b, 1).NewText("general", "water and food at the school gym, 200 people", fixedNow, 0)
	raw, now := e.Raw(), fixedNow.UnixMilli()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(raw, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealOpenDirect(b *testing.B) {
	alice, bob := newID(b, 1), newID(b, 2)
	b.ReportAllocs()
	for b.Loop() {
		e, err := alice.NewDirect(rand.Reader, bob.Public(), "meet at the clinic at noon", PriorityNormal, fixedNow, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bob.OpenDirect(e); err != nil {
			b.Fatal(err)
		}
	}
}

package mesh

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzFrames feeds arbitrary bytes to the reconcile stream's decoders: the
// frame reader and the envelope and want payloads. No panic, bounded
// allocation, every error classified, and what decodes round-trips.
func FuzzFrames(f *testing.F) {
	var buf bytes.Buffer
	writeFrame(&buf, frameEnvelopes, encodeEnvelopes([][]byte{{1, 2, 3}, bytes.Repeat([]byte{7}, 300)}))
	writeFrame(&buf, frameWant, make([]byte, 64))
	writeFrame(&buf, frameNeg, []byte{0x61})
	writeFrame(&buf, frameDone, nil)
	f.Add(buf.Bytes())
	f.Add([]byte{frameEnvelopes, 0x05, 0x01, 0x03, 1, 2, 3})
	f.Add([]byte{frameNeg, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{frameWant, 0x21})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		for {
			fr, err := readFrame(r)
			if err != nil {
				// Input that ends early is a dropped link, not a violation.
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrProtocol) {
					t.Fatalf("unclassified frame error: %v", err)
				}
				return
			}
			if len(fr.payload) > MaxFrame {
				t.Fatalf("frame of %d bytes accepted", len(fr.payload))
			}
			switch fr.typ {
			case frameEnvelopes:
				envs, err := decodeEnvelopes(fr.payload)
				if err != nil {
					if !errors.Is(err, ErrProtocol) {
						t.Fatalf("unclassified: %v", err)
					}
					continue
				}
				// Lengths may come non-minimally encoded, so compare
				// decoded values, not bytes.
				back, err := decodeEnvelopes(encodeEnvelopes(envs))
				if err != nil || len(back) != len(envs) {
					t.Fatalf("envelopes do not round-trip: %v", err)
				}
				for i := range envs {
					if !bytes.Equal(back[i], envs[i]) {
						t.Fatal("envelope changed in a round trip")
					}
				}
			case frameWant:
				ids, err := decodeIDs(fr.payload)
				if err != nil {
					if !errors.Is(err, ErrProtocol) {
						t.Fatalf("unclassified: %v", err)
					}
					continue
				}
				if !bytes.Equal(encodeIDs(ids), fr.payload) {
					t.Fatal("want payload does not re-encode")
				}
			}
		}
	})
}

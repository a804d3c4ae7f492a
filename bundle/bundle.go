// Package bundle reads and writes bundles: many signed envelopes in one
// file, for carrying a node's messages by hand (a USB stick) to a node
// that has no link to it, or keeping them off the kit.
//
// A bundle carries envelopes as they were signed; it adds no trust. Every
// envelope read from one is verified by the node that stores it, like an
// envelope from any other source. What the bundle adds is framing that
// survives a damaged copy: each entry carries a checksum, so a reader
// skips a damaged stretch and finds the entries after it, and the bundle
// ends with an end marker and a count, so a copy cut short is told from a
// whole one and everything before the cut is still read.
//
// Layout (all integers big-endian; docs/PROTOCOL.md, "Bundle"):
//
//	header  "LLBUNDLE" (8) | version 0x01 (1) | created, unix ms (8)
//	entry   n (2, 1 .. message.MaxEnvelope) | CRC-32C of the envelope (4) | envelope (n)
//	end     0x0000 (2) | count of entries (8) | CRC-32C of the count's 8 bytes (4)
//
// Bundles may be concatenated (cat a.llb b.llb > c.llb): a header may
// follow an end marker, and a reader goes on into it. Other bytes after an
// end marker are ignored, for what a later version may append.
package bundle

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"lifeline/message"
)

// Magic starts every bundle. Its first byte is no envelope version, so a
// file's first byte tells a bundle from a single envelope.
const Magic = "LLBUNDLE"

// Version is the version byte after the magic.
const Version = 1

// Sizes of the parts.
const (
	headerLen = len(Magic) + 1 + 8
	entryHead = 2 + 4
	endLen    = 2 + 8 + 4
)

// Errors of NewReader and Reader.Next; each is wrapped with detail.
var (
	// ErrNotBundle: the bytes do not start with Magic.
	ErrNotBundle = errors.New("not a bundle")
	// ErrVersion: a bundle of a version this code does not read.
	ErrVersion = errors.New("unknown bundle version")
	// ErrTruncated: the bundle ends before its end marker (a copy cut
	// short). Every intact entry before the cut has been returned.
	ErrTruncated = errors.New("bundle cut short")
	// ErrTooLarge: Writer.Add of an envelope over message.MaxEnvelope, or
	// of none.
	ErrTooLarge = errors.New("envelope size out of range")
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// IsBundle reports whether b, a file's first bytes, starts like a bundle.
// A prefix shorter than Magic that matches it so far counts.
func IsBundle(b []byte) bool {
	n := min(len(b), len(Magic))
	return n > 0 && string(b[:n]) == Magic[:n]
}

// Writer writes a bundle. Close writes the end marker; a bundle without
// it reads as cut short.
type Writer struct {
	w     io.Writer
	count int64
	buf   []byte
	err   error
}

// NewWriter writes the header to w and returns a Writer for the entries.
// created is when the export was made; readers show it.
func NewWriter(w io.Writer, created time.Time) (*Writer, error) {
	h := make([]byte, 0, headerLen)
	h = append(h, Magic...)
	h = append(h, Version)
	h = binary.BigEndian.AppendUint64(h, uint64(created.UnixMilli()))
	if _, err := w.Write(h); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return &Writer{w: w, buf: make([]byte, 0, entryHead+message.MaxEnvelope)}, nil
}

// Add writes one envelope. It checks the size only: the envelope is
// written as given.
func (w *Writer) Add(env []byte) error {
	if w.err != nil {
		return w.err
	}
	if len(env) == 0 || len(env) > message.MaxEnvelope {
		return fmt.Errorf("bundle: %w: %d bytes (1 to %d)", ErrTooLarge, len(env), message.MaxEnvelope)
	}
	b := binary.BigEndian.AppendUint16(w.buf[:0], uint16(len(env)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(env, crcTable))
	b = append(b, env...)
	if _, err := w.w.Write(b); err != nil {
		w.err = fmt.Errorf("bundle: %w", err)
		return w.err
	}
	w.count++
	return nil
}

// Count is the number of envelopes added.
func (w *Writer) Count() int64 { return w.count }

// Close writes the end marker. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	b := appendEnd(w.buf[:0], w.count)
	if _, err := w.w.Write(b); err != nil {
		w.err = fmt.Errorf("bundle: %w", err)
		return w.err
	}
	w.err = errors.New("bundle: writer closed")
	return nil
}

func appendEnd(b []byte, count int64) []byte {
	b = binary.BigEndian.AppendUint16(b, 0)
	start := len(b)
	b = binary.BigEndian.AppendUint64(b, uint64(count))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], crcTable))
}

// Stats say what a Reader found so far.
type Stats struct {
	// Entries is the number of intact envelopes returned.
	Entries int64
	// Damaged is the number of damaged stretches skipped, DamagedBytes
	// their length, FirstDamage the offset of the first.
	Damaged      int
	DamagedBytes int64
	FirstDamage  int64
	// Lost is how many entries the end markers count beyond those read:
	// entries that were in damaged stretches.
	Lost int64
	// Bundles is the number of bundles read (more than one when bundles
	// were concatenated), Created when the first was made.
	Bundles int
	Created time.Time
}

// Reader reads a bundle's envelopes in order.
type Reader struct {
	br      *bufio.Reader
	off     int64 // bytes consumed
	inSeg   int64 // entries returned since the last header
	damaged bool  // the last bytes consumed were skipped as damage
	stats   Stats
	done    error // io.EOF or ErrTruncated once the end is reached
}

// NewReader reads the header of the bundle in r and returns a Reader for
// its entries. r is read in 64 KiB blocks; a Reader holds at most that
// and one envelope.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{br: bufio.NewReaderSize(r, 64<<10)}
	if err := rd.header(); err != nil {
		return nil, err
	}
	return rd, nil
}

func (r *Reader) header() error {
	h, err := r.br.Peek(headerLen)
	if !IsBundle(h) {
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("bundle: %w", err)
		}
		return fmt.Errorf("bundle: %w: it does not start with %q", ErrNotBundle, Magic)
	}
	if len(h) < headerLen {
		if !errors.Is(err, io.EOF) {
			return fmt.Errorf("bundle: %w", err)
		}
		return fmt.Errorf("bundle: %w: the header ends after %d bytes", ErrTruncated, len(h))
	}
	if h[len(Magic)] != Version {
		return fmt.Errorf("bundle: %w %d at byte %d: this program reads version %d", ErrVersion, h[len(Magic)], r.off, Version)
	}
	created := time.UnixMilli(int64(binary.BigEndian.Uint64(h[len(Magic)+1:])))
	if r.stats.Bundles == 0 {
		r.stats.Created = created
	}
	r.stats.Bundles++
	r.inSeg = 0
	r.discard(headerLen)
	return nil
}

// Stats says what the reader found so far; after Next returned io.EOF or
// ErrTruncated, in all.
func (r *Reader) Stats() Stats { return r.stats }

func (r *Reader) discard(n int) {
	r.br.Discard(n) // the bytes were peeked: it cannot fail
	r.off += int64(n)
}

// Next returns the next intact envelope, a slice the caller owns. It
// skips damaged stretches (see Stats) and returns io.EOF after the last
// end marker, or an error wrapping ErrTruncated when the bundle ends
// without one. Another error is the underlying reader's.
func (r *Reader) Next() ([]byte, error) {
	if r.done != nil {
		return nil, r.done
	}
	for {
		h, err := r.br.Peek(entryHead)
		if len(h) < entryHead {
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("bundle: %w", err)
			}
			if len(h) > 0 {
				r.skip(len(h))
			}
			r.done = fmt.Errorf("bundle: %w at byte %d, without its end marker: the %d entries before were read "+
				"(a copy that did not finish?)", ErrTruncated, r.off, r.stats.Entries)
			return nil, r.done
		}
		n := int(binary.BigEndian.Uint16(h))
		if n == 0 {
			if ok, err := r.end(); ok || err != nil {
				if err != nil {
					return nil, err
				}
				if r.done != nil {
					return nil, r.done
				}
				continue // another bundle follows
			}
			r.skip(1)
			continue
		}
		if n > message.MaxEnvelope {
			r.skip(1)
			continue
		}
		e, err := r.br.Peek(entryHead + n)
		if len(e) < entryHead+n {
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("bundle: %w", err)
			}
			r.skip(1) // a damaged length, or the cut: look further
			continue
		}
		if crc32.Checksum(e[entryHead:], crcTable) != binary.BigEndian.Uint32(e[2:]) {
			r.skip(1)
			continue
		}
		env := append([]byte(nil), e[entryHead:]...)
		r.discard(entryHead + n)
		r.damaged = false
		r.inSeg++
		r.stats.Entries++
		return env, nil
	}
}

// end reads an end marker at the current position. It reports false,
// consuming nothing, if the bytes there are not one (damage). After one,
// it reads the header of a bundle that follows, or sets r.done.
func (r *Reader) end() (bool, error) {
	b, err := r.br.Peek(endLen)
	if len(b) < endLen {
		if err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("bundle: %w", err)
		}
		return false, nil
	}
	if crc32.Checksum(b[2:10], crcTable) != binary.BigEndian.Uint32(b[10:]) {
		return false, nil
	}
	count := int64(binary.BigEndian.Uint64(b[2:10]))
	if count > r.inSeg {
		r.stats.Lost += count - r.inSeg
	}
	r.discard(endLen)
	r.damaged = false
	next, err := r.br.Peek(len(Magic))
	if string(next) == Magic {
		return true, r.header()
	}
	if len(next) < len(Magic) && err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("bundle: %w", err)
	}
	if len(next) > 0 && len(next) < len(Magic) && IsBundle(next) {
		r.done = fmt.Errorf("bundle: %w at byte %d, inside the header of a bundle that follows", ErrTruncated, r.off+int64(len(next)))
		return true, nil
	}
	r.done = io.EOF
	return true, nil
}

// skip passes n bytes of damage.
func (r *Reader) skip(n int) {
	if !r.damaged {
		r.damaged = true
		if r.stats.Damaged == 0 {
			r.stats.FirstDamage = r.off
		}
		r.stats.Damaged++
	}
	r.stats.DamagedBytes += int64(n)
	r.discard(n)
}

package reconcile

import (
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every decoding error: the message does not
// follow the protocol.
var ErrMalformed = errors.New("malformed negentropy message")

// appendVarint appends n as a Negentropy varint: base-128, most significant
// group first (unlike encoding/binary's little-endian uvarint).
func appendVarint(b []byte, n uint64) []byte {
	var tmp [10]byte
	i := len(tmp) - 1
	tmp[i] = byte(n & 0x7f)
	for n >>= 7; n != 0; n >>= 7 {
		i--
		tmp[i] = byte(n&0x7f) | 0x80
	}
	return append(b, tmp[i:]...)
}

// reader consumes a message, turning every short read into ErrMalformed.
type reader struct {
	b   []byte
	off int
}

func (r *reader) empty() bool { return r.off >= len(r.b) }

func (r *reader) varint() (uint64, error) {
	var n uint64
	for i := 0; ; i++ {
		if r.off >= len(r.b) {
			return 0, fmt.Errorf("%w: varint runs past the end at byte %d", ErrMalformed, r.off)
		}
		if n > (1<<64-1)>>7 || i >= 10 {
			return 0, fmt.Errorf("%w: varint overflows 64 bits at byte %d", ErrMalformed, r.off)
		}
		c := r.b[r.off]
		r.off++
		n = n<<7 | uint64(c&0x7f)
		if c&0x80 == 0 {
			return n, nil
		}
	}
}

func (r *reader) bytes(n int) ([]byte, error) {
	if n < 0 || len(r.b)-r.off < n {
		return nil, fmt.Errorf("%w: %d bytes wanted at byte %d, %d left", ErrMalformed, n, r.off, len(r.b)-r.off)
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s, nil
}

// Package kiss is KISS framing (Chepponis and Karn, 1987) as the RNode
// serial protocol uses it: every frame is FEND, a command byte, the data
// with FEND and FESC escaped, FEND. The command byte is escaped like the
// data. The package is pure: Append builds frames, a Deframer turns a byte
// stream into frames, and neither does I/O.
package kiss

// Special bytes.
const (
	FEND  = 0xC0 // frame delimiter
	FESC  = 0xDB // escape
	TFEND = 0xDC // FESC TFEND stands for a FEND in the data
	TFESC = 0xDD // FESC TFESC stands for a FESC in the data
)

// Frame is one decoded frame.
type Frame struct {
	Command byte
	Data    []byte
}

// Append appends the frame (cmd, data) to dst and returns the result.
func Append(dst []byte, cmd byte, data []byte) []byte {
	dst = append(dst, FEND)
	dst = appendEscaped(dst, cmd)
	for _, b := range data {
		dst = appendEscaped(dst, b)
	}
	return append(dst, FEND)
}

func appendEscaped(dst []byte, b byte) []byte {
	switch b {
	case FEND:
		return append(dst, FESC, TFEND)
	case FESC:
		return append(dst, FESC, TFESC)
	}
	return append(dst, b)
}

// Deframer turns a byte stream into frames. Bytes before the first FEND
// are ignored (a board prints boot messages); consecutive FENDs are empty
// frames and are skipped. FEND both ends a frame and starts the next, so
// noise between two frames comes out as a frame of its own: the receiver
// drops commands it does not know. A frame with an invalid escape or longer
// than the limit is dropped and counted, and decoding resumes at the next
// FEND: one bad frame never costs the next.
type Deframer struct {
	max     int
	buf     []byte
	inFrame bool
	esc     bool
	bad     bool

	// Counts of dropped frames, by reason.
	BadEscape int
	TooLong   int
}

// NewDeframer returns a Deframer for frames of at most max bytes, command
// byte included, after unescaping.
func NewDeframer(max int) *Deframer {
	return &Deframer{max: max, buf: make([]byte, 0, max)}
}

// Feed decodes p and returns the frames it completed, in order. Their Data
// are fresh copies, the caller's to keep.
func (d *Deframer) Feed(p []byte) []Frame {
	var out []Frame
	for _, b := range p {
		if b == FEND {
			if d.inFrame && !d.bad && !d.esc && len(d.buf) > 0 {
				out = append(out, Frame{Command: d.buf[0], Data: append([]byte(nil), d.buf[1:]...)})
			} else if d.inFrame && d.esc && !d.bad {
				d.BadEscape++ // FESC right before the end
			}
			d.inFrame, d.esc, d.bad, d.buf = true, false, false, d.buf[:0]
			continue
		}
		if !d.inFrame || d.bad {
			continue
		}
		if d.esc {
			d.esc = false
			switch b {
			case TFEND:
				b = FEND
			case TFESC:
				b = FESC
			default:
				d.bad = true
				d.BadEscape++
				continue
			}
		} else if b == FESC {
			d.esc = true
			continue
		}
		if len(d.buf) == d.max {
			d.bad = true
			d.TooLong++
			continue
		}
		d.buf = append(d.buf, b)
	}
	return out
}

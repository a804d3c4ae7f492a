package meshtastic

import (
	"errors"
	"fmt"
)

// The stream framing of Meshtastic's serial API ("Stream protocol" in
// Meshtastic's client documentation, docs/software/python/stream):
//
//	0x94 0xC3  length (big-endian 16 bits)  protobuf (length bytes)
//
// ToRadio from the host, FromRadio from the device. A length over 512 (the
// largest BLE packet, the API's lowest common denominator) means the start
// bytes were not a frame's: the reader looks for the next 0x94 0xC3.
// Bytes outside frames are the device's debug console, text it prints
// until a client speaks the API (and some firmware keeps printing); the
// start bytes were chosen outside 7-bit ASCII and UTF-8 so text rarely
// holds them, but it may hold 0x94 alone.
const (
	start1 = 0x94
	start2 = 0xC3
	// MaxProtobuf is the largest protobuf a frame carries.
	MaxProtobuf = 512
	// headerLen: the start bytes and the length.
	headerLen = 4
)

// ErrFrameTooLarge is AppendFrame's error for a protobuf over MaxProtobuf.
var ErrFrameTooLarge = errors.New("meshtastic: protobuf over 512 bytes does not fit a frame")

// AppendFrame appends pb, framed, to dst.
func AppendFrame(dst, pb []byte) ([]byte, error) {
	if len(pb) > MaxProtobuf {
		return dst, fmt.Errorf("%w (%d bytes)", ErrFrameTooLarge, len(pb))
	}
	dst = append(dst, start1, start2, byte(len(pb)>>8), byte(len(pb)))
	return append(dst, pb...), nil
}

// MaxLogLine bounds one line of the device's debug text as the Deframer
// returns it: a longer line comes in pieces of this size, so a device that
// prints without newlines never makes the reader hold more.
const MaxLogLine = 256

// Deframer splits the device's byte stream into frames and lines of debug
// text. It holds at most one frame (4 + 512 bytes) and one line of text
// (MaxLogLine bytes) between calls, whatever it is fed.
type Deframer struct {
	state   deframeState
	lenHi   byte
	want    int    // the protobuf's length, in stateBody
	body    []byte // the frame's protobuf so far, in stateBody
	text    []byte // the debug line so far
	resyncs int
}

type deframeState int

const (
	stateText   deframeState = iota // outside a frame
	stateStart1                     // after 0x94
	stateLenHi                      // after 0x94 0xC3
	stateLenLo                      // after the length's high byte
	stateBody                       // reading the protobuf
)

// Feed takes the next bytes read and returns the frames they complete (the
// protobufs, each the caller's to keep) and the lines of debug text they
// complete (without the line end, carriage returns dropped, empty lines
// left out). A frame and text split across calls are joined.
func (d *Deframer) Feed(b []byte) (frames [][]byte, text []string) {
	emitText := func() {
		if len(d.text) > 0 {
			text = append(text, string(d.text))
			d.text = d.text[:0]
		}
	}
	addText := func(c byte) {
		switch c {
		case '\n':
			emitText()
		case '\r':
		default:
			d.text = append(d.text, c)
			if len(d.text) >= MaxLogLine {
				emitText()
			}
		}
	}
	// pending holds bytes to read again: after a bad length the bytes that
	// followed the 0x94 are scanned anew (they may hold a real frame's
	// start). It is at most three bytes long.
	var pending []byte
	i := 0
	next := func() (byte, bool) {
		if len(pending) > 0 {
			c := pending[0]
			pending = pending[1:]
			return c, true
		}
		if i < len(b) {
			i++
			return b[i-1], true
		}
		return 0, false
	}
	for {
		c, ok := next()
		if !ok {
			return frames, text
		}
		switch d.state {
		case stateText:
			if c == start1 {
				d.state = stateStart1
			} else {
				addText(c)
			}
		case stateStart1:
			switch c {
			case start2:
				d.state = stateLenHi
			case start1: // the first 0x94 was text; this one may start a frame
				addText(start1)
			default:
				addText(start1)
				addText(c)
				d.state = stateText
			}
		case stateLenHi:
			d.lenHi, d.state = c, stateLenLo
		case stateLenLo:
			n := int(d.lenHi)<<8 | int(c)
			if n > MaxProtobuf {
				// Not a frame: 0x94 was text. Scan again from the byte
				// after it.
				d.resyncs++
				addText(start1)
				pending = append([]byte{start2, d.lenHi, c}, pending...)
				d.state = stateText
				continue
			}
			if n == 0 {
				frames = append(frames, []byte{})
				d.state = stateText
				continue
			}
			d.want, d.body, d.state = n, make([]byte, 0, n), stateBody
		case stateBody:
			// Take as much of the frame as this chunk holds at once.
			d.body = append(d.body, c)
			if len(pending) == 0 {
				take := min(d.want-len(d.body), len(b)-i)
				d.body = append(d.body, b[i:i+take]...)
				i += take
			}
			if len(d.body) == d.want {
				frames = append(frames, d.body)
				d.body, d.state = nil, stateText
			}
		}
	}
}

// Resyncs counts the times start bytes turned out not to start a frame
// (a length over 512).
func (d *Deframer) Resyncs() int { return d.resyncs }

// Reset forgets a partial frame and text: the port was reopened.
func (d *Deframer) Reset() {
	*d = Deframer{resyncs: d.resyncs}
}

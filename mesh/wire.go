package mesh

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"lifeline/message"
)

// The reconcile stream protocol (/lifeline/reconcile/1.0.0), documented in
// docs/PROTOCOL.md: after one version byte each way, both sides exchange
// frames of
//
//	type (1 byte) | payload length (uvarint) | payload
//
// in strict lockstep, so neither side ever writes while the other is
// blocked writing.
const (
	streamVersion = 0x01

	frameNeg       = 0x01 // a Negentropy message
	frameEnvelopes = 0x02 // uvarint count, then count × (uvarint length, envelope)
	frameWant      = 0x03 // n × 32-byte ids
	frameDone      = 0x04 // empty: the initiator is finished

	// MaxFrame bounds any frame a peer can make us read.
	MaxFrame = 1 << 20
	// batch is the most envelopes in one frame and ids in one want; at the
	// maximum envelope size 128 envelopes stay under MaxFrame.
	batch = 128
	// negFrameLimit is the Negentropy frame size limit on this protocol.
	negFrameLimit = 500_000
)

// ErrProtocol is wrapped by every error caused by a peer breaking the
// stream protocol: such a peer is disconnected and blocked.
var ErrProtocol = errors.New("reconcile stream protocol violation")

// ErrBusy: the session ended because strangers' sessions together used up
// the reconciliation work this node gives them for now. Not a violation.
var ErrBusy = errors.New("reconciliation budget for strangers spent; try later")

// ErrVersion: the peer speaks another version of the stream protocol. It is
// incompatible, not misbehaving, so it is not blocked.
var ErrVersion = errors.New("reconcile stream version not supported")

type frame struct {
	typ     byte
	payload []byte
}

// writeFrame writes a frame with a single Write: one transport frame, and
// no empty writes, which block on synchronous pipes.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(payload))
	b = binary.AppendUvarint(append(b, typ), uint64(len(payload)))
	_, err := w.Write(append(b, payload...))
	return err
}

// readFrame reads one frame. Only what a peer did wrong wraps ErrProtocol
// (and so gets it disconnected and blocked); a link that drops mid-frame is
// an I/O error like any other, returned as it is: Wi-Fi fails all the time.
func readFrame(r *bufio.Reader) (frame, error) {
	typ, err := r.ReadByte()
	if err != nil {
		return frame{}, err
	}
	var n uint64
	for i := 0; ; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return frame{}, fmt.Errorf("frame length: %w", err)
		}
		if i == binary.MaxVarintLen64-1 && c > 1 {
			return frame{}, fmt.Errorf("%w: frame length overflows 64 bits", ErrProtocol)
		}
		n |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			break
		}
	}
	if n > MaxFrame {
		return frame{}, fmt.Errorf("%w: frame of %d bytes, the limit is %d", ErrProtocol, n, MaxFrame)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return frame{}, fmt.Errorf("frame payload: %w", err)
	}
	return frame{typ: typ, payload: p}, nil
}

func encodeEnvelopes(envs [][]byte) []byte {
	p := binary.AppendUvarint(nil, uint64(len(envs)))
	for _, e := range envs {
		p = binary.AppendUvarint(p, uint64(len(e)))
		p = append(p, e...)
	}
	return p
}

// decodeEnvelopes splits an envelopes payload. The slices alias p.
func decodeEnvelopes(p []byte) ([][]byte, error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > batch {
		return nil, fmt.Errorf("%w: envelope count", ErrProtocol)
	}
	p = p[k:]
	envs := make([][]byte, 0, n)
	for range n {
		l, k := binary.Uvarint(p)
		if k <= 0 || l > message.MaxEnvelope || uint64(len(p)-k) < l {
			return nil, fmt.Errorf("%w: envelope length", ErrProtocol)
		}
		envs = append(envs, p[k:k+int(l)])
		p = p[k+int(l):]
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the envelopes", ErrProtocol, len(p))
	}
	return envs, nil
}

func encodeIDs(ids []message.ID) []byte {
	p := make([]byte, 0, 32*len(ids))
	for _, id := range ids {
		p = append(p, id[:]...)
	}
	return p
}

func decodeIDs(p []byte) ([]message.ID, error) {
	if len(p)%32 != 0 || len(p)/32 > batch {
		return nil, fmt.Errorf("%w: want of %d bytes", ErrProtocol, len(p))
	}
	ids := make([]message.ID, len(p)/32)
	for i := range ids {
		copy(ids[i][:], p[32*i:])
	}
	return ids, nil
}

package mesh

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"

	"lifeline/clock"
)

// TimeProtocol is the libp2p protocol id of the time query, documented in
// docs/PROTOCOL.md: the asker writes one version byte, the answerer writes
//
//	version (1) | time, unix ms (8, signed) | quality (1) | hops (1) | uncertainty, ms (4)
//
// and closes. A node asks each peer before each reconciliation it starts;
// a peer that does not speak the protocol (an older node) is simply not a
// source.
const TimeProtocol = protocol.ID("/lifeline/time/1.0.0")

const (
	timeVersion    = 0x01
	timeAnswerSize = 1 + 8 + 1 + 1 + 4
	// timeQueryTimeout bounds one query: the answer is one packet.
	timeQueryTimeout = 5 * time.Second
	// A node asks each peer about once a reconciliation interval; strangers
	// together get this many answers a second, which costs nothing worth
	// counting but bounds it all the same.
	strangerTimeRate  = 20
	strangerTimeBurst = 40
)

// encodeTimeAnswer and decodeTimeAnswer are the answer's wire form.
func encodeTimeAnswer(t time.Time, q clock.Quality, hops int, uncertainty time.Duration) []byte {
	b := make([]byte, timeAnswerSize)
	b[0] = timeVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(t.UnixMilli()))
	b[9] = byte(q)
	b[10] = byte(min(hops, 255))
	binary.BigEndian.PutUint32(b[11:15], uint32(min(uncertainty.Milliseconds(), 1<<32-1)))
	return b
}

type timeAnswer struct {
	time        time.Time
	quality     clock.Quality
	hops        int
	uncertainty time.Duration
}

func decodeTimeAnswer(b []byte) (timeAnswer, error) {
	if len(b) != timeAnswerSize {
		return timeAnswer{}, fmt.Errorf("%w: time answer of %d bytes, want %d", ErrProtocol, len(b), timeAnswerSize)
	}
	if b[0] != timeVersion {
		return timeAnswer{}, fmt.Errorf("%w: time answer version %d", ErrVersion, b[0])
	}
	ms := int64(binary.BigEndian.Uint64(b[1:9]))
	if ms <= 0 || ms > 1<<48 {
		return timeAnswer{}, fmt.Errorf("%w: time answer %d ms is out of range", ErrProtocol, ms)
	}
	return timeAnswer{time: time.UnixMilli(ms), quality: clock.Quality(b[9]), hops: int(b[10]),
		uncertainty: time.Duration(binary.BigEndian.Uint32(b[11:15])) * time.Millisecond}, nil
}

// handleTime answers a time query with this node's clock.
func (m *Mesh) handleTime(s network.Stream) {
	defer s.Close()
	p := s.Conn().RemotePeer()
	if !m.member(p) && !m.timeBudget.Allow() {
		s.Reset()
		return
	}
	s.SetDeadline(time.Now().Add(timeQueryTimeout))
	var v [1]byte
	if _, err := io.ReadFull(s, v[:]); err != nil || v[0] != timeVersion {
		s.Reset()
		return
	}
	t, q, hops, u := m.cfg.Clock.Answer()
	s.Write(encodeTimeAnswer(t, q, hops, u))
}

// queryTime asks p for its time and hands the reading to the clock.
func (m *Mesh) queryTime(ctx context.Context, p peer.ID) error {
	ctx, cancel := context.WithTimeout(ctx, timeQueryTimeout)
	defer cancel()
	s, err := m.host.NewStream(ctx, p, TimeProtocol)
	if err != nil {
		return fmt.Errorf("open time stream to %s: %w", p, err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(timeQueryTimeout))
	sent := time.Now()
	if _, err := s.Write([]byte{timeVersion}); err != nil {
		s.Reset()
		return err
	}
	b, err := io.ReadAll(io.LimitReader(s, timeAnswerSize+1))
	got := time.Now()
	if err != nil {
		s.Reset()
		return fmt.Errorf("time from %s: %w", p, err)
	}
	a, err := decodeTimeAnswer(b)
	if err != nil {
		return fmt.Errorf("time from %s: %w", p, err)
	}
	rtt := got.Sub(sent)
	ch := clock.ChannelStranger
	switch {
	case m.isHub(p):
		ch = clock.ChannelHub
	case m.member(p):
		ch = clock.ChannelMember
	}
	m.cfg.Clock.Observe(clock.Sample{Channel: ch, Source: p.String(), Time: a.time.Add(rtt / 2),
		Quality: a.quality, Hops: a.hops + 1, Uncertainty: a.uncertainty + rtt/2})
	return nil
}

func newTimeBudget() *rate.Limiter { return rate.NewLimiter(strangerTimeRate, strangerTimeBurst) }

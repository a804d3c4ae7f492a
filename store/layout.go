package store

import (
	"encoding/binary"

	"lifeline/message"
)

// Bucket names. Layout of keys and values is documented in docs/STORE.md;
// keep both in step.
var (
	bucketMeta  = []byte("meta")
	bucketMsg   = []byte("msg")   // id -> header || envelope
	bucketTime  = []byte("time")  // created || id -> nil
	bucketDest  = []byte("dest")  // 'c' channel | 'r' recipient || created || id -> nil
	bucketExp   = []byte("exp")   // expires || id -> nil
	bucketEvict = []byte("evict") // class || created || id -> logical size (uint32)
	bucketSeq   = []byte("seq")   // seq -> id || dest prefix

	metaVersion  = []byte("version")
	metaCounters = []byte("counters")
	metaSeq      = []byte("seq") // the last seq assigned, uint64
	metaWAL      = []byte("wal") // the last log LSN applied, uint64; absent: 0
	// metaSealed is present once the store seals what it stores (seal.go):
	// from then on its key file must exist.
	metaSealed = []byte("sealed")
)

// schemaVersion is stored under meta/version. A file with another version is
// refused rather than misread.
//
// Version 2 added the arrival sequence (the seq bucket, meta/seq and the
// seq field of the record header). Version 1 files are refused, not
// migrated: none was ever deployed.
const schemaVersion = 2

// RecordOverhead is what each stored message costs against Options.Quota on
// top of its envelope bytes. It approximates what the indexes and the
// record header really take (about 220 bytes of keys per message, see
// docs/STORE.md), so that the quota tracks the file's growth rather than
// only the payload.
const RecordOverhead = 256

// Record header, in front of the envelope in the msg bucket.
const (
	hdrVersion   = 2  // the envelope in clear: written before sealing (seal.go), still read
	hdrSealed    = 3  // the envelope sealed with the store key
	hdrLen       = 18 // version(1) flags(1) received unix ms(8) seq(8)
	flagOwn      = 1 << 0
	flagDelivery = 1 << 1
	// flagLeft: a link handed the message to another node (see MarkLeft).
	flagLeft = 1 << 2
	// flagMember: a member's message (Options.Members, or this node's
	// own), judged when it was stored. It puts the message in the
	// members' eviction tier.
	flagMember = 1 << 3
)

const (
	destChannel   = 'c'
	destRecipient = 'r'
)

func logicalSize(env *message.Envelope) int64 {
	return int64(len(env.Raw())) + RecordOverhead
}

// evictClass orders messages for eviction, lowest first. Ordinary messages
// use their priority (0..2); alerts and this node's undelivered messages
// sit in 4..7, above every ordinary message, ordered among themselves by
// priority again.
//
// Members' messages (flagMember: keys the operator vouched for, nodes of
// the private mesh, this node) and this node's undelivered messages are a
// tier above all of that: their classes are 8..15. Priority is whatever the author claims, and anyone can mint
// keys, so a stranger's alert never protects it against a member's
// ordinary message: a flood of strangers' alerts evicts strangers'
// messages only, and a member's message evicts strangers' first.
//
// A receipt is always class 0, like an ordinary low-priority message,
// whoever signed it and whatever priority it claims. It is never "own
// undelivered": nothing ever marks a receipt delivered, so an own receipt
// would be protected until it expired, and anyone who sends this node
// direct messages from throwaway keys makes it sign receipts. Those
// protected receipts could fill the quota until every ordinary Put failed.
// Nor does a receipt claiming PriorityAlert get the alert class: anyone can
// sign one.
func evictClass(k message.Kind, p message.Priority, own, delivered, member bool) byte {
	if k == message.KindReceipt {
		return byte(message.PriorityLow)
	}
	var c byte
	if p == message.PriorityAlert || (own && !delivered) {
		c = 4 + byte(p)
	} else {
		c = byte(p)
	}
	if member || (own && !delivered) {
		c += memberTier
	}
	return c
}

// memberTier is added to the eviction class of members' messages.
const memberTier = 8

// recordEvictKey is the evict key of a stored message with these flags.
func recordEvictKey(env *message.Envelope, flags byte) []byte {
	return evictKey(evictClass(env.Kind, env.Priority, flags&flagOwn != 0, flags&flagDelivery != 0, flags&flagMember != 0),
		env.Created, env.ID())
}

func be64(b []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

// timeKey is created || id. Created is never negative (the envelope
// carries it as uint48), so big-endian order is numeric order.
func timeKey(created int64, id message.ID) []byte {
	k := make([]byte, 0, 8+32)
	return append(be64(k, created), id[:]...)
}

func destPrefix(env *message.Envelope) []byte {
	if env.Kind.ToChannel() {
		return append([]byte{destChannel}, env.Channel[:]...)
	}
	return append([]byte{destRecipient}, env.Recipient[:]...)
}

func destKey(env *message.Envelope) []byte {
	id := env.ID()
	k := destPrefix(env)
	k = be64(k, env.Created)
	return append(k, id[:]...)
}

func expKey(env *message.Envelope) []byte {
	id := env.ID()
	k := make([]byte, 0, 8+32)
	return append(be64(k, env.Expires()), id[:]...)
}

func evictKey(class byte, created int64, id message.ID) []byte {
	k := make([]byte, 0, 1+8+32)
	k = append(k, class)
	return append(be64(k, created), id[:]...)
}

// seqKey is the seq bucket's key: the arrival sequence number, big-endian.
func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}

// seqValue is the seq bucket's value: id || dest prefix. The destination
// is there so that an arrival-order query filtered by channel or recipient
// skips other messages without reading their records (see ListAfter).
func seqValue(env *message.Envelope) []byte {
	id := env.ID()
	v := make([]byte, 0, 32+1+32)
	v = append(v, id[:]...)
	return append(v, destPrefix(env)...)
}

func sizeValue(n int64) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(n))
}

// counters is the meta/counters value: four uint64s.
type counters struct {
	Messages, Bytes, Evicted, Expired int64
}

func (c counters) encode() []byte {
	b := make([]byte, 0, 32)
	for _, v := range []int64{c.Messages, c.Bytes, c.Evicted, c.Expired} {
		b = be64(b, v)
	}
	return b
}

func decodeCounters(b []byte) (counters, bool) {
	if len(b) != 32 {
		return counters{}, false
	}
	u := func(i int) int64 { return int64(binary.BigEndian.Uint64(b[8*i:])) }
	return counters{u(0), u(1), u(2), u(3)}, true
}

func encodeRecord(sl *sealer, env *message.Envelope, received int64, flags byte, seq uint64) []byte {
	raw := env.Raw()
	v := make([]byte, 0, hdrLen+sealOverhead+len(raw))
	v = append(v, hdrSealed, flags)
	v = be64(v, received)
	v = binary.BigEndian.AppendUint64(v, seq)
	return sl.seal(v, raw)
}

// decodeRecord copies what it needs out of v, which may live in the memory
// map and so only for the transaction.
func decodeRecord(sl *sealer, v []byte) (*Record, byte, error) {
	if len(v) < hdrLen || v[0] != hdrVersion && v[0] != hdrSealed {
		return nil, 0, errCorrupt("record header")
	}
	raw := v[hdrLen:]
	if v[0] == hdrSealed {
		var err error
		if raw, err = sl.open(raw); err != nil {
			return nil, 0, errCorrupt("sealed envelope does not open with the store key: " + err.Error())
		}
	}
	env, err := message.Decode(raw)
	if err != nil {
		return nil, 0, errCorrupt("stored envelope: " + err.Error())
	}
	flags := v[1]
	return &Record{
		Envelope:  env,
		Received:  int64(binary.BigEndian.Uint64(v[2:10])),
		Seq:       binary.BigEndian.Uint64(v[10:18]),
		Own:       flags&flagOwn != 0,
		Delivered: flags&flagDelivery != 0,
		Left:      flags&flagLeft != 0,
		Member:    flags&flagMember != 0,
	}, flags, nil
}

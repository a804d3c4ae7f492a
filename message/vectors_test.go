package message

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	"filippo.io/edwards25519"
)

// The test vectors shared with the page's JavaScript (web/app/proto.js):
//
//   - testdata/vectors.json is written by this file (go test ./message -run
//     TestVectors -update) from fixed seeds and fixed randomness; the page
//     must reproduce every envelope byte for byte and agree with every
//     verdict in it.
//   - testdata/vectors-js.json is written by the page's code with fresh
//     randomness (node web/app/proto_vectors.mjs --write); Go must verify
//     and open every envelope in it.
//
// TestVectors checks both files and runs the JavaScript check, so `go test
// ./message` fails if either side drifts.

var update = flag.Bool("update", false, "rewrite testdata/vectors.json (TestVectors) from the Go implementation")

const (
	vectorsFile   = "testdata/vectors.json"
	vectorsJSFile = "testdata/vectors-js.json"
	vectorsScript = "../web/app/proto_vectors.mjs"
)

type vecFile struct {
	Comment    string         `json:"comment"`
	Now        int64          `json:"now"`
	Identities []vecIdentity  `json:"identities"`
	Channels   []vecChannel   `json:"channels"`
	TTLs       []vecTTL       `json:"ttls,omitempty"`
	Backups    []vecBackup    `json:"backups"`
	Envelopes  []vecEnvelope  `json:"envelopes"`
	Checks     []vecCheck     `json:"checks,omitempty"`
	Recipients []vecRecipient `json:"recipients,omitempty"`
}

type vecIdentity struct {
	Name   string `json:"name"`
	Seed   string `json:"seed"`
	Public string `json:"public"`
}

type vecChannel struct {
	Name  string `json:"name"`
	ID    string `json:"id,omitempty"`
	Error string `json:"error,omitempty"`
}

// vecTTL: a sender's TTL in ms, the code Go writes for it and the lifetime
// that code stands for.
type vecTTL struct {
	Ms       int64  `json:"ms"`
	Code     int    `json:"code"`
	Lifetime int64  `json:"lifetime_ms"`
	Error    string `json:"error,omitempty"`
}

type vecBackup struct {
	Seed string `json:"seed"`
	Text string `json:"text"`
}

type vecProfile struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

// vecKeyChange is a parsed key change, keys in hex; Voucher is empty for a
// change signed by both.
type vecKeyChange struct {
	Old     string `json:"old"`
	New     string `json:"new"`
	Voucher string `json:"voucher,omitempty"`
}

func vecKC(kc KeyChange) vecKeyChange {
	v := vecKeyChange{Old: kc.Old.String(), New: kc.New.String()}
	if kc.Vouched {
		v.Voucher = kc.Voucher.String()
	}
	return v
}

// vecEnvelope is one envelope and everything needed to make it again
// through the constructors (NewText, NewDirect, ...; the page's newText,
// newDirect, ...) and to check what a reader must see.
type vecEnvelope struct {
	Name     string `json:"name"`
	Author   string `json:"author"` // an identity's name
	Kind     int    `json:"kind"`
	Priority int    `json:"priority"`
	Created  int64  `json:"created"`
	TTLMs    int64  `json:"ttl_ms"` // as passed to the constructor; 0: no TTL byte
	// Channel is the channel's name (text, alert, profile, report);
	// ChannelID the destination of every channel kind, team ones included.
	Channel   string      `json:"channel,omitempty"`
	ChannelID string      `json:"channel_id,omitempty"`
	Recipient string      `json:"recipient,omitempty"` // an identity's name
	Text      string      `json:"text,omitempty"`      // text, alert; plaintext of direct and team
	Receipt   []string    `json:"receipt,omitempty"`
	Profile   *vecProfile `json:"profile,omitempty"`
	// KeyChange: for a change signed by both, Old is the key whose
	// identity signs the statement and the author is the new key; for a
	// vouched one, the author vouches.
	KeyChange  *vecKeyChange `json:"key_change,omitempty"`
	TeamSecret string        `json:"team_secret,omitempty"`
	// Random is what sealing drew: the ephemeral X25519 secret of a direct
	// message, the nonce of a team message.
	Random   string `json:"random,omitempty"`
	Body     string `json:"body"`
	Envelope string `json:"envelope"`
	ID       string `json:"id"`
	// VerifyAt, if set, replaces the file's now for this envelope.
	VerifyAt int64 `json:"verify_at,omitempty"`
}

// vecCheck is a verdict both sides must reach: verify the envelope at the
// file's now; then, for op open_direct (as Identity), open_team (with
// TeamSecret), parse_profile or parse_keychange, do that. Error is the code of the expected
// error (see vecErrors), empty for success, and then Text or Profile is what
// the op must give.
type vecCheck struct {
	Name       string        `json:"name"`
	Note       string        `json:"note,omitempty"`
	Op         string        `json:"op"`
	Identity   string        `json:"identity,omitempty"`
	TeamSecret string        `json:"team_secret,omitempty"`
	Envelope   string        `json:"envelope"`
	Error      string        `json:"error"`
	Text       string        `json:"text,omitempty"`
	Profile    *vecProfile   `json:"profile,omitempty"`
	KeyChange  *vecKeyChange `json:"key_change,omitempty"`
}

// vecRecipient: whether a key can be written to (SealDirect; the page's
// sealDirect).
type vecRecipient struct {
	Name  string `json:"name"`
	Key   string `json:"key"`
	Error string `json:"error"`
}

// vecErrors names the sentinel errors; the page's ProtoError codes are the
// same names.
var vecErrors = []struct {
	code string
	err  error
}{
	{"version", ErrVersion}, {"truncated", ErrTruncated}, {"too_large", ErrTooLarge},
	{"malformed", ErrMalformed}, {"signature", ErrSignature}, {"future", ErrFuture},
	{"expired", ErrExpired}, {"not_for_me", ErrNotForMe}, {"decrypt", ErrDecrypt},
	{"bad_key", ErrBadKey},
}

func vecCode(err error) string {
	if err == nil {
		return ""
	}
	for _, e := range vecErrors {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	return "unexpected: " + err.Error()
}

func TestVectors(t *testing.T) {
	got := vecBuild(t)
	if t.Failed() {
		return
	}
	if *update {
		b, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", vectorsFile)
	} else {
		t.Run("go reproduces vectors.json", func(t *testing.T) { vecCompare(t, got) })
	}
	t.Run("go reads vectors-js.json", vecCheckJS)
	t.Run("javascript", func(t *testing.T) {
		node, err := exec.LookPath("node")
		if err != nil {
			t.Skip("node not installed: the page's implementation cannot be checked")
		}
		out, err := exec.Command(node, vectorsScript).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", vectorsScript, err, out)
		}
		t.Logf("%s", bytes.TrimSpace(out))
	})
}

// vecCompare checks that this implementation still writes vectors.json, and
// names the entries that changed.
func vecCompare(t *testing.T, got *vecFile) {
	b, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatalf("%v (go test ./message -run TestVectors -update writes it)", err)
	}
	var want vecFile
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("%s: %v", vectorsFile, err)
	}
	if reflect.DeepEqual(*got, want) {
		return
	}
	gv, wv := reflect.ValueOf(*got), reflect.ValueOf(want)
	for i := 0; i < gv.NumField(); i++ {
		f := gv.Type().Field(i).Name
		g, w := gv.Field(i), wv.Field(i)
		if g.Kind() != reflect.Slice {
			if !reflect.DeepEqual(g.Interface(), w.Interface()) {
				t.Errorf("%s: Go gives %v, %s has %v", f, g.Interface(), vectorsFile, w.Interface())
			}
			continue
		}
		if g.Len() != w.Len() {
			t.Errorf("%s: Go gives %d entries, %s has %d", f, g.Len(), vectorsFile, w.Len())
		}
		for j := 0; j < g.Len() && j < w.Len(); j++ {
			if !reflect.DeepEqual(g.Index(j).Interface(), w.Index(j).Interface()) {
				gj, _ := json.Marshal(g.Index(j).Interface())
				wj, _ := json.Marshal(w.Index(j).Interface())
				t.Errorf("%s[%d] differs:\n Go gives %s\n file has %s", f, j, gj, wj)
			}
		}
	}
	t.Errorf("the Go implementation no longer writes %s: if the change is meant, run go test ./message -run TestVectors -update and review the diff", vectorsFile)
}

// vecCheckJS verifies and opens what the page's code made.
func vecCheckJS(t *testing.T) {
	b, err := os.ReadFile(vectorsJSFile)
	if err != nil {
		t.Fatalf("%v (node web/app/proto_vectors.mjs --write writes it)", err)
	}
	var f vecFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", vectorsJSFile, err)
	}
	if len(f.Envelopes) == 0 {
		t.Fatalf("%s holds no envelopes", vectorsJSFile)
	}
	ids := map[string]*Identity{}
	for _, v := range f.Identities {
		id := vecIdentityFrom(t, v.Seed)
		if id.Public().String() != v.Public {
			t.Errorf("identity %s: the page derived public key %s from its seed, Go derives %s", v.Name, v.Public, id.Public())
		}
		ids[v.Name] = id
	}
	for _, c := range f.Channels {
		id, err := Channel(c.Name)
		if got := vecCode(err); got != c.Error || (err == nil && id.String() != c.ID) {
			t.Errorf("channel %q: the page says id %q error %q, Go says %s %q", c.Name, c.ID, c.Error, id, got)
		}
	}
	for _, bk := range f.Backups {
		seed := vecHex(t, bk.Seed)
		if got := vecBackupText(seed); got != bk.Text {
			t.Errorf("backup of %s: the page wrote %s, Go writes %s", bk.Seed, bk.Text, got)
		}
	}
	kinds := map[Kind]bool{}
	for _, v := range f.Envelopes {
		t.Run(v.Name, func(t *testing.T) {
			now := f.Now
			if v.VerifyAt != 0 {
				now = v.VerifyAt
			}
			e, err := Verify(vecHex(t, v.Envelope), now)
			if err != nil {
				t.Fatalf("the page's envelope does not verify: %v", err)
			}
			kinds[e.Kind] = true
			vecCheckEnvelope(t, e, v, ids)
		})
	}
	for _, k := range []Kind{KindText, KindTeam, KindDirect, KindReceipt, KindAlert, KindProfile, KindKeyChange} {
		if !kinds[k] {
			t.Errorf("%s has no %s envelope", vectorsJSFile, k)
		}
	}
}

// vecCheckEnvelope checks that e, verified, is what v says.
func vecCheckEnvelope(t *testing.T, e *Envelope, v vecEnvelope, ids map[string]*Identity) {
	t.Helper()
	author, ok := ids[v.Author]
	if !ok {
		t.Fatalf("unknown author %q", v.Author)
	}
	if e.Author != author.Public() {
		t.Errorf("author %s, want %s's key %s", e.Author, v.Author, author.Public())
	}
	if e.ID().String() != v.ID {
		t.Errorf("id %s, recorded %s", e.ID(), v.ID)
	}
	if int(e.Kind) != v.Kind || int(e.Priority) != v.Priority || e.Created != v.Created {
		t.Errorf("kind %d priority %d created %d, recorded %d %d %d", e.Kind, e.Priority, e.Created, v.Kind, v.Priority, v.Created)
	}
	ttl := time.Duration(v.TTLMs) * time.Millisecond
	if code, _ := TTLCode(ttl); e.HasTTL != (v.TTLMs != 0) || (e.HasTTL && e.TTL != TTLFromCode(code)) {
		t.Errorf("TTL %s (on the wire: %v) for a sender's %s", e.TTL, e.HasTTL, ttl)
	}
	if hex.EncodeToString(e.Body) != v.Body {
		t.Errorf("body %x, recorded %s", e.Body, v.Body)
	}
	if e.Kind.ToChannel() && e.Channel.String() != v.ChannelID {
		t.Errorf("channel id %s, recorded %s", e.Channel, v.ChannelID)
	}
	if v.Channel != "" {
		if c, err := Channel(v.Channel); err != nil || c != e.Channel {
			t.Errorf("channel %s, want that of %q: %s (%v)", e.Channel, v.Channel, c, err)
		}
	}
	switch e.Kind {
	case KindText, KindAlert:
		if e.Text() != v.Text {
			t.Errorf("text %q, want %q", e.Text(), v.Text)
		}
	case KindDirect:
		to, ok := ids[v.Recipient]
		if !ok || e.Recipient != to.Public() {
			t.Fatalf("recipient %s, want %s", e.Recipient, v.Recipient)
		}
		pt, err := to.OpenDirect(e)
		if err != nil || string(pt) != v.Text {
			t.Errorf("%s opens %q, %v; want %q", v.Recipient, pt, err, v.Text)
		}
		if _, err := author.OpenDirect(e); !errors.Is(err, ErrNotForMe) {
			t.Errorf("the author opens the direct message: %v", err)
		}
	case KindReceipt:
		to, ok := ids[v.Recipient]
		if !ok || e.Recipient != to.Public() {
			t.Fatalf("recipient %s, want %s", e.Recipient, v.Recipient)
		}
		var got []string
		for _, id := range e.ReceiptIDs() {
			got = append(got, id.String())
		}
		if !reflect.DeepEqual(got, v.Receipt) {
			t.Errorf("receipt ids %v, want %v", got, v.Receipt)
		}
	case KindTeam:
		team, err := NewTeam(vecHex(t, v.TeamSecret))
		if err != nil {
			t.Fatal(err)
		}
		if e.Channel != team.ID() {
			t.Errorf("team channel %s, Go derives %s from the secret", e.Channel, team.ID())
		}
		pt, err := team.Open(e)
		if err != nil || string(pt) != v.Text {
			t.Errorf("team opens %q, %v; want %q", pt, err, v.Text)
		}
	case KindProfile:
		p, err := ParseProfile(e)
		if err != nil || v.Profile == nil || p.Name != v.Profile.Name || p.Status != v.Profile.Status {
			t.Errorf("profile %+v, %v; want %+v", p, err, v.Profile)
		}
		if c, _ := Channel(ProfilesChannel); e.Channel != c {
			t.Errorf("profile to channel %s, not %s", e.Channel, ProfilesChannel)
		}
	case KindKeyChange:
		kc, err := ParseKeyChange(e)
		if err != nil || v.KeyChange == nil || vecKC(kc) != *v.KeyChange {
			t.Errorf("key change %+v, %v; want %+v", vecKC(kc), err, v.KeyChange)
		}
		if c, _ := Channel(KeysChannel); e.Channel != c {
			t.Errorf("key change to channel %s, not %s", e.Channel, KeysChannel)
		}
	}
}

// ---- building vectors.json ----

// vecSeed is a fixed 32-byte seed: SHA-256 of a label.
func vecSeed(label string) []byte {
	h := sha256.Sum256([]byte("lifeline/vectors/" + label))
	return h[:]
}

func vecIdentityFrom(t testing.TB, seedHex string) *Identity {
	t.Helper()
	seed := vecHex(t, seedHex)
	if len(seed) != ed25519.SeedSize {
		t.Fatalf("seed %s is %d bytes", seedHex, len(seed))
	}
	return IdentityFromKey(ed25519.NewKeyFromSeed(seed))
}

func vecHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

// vecBackupText is the key backup format of docs/PROTOCOL.md, written here
// independently of the page's code with Go's base32.
func vecBackupText(seed []byte) string {
	h := sha256.Sum256(append([]byte("lifeline/key/v1"), seed...))
	s := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(append(append([]byte(nil), seed...), h[:2]...)))
	var groups []string
	for len(s) > 5 {
		groups, s = append(groups, s[:5]), s[5:]
	}
	return "llk1-" + strings.Join(append(groups, s), "-")
}

// vecUnsigned lays out envelope fields as they are, with none of Sign's
// checks, so that the checks can hold what Sign refuses to write.
func vecUnsigned(flags byte, created int64, ttl []byte, dest, author, body []byte) []byte {
	c := uint64(created)
	b := []byte{Version1, flags, byte(c >> 40), byte(c >> 32), byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)}
	b = append(append(append(b, ttl...), dest...), author...)
	return append(b, body...)
}

func vecRawSigned(id *Identity, flags byte, created int64, ttl []byte, dest, body []byte) []byte {
	pub := id.Public()
	b := vecUnsigned(flags, created, ttl, dest, pub[:], body)
	return append(b, ed25519Sign(id, append([]byte(SignaturePrefix), b...))...)
}

// vecEdgeSign signs unsigned (whose author field holds A) with secret
// scalar a and nonce r: R = [r]B, S = r + k·a with k = H(R || A || M). It
// returns the signature and k mod 8, which decides whether a key with a
// torsion component passes the cofactorless check.
func vecEdgeSign(unsigned, A []byte, a, r *edwards25519.Scalar) ([]byte, byte) {
	R := new(edwards25519.Point).ScalarBaseMult(r).Bytes()
	h := sha512.New()
	h.Write(R)
	h.Write(A)
	h.Write([]byte(SignaturePrefix))
	h.Write(unsigned)
	k, _ := edwards25519.NewScalar().SetUniformBytes(h.Sum(nil))
	S := edwards25519.NewScalar().MultiplyAdd(k, a, r)
	return append(R, S.Bytes()...), k.Bytes()[0] & 7
}

func vecScalar(label string) *edwards25519.Scalar {
	h := sha512.Sum512([]byte("lifeline/vectors/scalar/" + label))
	s, _ := edwards25519.NewScalar().SetUniformBytes(h[:])
	return s
}

// vecOrder8 is a point of order 8 (a well-known encoding; checked below).
const vecOrder8 = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"

// vecNonCanonical encodes y = p + small (p = 2^255 - 19), which Go's
// decoding accepts as y = small.
func vecNonCanonical(small byte) []byte {
	b := bytes.Repeat([]byte{0xff}, 32)
	b[0] = 0xed + small
	b[31] = 0x7f
	return b
}

// vecSealDirect makes alice's direct message to bob with an ephemeral
// secret both sides can reproduce. Since Go 1.26 crypto/ecdh ignores the
// reader it is given and draws from the global source, so the test sets
// that (cryptotest.SetGlobalRandom) and passes a reader with the same
// stream; whichever SealDirect reads, the ephemeral secret is the first 32
// bytes of ChaCha8 keyed by seed, and the test checks that it was.
func vecSealDirect(t *testing.T, from *Identity, to PublicKey, text string, p Priority, now time.Time, ttl time.Duration, seed uint64) (*Envelope, []byte) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:8], seed)
	eph := make([]byte, 32)
	mrand.NewChaCha8(key).Read(eph)
	cryptotest.SetGlobalRandom(t, seed)
	e, err := from.NewDirect(mrand.NewChaCha8(key), to, text, p, now, ttl)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ecdh.X25519().NewPrivateKey(eph)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.Body[:32], priv.PublicKey().Bytes()) {
		t.Fatalf("SealDirect did not draw its ephemeral secret from the expected stream: the vectors cannot be reproduced")
	}
	return e, eph
}

func vecBuild(t *testing.T) *vecFile {
	now := fixedNow
	ms := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	f := &vecFile{
		Comment: "Lifeline wire-format vectors, written by message/vectors_test.go (go test ./message -run TestVectors -update); " +
			"web/app/proto_vectors.mjs checks the page's code against them. See docs/PROTOCOL.md.",
		Now: now.UnixMilli(),
	}

	// Identities: the worked example's key (the first 32 bytes of the
	// test reader seeded(1), as newID reads them), then fixed seeds.
	golden := make([]byte, 32)
	seeded(1).Read(golden)
	ids := map[string]*Identity{}
	addID := func(name string, seed []byte) *Identity {
		id := IdentityFromKey(ed25519.NewKeyFromSeed(seed))
		ids[name] = id
		f.Identities = append(f.Identities, vecIdentity{name, hex.EncodeToString(seed), id.Public().String()})
		return id
	}
	gold := addID("golden", golden)
	alice := addID("alice", vecSeed("alice"))
	bob := addID("bob", vecSeed("bob"))
	carol := addID("carol", vecSeed("carol"))
	mallory := addID("mallory", vecSeed("mallory"))
	aliceNew := addID("alice_new", vecSeed("alice new"))
	if gold.Public() != newID(t, 1).Public() {
		t.Fatal("the golden identity is not newID(1)")
	}

	for _, name := range []string{
		"general", "#General ", " #GENERAL\t", "##double", "Ünïcödé kanal", "日本語", "🚑 ambulances",
		"ΟΔΟΣ", "İstanbul", "\u212a\u1e9e", "\u00a0café\u3000", "x\u0085", "\ufeffx",
		ProfilesChannel, ReportsChannel, KeysChannel, strings.Repeat("é", 32), strings.Repeat("a", 64),
		strings.Repeat("a", 65), "", "#", "  ", "a\x01b", "tab\there", "del\x7f",
	} {
		c, err := Channel(name)
		v := vecChannel{Name: name, Error: vecCode(err)}
		if err == nil {
			v.ID = c.String()
		}
		f.Channels = append(f.Channels, v)
	}
	if f.Channels[0].ID != channelGeneral || f.Channels[1].ID != channelGeneral {
		t.Fatalf("general is %s and %s, want %s", f.Channels[0].ID, f.Channels[1].ID, channelGeneral)
	}

	for _, d := range []time.Duration{
		time.Millisecond, 30 * time.Second, time.Minute, time.Minute + time.Millisecond, 90 * time.Second,
		time.Hour, 6 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, DefaultTTL, 365 * 24 * time.Hour,
		MaxTTL, MaxTTL + time.Millisecond,
	} {
		code, ok := TTLCode(d)
		v := vecTTL{Ms: d.Milliseconds(), Code: int(code), Lifetime: TTLFromCode(code).Milliseconds()}
		if !ok {
			v = vecTTL{Ms: d.Milliseconds(), Code: -1, Error: "malformed"}
		}
		f.TTLs = append(f.TTLs, v)
	}

	for _, seed := range [][]byte{golden, vecSeed("alice"), make([]byte, 32), bytes.Repeat([]byte{0xff}, 32)} {
		f.Backups = append(f.Backups, vecBackup{hex.EncodeToString(seed), vecBackupText(seed)})
	}

	// Envelopes, through the constructors people's messages go through.
	add := func(name, author string, e *Envelope, err error, v vecEnvelope) *Envelope {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		at := now.UnixMilli()
		if v.VerifyAt != 0 {
			at = v.VerifyAt
		}
		if _, err := Verify(e.Raw(), at); err != nil {
			t.Fatalf("%s does not verify: %v", name, err)
		}
		v.Name, v.Author = name, author
		v.Kind, v.Priority, v.Created = int(e.Kind), int(e.Priority), e.Created
		v.Body, v.Envelope, v.ID = hex.EncodeToString(e.Body), hex.EncodeToString(e.Raw()), e.ID().String()
		if e.Kind.ToChannel() {
			v.ChannelID = e.Channel.String()
		}
		f.Envelopes = append(f.Envelopes, v)
		return e
	}
	e, err := gold.Sign(Draft{Kind: KindText, Priority: PriorityNormal, Created: 1_700_000_000_000, TTL: time.Hour, Channel: mustChannel(t, "general"), Body: []byte("hi")})
	add("worked_example", "golden", e, err, vecEnvelope{Channel: "general", Text: "hi", TTLMs: time.Hour.Milliseconds(), VerifyAt: 1_700_000_000_000})
	if hex.EncodeToString(e.Raw()) != goldenV1 {
		t.Fatal("the worked example is not docs/PROTOCOL.md's")
	}
	e, err = alice.NewText("#General ", "water at the school", now.Add(-10*time.Minute), 0)
	text := add("text", "alice", e, err, vecEnvelope{Channel: "#General ", Text: "water at the school"})
	e, err = bob.NewText("Ünïcödé kanal", "héllo 👋 <b>&</b>", now.Add(-30*time.Second), 90*time.Second)
	add("text_unicode_ttl", "bob", e, err, vecEnvelope{Channel: "Ünïcödé kanal", Text: "héllo 👋 <b>&</b>", TTLMs: 90_000})
	long := strings.Repeat("0123456789", 10)
	e, err = alice.NewText("general", long, now.Add(-8*time.Minute), 24*time.Hour)
	add("text_100_chars", "alice", e, err, vecEnvelope{Channel: "general", Text: long, TTLMs: (24 * time.Hour).Milliseconds()})
	e, err = carol.NewAlert("general", "Flood: move to high ground", now.Add(-7*time.Minute), 6*time.Hour)
	add("alert", "carol", e, err, vecEnvelope{Channel: "general", Text: "Flood: move to high ground", TTLMs: (6 * time.Hour).Milliseconds()})

	e, eph := vecSealDirect(t, alice, bob.Public(), "meet at the clinic", PriorityNormal, now.Add(-6*time.Minute), 0, 1001)
	dm := add("direct", "alice", e, nil, vecEnvelope{Recipient: "bob", Text: "meet at the clinic", Random: hex.EncodeToString(eph)})
	e, eph = vecSealDirect(t, bob, alice.Public(), "ok 👍 on my way", PriorityHigh, now.Add(-5*time.Minute), 2*time.Hour, 1002)
	add("direct_high_ttl", "bob", e, nil, vecEnvelope{Recipient: "alice", Text: "ok 👍 on my way", TTLMs: (2 * time.Hour).Milliseconds(), Random: hex.EncodeToString(eph)})

	e, err = bob.NewReceipt(alice.Public(), []ID{dm.ID(), text.ID()}, now.Add(-4*time.Minute))
	add("receipt", "bob", e, err, vecEnvelope{Recipient: "alice", Receipt: []string{dm.ID().String(), text.ID().String()}})

	secret := vecSeed("team secret")
	team, err := NewTeam(secret)
	if err != nil {
		t.Fatal(err)
	}
	nonce := vecSeed("team nonce 1")[:24]
	e, err = alice.NewTeamText(bytes.NewReader(nonce), team, "team: meet at 6 by the well", PriorityNormal, now.Add(-3*time.Minute), 0)
	teamMsg := add("team", "alice", e, err, vecEnvelope{TeamSecret: hex.EncodeToString(secret), Text: "team: meet at 6 by the well", Random: hex.EncodeToString(nonce)})
	nonce2 := vecSeed("team nonce 2")[:24]
	e, err = bob.NewTeamText(bytes.NewReader(nonce2), team, "évacuez ⚠", PriorityAlert, now.Add(-2*time.Minute), time.Hour)
	add("team_alert", "bob", e, err, vecEnvelope{TeamSecret: hex.EncodeToString(secret), Text: "évacuez ⚠", TTLMs: time.Hour.Milliseconds(), Random: hex.EncodeToString(nonce2)})

	pa := Profile{Name: "Alice Ø", Status: "at the school <until> Friday & after\u2028(call)"}
	e, err = alice.NewProfile(pa, now.Add(-time.Minute), 0)
	add("profile", "alice", e, err, vecEnvelope{Channel: ProfilesChannel, Profile: &vecProfile{pa.Name, pa.Status}})
	e, err = bob.NewProfile(Profile{Name: "Bob"}, now.Add(-time.Minute), 365*24*time.Hour)
	add("profile_no_status", "bob", e, err, vecEnvelope{Channel: ProfilesChannel, Profile: &vecProfile{Name: "Bob"}, TTLMs: (365 * 24 * time.Hour).Milliseconds()})
	e, err = mallory.NewReport(Report{Event: EventUplinkLost, At: ms(-time.Minute), LastUp: ms(-2 * time.Minute), Peers: 3, Radio: "none"}, now.Add(-time.Minute))
	add("report", "mallory", e, err, vecEnvelope{Channel: ReportsChannel})
	e, err = aliceNew.NewKeyChange(alice, now.Add(-30*time.Second), 365*24*time.Hour)
	add("keychange", "alice_new", e, err, vecEnvelope{Channel: KeysChannel, TTLMs: (365 * 24 * time.Hour).Milliseconds(),
		KeyChange: &vecKeyChange{Old: alice.Public().String(), New: aliceNew.Public().String()}})
	e, err = carol.VouchKeyChange(alice.Public(), aliceNew.Public(), now.Add(-20*time.Second), 0)
	add("keychange_vouched", "carol", e, err, vecEnvelope{Channel: KeysChannel,
		KeyChange: &vecKeyChange{Old: alice.Public().String(), New: aliceNew.Public().String(), Voucher: carol.Public().String()}})

	f.Checks = vecChecks(t, ids, text, dm, teamMsg, team, secret)
	f.Recipients = vecRecipients(t, alice, bob)
	return f
}

func mustChannel(t testing.TB, name string) ChannelID {
	t.Helper()
	c, err := Channel(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// vecChecks lists verdicts: each case says what it must give, and Go is
// checked against that before it is recorded.
func vecChecks(t *testing.T, ids map[string]*Identity, text, dm, teamMsg *Envelope, team *Team, secret []byte) []vecCheck {
	alice, bob, carol, mallory := ids["alice"], ids["bob"], ids["carol"], ids["mallory"]
	now := fixedNow.UnixMilli()
	general := mustChannel(t, "general")
	profiles := mustChannel(t, ProfilesChannel)
	apub, bpub := alice.Public(), bob.Public()
	good := text.Raw()
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	ttl1h := []byte{0x23}
	flags := func(k Kind, p Priority) byte { return byte(k) | byte(p)<<4 }
	txt := flags(KindText, PriorityNormal)
	var out []vecCheck
	check := func(name, note, op string, raw []byte, want string, extra vecCheck) {
		t.Helper()
		c := extra
		c.Name, c.Note, c.Op, c.Envelope, c.Error = name, note, op, hex.EncodeToString(raw), want
		var got string
		var result any
		e, err := Verify(raw, now)
		switch {
		case err != nil || op == "verify":
			got = vecCode(err)
		case op == "open_direct":
			pt, err := ids[c.Identity].OpenDirect(e)
			got, result = vecCode(err), string(pt)
		case op == "open_team":
			tm, _ := NewTeam(vecHex(t, c.TeamSecret))
			pt, err := tm.Open(e)
			got, result = vecCode(err), string(pt)
		case op == "parse_profile":
			p, err := ParseProfile(e)
			got, result = vecCode(err), vecProfile{p.Name, p.Status}
		case op == "parse_keychange":
			kc, err := ParseKeyChange(e)
			got, result = vecCode(err), vecKC(kc)
		default:
			t.Fatalf("%s: unknown op %s", name, op)
		}
		if got != want {
			t.Errorf("check %s (%s): Go gives error %q, the case says %q", name, note, got, want)
		}
		if want == "" {
			switch r := result.(type) {
			case string:
				if r != c.Text {
					t.Errorf("check %s: %s gives %q, the case says %q", name, op, r, c.Text)
				}
			case vecProfile:
				if c.Profile == nil || r != *c.Profile {
					t.Errorf("check %s: profile %+v, the case says %+v", name, r, c.Profile)
				}
			case vecKeyChange:
				if c.KeyChange == nil || r != *c.KeyChange {
					t.Errorf("check %s: key change %+v, the case says %+v", name, r, c.KeyChange)
				}
			}
		}
		out = append(out, c)
	}
	v := func(name, note string, raw []byte, want string) { check(name, note, "verify", raw, want, vecCheck{}) }

	// Structure, in the order Decode checks it.
	v("empty", "", nil, "truncated")
	v("version_2", "", mut(func(b []byte) []byte { b[0] = 2; return b }), "version")
	v("version_0_oversized", "the version is checked before the size", append([]byte{0}, make([]byte, MaxEnvelope)...), "version")
	v("oversized", "one byte over MaxEnvelope, refused before it is parsed", append([]byte{Version1, txt}, make([]byte, MaxEnvelope-1)...), "too_large")
	v("short_header", "", good[:7], "truncated")
	v("reserved_flag", "", mut(func(b []byte) []byte { b[1] |= 0x80; return b }), "malformed")
	for _, k := range []byte{0, 9, 15} {
		v(fmt.Sprintf("unknown_kind_%d", k), "", mut(func(b []byte) []byte { b[1] = b[1]&0xf0 | k; return b }), "malformed")
	}
	v("missing_ttl_byte", "", []byte{Version1, txt | 0x40, 0, 0, 0, 0, 0, 1}, "truncated")
	v("truncated_before_signature", "one byte short of the smallest channel envelope", good[:8+8+32+63], "truncated")
	v("truncated_direct", "a recipient key needs 32 bytes, not 8", vecRawSigned(alice, flags(KindDirect, PriorityNormal), now, nil, general[:], nil), "truncated")
	v("body_over_4096", "fits in MaxEnvelope, but the body is over MaxBody", vecRawSigned(alice, txt, now, nil, general[:], bytes.Repeat([]byte("a"), MaxBody+1)), "too_large")
	v("body_4096", "", vecRawSigned(alice, txt, now, nil, general[:], bytes.Repeat([]byte("a"), MaxBody)), "")
	v("empty_text", "", vecRawSigned(alice, txt, now, nil, general[:], nil), "malformed")
	v("text_not_utf8", "", vecRawSigned(alice, txt, now, nil, general[:], []byte{'a', 0xff}), "malformed")
	v("alert_priority_normal", "an alert must be at alert priority", vecRawSigned(alice, flags(KindAlert, PriorityNormal), now, nil, general[:], []byte("fire")), "malformed")
	v("alert_priority_alert", "", vecRawSigned(alice, flags(KindAlert, PriorityAlert), now, nil, general[:], []byte("fire")), "")
	v("receipt_empty", "", vecRawSigned(alice, flags(KindReceipt, PriorityLow), now, nil, bpub[:], nil), "malformed")
	v("receipt_33_bytes", "", vecRawSigned(alice, flags(KindReceipt, PriorityLow), now, nil, bpub[:], make([]byte, 33)), "malformed")
	v("receipt_17_ids", "", vecRawSigned(alice, flags(KindReceipt, PriorityLow), now, nil, bpub[:], make([]byte, 17*32)), "malformed")
	v("receipt_16_ids", "", vecRawSigned(alice, flags(KindReceipt, PriorityLow), now, nil, bpub[:], make([]byte, 16*32)), "")
	v("direct_body_47", "a sealed body holds at least a key and a tag", vecRawSigned(alice, flags(KindDirect, PriorityNormal), now, nil, bpub[:], make([]byte, 47)), "malformed")
	v("team_body_40", "a team body holds a nonce, a tag and at least one byte", vecRawSigned(alice, flags(KindTeam, PriorityNormal), now, nil, team.id[:], make([]byte, 40)), "malformed")
	v("team_priority_low", "team messages are normal or alert", vecRawSigned(alice, flags(KindTeam, PriorityLow), now, nil, team.id[:], teamMsg.Body), "malformed")
	v("team_priority_high", "", vecRawSigned(alice, flags(KindTeam, PriorityHigh), now, nil, team.id[:], teamMsg.Body), "malformed")
	v("report_not_object", "", vecRawSigned(mallory, flags(KindReport, PriorityNormal), now, nil, general[:], []byte(`["x"]`)), "malformed")
	v("report_bad_json", "", vecRawSigned(mallory, flags(KindReport, PriorityNormal), now, nil, general[:], []byte(`{"x":}`)), "malformed")

	// Signatures.
	v("bad_signature", "last signature byte flipped", mut(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), "signature")
	v("tampered_body", "", mut(func(b []byte) []byte { b[len(b)-65] ^= 1; return b }), "signature")
	v("tampered_created", "", mut(func(b []byte) []byte { b[7] ^= 1; return b }), "signature")
	v("other_author", "bob's key in place of alice's", mut(func(b []byte) []byte { copy(b[16:48], bpub[:]); return b }), "signature")
	s := new(big.Int).SetBytes(reverse(good[len(good)-32:]))
	s.Add(s, new(big.Int).SetBytes(reverse(vecHex(t, "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010"))))
	v("s_plus_l", "the same signature with S + L: S must be reduced", mut(func(b []byte) []byte { copy(b[len(b)-32:], reverse(s.FillBytes(make([]byte, 32)))); return b }), "signature")
	notPoint := vecHex(t, "0200000000000000000000000000000000000000000000000000000000000000")
	if _, err := new(edwards25519.Point).SetBytes(notPoint); err == nil {
		t.Fatal("y = 2 was meant not to be on the curve")
	}
	v("author_not_a_point", "", mut(func(b []byte) []byte { copy(b[16:48], notPoint); return b }), "signature")
	edge := func(name, note string, A []byte, a *edwards25519.Scalar, wantK8 bool, want string) {
		t.Helper()
		for i := 0; ; i++ {
			unsigned := vecUnsigned(txt, now, nil, general[:], A, []byte("edge"))
			sig, k8 := vecEdgeSign(unsigned, A, a, vecScalar(fmt.Sprintf("%s/%d", name, i)))
			if (k8 == 0) == wantK8 {
				v(name, note, append(unsigned, sig...), want)
				return
			}
		}
	}
	zero := edwards25519.NewScalar()
	identity := edwards25519.NewIdentityPoint().Bytes()
	edge("author_identity_point", "small-order key (the neutral point): Go's ed25519 accepts it, anyone can sign as it", identity, zero, false, "")
	edge("author_identity_noncanonical", "the neutral point encoded as y = p + 1: Go accepts non-canonical keys", vecNonCanonical(1), zero, false, "")
	t8, err := new(edwards25519.Point).SetBytes(vecHex(t, vecOrder8))
	if err != nil || new(edwards25519.Point).MultByCofactor(t8).Equal(edwards25519.NewIdentityPoint()) != 1 ||
		new(edwards25519.Point).Add(t8, t8).Add(new(edwards25519.Point).Add(t8, t8), new(edwards25519.Point).Add(t8, t8)).Equal(edwards25519.NewIdentityPoint()) == 1 {
		t.Fatal("vecOrder8 is not of order 8")
	}
	a := vecScalar("mixed")
	mixed := new(edwards25519.Point).Add(new(edwards25519.Point).ScalarBaseMult(a), t8).Bytes()
	edge("author_mixed_order_k8_nonzero", "key a·B + T (T of order 8), k not a multiple of 8: the cofactored equation (noble's verify) holds, Go's cofactorless one does not", mixed, a, false, "signature")
	edge("author_mixed_order_k8_zero", "the same key when k is a multiple of 8: both equations hold", mixed, a, true, "")

	// Time.
	skew := MaxClockSkew.Milliseconds()
	v("created_at_skew_limit", "", vecRawSigned(alice, txt, now+skew, nil, general[:], []byte("x")), "")
	v("future", "one ms beyond the allowed clock skew", vecRawSigned(alice, txt, now+skew+1, nil, general[:], []byte("x")), "future")
	v("expired", "", vecRawSigned(alice, txt|0x40, now-2*60_000, []byte{1}, general[:], []byte("x")), "expired")
	v("expires_now", "expiry is exclusive", vecRawSigned(alice, txt|0x40, now-60*60_000, ttl1h, general[:], []byte("x")), "expired")
	v("expires_in_1ms", "", vecRawSigned(alice, txt|0x40, now-60*60_000+1, ttl1h, general[:], []byte("x")), "")
	v("default_ttl_expired", "no TTL byte: 30 days", vecRawSigned(alice, txt, now-DefaultTTL.Milliseconds(), nil, general[:], []byte("x")), "expired")

	// Direct messages.
	check("direct_open", "", "open_direct", dm.Raw(), "", vecCheck{Identity: "bob", Text: "meet at the clinic"})
	check("direct_not_for_carol", "", "open_direct", dm.Raw(), "not_for_me", vecCheck{Identity: "carol"})
	body := append([]byte(nil), dm.Body...)
	body[40] ^= 1
	check("direct_tampered", "ciphertext changed, re-signed by its author", "open_direct",
		vecRawSigned(alice, flags(KindDirect, PriorityNormal), dm.Created, nil, bpub[:], body), "decrypt", vecCheck{Identity: "bob"})
	check("direct_resigned_by_relay", "mallory signs alice's ciphertext as her own: the author is in the key derivation", "open_direct",
		vecRawSigned(mallory, flags(KindDirect, PriorityNormal), dm.Created, nil, bpub[:], dm.Body), "decrypt", vecCheck{Identity: "bob"})
	low := append(make([]byte, 32), dm.Body[32:]...)
	check("direct_low_order_ephemeral", "ephemeral key u = 0", "open_direct",
		vecRawSigned(alice, flags(KindDirect, PriorityNormal), dm.Created, nil, bpub[:], low), "decrypt", vecCheck{Identity: "bob"})

	// Team channels.
	sec := hex.EncodeToString(secret)
	check("team_open", "", "open_team", teamMsg.Raw(), "", vecCheck{TeamSecret: sec, Text: "team: meet at 6 by the well"})
	check("team_other_secret", "", "open_team", teamMsg.Raw(), "not_for_me", vecCheck{TeamSecret: hex.EncodeToString(vecSeed("other team"))})
	check("team_resigned_by_member", "bob signs alice's ciphertext as his own: the author is in the associated data", "open_team",
		vecRawSigned(bob, flags(KindTeam, PriorityNormal), teamMsg.Created, nil, team.id[:], teamMsg.Body), "decrypt", vecCheck{TeamSecret: sec})
	body = append([]byte(nil), teamMsg.Body...)
	body[30] ^= 1
	check("team_tampered", "", "open_team", vecRawSigned(alice, flags(KindTeam, PriorityNormal), teamMsg.Created, nil, team.id[:], body), "decrypt", vecCheck{TeamSecret: sec})
	notUTF8, err := team.Seal(bytes.NewReader(make([]byte, 24)), apub, []byte{0xff})
	if err != nil {
		t.Fatal(err)
	}
	check("team_plaintext_not_utf8", "", "open_team", vecRawSigned(alice, flags(KindTeam, PriorityNormal), now, nil, team.id[:], notUTF8), "malformed", vecCheck{TeamSecret: sec})

	// Profiles: the body rules, and how Go's encoding/json reads them.
	prof := func(name, note, body, want string, p *vecProfile) {
		t.Helper()
		check(name, note, "parse_profile", vecRawSigned(carol, flags(KindProfile, PriorityLow), now, nil, profiles[:], []byte(body)), want, vecCheck{Profile: p})
	}
	prof("profile_plain", "", `{"name":"Carol","status":"ok"}`, "", &vecProfile{"Carol", "ok"})
	prof("profile_unknown_fields", "unknown fields are ignored", `{"x":[1,{"name":"no"}],"name":"Carol","y":"}\"","z":null}`, "", &vecProfile{"Carol", ""})
	prof("profile_whitespace", "", "{ \"name\" :\t\"Carol\" ,\n\"status\":\"\" }\n", "", &vecProfile{"Carol", ""})
	prof("profile_key_case", "keys match exactly: NAME is an unknown field", `{"NAME":"Carol","Status":"up"}`, "malformed", nil)
	prof("profile_key_long_s", "no case folding: ſtatus is an unknown field", `{"name":"Carol","ſtatus":"up"}`, "", &vecProfile{"Carol", ""})
	prof("profile_key_order", "of a repeated key the last wins", `{"name":"A","Name":"B","name":"C","NAME":"D"}`, "", &vecProfile{"C", ""})
	prof("profile_null", "a field that is present must be a string", `{"name":"Carol","status":null}`, "malformed", nil)
	check("profile_priority", "a profile's priority is low", "verify", vecRawSigned(carol, flags(KindProfile, PriorityNormal), now, nil, profiles[:], []byte(`{"name":"Carol"}`)), "malformed", vecCheck{})
	prof("profile_escapes", "", `{"name":"\u0043arol \ud83d\ude91"}`, "", &vecProfile{"Carol 🚑", ""})
	prof("profile_lone_surrogate", "Go reads an escaped lone surrogate as U+FFFD", `{"name":"a\ud800b"}`, "", &vecProfile{"a\ufffdb", ""})
	prof("profile_bom_kept", "U+FEFF is not white space to Go", "{\"name\":\"\ufeffCarol\"}", "", &vecProfile{"\ufeffCarol", ""})
	prof("profile_name_64_bytes", "", `{"name":"`+strings.Repeat("é", 32)+`"}`, "", &vecProfile{strings.Repeat("é", 32), ""})
	prof("profile_status_140_bytes", "", `{"name":"c","status":"`+strings.Repeat("a", 140)+`"}`, "", &vecProfile{"c", strings.Repeat("a", 140)})
	prof("profile_name_65_bytes", "", `{"name":"`+strings.Repeat("é", 32)+`a"}`, "malformed", nil)
	prof("profile_status_141_bytes", "", `{"name":"c","status":"`+strings.Repeat("a", 141)+`"}`, "malformed", nil)
	prof("profile_no_name", "", `{"status":"x"}`, "malformed", nil)
	prof("profile_name_spaces", "", `{"name":" Carol"}`, "malformed", nil)
	prof("profile_name_nel", "U+0085 is white space to Go", "{\"name\":\"Carol\u0085\"}", "malformed", nil)
	prof("profile_name_control", "", `{"name":"Ca\u0000rol"}`, "malformed", nil)
	prof("profile_status_del", "", "{\"name\":\"c\",\"status\":\"\x7f\"}", "malformed", nil)
	prof("profile_name_number", "", `{"name":5}`, "malformed", nil)
	prof("profile_leading_space", "the body starts with {", ` {"name":"Carol"}`, "malformed", nil)
	prof("profile_array", "", `["Carol"]`, "malformed", nil)
	prof("profile_trailing", "", `{"name":"Carol"}x`, "malformed", nil)
	prof("profile_not_utf8", "", "{\"name\":\"Car\xffol\"}", "malformed", nil)

	// Key changes: which statements a reader follows. The envelope is
	// always well signed here; what is checked is the statement in it.
	keys := mustChannel(t, KeysChannel)
	aliceNew := ids["alice_new"]
	anpub := aliceNew.Public()
	kcFlags := flags(KindKeyChange, PriorityNormal)
	vouchBody := append(append([]byte{KeyChangeVersion}, apub[:]...), anpub[:]...)
	oldSig := ed25519.Sign(alice.priv, KeyChangeStatement(apub, anpub))
	bothBody := append(bytes.Clone(vouchBody), oldSig...)
	kcCheck := func(name, note string, author *Identity, prio Priority, body []byte, want string, kc *vecKeyChange) {
		t.Helper()
		check(name, note, "parse_keychange", vecRawSigned(author, flags(KindKeyChange, prio), now, nil, keys[:], body), want, vecCheck{KeyChange: kc})
	}
	both := &vecKeyChange{Old: apub.String(), New: anpub.String()}
	kcCheck("keychange_both", "signed by both: the envelope by the new key, the statement by the old", aliceNew, PriorityNormal, bothBody, "", both)
	kcCheck("keychange_vouched", "vouched by a third key", carol, PriorityNormal, vouchBody, "", &vecKeyChange{Old: apub.String(), New: anpub.String(), Voucher: carol.Public().String()})
	forged := bytes.Clone(bothBody)
	forged[len(forged)-40] ^= 1
	kcCheck("keychange_forged", "the old key's signature does not verify", aliceNew, PriorityNormal, forged, "signature", nil)
	swapped := append(append(append([]byte{KeyChangeVersion}, anpub[:]...), apub[:]...), oldSig...)
	kcCheck("keychange_reversed", "old and new swapped, signed by the (now) new key: the signature is over the other statement", alice, PriorityNormal, swapped, "signature", nil)
	kcCheck("keychange_both_by_third", "a signed-by-both body in an envelope that is not the new key's", carol, PriorityNormal, bothBody, "malformed", nil)
	kcCheck("keychange_vouched_by_new", "a key cannot vouch for itself", aliceNew, PriorityNormal, vouchBody, "malformed", nil)
	kcCheck("keychange_vouched_by_old", "", alice, PriorityNormal, vouchBody, "malformed", nil)
	small := append(append([]byte{KeyChangeVersion}, apub[:]...), make([]byte, 32)...)
	kcCheck("keychange_new_small_order", "nobody can write to the new key", carol, PriorityNormal, small, "bad_key", nil)
	v("keychange_priority_low", "a key change's priority is normal", vecRawSigned(carol, flags(KindKeyChange, PriorityLow), now, nil, keys[:], vouchBody), "malformed")
	v("keychange_version_2", "", vecRawSigned(carol, kcFlags, now, nil, keys[:], append([]byte{2}, vouchBody[1:]...)), "malformed")
	v("keychange_64_bytes", "", vecRawSigned(carol, kcFlags, now, nil, keys[:], vouchBody[:64]), "malformed")
	v("keychange_66_bytes", "neither form", vecRawSigned(carol, kcFlags, now, nil, keys[:], append(bytes.Clone(vouchBody), 0)), "malformed")
	v("keychange_130_bytes", "", vecRawSigned(aliceNew, kcFlags, now, nil, keys[:], append(bytes.Clone(bothBody), 0)), "malformed")
	v("keychange_to_itself", "", vecRawSigned(carol, kcFlags, now, nil, keys[:], append(append([]byte{KeyChangeVersion}, apub[:]...), apub[:]...)), "malformed")
	return out
}

func reverse(b []byte) []byte {
	r := make([]byte, len(b))
	for i := range b {
		r[len(b)-1-i] = b[i]
	}
	return r
}

// vecRecipients: which keys a direct message can be sealed to. Go refuses
// what is not a point and points of small order, and takes any encoding of
// the others.
func vecRecipients(t *testing.T, alice, bob *Identity) []vecRecipient {
	var out []vecRecipient
	add := func(name string, key []byte, want string) {
		t.Helper()
		var k PublicKey
		copy(k[:], key)
		_, err := alice.SealDirect(rand.Reader, k, []byte("x"))
		if got := vecCode(err); got != want {
			t.Errorf("recipient %s: Go gives %q, the case says %q", name, got, want)
		}
		out = append(out, vecRecipient{name, hex.EncodeToString(key), want})
	}
	bpub := bob.Public()
	add("bob", bpub[:], "")
	add("identity_point", edwards25519.NewIdentityPoint().Bytes(), "bad_key")
	add("identity_x_sign_set", vecHex(t, "0100000000000000000000000000000000000000000000000000000000000080"), "bad_key")
	add("identity_noncanonical", vecNonCanonical(1), "bad_key")
	add("order_4_y0", make([]byte, 32), "bad_key")
	add("order_8", vecHex(t, vecOrder8), "bad_key")
	add("not_a_point", vecHex(t, "0200000000000000000000000000000000000000000000000000000000000000"), "bad_key")
	a := vecScalar("mixed")
	t8, _ := new(edwards25519.Point).SetBytes(vecHex(t, vecOrder8))
	add("mixed_order", new(edwards25519.Point).Add(new(edwards25519.Point).ScalarBaseMult(a), t8).Bytes(), "")
	// A point of large order with a non-canonical encoding (y = p + small).
	for small := byte(2); small < 19; small++ {
		p, err := new(edwards25519.Point).SetBytes(vecNonCanonical(small))
		if err == nil && new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 0 {
			add(fmt.Sprintf("noncanonical_y_p_plus_%d", small), vecNonCanonical(small), "")
			break
		}
	}
	return out
}

package message

import (
	"encoding/hex"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// goldenV1 is a version 1 channel text envelope: identity seeded(1), channel
// "general", created 1_700_000_000_000, TTL one hour, body "hi". The same
// bytes are the worked example in docs/PROTOCOL.md.
const (
	goldenV1 = "0151018bcfe5680023319adfe84d71e84e2dadeba63c8ea03a8a094cfbf71ff522bdb68fe4585e5938a42ecc18b3224b74686941ffbd57e618cd043313beb292a2efb21e29d3b5d09b9a2bf8074229857eb794f5e48b615a472f02d4f4f23a07a2cec36d820deca0b3420411ffa21215958d06"
	goldenID = "deb8cbada51f0df45772d92f2d1445593a48b516efbbdc37da0e7e79c9470926"
)

func TestGoldenBytes(t *testing.T) {
	c, _ := Channel("general")
	e, err := newID(t, 1).Sign(Draft{Kind: KindText, Priority: PriorityNormal, Created: 1_700_000_000_000, TTL: time.Hour, Channel: c, Body: []byte("hi")})
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(e.Raw()); got != goldenV1 {
		t.Fatalf("version 1 bytes changed:\n got %s\nwant %s", got, goldenV1)
	}
	if e.ID().String() != goldenID {
		t.Fatalf("id = %s, want %s", e.ID(), goldenID)
	}
}

// TestInteropNode checks the format against an implementation written from
// the protocol document alone, using OpenSSL's Ed25519 through Node: it must
// verify our bytes, and we must verify its.
func TestInteropNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed: the independent implementation cannot run")
	}
	created := fixedNow.UnixMilli()
	out, err := exec.Command(node, "testdata/interop.mjs", goldenV1, strconv.FormatInt(created, 10)).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || lines[0] != "ok "+goldenID {
		t.Fatalf("node did not verify our envelope:\n%s", out)
	}
	raw, err := hex.DecodeString(strings.TrimPrefix(lines[1], "made "))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Verify(raw, created)
	if err != nil {
		t.Fatalf("node's envelope does not verify: %v", err)
	}
	want, _ := Channel("general")
	if e.Channel != want || e.Text() != "héllo from node" || e.Kind != KindText || len(raw)-len(e.Body) != 112 {
		t.Fatalf("node's envelope decoded as %+v", e)
	}
}

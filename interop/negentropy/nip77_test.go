package negentropy

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"lifeline/reconcile"
)

// TestNip77InitiatorOurResponder runs nostr-tools' nip77 (JavaScript) as the
// initiator against our responder. nip77 is only faithful as an initiator,
// and decodes varints with 32-bit operations, so scenarios keep timestamps
// under 2^31 (see build).
func TestNip77InitiatorOurResponder(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; .ci/run installs it")
	}
	script, _ := filepath.Abs("../js/nip77_initiator.mjs")
	if _, err := os.Stat(filepath.Join(filepath.Dir(script), "node_modules", "nostr-tools")); err != nil {
		t.Skip("nostr-tools is not installed: run npm ci in interop/js (.ci/run does)")
	}
	for _, limit := range []int{4096, 60_000} {
		for _, sc := range scenarios {
			t.Run(fmt.Sprintf("%s/limit%d", sc.name, limit), func(t *testing.T) {
				a, b, wantHave, wantNeed := build(4, sc)
				var items strings.Builder
				for _, it := range a {
					fmt.Fprintf(&items, "%d %x\n", it.Timestamp, it.ID)
				}
				file := filepath.Join(t.TempDir(), "items")
				if err := os.WriteFile(file, []byte(items.String()), 0o600); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(node, script, file, fmt.Sprint(limit))
				cmd.Stderr = os.Stderr
				stdin, _ := cmd.StdinPipe()
				stdout, _ := cmd.StdoutPipe()
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				defer cmd.Process.Kill()
				out := bufio.NewScanner(stdout)
				out.Buffer(make([]byte, 1<<20), 16<<20)
				us, _ := reconcile.New(ours(b), limit)
				rounds := 0
				for out.Scan() && out.Text() != "done" {
					if rounds++; rounds > 50 {
						t.Fatal("no convergence")
					}
					msg, err := hex.DecodeString(out.Text())
					if err != nil {
						t.Fatalf("nip77 wrote %q: %v", out.Text(), err)
					}
					reply, err := us.Respond(msg)
					if err != nil {
						t.Fatalf("our responder: %v", err)
					}
					fmt.Fprintf(stdin, "%x\n", reply)
				}
				out.Scan()
				sameSet(t, "nip77 have", strings.Fields(strings.TrimPrefix(out.Text(), "have")), wantHave)
				out.Scan()
				sameSet(t, "nip77 need", strings.Fields(strings.TrimPrefix(out.Text(), "need")), wantNeed)
				stdin.Close()
				if err := cmd.Wait(); err != nil {
					t.Fatalf("nip77 script: %v", err)
				}
			})
		}
	}
}

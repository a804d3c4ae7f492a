package mesh

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"lifeline/message"
	"lifeline/store"
)

func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(dir+"/lifeline.db", store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newIdentity(t testing.TB) *message.Identity {
	t.Helper()
	id, err := message.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// fill stores n signed messages by author and returns their ids.
func fill(t testing.TB, st *store.Store, author *message.Identity, n int, prefix string) []message.ID {
	t.Helper()
	ids := make([]message.ID, n)
	now := time.Now()
	for i := range n {
		e, err := author.NewText("general", fmt.Sprintf("%s %d", prefix, i), now.Add(-time.Duration(i)*time.Millisecond), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Put(context.Background(), e.Raw()); err != nil {
			t.Fatal(err)
		}
		ids[i] = e.ID()
	}
	return ids
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	within = stretch(within)
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stretch is d, or d times LIFELINE_TEST_SLOWDOWN where the tests run
// slower than on the machine their waits were written for: make test-arm
// sets it, as everything runs emulated there (qemu-user), several times
// slower. Only waits and timing slack stretch, never what is asserted.
func stretch(d time.Duration) time.Duration {
	if f, err := strconv.Atoi(os.Getenv("LIFELINE_TEST_SLOWDOWN")); err == nil && f > 1 {
		return d * time.Duration(f)
	}
	return d
}

func count(st *store.Store) int64 { return st.Stats().Messages }

func hasAll(st *store.Store, ids []message.ID) bool {
	for _, id := range ids {
		if ok, _ := st.Has(id); !ok {
			return false
		}
	}
	return true
}

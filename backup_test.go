package lifeline_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"lifeline"
	"lifeline/api"
	"lifeline/message"
	"lifeline/store"
)

// TestBackupUnderLoad: a backup of a node taken while it is being written
// to restores to a node that holds every message acknowledged before the
// backup began, is the same node (its key), and opens; restoring over a
// node, or an archive with other files, is refused.
func TestBackupUnderLoad(t *testing.T) {
	n := startNode(t, t.TempDir())
	ctx := ctxT(t)
	var (
		mu    sync.Mutex
		acked []string
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	for w := range 2 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				id, err := n.client.Send(ctx, api.SendRequest{Channel: "general", Text: fmt.Sprintf("writer %d message %d", w, i)})
				if err != nil {
					t.Errorf("send: %v", err)
					return
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		})
	}
	waitFor(t, "some messages written", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 200 })
	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	var archive bytes.Buffer
	if err := n.client.Backup(ctx, &archive); err != nil {
		t.Fatal(err)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d messages acknowledged before the backup began, %d in all; archive of %d bytes", len(before), len(acked), archive.Len())

	dir := t.TempDir()
	stats, err := lifeline.Restore(dir, bytes.NewReader(archive.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if stats.Messages < int64(len(before)) {
		t.Fatalf("the restored store holds %d messages, %d were acknowledged before the backup", stats.Messages, len(before))
	}
	st, err := store.Open(filepath.Join(dir, lifeline.StoreFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range before {
		id, _ := message.ParseID(s)
		if ok, err := st.Has(id); !ok || err != nil {
			t.Fatalf("message %s, acknowledged before the backup, is not in it (%v)", s, err)
		}
	}
	st.Close()
	restored := startNode(t, dir)
	if restored.node.ID() != n.node.ID() {
		t.Fatalf("the restored node is %s, the backed up one %s", restored.node.ID(), n.node.ID())
	}
	if _, err := lifeline.Restore(dir, bytes.NewReader(archive.Bytes())); err == nil {
		t.Fatal("a restore over a node was not refused")
	}
	// An archive that names anything else (here a path out of the
	// directory) is refused, and writes nothing there.
	var evil bytes.Buffer
	tw := tar.NewWriter(&evil)
	tw.WriteHeader(&tar.Header{Name: "../escaped", Mode: 0o600, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	other := filepath.Join(t.TempDir(), "data")
	if _, err := lifeline.Restore(other, &evil); err == nil {
		t.Fatal("an archive naming ../escaped was restored")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(other), "escaped")); err == nil {
		t.Fatal("a file was written out of the data directory")
	}
}

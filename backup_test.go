package lifeline_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
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

// TestBackupCarriesPageSettings: what the operator's page set (the
// settings and a mesh key it made) is in the backup and comes back with
// the restore, owned like the data directory, as restore runs as root for
// a node that runs as its own user.
func TestBackupCarriesPageSettings(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root, to restore for another user (CI runs as root)")
	}
	// A node that ran, with what the page left in its data directory
	// (the node itself would remove a mesh key its settings do not name,
	// so the files are put there while it is stopped).
	src := t.TempDir()
	if err := startNode(t, src).shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, lifeline.SettingsFile), []byte(`{"version": 1, "name": "Camp B"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "meshkey-0123456789abcdef.key"), []byte("not read by the backup's check\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(src, lifeline.StoreFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	err = lifeline.WriteBackup(st, src, &archive)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	if _, err := lifeline.Restore(dir, bytes.NewReader(archive.Bytes())); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{lifeline.SettingsFile, "meshkey-0123456789abcdef.key", lifeline.StoreFile, lifeline.IdentityFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s not restored: %v", name, err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 4242 || st.Gid != 4242 || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s restored as %d:%d %v, want 4242:4242 -rw-------", name, st.Uid, st.Gid, fi.Mode())
		}
	}
	s, err := lifeline.LoadSettings(dir)
	if err != nil || s.Name == nil || *s.Name != "Camp B" {
		t.Fatalf("restored settings: %+v, %v", s, err)
	}
}

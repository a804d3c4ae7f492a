package lifeline

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"lifeline/store"
)

// A backup is a tar archive of what a node needs to be itself again, its
// files under their names in the data directory: the store (a consistent
// copy of a running node's, see store.Backup), the store key it is sealed
// with, and the node's identity. It holds keys: keep it as private as the
// data directory (lifeline backup writes it 0600). The admin token is left
// out (a restored node makes a new one), and so is the mesh key, which
// lives in the config.

// backupFiles are the names a backup holds, in the order written: the
// store, then its key (store.FilesOf), then the node's identity.
func backupFiles() []string {
	return []string{StoreFile, filepath.Base(store.FilesOf(StoreFile).Key), IdentityFile}
}

// maxBackupSecret bounds the key files a backup holds.
const maxBackupSecret = 64 << 10

// WriteBackup writes a backup of the node whose data directory is dataDir
// and whose open store is st.
func WriteBackup(st *store.Store, dataDir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	now := time.Now()
	err := st.Backup(tw, func(size int64) error {
		return tw.WriteHeader(&tar.Header{Name: StoreFile, Mode: 0o600, Size: size, ModTime: now, Typeflag: tar.TypeReg})
	})
	if err != nil {
		return err
	}
	for _, name := range backupFiles()[1:] { // the store's key and the node's: small files, read whole
		b, err := readSecretFile(name, filepath.Join(dataDir, name), maxBackupSecret)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(b)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	return tw.Close()
}

// Restore makes dataDir the node a backup (read from r) was taken of. The
// directory must not hold a node already: restoring over one would lose
// it. Only the files a backup holds are taken, each 0600; anything else
// in the archive is an error, so an archive cannot write elsewhere. The
// restored store is opened once to check it reads.
func Restore(dataDir string, r io.Reader) (store.Stats, error) {
	for _, name := range append([]string{AdminTokenFile}, backupFiles()...) {
		if _, err := os.Stat(filepath.Join(dataDir, name)); err == nil {
			return store.Stats{}, fmt.Errorf("restore: %s already holds a node (%s): move it aside first", dataDir, name)
		}
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return store.Stats{}, fmt.Errorf("restore: %w", err)
	}
	tr := tar.NewReader(r)
	got := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return store.Stats{}, fmt.Errorf("restore: not a backup: %w", err)
		}
		known := false
		for _, n := range backupFiles() {
			known = known || h.Name == n
		}
		if !known || h.Typeflag != tar.TypeReg || got[h.Name] {
			return store.Stats{}, fmt.Errorf("restore: the backup holds %q, which is not a file of a backup", h.Name)
		}
		got[h.Name] = true
		path := filepath.Join(dataDir, h.Name)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return store.Stats{}, fmt.Errorf("restore: %w", err)
		}
		_, err = io.Copy(f, tr)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return store.Stats{}, fmt.Errorf("restore %s: %w", h.Name, err)
		}
	}
	for _, n := range backupFiles() {
		if !got[n] {
			return store.Stats{}, fmt.Errorf("restore: the backup lacks %s", n)
		}
	}
	st, err := store.Open(filepath.Join(dataDir, StoreFile), store.Options{})
	if err != nil {
		return store.Stats{}, fmt.Errorf("restore: the restored store does not open: %w", err)
	}
	stats := st.Stats()
	if err := st.Close(); err != nil {
		return stats, fmt.Errorf("restore: %w", err)
	}
	return stats, nil
}

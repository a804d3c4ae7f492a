package lifeline

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"lifeline/store"
)

// A backup is a tar archive of what a node needs to be itself again, its
// files under their names in the data directory: the store (a consistent
// copy of a running node's, see store.Backup), the store key it is sealed
// with, and the node's identity; and, when the operator's page made them,
// its settings and the mesh keys it put in the data directory. It holds
// keys: keep it as private as the data directory (lifeline backup writes it
// 0600). The admin token is left out (a restored node makes a new one), and
// so is a mesh key the config names, which lives outside the data
// directory with the config.

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
	names := backupFiles()[1:] // the store's key and the node's: small files, read whole
	optional := map[string]bool{}
	for _, name := range pageFiles(dataDir) {
		names, optional[name] = append(names, name), true
	}
	for _, name := range names {
		b, err := readSecretFile(name, filepath.Join(dataDir, name), maxBackupSecret)
		if errors.Is(err, os.ErrNotExist) && optional[name] {
			continue // gone since the listing: a change on the page
		}
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
		known := isPageFile(h.Name)
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
	if err := ownLikeDir(dataDir, slices.Collect(maps.Keys(got))); err != nil {
		return store.Stats{}, fmt.Errorf("restore: %w", err)
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

// pageFiles are the files the operator's page keeps in dataDir that a
// backup carries: its settings and the mesh keys it made or was given.
func pageFiles(dataDir string) []string {
	var out []string
	if _, err := os.Stat(filepath.Join(dataDir, SettingsFile)); err == nil {
		out = append(out, SettingsFile)
	}
	keys, _ := filepath.Glob(filepath.Join(dataDir, meshKeyPrefix+"*"+meshKeySuffix))
	for _, k := range keys {
		out = append(out, filepath.Base(k))
	}
	return out
}

// isPageFile reports whether name is one of pageFiles' names.
func isPageFile(name string) bool { return name == SettingsFile || isPageMeshKey(name) }

// ownLikeDir gives the restored files the data directory's owner: restore
// runs as root (sudo lifeline restore --data /var/lib/lifeline), and the
// node runs as its own user, which must be able to open them.
func ownLikeDir(dataDir string, names []string) error {
	fi, err := os.Stat(dataDir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return nil
	}
	for _, n := range names {
		if err := os.Lchown(filepath.Join(dataDir, n), int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	return nil
}

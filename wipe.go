package lifeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"lifeline/store"
)

// ErrWiped is what Run returns after the node wiped itself (see Wipe): not
// a failure, and nothing to restart.
var ErrWiped = errors.New("the node wiped its keys and messages")

// Wipe destroys what a seized kit must not give away, keys first: the
// store key (every message in the store and its log is sealed with it, so
// destroying those 32 bytes makes all of them unrecoverable at once, in
// milliseconds, however large the store), the node's identity, the admin
// token and the mesh key (meshKeyFile, if not empty; it would let the
// holder join the private mesh). Each is overwritten, synced and removed.
// Then the database and the log are removed. It goes on past errors, to
// destroy as much as it can, and returns them all.
//
// A running node wipes itself through POST /api/v1/wipe and stops; Wipe
// on the data directory of a running node works too (the node's open files
// are removed under it), but the node goes on in memory until it stops.
func Wipe(dataDir, meshKeyFile string) error {
	files := store.FilesOf(filepath.Join(dataDir, StoreFile))
	secrets := []string{files.Key, filepath.Join(dataDir, IdentityFile), filepath.Join(dataDir, AdminTokenFile)}
	if meshKeyFile != "" {
		secrets = append(secrets, meshKeyFile)
	}
	// The mesh keys the operator's page made, and its settings (they
	// name the hubs).
	pageKeys, _ := filepath.Glob(filepath.Join(dataDir, meshKeyPrefix+"*"+meshKeySuffix))
	secrets = append(secrets, pageKeys...)
	secrets = append(secrets, filepath.Join(dataDir, SettingsFile))
	var errs []error
	for _, p := range secrets {
		errs = append(errs, destroySecretFile(p))
	}
	// The saved clock is no secret, but a wiped directory holds nothing.
	for _, p := range []string{files.DB, files.Log, filepath.Join(dataDir, ClockFile)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

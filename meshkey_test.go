package lifeline_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lifeline"
)

func TestMeshKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "team.key")
	if err := lifeline.WriteMeshKey(path, rand.Reader); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mesh key mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	key, err := lifeline.LoadMeshKey(path)
	if err != nil || len(key) != 32 {
		t.Fatalf("LoadMeshKey: %d bytes, %v", len(key), err)
	}
	before, _ := os.ReadFile(path)
	if err := lifeline.WriteMeshKey(path, rand.Reader); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("an existing mesh key was not protected: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("an existing mesh key was overwritten")
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := lifeline.LoadMeshKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a group-readable mesh key was accepted: %v", err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.key")
	os.WriteFile(garbage, []byte("not a key"), 0o600)
	if _, err := lifeline.LoadMeshKey(garbage); err == nil || !strings.Contains(err.Error(), "lifeline meshkey") {
		t.Fatalf("garbage mesh key: %v", err)
	}
}

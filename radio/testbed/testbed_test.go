package testbed

import (
	"os"
	"path/filepath"
	"testing"
)

// TestStartedAgainInTheSameDir: a testbed started again with the same dir
// puts its boards at the same paths, as a board plugged back in is, so
// the nodes that used the last one find them; closing it removes the
// paths and leaves the directory, which was not its own.
func TestStartedAgainInTheSameDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "boards")
	first, err := NewIn(dir, []Firmware{LifelineBoard, LifelineBoard}, 1)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	path := first.Path(1)
	was, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("%s after Close: %v", path, err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the directory went with the testbed: %v", err)
	}

	again, err := NewIn(dir, []Firmware{LifelineBoard, LifelineBoard}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.Path(1) != path {
		t.Fatalf("board 1 at %s, was at %s", again.Path(1), path)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("board 1's path does not open: %v (was %s)", err, was)
	}
	f.Close()
}

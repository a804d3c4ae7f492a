package store

import (
	"os"
	"syscall"
)

// chownLike gives path the owner and group of like, if they differ: a
// file made by root for a node that runs as its own user (lifeline
// compact run with sudo) must stay that user's, or the node cannot open
// it.
func chownLike(path string, like os.FileInfo) error {
	want, ok := like.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if got, ok := info.Sys().(*syscall.Stat_t); ok && got.Uid == want.Uid && got.Gid == want.Gid {
		return nil
	}
	return os.Chown(path, int(want.Uid), int(want.Gid))
}

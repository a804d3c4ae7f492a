package store

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data and the metadata needed to read it back (its
// size), not its timestamps: the log's one sync per batch.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}

// diskFree is the space an unprivileged writer may still use on the
// filesystem holding dir; false if it cannot tell.
func diskFree(dir string) (int64, bool) {
	free, _, ok := DiskSpace(dir)
	return free, ok
}

// DiskSpace is the space an unprivileged writer may still use on the
// filesystem holding dir, and its size; false if it cannot tell. What the
// store checks before logging (Options.MinFree), for others to report.
func DiskSpace(dir string) (free, size int64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), true
}

//go:build !linux

package store

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

// diskFree cannot tell here: the store never refuses for lack of space
// before trying.
func diskFree(string) (int64, bool) { return 0, false }

// DiskSpace cannot tell here.
func DiskSpace(string) (free, size int64, ok bool) { return 0, 0, false }

//go:build unix

package audit

import (
	"os"
	"syscall"
)

// fileID returns the device and inode of a file, which stay the same when
// it is renamed.
func fileID(fi os.FileInfo) (dev, ino uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return toUint64(st.Dev), toUint64(st.Ino), true
}

// toUint64 converts the platform's integer types for st_dev and st_ino,
// which vary (int32 on darwin, uint64 on linux); both are never negative.
func toUint64[T ~int32 | ~uint32 | ~int64 | ~uint64](v T) uint64 {
	return uint64(v) //nolint:gosec // device and inode numbers are not negative
}

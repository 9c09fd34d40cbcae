package vfs

import (
	"errors"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOSOpensWithODirect checks that the Direct flag really reaches the
// kernel: the open descriptor's status flags include O_DIRECT (and never
// without the flag), every descriptor is close-on-exec, and the kernel
// itself refuses an unaligned pwrite on it, which only O_DIRECT does.
func TestOSOpensWithODirect(t *testing.T) {
	dir := t.TempDir()
	for _, direct := range []bool{true, false} {
		flag := Create
		if direct {
			flag |= Direct
		}
		f, err := OS.OpenFile(filepath.Join(dir, "f"), flag)
		if errors.Is(err, ErrDirectUnsupported) {
			t.Skipf("the file system under %s refuses O_DIRECT: %v", dir, err)
		}
		if err != nil {
			t.Fatal(err)
		}
		fd := f.(*osFile).mu.fd
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := fl&unix.O_DIRECT != 0; got != direct {
			t.Errorf("Direct flag %v: O_DIRECT in F_GETFL = %v", direct, got)
		}
		fdfl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || fdfl&unix.FD_CLOEXEC == 0 {
			t.Errorf("descriptor is not close-on-exec: %#x, %v", fdfl, err)
		}
		// Bypass the alignment check to ask the kernel directly.
		_, err = unix.Pwrite(fd, []byte{1}, 1)
		if direct && err != unix.EINVAL {
			t.Errorf("kernel accepted an unaligned pwrite on an O_DIRECT descriptor: %v", err)
		}
		if !direct && err != nil {
			t.Errorf("unaligned buffered pwrite: %v", err)
		}
		f.Close()
	}
}

package vfs_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cowdb/cowdb/vfs"
)

// benchSlots is how many 4 KiB blocks the write benchmarks cycle through,
// inside a file fallocated and written once, so no iteration changes the
// file size or allocates blocks.
const benchSlots = 256

// prepareBenchFile creates a fully written benchSlots-block file and returns
// its name.
func prepareBenchFile(b *testing.B) string {
	name := filepath.Join(b.TempDir(), "bench")
	f, err := vfs.OS.OpenFile(name, vfs.Create)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, benchSlots*vfs.Alignment), 0); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return name
}

// BenchmarkWriteDatasync4K measures one 4 KiB write plus fdatasync through
// vfs.OS (direct and buffered) beside the same system calls made raw on a
// descriptor from os.OpenFile, in the same run, so the ratio is the cost of
// the vfs layer itself.
func BenchmarkWriteDatasync4K(b *testing.B) {
	buf := vfs.AlignedBuf(vfs.Alignment)
	b.Run("raw-direct", func(b *testing.B) {
		fh, err := os.OpenFile(prepareBenchFile(b), os.O_RDWR|unix.O_DIRECT, 0)
		if err != nil {
			b.Skip(err)
		}
		defer fh.Close()
		fd := int(fh.Fd())
		b.SetBytes(vfs.Alignment)
		for i := 0; b.Loop(); i++ {
			if _, err := unix.Pwrite(fd, buf, int64(i%benchSlots)*vfs.Alignment); err != nil {
				b.Fatal(err)
			}
			if err := unix.Fdatasync(fd); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, flag := range []vfs.OpenFlag{vfs.Direct, 0} {
		name := map[vfs.OpenFlag]string{vfs.Direct: "vfs-direct", 0: "vfs-buffered"}[flag]
		b.Run(name, func(b *testing.B) {
			f, err := vfs.OS.OpenFile(prepareBenchFile(b), vfs.ReadWrite|flag)
			if errors.Is(err, vfs.ErrDirectUnsupported) {
				b.Skip(err)
			}
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			b.SetBytes(vfs.Alignment)
			for i := 0; b.Loop(); i++ {
				if _, err := f.WriteAt(buf, int64(i%benchSlots)*vfs.Alignment); err != nil {
					b.Fatal(err)
				}
				if err := f.Datasync(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadAt4K measures one 4 KiB direct read through vfs.OS beside a
// raw pread, in the same run, and a MemFS read for scale.
func BenchmarkReadAt4K(b *testing.B) {
	buf := vfs.AlignedBuf(vfs.Alignment)
	b.Run("raw-direct", func(b *testing.B) {
		fh, err := os.OpenFile(prepareBenchFile(b), os.O_RDONLY|unix.O_DIRECT, 0)
		if err != nil {
			b.Skip(err)
		}
		defer fh.Close()
		fd := int(fh.Fd())
		b.SetBytes(vfs.Alignment)
		for i := 0; b.Loop(); i++ {
			if _, err := unix.Pread(fd, buf, int64(i%benchSlots)*vfs.Alignment); err != nil {
				b.Fatal(err)
			}
		}
	})
	read := func(b *testing.B, f vfs.File) {
		b.SetBytes(vfs.Alignment)
		for i := 0; b.Loop(); i++ {
			if _, err := f.ReadAt(buf, int64(i%benchSlots)*vfs.Alignment); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("vfs-direct", func(b *testing.B) {
		f, err := vfs.OS.OpenFile(prepareBenchFile(b), vfs.Direct)
		if err != nil {
			b.Skip(err)
		}
		defer f.Close()
		read(b, f)
	})
	b.Run("mem", func(b *testing.B) {
		fs := vfs.NewMem()
		f, err := fs.OpenFile("/bench", vfs.Create|vfs.Direct)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.WriteAt(vfs.AlignedBuf(benchSlots*vfs.Alignment), 0); err != nil {
			b.Fatal(err)
		}
		read(b, f)
	})
}

package vfs_test

import (
	"bytes"
	"errors"
	"io"
	"path"
	"runtime"
	"slices"
	"testing"

	"github.com/cowdb/cowdb/vfs"
)

// fsCase is one implementation under the common contract tests, with a
// directory to work in.
type fsCase struct {
	name string
	fs   vfs.FS
	dir  string
}

// implementations returns a fresh MemFS and, on Linux, the OS file system
// over a fresh temporary directory, so every contract test runs against
// both.
func implementations(t *testing.T) []fsCase {
	mem := vfs.NewMem()
	if err := mem.MkdirAll("/t"); err != nil {
		t.Fatal(err)
	}
	cases := []fsCase{{"mem", mem, "/t"}}
	if runtime.GOOS == "linux" { // the only platform with an OS implementation
		cases = append(cases, fsCase{"os", vfs.OS, t.TempDir()})
	}
	return cases
}

func mustOpen(t *testing.T, fs vfs.FS, name string, flag vfs.OpenFlag) vfs.File {
	t.Helper()
	f, err := fs.OpenFile(name, flag)
	if err != nil {
		t.Fatalf("OpenFile(%s): %v", name, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestFileRoundTrip checks, on every implementation, that bytes written
// read back, that reads past the end follow io.ReaderAt, and that Truncate,
// Fallocate and Stat agree on the size and zero-fill.
func TestFileRoundTrip(t *testing.T) {
	for _, c := range implementations(t) {
		t.Run(c.name, func(t *testing.T) {
			name := path.Join(c.dir, "f")
			f := mustOpen(t, c.fs, name, vfs.Create)
			data := []byte("hello, cowdb")
			if n, err := f.WriteAt(data, 100); n != len(data) || err != nil {
				t.Fatalf("WriteAt = %d, %v", n, err)
			}
			got := make([]byte, len(data))
			if n, err := f.ReadAt(got, 100); n != len(data) || err != nil || !bytes.Equal(got, data) {
				t.Fatalf("ReadAt = %d, %v, %q", n, err, got)
			}
			head := make([]byte, 100)
			if _, err := f.ReadAt(head, 0); err != nil || !bytes.Equal(head, make([]byte, 100)) {
				t.Fatalf("hole before the write: %v, %x", err, head)
			}
			if n, err := f.ReadAt(make([]byte, 20), 105); n != 7 || err != io.EOF {
				t.Fatalf("ReadAt across the end = %d, %v; want 7, EOF", n, err)
			}
			if n, err := f.ReadAt(make([]byte, 1), 500); n != 0 || err != io.EOF {
				t.Fatalf("ReadAt past the end = %d, %v; want 0, EOF", n, err)
			}
			if err := f.Truncate(104); err != nil {
				t.Fatal(err)
			}
			if err := f.Fallocate(0, 8192); err != nil {
				t.Fatal(err)
			}
			wantSize(t, f, 8192)
			tail := make([]byte, 8192-104)
			if _, err := f.ReadAt(tail, 104); err != nil || !bytes.Equal(tail, make([]byte, len(tail))) {
				t.Fatalf("truncated then fallocated range is not zeros: %v", err)
			}
			if err := f.Datasync(); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			if fi, err := c.fs.Stat(name); err != nil || fi.Size != 8192 || fi.Name != "f" {
				t.Fatalf("FS.Stat = %+v, %v", fi, err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := f.ReadAt(got, 0); !errors.Is(err, vfs.ErrClosed) {
				t.Fatalf("ReadAt after Close: %v, want ErrClosed", err)
			}
			if err := f.Close(); !errors.Is(err, vfs.ErrClosed) {
				t.Fatalf("second Close: %v, want ErrClosed", err)
			}
		})
	}
}

func wantSize(t *testing.T, f vfs.File, size int64) {
	t.Helper()
	fi, err := f.Stat()
	if err != nil || fi.Size != size {
		t.Fatalf("Stat = %+v, %v; want size %d", fi, err, size)
	}
}

// TestNamespace checks, on every implementation, the directory operations:
// MkdirAll, sorted ReadDir, Rename replacing its target, Remove, SyncDir,
// and the sentinels for missing and existing names.
func TestNamespace(t *testing.T) {
	for _, c := range implementations(t) {
		t.Run(c.name, func(t *testing.T) {
			sub := path.Join(c.dir, "a", "b")
			if err := c.fs.MkdirAll(sub); err != nil {
				t.Fatal(err)
			}
			if err := c.fs.MkdirAll(sub); err != nil {
				t.Fatalf("MkdirAll of an existing directory: %v", err)
			}
			for _, n := range []string{"z", "x", "y"} {
				mustOpen(t, c.fs, path.Join(sub, n), vfs.Create).WriteAt([]byte(n), 0)
			}
			names, err := c.fs.ReadDir(sub)
			if err != nil || !slices.Equal(names, []string{"x", "y", "z"}) {
				t.Fatalf("ReadDir = %v, %v", names, err)
			}
			if err := c.fs.Rename(path.Join(sub, "x"), path.Join(sub, "z")); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 1)
			f := mustOpen(t, c.fs, path.Join(sub, "z"), 0)
			if _, err := f.ReadAt(got, 0); err != nil || got[0] != 'x' {
				t.Fatalf("renamed file reads %q, %v", got, err)
			}
			if err := c.fs.Remove(path.Join(sub, "y")); err != nil {
				t.Fatal(err)
			}
			if err := c.fs.SyncDir(sub); err != nil {
				t.Fatal(err)
			}
			names, _ = c.fs.ReadDir(sub)
			if !slices.Equal(names, []string{"z"}) {
				t.Fatalf("after rename and remove: %v", names)
			}
			missing := path.Join(sub, "nope")
			if _, err := c.fs.OpenFile(missing, vfs.ReadWrite); !errors.Is(err, vfs.ErrNotExist) {
				t.Fatalf("open missing: %v", err)
			}
			if _, err := c.fs.Stat(missing); !errors.Is(err, vfs.ErrNotExist) {
				t.Fatalf("stat missing: %v", err)
			}
			if err := c.fs.Remove(missing); !errors.Is(err, vfs.ErrNotExist) {
				t.Fatalf("remove missing: %v", err)
			}
			if _, err := c.fs.ReadDir(missing); !errors.Is(err, vfs.ErrNotExist) {
				t.Fatalf("readdir missing: %v", err)
			}
			if _, err := c.fs.OpenFile(sub, 0); err == nil {
				t.Fatal("OpenFile of a directory succeeded")
			}
			if err := c.fs.Remove(path.Join(c.dir, "a")); err == nil {
				t.Fatal("Remove of a non-empty directory succeeded")
			}
			if err := c.fs.Remove(path.Join(sub, "z")); err != nil {
				t.Fatal(err)
			}
			if err := c.fs.Remove(sub); err != nil {
				t.Fatalf("remove empty directory: %v", err)
			}
		})
	}
}

// TestReadOnlyOpen checks that a file opened without ReadWrite refuses
// writes on every implementation.
func TestReadOnlyOpen(t *testing.T) {
	for _, c := range implementations(t) {
		t.Run(c.name, func(t *testing.T) {
			name := path.Join(c.dir, "ro")
			mustOpen(t, c.fs, name, vfs.Create)
			f := mustOpen(t, c.fs, name, 0)
			if n, err := f.WriteAt([]byte("x"), 0); err == nil || n != 0 {
				t.Fatalf("WriteAt on a read-only file = %d, %v", n, err)
			}
		})
	}
}

// TestLockConflicts checks, on every implementation, that two exclusive
// locks conflict, shared locks coexist, shared and exclusive conflict, and
// closing a lock releases it. Within one process flock conflicts between
// two open file descriptions, so this exercises the real kernel rule.
func TestLockConflicts(t *testing.T) {
	for _, c := range implementations(t) {
		t.Run(c.name, func(t *testing.T) {
			name := path.Join(c.dir, "LOCK")
			ex, err := c.fs.Lock(name, false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.fs.Lock(name, false); !errors.Is(err, vfs.ErrLocked) {
				t.Fatalf("second exclusive lock: %v, want ErrLocked", err)
			}
			if _, err := c.fs.Lock(name, true); !errors.Is(err, vfs.ErrLocked) {
				t.Fatalf("shared under exclusive: %v, want ErrLocked", err)
			}
			if err := ex.Close(); err != nil {
				t.Fatal(err)
			}
			if err := ex.Close(); !errors.Is(err, vfs.ErrClosed) {
				t.Fatalf("second Close of a lock: %v, want ErrClosed", err)
			}
			sh1, err := c.fs.Lock(name, true)
			if err != nil {
				t.Fatal(err)
			}
			sh2, err := c.fs.Lock(name, true)
			if err != nil {
				t.Fatalf("shared + shared: %v", err)
			}
			if _, err := c.fs.Lock(name, false); !errors.Is(err, vfs.ErrLocked) {
				t.Fatalf("exclusive under shared: %v, want ErrLocked", err)
			}
			sh1.Close()
			if _, err := c.fs.Lock(name, false); !errors.Is(err, vfs.ErrLocked) {
				t.Fatalf("exclusive under one remaining shared: %v, want ErrLocked", err)
			}
			sh2.Close()
			ex, err = c.fs.Lock(name, false)
			if err != nil {
				t.Fatalf("exclusive after every release: %v", err)
			}
			ex.Close()
		})
	}
}

// TestDirectAlignment checks, on every implementation that accepts direct
// I/O here, that aligned direct I/O works and that an unaligned offset,
// length or buffer address fails with ErrUnaligned before anything moves.
func TestDirectAlignment(t *testing.T) {
	for _, c := range implementations(t) {
		t.Run(c.name, func(t *testing.T) {
			name := path.Join(c.dir, "direct")
			f, err := c.fs.OpenFile(name, vfs.Create|vfs.Direct)
			if errors.Is(err, vfs.ErrDirectUnsupported) {
				t.Skipf("the file system under %s refuses O_DIRECT: %v", c.dir, err)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if !f.Direct() {
				t.Fatal("Direct() = false for a file opened with Direct")
			}
			buf := vfs.AlignedBuf(2 * vfs.Alignment)
			for i := range buf {
				buf[i] = byte(i)
			}
			if n, err := f.WriteAt(buf, vfs.Alignment); n != len(buf) || err != nil {
				t.Fatalf("aligned WriteAt = %d, %v", n, err)
			}
			unaligned := map[string]struct {
				p   []byte
				off int64
			}{
				"offset":  {buf[:vfs.Alignment], 512},
				"length":  {buf[:vfs.Alignment-512], 0},
				"address": {vfs.AlignedBuf(2 * vfs.Alignment)[512 : 512+vfs.Alignment], 0},
			}
			for what, u := range unaligned {
				if n, err := f.WriteAt(u.p, u.off); n != 0 || !errors.Is(err, vfs.ErrUnaligned) {
					t.Errorf("unaligned %s: WriteAt = %d, %v; want 0, ErrUnaligned", what, n, err)
				}
				if n, err := f.ReadAt(u.p, u.off); n != 0 || !errors.Is(err, vfs.ErrUnaligned) {
					t.Errorf("unaligned %s: ReadAt = %d, %v; want 0, ErrUnaligned", what, n, err)
				}
			}
			wantSize(t, f, 3*vfs.Alignment) // no unaligned write extended it
			got := vfs.AlignedBuf(2 * vfs.Alignment)
			if n, err := f.ReadAt(got, vfs.Alignment); n != len(got) || err != nil || !bytes.Equal(got, buf) {
				t.Fatalf("aligned ReadAt = %d, %v, equal %v", n, err, bytes.Equal(got, buf))
			}
			if n, err := f.ReadAt(got, 2*vfs.Alignment); n != vfs.Alignment || err != io.EOF {
				t.Fatalf("aligned ReadAt across the end = %d, %v; want %d, EOF", n, err, vfs.Alignment)
			}
		})
	}
}

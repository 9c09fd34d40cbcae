package vfs_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cowdb/cowdb/vfs"
)

// TestOSErrnoMapping checks that OS errors carry both the vfs sentinel and
// the errno, and name the path.
func TestOSErrnoMapping(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	_, err := vfs.OS.OpenFile(missing, vfs.ReadWrite)
	if !errors.Is(err, vfs.ErrNotExist) || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("open missing: %v; want ErrNotExist and ENOENT", err)
	}
	var pe *vfs.PathError
	if !errors.As(err, &pe) || pe.Path != missing || !strings.Contains(err.Error(), missing) {
		t.Fatalf("error %v does not name the path %s", err, missing)
	}
	if err := vfs.OS.MkdirAll(filepath.Join(dir, "d")); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, vfs.OS, filepath.Join(dir, "d", "f"), vfs.Create)
	if err := vfs.OS.MkdirAll(filepath.Join(dir, "e")); err != nil {
		t.Fatal(err)
	}
	err = vfs.OS.Rename(filepath.Join(dir, "d", "f"), filepath.Join(dir, "e")) // a file over a directory
	if !errors.Is(err, unix.EISDIR) {
		t.Fatalf("renaming a file over a directory: %v; want EISDIR", err)
	}
	if err := vfs.OS.SyncDir(missing); !errors.Is(err, vfs.ErrNotExist) {
		t.Fatalf("SyncDir missing: %v", err)
	}
}

// TestOSRefusedDirectIO checks DirectIO modes against file systems that
// really refuse O_DIRECT. procfs always does; tmpfs (/dev/shm) did until
// Linux 6.6, and on newer kernels the test checks that Auto then keeps
// direct I/O instead of falling back.
func TestOSRefusedDirectIO(t *testing.T) {
	t.Run("procfs", func(t *testing.T) {
		const name = "/proc/self/stat"
		if _, err := os.Stat(name); err != nil {
			t.Skipf("no procfs here: %v", err)
		}
		checkRefusal(t, name, 0)
	})
	t.Run("tmpfs", func(t *testing.T) {
		var st unix.Statfs_t
		if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != unix.TMPFS_MAGIC {
			t.Skipf("/dev/shm is absent or not tmpfs (statfs: %v)", err)
		}
		dir, err := os.MkdirTemp("/dev/shm", "cowdb-vfs-test-")
		if err != nil {
			t.Skipf("cannot create a directory in /dev/shm: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		name := filepath.Join(dir, "f")
		f, err := vfs.OS.OpenFile(name, vfs.Create|vfs.Direct)
		if err == nil {
			// Linux 6.6 and later give tmpfs direct I/O: Auto must use it.
			f.Close()
			g, fellBack, err := vfs.OpenDirect(vfs.OS, name, vfs.ReadWrite, vfs.DirectIOAuto)
			if err != nil || fellBack || !g.Direct() {
				t.Fatalf("tmpfs accepting O_DIRECT: OpenDirect = %v, fellBack %v", err, fellBack)
			}
			g.Close()
			t.Logf("this kernel's tmpfs accepts O_DIRECT; refusal is covered by procfs and MemFS")
			return
		}
		checkRefusal(t, name, vfs.Create)
	})
}

// checkRefusal checks that name, on a file system refusing O_DIRECT, gives
// ErrDirectUnsupported (with the errno) for a Direct open, a buffered file
// and fellBack under DirectIOAuto, and the error under DirectIORequired.
func checkRefusal(t *testing.T, name string, flag vfs.OpenFlag) {
	t.Helper()
	_, err := vfs.OS.OpenFile(name, flag|vfs.Direct)
	if !errors.Is(err, vfs.ErrDirectUnsupported) || !errors.Is(err, unix.EINVAL) {
		t.Fatalf("Direct open: %v; want ErrDirectUnsupported wrapping EINVAL", err)
	}
	f, fellBack, err := vfs.OpenDirect(vfs.OS, name, flag, vfs.DirectIOAuto)
	if err != nil || !fellBack || f.Direct() {
		t.Fatalf("DirectIOAuto: err %v, fellBack %v", err, fellBack)
	}
	if n, err := f.ReadAt(make([]byte, 3), 0); name == "/proc/self/stat" && (n != 3 || err != nil) {
		t.Fatalf("unaligned read from the buffered fallback = %d, %v", n, err)
	}
	f.Close()
	if _, _, err := vfs.OpenDirect(vfs.OS, name, flag, vfs.DirectIORequired); !errors.Is(err, vfs.ErrDirectUnsupported) {
		t.Fatalf("DirectIORequired: %v; want ErrDirectUnsupported", err)
	}
}

const lockChildEnv = "COWDB_VFS_LOCK_CHILD"

// TestLockCrossProcess checks that the OS lock excludes another process: a
// re-executed test binary fails to take a lock this process holds, and
// takes it once this process has released it. In the child (the
// environment variable set) it only tries the lock and reports.
func TestLockCrossProcess(t *testing.T) {
	if name := os.Getenv(lockChildEnv); name != "" {
		l, err := vfs.OS.Lock(name, false)
		switch {
		case errors.Is(err, vfs.ErrLocked):
			os.Stdout.WriteString("child:locked\n")
		case err == nil:
			l.Close()
			os.Stdout.WriteString("child:acquired\n")
		default:
			os.Stdout.WriteString("child:error " + err.Error() + "\n")
		}
		os.Exit(0)
	}
	name := filepath.Join(t.TempDir(), "LOCK")
	child := func() string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLockCrossProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), lockChildEnv+"="+name)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("child: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	for _, shared := range []bool{false, true} {
		l, err := vfs.OS.Lock(name, shared)
		if err != nil {
			t.Fatal(err)
		}
		if got := child(); got != "child:locked" {
			t.Fatalf("child under our lock (shared %v) says %q", shared, got)
		}
		l.Close()
	}
	if got := child(); got != "child:acquired" {
		t.Fatalf("child after release says %q", got)
	}
}

// TestOSConcurrentClose checks, under -race, that concurrent direct reads
// and writes on disjoint ranges of one OS file are intact, and that a Close
// racing with them makes each later call fail with ErrClosed rather than
// touch a reused descriptor.
func TestOSConcurrentClose(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	f, _, err := vfs.OpenDirect(vfs.OS, name, vfs.Create, vfs.DirectIOAuto)
	if err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 4, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			buf, got := vfs.AlignedBuf(vfs.Alignment), vfs.AlignedBuf(vfs.Alignment)
			for i := range buf {
				buf[i] = byte(w + 1)
			}
			off := int64(w) * vfs.Alignment
			for range rounds {
				if _, err := f.WriteAt(buf, off); err != nil {
					if !errors.Is(err, vfs.ErrClosed) {
						t.Error(err)
					}
					return
				}
				if _, err := f.ReadAt(got, off); err != nil {
					if !errors.Is(err, vfs.ErrClosed) {
						t.Error(err)
					}
					return
				}
				if !bytes.Equal(got, buf) {
					t.Errorf("worker %d read back another worker's bytes", w)
					return
				}
			}
		})
	}
	wg.Go(func() {
		time.Sleep(time.Millisecond)
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	if _, err := f.ReadAt(vfs.AlignedBuf(vfs.Alignment), 0); !errors.Is(err, vfs.ErrClosed) {
		t.Fatalf("ReadAt after Close: %v", err)
	}
}

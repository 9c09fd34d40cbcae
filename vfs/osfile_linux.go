package vfs

import (
	"io"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// osFile is a file of the OS file system. It is safe for concurrent use.
type osFile struct {
	name   string
	direct bool

	// mu is read-held across every system call on fd and write-held by
	// Close, so a descriptor is never closed (and its number reused by
	// another open) under a call still using it.
	mu struct {
		sync.RWMutex
		fd int // -1 once closed
	}
}

// acquire read-locks the file and returns its descriptor; the caller must
// call f.mu.RUnlock when done, and only if acquire returned nil.
func (f *osFile) acquire(op string) (int, error) {
	f.mu.RLock()
	if f.mu.fd < 0 {
		f.mu.RUnlock()
		return -1, pathError(op, f.name, ErrClosed)
	}
	return f.mu.fd, nil
}

func (f *osFile) ReadAt(p []byte, off int64) (int, error) {
	if f.direct {
		if err := checkDirect("pread", f.name, p, off); err != nil {
			return 0, err
		}
	}
	fd, err := f.acquire("pread")
	if err != nil {
		return 0, err
	}
	defer f.mu.RUnlock()
	n := 0
	// Each iteration either moves at least one byte or returns, so the
	// loop runs at most len(p) times.
	for n < len(p) {
		var m int
		err := retry(func() (err error) {
			m, err = unix.Pread(fd, p[n:], off+int64(n))
			return err
		})
		if err != nil {
			return n, sysError("pread", f.name, err)
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
		if f.direct && n%Alignment != 0 && n < len(p) {
			// A direct read stops short only at the end of the file, and
			// the rest could not be asked for anyway: it is unaligned.
			return n, io.EOF
		}
	}
	return n, nil
}

func (f *osFile) WriteAt(p []byte, off int64) (int, error) {
	if f.direct {
		if err := checkDirect("pwrite", f.name, p, off); err != nil {
			return 0, err
		}
	}
	fd, err := f.acquire("pwrite")
	if err != nil {
		return 0, err
	}
	defer f.mu.RUnlock()
	n := 0
	for n < len(p) {
		var m int
		err := retry(func() (err error) {
			m, err = unix.Pwrite(fd, p[n:], off+int64(n))
			return err
		})
		if err != nil {
			return n, sysError("pwrite", f.name, err)
		}
		n += m
		if m == 0 || (f.direct && n%Alignment != 0 && n < len(p)) {
			// No progress, or a direct remainder that cannot be issued:
			// report the short write rather than loop or misalign.
			return n, &PathError{Op: "pwrite", Path: f.name, Err: io.ErrShortWrite}
		}
	}
	return n, nil
}

// syscall runs one descriptor-level system call under the read lock.
func (f *osFile) syscall(op string, fn func(fd int) error) error {
	fd, err := f.acquire(op)
	if err != nil {
		return err
	}
	defer f.mu.RUnlock()
	if err := retry(func() error { return fn(fd) }); err != nil {
		return sysError(op, f.name, err)
	}
	return nil
}

func (f *osFile) Datasync() error {
	return f.syscall("fdatasync", unix.Fdatasync)
}

func (f *osFile) Sync() error {
	return f.syscall("fsync", unix.Fsync)
}

func (f *osFile) Fallocate(off, length int64) error {
	return f.syscall("fallocate", func(fd int) error {
		return unix.Fallocate(fd, 0, off, length)
	})
}

func (f *osFile) Truncate(size int64) error {
	return f.syscall("ftruncate", func(fd int) error {
		return unix.Ftruncate(fd, size)
	})
}

func (f *osFile) Stat() (FileInfo, error) {
	var st unix.Stat_t
	err := f.syscall("fstat", func(fd int) error { return unix.Fstat(fd, &st) })
	if err != nil {
		return FileInfo{}, err
	}
	return FileInfo{Name: filepath.Base(f.name), Size: st.Size}, nil
}

func (f *osFile) Direct() bool { return f.direct }

func (f *osFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.fd < 0 {
		return pathError("close", f.name, ErrClosed)
	}
	fd := f.mu.fd
	f.mu.fd = -1
	// close(2) is not retried on EINTR: on Linux the descriptor is gone
	// whatever it returns.
	if err := unix.Close(fd); err != nil {
		return sysError("close", f.name, err)
	}
	return nil
}

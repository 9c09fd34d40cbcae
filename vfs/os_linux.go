package vfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// OS is the operating system's file system: real files through
// golang.org/x/sys/unix, with O_DIRECT for the Direct flag, pread and
// pwrite, fdatasync, fsync, fallocate, ftruncate and flock. Every file is
// opened with O_CLOEXEC. It is safe for concurrent use.
var OS FS = osFS{}

// Default returns OS, the file system cowdb uses when Options.FS is nil.
func Default() FS { return OS }

const (
	filePerm = 0o644 // before the umask, for files OpenFile and Lock create
	dirPerm  = 0o755 // before the umask, for directories MkdirAll creates

	// eintrRetryMax bounds the retries of one system call interrupted by a
	// signal: Go installs its handlers with SA_RESTART, so a handful of
	// consecutive EINTRs already means something is wrong.
	eintrRetryMax = 100
)

type osFS struct{}

// retry calls fn until it returns something other than EINTR, at most
// eintrRetryMax+1 times.
func retry(fn func() error) error {
	var err error
	for range eintrRetryMax + 1 {
		if err = fn(); err != unix.EINTR {
			return err
		}
	}
	return err
}

// sysError wraps a system call's error in a *PathError that carries the
// errno and the vfs sentinel it maps to.
func sysError(op, path string, err error) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return &PathError{Op: op, Path: path, Sys: err}
	}
	var sentinel error
	switch errno {
	case unix.ENOENT:
		sentinel = ErrNotExist
	case unix.EEXIST:
		sentinel = ErrExist
	case unix.EIO:
		sentinel = ErrIO
	case unix.ENOSPC, unix.EDQUOT:
		sentinel = ErrNoSpace
	case unix.EOPNOTSUPP:
		sentinel = errors.ErrUnsupported
	}
	return &PathError{Op: op, Path: path, Err: sentinel, Sys: errno}
}

func (osFS) OpenFile(name string, flag OpenFlag) (File, error) {
	oflag := unix.O_CLOEXEC | unix.O_RDONLY
	if flag&(ReadWrite|Create) != 0 {
		oflag = unix.O_CLOEXEC | unix.O_RDWR
	}
	if flag&Create != 0 {
		oflag |= unix.O_CREAT
	}
	if flag&Direct != 0 {
		oflag |= unix.O_DIRECT
	}
	var fd int
	err := retry(func() (err error) {
		fd, err = unix.Open(name, oflag, filePerm)
		return err
	})
	if err == unix.EINVAL && flag&Direct != 0 {
		// Linux answers EINVAL when the file system has no direct I/O
		// (tmpfs before 6.6, procfs, some FUSE file systems).
		return nil, &PathError{Op: "open", Path: name, Err: ErrDirectUnsupported, Sys: err}
	}
	if err != nil {
		return nil, sysError("open", name, err)
	}
	// open(2) lets a directory be opened read-only; a File is never one.
	var st unix.Stat_t
	if err := retry(func() error { return unix.Fstat(fd, &st) }); err != nil || st.Mode&unix.S_IFMT == unix.S_IFDIR {
		unix.Close(fd)
		if err == nil {
			err = unix.EISDIR
		}
		return nil, sysError("open", name, err)
	}
	f := &osFile{name: name, direct: flag&Direct != 0}
	f.mu.fd = fd
	return f, nil
}

func (osFS) Remove(name string) error {
	err := retry(func() error { return unix.Unlink(name) })
	if err == unix.EISDIR {
		err = retry(func() error { return unix.Rmdir(name) })
	}
	if err != nil {
		return sysError("remove", name, err)
	}
	return nil
}

func (osFS) Rename(oldname, newname string) error {
	if err := retry(func() error { return unix.Rename(oldname, newname) }); err != nil {
		return sysError("rename", oldname+" -> "+newname, err)
	}
	return nil
}

func (osFS) MkdirAll(dir string) error {
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return sysError("mkdir", dir, err)
	}
	return nil
}

func (osFS) ReadDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return nil, sysError("readdir", dir, err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

func (osFS) SyncDir(dir string) error {
	var fd int
	err := retry(func() (err error) {
		fd, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return sysError("open", dir, err)
	}
	err = retry(func() error { return unix.Fsync(fd) })
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		return sysError("close", dir, cerr)
	}
	if err != nil {
		return sysError("fsync", dir, err)
	}
	return nil
}

func (osFS) Stat(name string) (FileInfo, error) {
	var st unix.Stat_t
	if err := retry(func() error { return unix.Stat(name, &st) }); err != nil {
		return FileInfo{}, sysError("stat", name, err)
	}
	return FileInfo{Name: filepath.Base(name), Size: st.Size}, nil
}

func (osFS) Lock(name string, shared bool) (io.Closer, error) {
	var fd int
	err := retry(func() (err error) {
		fd, err = unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, filePerm)
		return err
	})
	if err == unix.EROFS || err == unix.EACCES {
		// A read-only opener on a read-only file system or directory can
		// still share-lock an existing file; flock needs no write access.
		err = retry(func() (err error) {
			fd, err = unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			return err
		})
	}
	if err != nil {
		return nil, sysError("open", name, err)
	}
	how := unix.LOCK_EX | unix.LOCK_NB
	if shared {
		how = unix.LOCK_SH | unix.LOCK_NB
	}
	err = retry(func() error { return unix.Flock(fd, how) })
	if err != nil {
		unix.Close(fd)
		if err == unix.EWOULDBLOCK {
			return nil, &PathError{Op: "flock", Path: name, Err: ErrLocked, Sys: err}
		}
		return nil, sysError("flock", name, err)
	}
	return &osLock{name: name, fd: fd}, nil
}

// osLock is a held flock; closing its descriptor releases the lock.
type osLock struct {
	name string
	once sync.Once
	fd   int
}

func (l *osLock) Close() error {
	err := ErrClosed
	l.once.Do(func() {
		err = nil
		// Unlock before closing: a process forked meanwhile shares the
		// descriptor (until it execs), and the lock would outlive this
		// Close, so that an Open right after it got ErrLocked.
		if uerr := unix.Flock(l.fd, unix.LOCK_UN); uerr != nil {
			err = sysError("unlock", l.name, uerr)
		}
		if cerr := unix.Close(l.fd); cerr != nil && err == nil {
			err = sysError("close", l.name, cerr)
		}
	})
	return err
}

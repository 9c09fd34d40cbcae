// Package vfs is the one narrow file interface all of cowdb's I/O goes
// through, with three implementations: the operating system's (OS: real
// files, real O_DIRECT, fdatasync, fallocate and flock; Linux only), a
// crashable memory file system for fault tests (MemFS), and an
// error-injecting wrapper around any FS (ErrorFS). Beside them it offers
// the direct I/O policy of Options.DirectIO (OpenDirect) and aligned
// buffers for direct I/O (AlignedBuf).
//
// vfs owns files and nothing else: it knows nothing of blocks, records or
// trees, and no other cowdb package touches the os package's files. It is
// public because Options.FS takes it, so users can run their own crash tests
// against cowdb's crashable FS.
//
// vfs never caches, never retries a failed write or sync (after a failed
// sync the state of unsynced data is unknown, and only the caller can
// decide what that means), never makes anything durable implicitly (not
// even on Close), and never lets an unaligned direct I/O reach the kernel.
// Every error it returns wraps one of its sentinels where one fits, so
// callers test with errors.Is.
//
// Concurrency: an FS and its Files are safe for concurrent use by multiple
// goroutines. Concurrent ReadAt and WriteAt calls on one File may overlap in
// time; writes to overlapping byte ranges in flight at once have an
// unspecified result, exactly as with pwrite(2), and callers never issue them.
// A Close concurrent with other calls on the same File waits for them, and
// every call after it fails with ErrClosed.
package vfs

import "io"

// Alignment is the alignment, in bytes, that direct I/O requires of file
// offsets, lengths and buffer addresses. 4096 covers every logical block
// size in common use (512 and 4096).
const Alignment = 4096

// OpenFlag says how OpenFile opens a file. Flags combine with |.
type OpenFlag uint8

const (
	// ReadWrite opens the file for reading and writing; without it the file
	// is opened read-only.
	ReadWrite OpenFlag = 1 << iota
	// Create creates the file if it does not exist (implies ReadWrite).
	// The new directory entry is durable only after SyncDir of its parent.
	Create
	// Direct asks for direct I/O (O_DIRECT): every ReadAt and WriteAt must
	// then use an offset, a length and a buffer address that are multiples
	// of Alignment, or it fails with ErrUnaligned and transfers nothing. A
	// file system that refuses direct I/O (tmpfs before Linux 6.6, procfs)
	// makes OpenFile fail with ErrDirectUnsupported; OpenDirect chooses what
	// to do then.
	Direct
)

// FS is a file system: the operations cowdb needs and nothing more. Names
// are slash-separated paths, as the implementation's host understands them.
type FS interface {
	// OpenFile opens (or with Create creates) the named file.
	OpenFile(name string, flag OpenFlag) (File, error)
	// Remove removes the named file or empty directory. The removal is
	// durable only after SyncDir of its parent.
	Remove(name string) error
	// Rename renames oldname to newname, replacing newname atomically if it
	// exists. The rename is durable only after SyncDir of the parent(s).
	Rename(oldname, newname string) error
	// MkdirAll creates dir and any missing parents. New entries are durable
	// only after SyncDir of each parent.
	MkdirAll(dir string) error
	// ReadDir returns the names of the entries in dir, sorted.
	ReadDir(dir string) ([]string, error)
	// SyncDir makes the entries of dir (creations, removals, renames)
	// durable.
	SyncDir(dir string) error
	// Stat returns the size of the named file; the error wraps
	// ErrNotExist if there is none.
	Stat(name string) (FileInfo, error)
	// Lock takes an advisory lock on the named file, creating it if needed:
	// exclusive, or shared when shared is true. Exclusive excludes every
	// other lock, shared excludes exclusive ones, across processes for the
	// OS implementation. A lock that cannot be taken at once fails with
	// ErrLocked; Lock never waits. Closing the returned Closer releases it;
	// closing it again fails with ErrClosed.
	Lock(name string, shared bool) (io.Closer, error)
}

// File is an open file. Offsets are absolute; there is no file position.
type File interface {
	// ReadAt reads len(p) bytes at off, following io.ReaderAt: fewer bytes
	// only with an error, io.EOF past the end of the file.
	ReadAt(p []byte, off int64) (int, error)
	// WriteAt writes len(p) bytes at off, extending the file if needed. The
	// bytes are durable only after Datasync or Sync returns nil; a crash
	// before then may lose them, keep them, or keep some sectors of them.
	WriteAt(p []byte, off int64) (int, error)
	// Datasync makes every completed write durable, and the file size too
	// if it changed (fdatasync(2)). After a failed Datasync the state of
	// unsynced writes is unknown, and stays so: callers must treat the
	// failure as fatal for what they wrote (fsyncgate).
	Datasync() error
	// Sync is Datasync plus the file's other metadata (fsync(2)).
	Sync() error
	// Fallocate reserves space for [off, off+length), extending the file
	// size if needed, so later writes in the range cannot fail with
	// ErrNoSpace. The reserved range reads as zeros. Like a write, it is
	// durable only after Datasync or Sync.
	Fallocate(off, length int64) error
	// Truncate sets the file's size. Durable only after Datasync or Sync.
	Truncate(size int64) error
	// Stat returns the file's current size.
	Stat() (FileInfo, error)
	// Direct reports whether the file was opened for direct I/O, and so
	// whether the alignment contract of the Direct flag applies.
	Direct() bool
	// Close releases the file. Unsynced writes are not made durable by it.
	Close() error
}

// FileInfo describes a file.
type FileInfo struct {
	Name string // base name
	Size int64  // bytes
}

package vfs

import (
	"errors"
	"fmt"
)

// Errors returned by the implementations. Each is testable with errors.Is;
// an implementation returns it inside a *PathError that names the operation
// and the path, and the OS implementation wraps the underlying errno too.
var (
	// ErrNotExist: the named file or directory does not exist.
	ErrNotExist = errors.New("cowdb/vfs: file does not exist")
	// ErrExist: the name is taken where a new entry was required.
	ErrExist = errors.New("cowdb/vfs: file already exists")
	// ErrLocked: Lock found the lock held by someone else.
	ErrLocked = errors.New("cowdb/vfs: file is locked by another opener")
	// ErrUnaligned: a direct I/O call had an offset, length or buffer
	// address that is not a multiple of Alignment. Nothing was transferred.
	ErrUnaligned = errors.New("cowdb/vfs: unaligned direct I/O")
	// ErrDirectUnsupported: the file system refuses direct I/O.
	ErrDirectUnsupported = errors.New("cowdb/vfs: file system does not support direct I/O")
	// ErrIO: an input/output error (EIO), real or injected.
	ErrIO = errors.New("cowdb/vfs: input/output error")
	// ErrNoSpace: the device is full (ENOSPC or EDQUOT), real or injected.
	ErrNoSpace = errors.New("cowdb/vfs: no space left on device")
	// ErrClosed: the file was already closed, or (MemFS) it was opened
	// before a simulated crash.
	ErrClosed = errors.New("cowdb/vfs: file already closed")

	// ErrCrashed: a MemFS armed with CrashAfter has reached its crash point,
	// so the simulated machine is dead and every mutating operation fails
	// and does nothing until MemFS.Crash. It wraps ErrIO, because to the
	// code under test a dying machine looks like a device returning EIO.
	ErrCrashed = fmt.Errorf("cowdb/vfs: simulated machine has crashed: %w", ErrIO)
	// ErrInjected marks every error an ErrorFS injects, beside the error
	// the injector chose (ErrIO, ErrNoSpace, ...), so a test can tell an
	// injected failure from a real one.
	ErrInjected = errors.New("cowdb/vfs: injected fault")
)

// These errors are returned for misuse that a correct caller never commits;
// they are not exported because nobody should need to test for them.
var (
	errInvalid  = errors.New("cowdb/vfs: invalid argument")
	errNotDir   = errors.New("cowdb/vfs: not a directory")
	errIsDir    = errors.New("cowdb/vfs: is a directory")
	errNotEmpty = errors.New("cowdb/vfs: directory not empty")
	errReadOnly = errors.New("cowdb/vfs: file not opened for writing")
	errTooLarge = errors.New("cowdb/vfs: file too large")
)

// PathError records a failed operation: what it was, on which path, the
// vfs sentinel it amounts to (Err) and the underlying cause (Sys), such as
// a unix.Errno or ErrInjected. errors.Is matches either of them.
type PathError struct {
	Op   string // "open", "pread", "fdatasync", ...
	Path string
	Err  error // a vfs sentinel, or nil when none fits
	Sys  error // the underlying cause, or nil
}

// Error returns "op path: err: sys".
func (e *PathError) Error() string {
	s := e.Op + " " + e.Path
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.Sys != nil {
		s += ": " + e.Sys.Error()
	}
	return s
}

// Unwrap returns the sentinel and the cause, so errors.Is and errors.As see
// both.
func (e *PathError) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if e.Sys != nil {
		errs = append(errs, e.Sys)
	}
	return errs
}

// pathError builds a *PathError with a sentinel and no separate cause.
func pathError(op, path string, sentinel error) error {
	return &PathError{Op: op, Path: path, Err: sentinel}
}

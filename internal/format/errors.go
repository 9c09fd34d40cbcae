package format

import (
	"errors"
	"fmt"
)

// The sentinels below each name one kind of damage. Every one of them wraps
// ErrCorrupt, so errors.Is(err, ErrCorrupt) holds for all of them, and
// errors.Is(err, ErrBadChecksum) (say) tells the kinds apart. Decoders return
// them inside a *CorruptError that also names the place.
var (
	// ErrTruncated is returned when a buffer is shorter than the structure
	// it should hold (or than the length a header declares).
	ErrTruncated = newKind("cowdb/format: truncated")

	// ErrBadMagic is returned when a structure does not start with its magic
	// number: the block holds something else (zeros, data, a foreign file).
	ErrBadMagic = newKind("cowdb/format: bad magic number")

	// ErrBadVersion is returned when the magic is right but the structure's
	// format version is one this code does not read.
	ErrBadVersion = newKind("cowdb/format: unsupported format version")

	// ErrBadChecksum is returned when the stored xxhash64 does not match the
	// bytes it covers: a torn, lost or damaged write.
	ErrBadChecksum = newKind("cowdb/format: checksum mismatch")

	// ErrBadGeometry is returned when a superblock's block size or
	// allocation-group geometry is impossible (zero, not a power of two,
	// inconsistent, or overflowing).
	ErrBadGeometry = newKind("cowdb/format: bad geometry")

	// ErrMalformed is returned when a checksummed structure has a field out
	// of its allowed range: non-zero reserved bytes, a zero store ID, a root
	// outside the data file, set padding bits. The checksum matched, so the
	// writer itself was wrong (or newer and did not bump the version).
	ErrMalformed = newKind("cowdb/format: malformed field")

	// ErrMisplaced is returned when a valid structure sits where it does not
	// belong: a superblock whose epoch parity names the other slot, an AG
	// bitmap copy of another AG. This is how a misdirected write shows.
	ErrMisplaced = newKind("cowdb/format: misplaced copy")

	// ErrForeign is returned when a valid structure carries another store's
	// ID: it was left behind by, or copied from, a different store.
	ErrForeign = newKind("cowdb/format: belongs to another store")

	// ErrEpochAhead is returned for an AG bitmap copy whose epoch is above
	// the superblock's: it was written by a checkpoint whose superblock never
	// became durable. Such a copy is skipped, and this error is only seen
	// when no usable copy remains.
	ErrEpochAhead = newKind("cowdb/format: epoch above the checkpoint")

	// ErrConflict is returned when two valid copies claim the same epoch but
	// differ: there is no way to tell which one is right.
	ErrConflict = newKind("cowdb/format: copies conflict")
)

// kindError is the type of the damage sentinels: a fixed message that
// unwraps to ErrCorrupt. Pointers, so every sentinel has its own identity.
type kindError struct{ msg string }

func newKind(msg string) error { return &kindError{msg: msg} }

func (k *kindError) Error() string { return k.msg }

// Unwrap makes every damage kind an ErrCorrupt.
func (k *kindError) Unwrap() error { return ErrCorrupt }

// CorruptError reports damage found in a structure read from disk: where it
// was found, which kind of damage (one of the sentinels above, or another
// package's), and a detail such as the stored and computed checksums.
//
// errors.Is(err, Err) and errors.Is(err, ErrCorrupt) both hold for a
// CorruptError whose Err is one of this package's sentinels.
type CorruptError struct {
	// Where names the place for a human: "superblock copy 1",
	// "AG 3 bitmap copy 0", "wal segment 000012 offset 8192".
	Where string
	// Err is the kind of damage; it must wrap ErrCorrupt.
	Err error
	// Detail is optional extra context; it may be empty.
	Detail string
}

// Error formats the place, the kind and the detail on one line.
func (e *CorruptError) Error() string {
	s := e.Err.Error()
	if e.Where != "" {
		s = e.Where + ": " + s
	}
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

// Unwrap returns the kind of damage.
func (e *CorruptError) Unwrap() error { return e.Err }

// Corruptf returns a *CorruptError at where, of the given kind, with a
// detail formatted like fmt.Sprintf. kind must wrap ErrCorrupt (all of this
// package's sentinels do); other packages (wal, btree) use it so that their
// damage reports read the same way.
func Corruptf(where string, kind error, format string, args ...any) error {
	return &CorruptError{Where: where, Err: kind, Detail: fmt.Sprintf(format, args...)}
}

// Locate returns err with its place set to where. If err is (or wraps) a
// *CorruptError, the result is a copy of it with Where replaced, so a
// decoder that only knows "superblock" can be reported as "superblock copy
// 1" by the caller that knows which copy it read. Any other non-nil error is
// wrapped in a CorruptError at where (and so must already wrap ErrCorrupt to
// be one). Locate(nil, where) is nil.
func Locate(err error, where string) error {
	if err == nil {
		return nil
	}
	var ce *CorruptError
	if errors.As(err, &ce) {
		c := *ce
		c.Where = where
		return &c
	}
	return &CorruptError{Where: where, Err: err}
}

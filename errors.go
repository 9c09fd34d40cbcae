package cowdb

import (
	"errors"

	"github.com/cowdb/cowdb/internal/format"
)

// Sentinel errors of the public API. Every error cowdb returns for one of
// these conditions wraps the sentinel, so test with errors.Is; the message
// around it names the key, file, block or field concerned.
var (
	// ErrNotFound: the key (or snapshot's key) holds no value.
	ErrNotFound = errors.New("cowdb: key not found")
	// ErrClosed: the DB, or a Blob or Snapshot handle, was closed.
	ErrClosed = errors.New("cowdb: closed")
	// ErrLocked: the directory is open in another DB, in this process or
	// another (a writer excludes every other opener; ReadOnly openers share).
	ErrLocked = errors.New("cowdb: store is locked by another opener")
	// ErrReadOnly: a write through a ReadOnly DB, a View transaction, a
	// snapshot, or a handle opened for reading.
	ErrReadOnly = errors.New("cowdb: read-only")
	// ErrNoSpace: the data file reached Options.MaxSize (or the device is
	// full) after busy blocks were released and growth was tried. The
	// store stays consistent and usable.
	ErrNoSpace = errors.New("cowdb: no space")
	// ErrCorrupt: a checksum, magic number or structural check failed on
	// something read from disk. Every corruption error of every layer
	// wraps this one marker; damaged data is never returned as data.
	ErrCorrupt = format.ErrCorrupt
	// ErrInvalidKey: the key is empty.
	ErrInvalidKey = errors.New("cowdb: invalid key")
	// ErrKeyTooLarge: the key is longer than MaxKeySize.
	ErrKeyTooLarge = errors.New("cowdb: key too large")
	// ErrValueTooLarge: the value or blob would exceed the largest size a
	// value may have.
	ErrValueTooLarge = errors.New("cowdb: value too large")
	// ErrInvalidOffset: a negative offset or size.
	ErrInvalidOffset = errors.New("cowdb: invalid offset")
	// ErrSnapshotExists: a snapshot of that name already exists.
	ErrSnapshotExists = errors.New("cowdb: snapshot exists")
	// ErrInvalidSnapshotName: a snapshot name that is empty, longer than
	// 255 bytes, or holds a byte other than letters, digits and "-_.:@".
	ErrInvalidSnapshotName = errors.New("cowdb: invalid snapshot name")
	// ErrTooManySnapshots: snapshot.MaxSnapshots snapshots exist already.
	ErrTooManySnapshots = errors.New("cowdb: too many snapshots")
	// ErrSnapshotNotFound: no snapshot of that name.
	ErrSnapshotNotFound = errors.New("cowdb: snapshot not found")
	// ErrTxClosed: a Tx was used after its function returned.
	ErrTxClosed = errors.New("cowdb: transaction closed")
	// ErrStale: a Blob handle whose key was since deleted or replaced (by
	// Put, CreateBlob, Delete, Clone onto it, or Restore).
	ErrStale = errors.New("cowdb: stale blob handle")
)

// Limits of the public API (DESIGN §11).
const (
	// MaxKeySize is the longest key, in bytes. Keys are 1 to MaxKeySize
	// bytes for every call that takes one.
	MaxKeySize = 1024
)

package wal

import "errors"

// Errors returned by the log. Corruption found on disk is reported with
// errors wrapping format.ErrCorrupt (and a *format.CorruptError naming the
// segment file and offset), not with the sentinels below.
var (
	// ErrRecordTooLarge is returned by Commit and Append for a payload
	// longer than Options.MaxRecordSize. Nothing is logged.
	ErrRecordTooLarge = errors.New("cowdb/wal: record too large")

	// ErrLogFull is returned by Commit and Append when the record needs a
	// new segment, none is free for recycling and Options.MaxSegments are
	// in use. Nothing is logged; the caller should checkpoint, call
	// Recycle, and retry.
	ErrLogFull = errors.New("cowdb/wal: log full, checkpoint and recycle")

	// ErrFailed is wrapped by every error a Log returns after a write or
	// fdatasync failed (of the log, or of the data through
	// Options.BeforeFlush). The error also wraps that first failure.
	ErrFailed = errors.New("cowdb/wal: log failed earlier, unsynced state unknown")

	// ErrClosed is returned by calls on a closed Log.
	ErrClosed = errors.New("cowdb/wal: log closed")

	// ErrNotReplayed is returned by Commit, Append and Sync before Replay
	// has been called: the log does not yet know where it ends.
	ErrNotReplayed = errors.New("cowdb/wal: append before replay")

	// ErrReplayed is returned by Replay after the first append: the
	// in-memory tail can no longer be recomputed from disk.
	ErrReplayed = errors.New("cowdb/wal: replay after append")

	// ErrReadOnly is returned by Commit, Append and Recycle on a log
	// opened with Options.ReadOnly.
	ErrReadOnly = errors.New("cowdb/wal: log opened read-only")

	// ErrInvalidOptions is returned by Open for options out of range.
	ErrInvalidOptions = errors.New("cowdb/wal: invalid options")
)

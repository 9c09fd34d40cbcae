// Package wal is cowdb's write-ahead log: segment files preallocated and
// zero-filled once, then recycled; records (opaque payloads, one atomic
// batch each) framed with an LSN and an xxhash64 checksum; group commit, in
// which concurrent committers share one write and one fdatasync; and replay,
// which truncates a torn tail but refuses corruption in the middle of
// committed history. The frame and segment header formats are in
// internal/format (walframe.go) and docs/FORMAT.md.
//
// wal owns the files under its directory and nothing else. It never
// interprets a payload, never writes past a segment's preallocated size (so
// fdatasync never has to commit a size change), never writes a frame into a
// segment before that segment's header is durable, and never appends to a
// segment written by an earlier Log: the first append after Open starts a
// fresh (or recycled) segment, so whatever a crash left after the last valid
// record is never read as part of the log again.
//
// # Files
//
// Segment files are named wal/NNNNNN.log by a file number given when the
// file is created; the number never changes. A segment's identity in the
// log is the sequence number in its header, which grows for every segment
// started (created or recycled) and never repeats: by one, or by two when a
// recycled segment's current header sits in the slot (sequence number mod
// 2) the next number would overwrite. Replay orders segments by sequence
// number and follows the chain of LSNs: each segment header names the LSN
// of its first record, and records inside a segment have consecutive LSNs.
//
// # Torn tail or corruption
//
// Replay stops at the first record that fails validation (checksum,
// sequence number, LSN continuity). Every frame and segment header carries
// the durable LSN of its writer: the highest LSN whose fdatasync had
// returned when it was written. If any valid frame or header later in the
// log claims a durable LSN at or above the bad record's LSN, the bad record
// had been acknowledged, so this is corruption in the middle of committed
// history and Replay returns an error wrapping format.ErrCorrupt naming the
// segment file and byte offset. Otherwise the bad record and everything
// after it were never acknowledged: a torn tail, which is ignored. Damage
// to the very last acknowledged group, with nothing written after it, is
// indistinguishable from a torn tail and is truncated too.
//
// # Concurrency
//
// A Log is safe for concurrent use by multiple goroutines. Commit, Append
// and Sync may be called concurrently; there is no background goroutine:
// the first committer that finds no write in flight becomes the leader,
// writes every pending record in one I/O (more only when they overflow the
// write buffer or cross into a new segment), flushes once, and wakes the
// others. Replay must be called, once, before the first append.
//
// # Failure
//
// A failed write or fdatasync of the log (or of the data file, through
// Options.BeforeFlush) is fatal for the Log: after it, the state of the
// unsynced bytes is unknown (fsyncgate), so every later call returns an
// error wrapping ErrFailed and the first failure.
package wal

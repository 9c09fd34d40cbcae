// Package cowdb is an embedded key-value and blob store with cheap,
// persistent snapshots.
//
// A program opens a directory and stores values under byte-string keys.
// Small values live inline in a copy-on-write B+tree; large values are blobs,
// written and read at any offset like files and stored as extents in one
// preallocated data file. Aligned blob writes go with O_DIRECT into freshly
// allocated blocks and are remapped into the blob once the I/O completes,
// with the remap logged in a write-ahead log (the XFS design for
// copy-on-write direct I/O). Because nothing committed is ever overwritten,
// a named snapshot of the whole store costs O(1), restoring one costs O(1),
// and a blob can be cloned without copying its data.
//
// The architecture, the on-disk layout and the invariants are described in
// DESIGN.md (shared with the project) and docs/FORMAT.md. The packages below
// the root are layered: the root (the public API) uses snapshot, cowio, btree
// and wal; those use extents, cache, vfs and internal/format; imports never
// point upwards.
//
// The API of DESIGN.md §13 is the contract: Open, Close, Put, Get, Delete,
// Update and View, Scan and Prefix; CreateBlob and OpenBlob (Blob: ReadAt,
// WriteAt, Read, Write, Seek, ReadFrom, WriteTo, Size, Truncate, Sync,
// Close); Snapshot, Snapshots, OpenSnapshot, DeleteSnapshot, Restore,
// Clone, CloneFrom, Diff; Sync, Checkpoint, Stats, Check (CheckDir
// offline) and Scrub.
//
// # Where the design went further
//
//   - Data checksums live in the extent records that point at the data
//     (at most 64 blocks a record), not in a checksum tree keyed by
//     physical block: the pointer carries what its block must hash to, as
//     a branch carries its child's checksum, so lost and misdirected data
//     writes are caught; clones and snapshots share them for free; a read
//     gets them with the mapping.
//   - A blob index ('i' + inode → key) ties every blob to its key, so Diff
//     finds a blob whose blocks changed while its inode record did not, and
//     Check can prove no extent record is orphaned.
//   - Unaligned writes keep partial dirty pages (a byte mask) and never
//     read the block they patch; the bytes a page lacks are read at
//     writeback. Pages have a per-block LSN history so that readers of
//     older versions, and snapshots, see exactly their bytes.
//   - A checkpoint that finds no space to write dirty pages back relogs
//     them after its LSN instead, so it can still run and release the busy
//     blocks that give the space back.
package cowdb

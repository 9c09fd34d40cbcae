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
// Status: the key-value API works end to end: Open (create, lock, recover),
// Close, Put, Get, Delete, Update and View transactions, Scan and Prefix,
// Sync, Checkpoint and Stats, with values of any size up to MaxValueSize
// (small ones inline in the namespace tree, larger ones in extents written
// through cowio), group commit under SyncAlways, background checkpoints and
// log recycling. Blobs, snapshots, Clone, Diff and Check follow; the API
// described in DESIGN.md §13 is the contract.
package cowdb

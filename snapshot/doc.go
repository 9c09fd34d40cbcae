// Package snapshot holds the pure parts of cowdb's snapshots (DESIGN §9):
// what a snapshot name may be, how the catalog tree's keys and root records
// are encoded, and how the entry changes between two namespace trees
// become the per-key changes of a diff.
//
// What it owns:
//
//   - Names: ValidName and the limits NameMax and MaxSnapshots.
//   - Catalog keys: LiveKey, SnapshotKey, DropKey and ParseKey. A root given
//     up (a deleted snapshot, the live root replaced by Restore) moves to a
//     drop key while the background drop releases it.
//   - Root records, the catalog's values: AppendRecord and DecodeRecord,
//     for the live root, a snapshot, and a root being dropped, which
//     carries the drop's cursor (btree.Drop.MarshalBinary) so a crash
//     resumes the drop where it stopped.
//   - Diff translation: Translate turns btree.Diff's entry changes ('k'
//     inode records, 'x' extent records, 'i' blob index entries) into one
//     Change per user key, with the changed byte ranges of a blob modified
//     in place.
//
// What it must never do: I/O, or hold state. It reads no block, no file,
// no tree of its own: Translate reads through the change stream and the
// lookups its caller gives it, and everything else is encoding and
// validation of bytes. It starts no goroutines and keeps no global state,
// so all of it is safe for concurrent use.
//
// The rest is the root package's, which owns the store's live state: the
// catalog tree itself and the snapshot handles; taking a snapshot (sharing
// the live root) and the MaxSnapshots bound; DeleteSnapshot and Restore,
// which log the change and move the root given up to a drop key; the
// background drop, which steps a btree.Drop and rewrites its record's
// cursor; resuming drops at Open; Clone and CloneFrom; and Diff, which
// opens the two roots and feeds btree.Diff and their Get into Translate.
//
// Every decoder here returns errors wrapping format.ErrCorrupt for bad
// bytes and never panics; encoders panic (assertions) on values no decoder
// would accept, so they are never persisted.
package snapshot

// Package extents owns cowdb's physical space: the geometry of the data file
// (superblocks, allocation groups and their bitmap copies), the free-space
// allocator, the state of every block (free, staging, committed, busy), the
// reference counts of shared blocks, and the AG bitmap images a checkpoint
// persists (DESIGN §3, §4, §6, §8).
//
// extents is a pure core, like etcd-io/raft's: it does no I/O, starts no
// goroutines, reads no clock and is deterministic, so it can be checked
// exhaustively against a simple model. The store calls it and does every
// read, write, fallocate and flush itself; extents never calls out.
//
// # Block states
//
// Every block of the data file is in exactly one state:
//
//   - header: the two superblock copies (blocks 0 and 1) and the two bitmap
//     copies at the start of each allocation group. Never allocatable.
//   - free: allocatable now; held in the AG's free-extent indexes.
//   - staging: handed out by Alloc for an in-flight write; in memory only.
//     Commit makes it committed; ReleaseStaging (after a failed write) makes
//     it free again at once, since nothing ever referenced it.
//   - committed: reachable from the live roots, with a reference count of 1
//     (no record) or more (a refcount record, see below).
//   - busy: freed (its count dropped to 0) but not yet reusable.
//
// # Busy blocks, checkpoints and reader pins
//
// Each free is tagged with the LSN of the operation that freed the block. A
// checkpoint covering LSN L persists the committed set as of L: a block
// freed at or before L is not reachable from that checkpoint's roots, so it
// is free in its bitmap image. It still must not be handed out until that
// checkpoint is durable (CheckpointDurable), because until then recovery
// reads the previous checkpoint, whose nodes may still point at it; and not
// while a reader pinned at a version older than the free (Pin) can still
// see it. So a busy block freed at LSN f becomes free once a checkpoint
// sealed after the free (or that freed it with FreeTo) is durable, f <= that
// checkpoint's LSN, and f <= every pinned version. The first condition is
// kept apart from the LSN: a free made after a seal is held in that
// checkpoint's image, so that checkpoint never releases it, even if the
// caller tags it with an LSN the checkpoint covers. Conversely the previous
// checkpoint's image still shows the block allocated, which is what
// recovery needs.
//
// # Checkpoints
//
// Seal captures the committed state at LSN L for checkpoint E (copies of
// the bitmaps of the AGs changed since the previous checkpoint, and the
// refcount records). Work goes on after Seal: later commits and frees belong
// to the next checkpoint and do not change E's images. Blocks the checkpoint
// itself allocates for E's nodes are committed into E with CommitTo (and
// old blocks E no longer reaches freed with FreeTo). Images encodes E's
// dirty AG bitmaps, each addressed to its AG's older copy; the store writes
// them, makes the superblock durable, and calls CheckpointDurable, or
// AbortCheckpoint if the checkpoint failed.
//
// After a crash, a Loader rebuilds the Allocator from each AG's newest
// copy not above the superblock's epoch. An AG whose other copy is not a
// valid older one (torn, never written, or written by a checkpoint that
// never became durable) is dirty, so the next checkpoint, which reuses the
// abandoned one's epoch, overwrites it before it could be taken for the
// newest.
//
// # Reference counts
//
// Reference counts follow XFS's refcount btree: a range map holds records
// (start, length, count) for counts of 2 or more only; a committed block with
// no record has count 1. Inc and Dec split and merge records. Decrementing a
// count-1 block frees it (it becomes busy). A count that reaches
// Options.RefcountMax saturates: it never moves again, up or down, so the
// block is never freed (like XFS's MAXREFCOUNT); that leaks space only for
// blocks shared that many times, and never frees a block still in use.
//
// # Concurrency
//
// An Allocator is not safe for concurrent use: the store serializes every
// call under its own lock. Checkpoints, loaders and returned images are
// plain values owned by the caller.
package extents

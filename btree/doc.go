// Package btree is cowdb's copy-on-write B+tree: ordered maps from byte keys
// to byte values, one node per block, with cheap persistent sharing
// (snapshots) through shadowing and lazy reference counts (Rodeh, "B-trees,
// Shadowing, and Clones"; Linux dm-persistent-data).
//
// What it owns: the tree algorithm — versions built by path copying, node
// splitting and merging, shadowing and the reference counts it implies, the
// checkpoint writer that gives dirty nodes addresses, bounded and resumable
// Drop, and Diff. What it must never do: touch storage or space accounting
// itself. It reaches both only through the BlockStore interface its caller
// supplies (read, allocate, write, count, free a node block, and adjust the
// references a leaf value names), and never imports cowio, extents, wal or
// vfs. It starts no goroutines.
//
// # Versions
//
// A *Tree is one immutable version. Readers (Get, Range, Prefix, Diff) are
// lock-free and may run concurrently with everything, including the writer.
// A Batch collects many mutations on private copies of the nodes it touches
// and Commit returns the new version, sharing every untouched node with the
// old one. Nodes created since the last checkpoint are dirty: they live in
// memory only and have no block address until Checkpoint writes them,
// children before parents (a parent stores its child's checksum).
//
// # Reference counts
//
// The count of a node is the number of distinct referrers it has: branch
// nodes pointing at it, plus roots held by the caller (the live root, each
// snapshot's catalog entry). Transient versions that readers still hold are
// not counted; the caller pins their blocks by epoch. A leaf value holds one
// reference on everything it names (the data extents of an extent record),
// which the store adjusts through BlockStore.AdjustValue: Put transfers the
// caller's reference into the tree, and replacing or deleting a value drops
// the old value's.
//
// Sharing a root (Share) is one increment. A batch that must change a node
// shadows it: it copies the node, and if the original's count was above 1,
// every child (or every value's references) gains one reference for the
// copy; the original loses one. A count that reaches 0 by shadowing frees
// the original without descending, because its children now belong to the
// copy. Drop decrements a root and descends only into nodes whose count
// reaches 0.
//
// Dirty nodes can be shared too: a snapshot taken before a checkpoint holds
// the same in-memory root as the live tree. Rather than forcing addresses on
// nodes when they are shared (which would make Share cost a walk of all dirty
// nodes and tie it to the checkpoint's I/O), every dirty node carries its
// own in-memory count, kept by exactly the rules above. Checkpoint moves that
// count into the store when it allocates the node's block (AllocNode gives
// count 1; IncNode adds the rest). So counts mean the same thing whether a
// node is dirty or persisted, and shadowing never needs to ask which.
//
// A batch's count changes are collected in the batch and applied by Commit:
// first the net change of each node, in the order the nodes were first
// touched, then the value reference changes in the order they arose. So
// Abort leaves the store untouched (a batch only reads counts), and replay
// of the same batch repeats the same calls in the same order. A store error
// in the middle of Commit, Checkpoint or a Drop step leaves counts partly
// applied; the Forest then refuses every writer operation with ErrFailed,
// while the versions already published stay readable.
//
// # Concurrency
//
// Reads are safe for concurrent use. Everything that changes counts —
// Batch, Commit, Share, Checkpoint, Drop steps — must be serialized by the
// caller (one writer); at most one Batch is open per Forest at a time, and
// Checkpoint and Drop steps refuse to run while one is. The BlockStore's
// ReadNode must be safe for concurrent use; its other methods are called by
// the writer only.
//
// # Limits
//
// Keys are 1 to format.NodeKeyMax (1040) bytes; values at most
// format.NodeValueMax(block size) (988 bytes at 4096). The block size is a
// power of two from 4096 to 65536.
package btree

// Package cowio is cowdb's data path: the per-inode staging map (XFS's CoW
// fork), aligned copy-on-write writes with O_DIRECT into freshly allocated
// blocks followed by a logged remap, and read-modify-write of unaligned
// writes through the page cache (DESIGN §7).
//
// cowio never overwrites a committed block: every write goes to new blocks,
// which is what makes each write atomic and every snapshot free. It never
// trusts a mapping across a lock drop; a lookup and the allocation for the
// same range happen in one critical section under the inode's mapping lock.
//
// Status: not yet implemented; the store and blob issues build it.
package cowio

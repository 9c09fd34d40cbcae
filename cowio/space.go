package cowio

import (
	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
)

// Space is where a Writer gets the blocks it writes to. The store
// implements it over its extents.Allocator, serializing calls under its own
// lock; cowio calls it possibly from several goroutines at once, so an
// implementation must be safe for concurrent use. Writer.WriteNew calls it
// with no lock of its own held; Inode.WriteAt calls AllocStaging while
// holding the inode's mapping lock (the lookup and the allocation of a
// range are one critical section), so the Space's lock comes after every
// Inode lock: a Space must never call into an Inode, and the store must not
// call an Inode while holding the lock its Space takes.
//
// The blocks handed out are staging blocks (DESIGN §8): in memory only,
// referenced by nothing until the store commits them when it logs the remap
// record that maps them. cowio never commits them itself.
type Space interface {
	// AllocStaging allocates exactly n blocks (n >= 1) as staging blocks,
	// contiguous where possible and near goal (format.NoBlock: anywhere),
	// in as few extents as free space allows, returned in the order the
	// value's file blocks should use them. Their lengths sum to n. It is
	// all or nothing: when n blocks cannot be had it allocates none and
	// returns an error wrapping ErrNoSpace.
	AllocStaging(n uint64, goal format.Block) ([]extents.Extent, error)

	// ReleaseStaging returns staging blocks that were never referenced
	// (their write failed) to the free space at once.
	ReleaseStaging(exts []extents.Extent)
}

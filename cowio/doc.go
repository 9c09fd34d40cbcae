// Package cowio is cowdb's data path (DESIGN §7): it moves the bytes of
// values between memory and the data file, always writing into freshly
// allocated blocks, never over a committed one.
//
// # What it owns
//
// A Writer over the data file does two things:
//
//   - WriteNew writes a whole new value. It asks the store's Space for all
//     the value's blocks in one call (staging blocks, contiguous where
//     possible, near a goal), writes the value into them from aligned
//     buffers, the last partial block padded with zeros, in IOSize pieces
//     issued concurrently, and returns a Mapping: the extents in file-block
//     order with a checksum of every block as written. A whole new value
//     needs no read-modify-write. It neither syncs nor commits: the store
//     flushes the data file before the WAL record that maps the blocks
//     (data durable before the remap), and commits the blocks when it logs
//     that record. On any I/O error WriteNew releases every staging block
//     and returns the error; nothing else has changed.
//   - ReadAt reads any byte range of a value laid out by a Mapping, with
//     io.ReaderAt semantics. File blocks no entry covers are holes and read
//     as zeros. Blocks are read whole into aligned buffers and verified
//     against their checksums before any byte is returned: a damaged block
//     is a *format.CorruptError (format.ErrCorrupt), never data. Blocks
//     contiguous in the value and on disk are read in one I/O, across
//     entries (extent records name at most 64 blocks each).
//
// With a clean-block cache (Options.Cache), a read of up to
// Options.CacheReadMax bytes takes the blocks it can from the cache, keyed
// by physical block and checksum, reads the rest, and caches a verified
// copy of each; a larger read bypasses the cache so that scans do not evict
// the hot set. Writes of up to CacheReadMax bytes write their blocks
// through into the cache, for read-after-write. Blocks without a checksum
// are never cached. Keying by the checksum is what makes the cache safe
// without invalidation: a block freed and rewritten has a new checksum, and
// a read under the new one can only miss the old copy, go to the disk, and
// find any damage there. Writer.Stats counts hits, misses, bypasses and
// disk reads.
//
// An Inode is the aligned write path inside an existing value (a blob),
// XFS's direct-I/O copy-on-write:
//
//   - It holds the value's committed mapping (file block → physical extents,
//     with holes), as the store loaded it from its extent records; a staging
//     map (XFS's CoW fork) of the writes in flight and of the blocks the CoW
//     extent-size hint reserved; a sequence counter every committed change
//     bumps; and the mapping lock that guards them.
//   - WriteAt (offset and length multiples of the block size), under the
//     mapping lock and in one critical section, looks up the committed
//     mapping and the staging map for the range, takes the reserved blocks
//     there and allocates every other block the range needs in a single
//     AllocStaging call, near the nearest mapped neighbour, padded to the
//     aligned chunks of InodeOptions.CowExtSize blocks the range touches
//     (the padding stays reserved for later writes of those file blocks);
//     it records the write in the staging map and drops the lock. This is
//     the seed's lesson: dropping the lock between the lookup and the
//     allocation lets the index go stale. Then it writes the data with the
//     Writer's machinery (aligned buffers, concurrent IOSize pieces) and
//     returns a Remap: the new entries with their checksums and the extents
//     that lose a reference. On an I/O error it releases the write's staging
//     blocks and the value is unchanged.
//   - The store logs the Remap and applies it: Commit re-validates it
//     against the sequence counter (a mapping is never trusted across a lock
//     drop), calls the store's log function and applies the remap at the
//     LSN it returns, under a per-inode commit lock, so the Old extents the
//     log records are exactly those the apply removes; Abort gives a remap
//     up. Apply alone is what replay calls. Overlapping writes resolve per
//     block in commit (LSN) order, the later committed winning, so replaying
//     the same remaps in the same order gives the same mapping.
//   - ReadAt reads from the committed mapping as it is when the read starts,
//     so a reader of a range under an in-flight write sees the old blocks
//     until the remap is applied and the new ones after, per block.
//   - TruncateBlocks (CommitTruncate on the live path) drops the mapping
//     from a file block on and returns the extents that lose a reference;
//     growth allocates nothing (holes). ReleaseReserved returns the hint's
//     reserved blocks to the Space.
//
// A Table keeps one Inode per inode ID for the store (two Inodes for one
// value would each trust a mapping the other changes), loading each once,
// pinned while in use, and dropping the least recently used idle ones past
// its size, their reserved blocks released.
//
// The committed and reserved lists are kept in leaves of at most 128
// entries, so an overwrite of a blob fragmented into tens of thousands of
// extents rebuilds a few leaves, not the whole list.
//
// It also owns the encoding of the namespace tree's extent records
// (EncodeExtentRecord, DecodeExtentRecord; see record.go for the layout,
// which is part of the on-disk format). A record holds the data checksum
// of each block it names, as a B-tree branch holds its child's, and names
// at most ExtentRecordMaxBlocks (64) blocks so that it fits one leaf value;
// the store cuts longer extents into several records.
//
// Every I/O uses aligned buffers, which direct I/O requires and buffered
// I/O accepts, so a Writer works the same on a file opened with O_DIRECT
// and on one that fell back to buffered I/O (vfs.DirectIOAuto). Buffers
// come from a pool of size classes, so the steady state allocates none.
//
// # What it must never do
//
// cowio never overwrites a committed block: every write goes to new blocks,
// which is what makes each write atomic and every snapshot free. It never
// allocates space on its own (only through Space), never commits or frees
// blocks (it only releases staging blocks nothing references), never
// syncs, and never returns bytes that fail their checksum. It never needs
// the cache for correctness (a dropped or evicted block is read again) and
// never lets a cached block change: the cache shares it with every reader,
// so reads copy out of it and only fresh copies, hashed as they are, go in.
// A Mapping read from disk is untrusted: ReadAt checks every entry it
// touches and Mapping.Validate checks them all, and neither panics.
//
// # Concurrency
//
// A Writer and an Inode are safe for concurrent use by multiple goroutines.
// A Writer holds no lock of its own while calling the Space or the cache,
// and its counters are atomic. It bounds the
// data I/Os in flight over all its calls to Options.InFlight, and the
// pieces in progress (being copied, checksummed or transferred) to twice
// that, which bounds its buffer memory to 2 × InFlight × IOSize. An Inode
// holds its mapping lock only around lookups and updates, never around data
// I/O, and calls AllocStaging under it: the lock order is Inode commit lock
// → the store's log lock, and Table lock → Inode mapping lock → the Space's
// lock, so the store must not call an Inode or the Table while holding
// its log lock or its Space's lock, and its Space must not call either.
//
// # Still to come
//
// Unaligned writes bounced through the page cache, and their writeback into
// Inode.WriteAt, belong to the blob issue's later items.
package cowio

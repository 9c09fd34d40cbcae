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
//     is a *format.CorruptError (format.ErrCorrupt), never data.
//
// It also owns the encoding of the namespace tree's extent records
// (EncodeExtentRecord, DecodeExtentRecord; see record.go for the layout,
// which is part of the on-disk format).
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
// blocks, never syncs, and never returns bytes that fail their checksum. A
// Mapping read from disk is untrusted: ReadAt checks every entry it touches
// and Mapping.Validate checks them all, and neither panics.
//
// # Concurrency
//
// A Writer is safe for concurrent use by multiple goroutines. It holds no
// lock of its own while calling the Space. It bounds the data I/Os in
// flight over all its calls to Options.InFlight, and the pieces in progress
// (being copied, checksummed or transferred) to twice that, which bounds
// its buffer memory to 2 × InFlight × IOSize.
//
// # Still to come
//
// The blob issue extends this package with the per-inode staging map (XFS's
// CoW fork), where the lookup of the committed mapping and the allocation
// for a range happen in one critical section under the inode's mapping lock
// and a mapping is never trusted across a lock drop (re-validated with a
// per-inode sequence counter); with writes inside existing blobs and the
// remap; and with unaligned writes bounced through the page cache.
package cowio

package cowio

import (
	"fmt"
	"math/bits"

	"github.com/cowdb/cowdb/cache"
	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
)

// Limits and defaults of a Writer.
const (
	// BlockSizeMin and BlockSizeMax bound the block size a Writer accepts
	// (a power of two): at least vfs.Alignment, so every block is a valid
	// direct I/O unit, and at most the store's largest block size.
	BlockSizeMin = vfs.Alignment
	BlockSizeMax = 64 << 10

	// IOSizeDefault is the default largest single I/O, in bytes.
	IOSizeDefault = 1 << 20
	// IOSizeMax bounds Options.IOSize, and so the size of each pooled
	// buffer.
	IOSizeMax = 64 << 20

	// InFlightDefault is the default number of data I/Os a Writer keeps in
	// flight at once, over all its calls: enough to keep an NVMe queue busy
	// with 1 MiB requests without flooding a shared device.
	InFlightDefault = 4
	// InFlightMax bounds Options.InFlight.
	InFlightMax = 64

	// WriteMax is the largest value WriteNew accepts, in bytes (1 TiB). The
	// Mapping it returns holds 8 bytes of checksum per block, so this also
	// bounds that memory (2 GiB at 4 KiB blocks).
	WriteMax = 1 << 40

	// CacheReadMaxDefault is the default Options.CacheReadMax: 128 KiB, 32
	// blocks of 4 KiB. Reads up to that size are the random and metadata-
	// like reads a cache helps; larger ones are mostly sequential scans of
	// big values, which would only push the hot blocks out.
	CacheReadMaxDefault = 128 << 10
)

// Options configures a Writer. A nil *Options means all defaults; a zero
// field means its default.
type Options struct {
	// IOSize is the largest single read or write, in bytes: a multiple of
	// the block size from one block to IOSizeMax. Larger requests are split
	// into IOSize pieces issued concurrently. 0 means IOSizeDefault (or one
	// block, if the block size is larger).
	IOSize int
	// InFlight is how many data I/Os the Writer has in flight at once, over
	// all concurrent calls, from 1 to InFlightMax. As many more pieces may
	// be copying or checksumming meanwhile, so the buffer memory in use is
	// at most 2 × InFlight × IOSize. 0 means InFlightDefault.
	InFlight int
	// Cache is the clean-block cache data blocks are kept in, under
	// cache.Key{Kind: cache.KindData, Block: physical block, Sum: the
	// block's checksum}; it is usually shared with the store's B-tree
	// nodes under one budget. Only blocks with a checksum are cached, and
	// only as verified against it, so a block freed and rewritten with
	// other contents has a new key and its old copy is never returned.
	// nil means no caching.
	Cache *cache.Cache
	// CacheReadMax is the largest read, in bytes of the value (ReadAt's
	// range, cut at the value's size), that goes through Cache; a larger
	// read bypasses it entirely, straight to the disk, neither looking
	// blocks up nor adding them, so a big sequential read does not evict
	// the hot set. It is also the largest write (WriteNew, Inode.WriteAt)
	// whose blocks are written through into the cache, so that reading
	// back a small value or a small overwrite just written hits, while a
	// large ingest leaves the cache alone. It must not be negative; 0 means
	// CacheReadMaxDefault. Unused when Cache is nil.
	CacheReadMax int
}

// Writer is the aligned data path over one data file: WriteNew writes a
// whole new value into freshly allocated staging blocks, and ReadAt reads a
// value laid out by a Mapping. It does every data I/O from aligned buffers,
// so it works the same whether the file was opened for direct I/O or fell
// back to buffered I/O.
//
// A Writer does not own its file: the caller closes it after the last call
// has returned. Writer never syncs the file and never commits the blocks it
// writes; the store flushes the data before the WAL record that maps it and
// commits the blocks when it logs that record.
//
// With Options.Cache set, small reads go through the clean-block cache and
// small writes fill it (see Options.CacheReadMax); Stats counts what the
// read path did.
//
// Writer is safe for concurrent use by multiple goroutines. Concurrent
// WriteNew calls never touch the same blocks, since each writes only the
// blocks just allocated for it; and a ReadAt may run beside them, since the
// Mapping it reads names committed blocks, which no WriteNew ever writes.
type Writer struct {
	f         vfs.File
	space     Space
	blockSize int
	ioBlocks  uint64        // blocks per I/O: IOSize / blockSize
	work      chan struct{} // one token per piece in progress: 2 × InFlight
	ioTokens  chan struct{} // one token per system call under way: InFlight
	bufs      *bufPool
	cache     *cache.Cache // nil: no caching
	cacheMax  int64        // Options.CacheReadMax
	stats     readCounters
}

// NewWriter returns a Writer over the data file f, with blocks of
// blockSize bytes (a power of two from BlockSizeMin to BlockSizeMax),
// drawing blocks from space. The error wraps ErrInvalidOptions and names the
// field.
func NewWriter(f vfs.File, blockSize int, space Space, opts *Options) (*Writer, error) {
	if f == nil || space == nil {
		return nil, fmt.Errorf("%w: nil file or space", ErrInvalidOptions)
	}
	if blockSize < BlockSizeMin || blockSize > BlockSizeMax || bits.OnesCount(uint(blockSize)) != 1 {
		return nil, fmt.Errorf("%w: block size %d: must be a power of two from %d to %d",
			ErrInvalidOptions, blockSize, BlockSizeMin, BlockSizeMax)
	}
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.IOSize == 0 {
		o.IOSize = max(IOSizeDefault, blockSize)
	}
	if o.InFlight == 0 {
		o.InFlight = InFlightDefault
	}
	if o.IOSize < blockSize || o.IOSize > IOSizeMax || o.IOSize%blockSize != 0 {
		return nil, fmt.Errorf("%w: IOSize %d: must be a multiple of the block size %d up to %d",
			ErrInvalidOptions, o.IOSize, blockSize, IOSizeMax)
	}
	if o.InFlight < 1 || o.InFlight > InFlightMax {
		return nil, fmt.Errorf("%w: InFlight %d: must be from 1 to %d", ErrInvalidOptions, o.InFlight, InFlightMax)
	}
	if o.CacheReadMax < 0 {
		return nil, fmt.Errorf("%w: CacheReadMax %d: must not be negative", ErrInvalidOptions, o.CacheReadMax)
	}
	if o.CacheReadMax == 0 {
		o.CacheReadMax = CacheReadMaxDefault
	}
	return &Writer{
		f:         f,
		space:     space,
		blockSize: blockSize,
		ioBlocks:  uint64(o.IOSize / blockSize),
		work:      make(chan struct{}, 2*o.InFlight),
		ioTokens:  make(chan struct{}, o.InFlight),
		bufs:      newBufPool(blockSize, o.IOSize),
		cache:     o.Cache,
		cacheMax:  int64(o.CacheReadMax),
	}, nil
}

// BlockSize returns the Writer's block size in bytes.
func (w *Writer) BlockSize() int { return w.blockSize }

// piece is one I/O: n blocks of entry ent, starting off blocks into it.
type piece struct {
	ent int
	off uint64
	n   uint64
}

// WriteNew writes p as a whole new value. It allocates ceil(len(p) /
// blockSize) staging blocks from the Space in one call (near goal;
// format.NoBlock means anywhere) and writes p into them in IOSize pieces
// issued concurrently, from aligned buffers (p itself where it is aligned,
// pooled copies elsewhere), the last partial block padded with zeros. It
// returns the Mapping: the extents in file-block order starting at file
// block 0, each with the checksum of every block as written, padding
// included. An empty p allocates nothing and returns an empty Mapping.
//
// A write of at most Options.CacheReadMax bytes also offers a copy of
// each block to Options.Cache once it is on disk (write-through), so that
// reading the value back soon after hits.
//
// WriteNew neither syncs nor commits: the blocks stay staging until the
// store logs the remap and commits them (or releases them, if it gives up).
// On any error nothing is left behind: every staging block has been
// released and the error names the file block whose write failed. p is not
// retained, and must not be modified during the call.
func (w *Writer) WriteNew(p []byte, goal format.Block) (Mapping, error) {
	if int64(len(p)) > WriteMax {
		return Mapping{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(p), int64(WriteMax))
	}
	bs := uint64(w.blockSize)
	n := (uint64(len(p)) + bs - 1) / bs
	if n == 0 {
		return Mapping{}, nil
	}
	exts, err := w.space.AllocStaging(n, goal)
	if err != nil {
		return Mapping{}, fmt.Errorf("cowdb/cowio: allocating %d blocks: %w", n, err)
	}
	m := w.layout(exts, n)
	pieces := w.split(m)
	fill := w.fills(len(p))
	_, err = w.run(len(pieces), func(i int) error { return w.writePiece(p, m, pieces[i], fill) })
	if err != nil {
		w.space.ReleaseStaging(exts)
		return Mapping{}, err
	}
	return m, nil
}

// layout checks what AllocStaging returned (a wrong answer is a bug in the
// store, so it panics) and lays the extents out as the value's file blocks
// 0..n-1, with one checksum slot per block.
func (w *Writer) layout(exts []extents.Extent, n uint64) Mapping {
	sums := make([]uint64, n)
	entries := make([]Entry, len(exts))
	var fb uint64
	for i, e := range exts {
		if e.Len == 0 || e.Len > n-fb {
			panic(fmt.Sprintf("cowdb: assertion failed: AllocStaging(%d) returned %v", n, exts))
		}
		entries[i] = Entry{FileBlock: FileBlock(fb), Start: e.Start, Len: e.Len, Sums: sums[fb : fb+e.Len : fb+e.Len]}
		if err := checkEntry(entries[i], w.blockSize); err != nil {
			panic(fmt.Sprintf("cowdb: assertion failed: AllocStaging(%d) returned %v: %v", n, exts, err))
		}
		fb += e.Len
	}
	if fb != n {
		panic(fmt.Sprintf("cowdb: assertion failed: AllocStaging(%d) returned %d blocks: %v", n, fb, exts))
	}
	return Mapping{Entries: entries}
}

// split cuts every entry of m into I/Os of at most ioBlocks blocks.
func (w *Writer) split(m Mapping) []piece {
	var count uint64
	for _, e := range m.Entries {
		count += (e.Len + w.ioBlocks - 1) / w.ioBlocks
	}
	pieces := make([]piece, 0, count)
	for i, e := range m.Entries {
		for off := uint64(0); off < e.Len; off += w.ioBlocks {
			pieces = append(pieces, piece{ent: i, off: off, n: min(w.ioBlocks, e.Len-off)})
		}
	}
	return pieces
}

// fills reports whether a write of n bytes fills the cache.
func (w *Writer) fills(n int) bool {
	return w.cache != nil && int64(n) <= w.cacheMax
}

// writePiece writes the bytes of p that piece pc covers and checksums each
// block into the entry's Sums. When they are whole blocks that the file can
// take as they are (aligned, for direct I/O), it writes straight from p;
// otherwise it copies them into a pooled aligned buffer, zero-padding the
// last block. With fill, it copies each block for the cache before
// checksumming it, checksums the copy (so the cached bytes are exactly
// those the checksum names, whatever happens to p), and offers the copies
// to the cache once the write has succeeded.
func (w *Writer) writePiece(p []byte, m Mapping, pc piece, fill bool) error {
	e := m.Entries[pc.ent]
	bs := uint64(w.blockSize)
	fb := uint64(e.FileBlock) + pc.off
	phys := e.Start + format.Block(pc.off)
	lo := fb * bs
	hi := min(uint64(len(p)), lo+pc.n*bs)
	buf := p[lo:hi]
	if hi-lo != pc.n*bs || (w.f.Direct() && !vfs.IsAligned(buf)) {
		bp := w.bufs.get(int(pc.n * bs))
		defer w.bufs.put(bp)
		buf = (*bp)[:pc.n*bs]
		c := copy(buf, p[lo:hi])
		clear(buf[c:])
	}
	var copies [][]byte
	if fill {
		copies = make([][]byte, pc.n)
	}
	for k := range pc.n {
		blk := buf[k*bs : (k+1)*bs]
		if fill {
			copies[k] = w.blockCopy(blk)
			blk = copies[k]
		}
		e.Sums[pc.off+k] = format.Checksum(blk)
	}
	if _, err := w.io(func() (int, error) { return w.f.WriteAt(buf, int64(phys)*int64(bs)) }); err != nil {
		return fmt.Errorf("cowdb/cowio: writing file block %d at block %d (%d blocks): %w", fb, phys, pc.n, err)
	}
	for k, c := range copies {
		w.cacheSet(phys+format.Block(k), e.Sums[pc.off+uint64(k)], c)
	}
	w.stats.writtenThrough.Add(uint64(len(copies)))
	return nil
}

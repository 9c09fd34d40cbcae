package cowio

import (
	"errors"
	"fmt"
	"io"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
)

// ReadSizeMax is the largest value size ReadAt accepts (2^62 bytes), far
// above any value, and low enough that no block arithmetic overflows.
const ReadSizeMax = 1 << 62

// readPiece is one read I/O: n blocks at physical block phys holding file
// blocks from fb, with their checksums (nil: unverified), and the bytes of
// the caller's buffer they fill.
type readPiece struct {
	fb   FileBlock
	phys format.Block
	n    uint64
	sums []uint64
	dst  []byte // the part of p these blocks fill
	skip int    // bytes of the first block before dst begins
}

// ReadAt reads len(p) bytes at offset off of a value of size bytes laid out
// by m, following io.ReaderAt: it returns fewer than len(p) bytes only with
// an error, and io.EOF when the read reaches the end of the value. File
// blocks no entry of m covers are holes and read as zeros, and so do
// entries past the value's size.
//
// Blocks are read whole, into aligned buffers (or straight into p where p
// is aligned and a piece covers whole blocks), in IOSize pieces issued
// concurrently; blocks contiguous both in the value and on disk are read
// in one piece even when they belong to different entries. Each block of
// an entry that carries checksums is verified before any of its bytes are
// returned: a mismatch is a *format.CorruptError of kind
// format.ErrBadChecksum naming the file block and the physical block.
// ReadAt checks the entries it touches as Mapping.Validate does
// (ErrBadMapping). A negative off is ErrInvalidOffset, a size below 0 or
// above ReadSizeMax ErrInvalidSize. On an error, the count is that of the
// bytes before the first piece that failed, all of them correct.
//
// With Options.Cache set, a read of at most Options.CacheReadMax bytes
// (counted from off to the end of the read, cut at size) looks up each
// block that has a checksum in the cache under its physical block and
// checksum, copies the hits out, reads the misses from the disk (adjacent
// misses in one I/O), and offers a verified copy of each to the cache.
// Cached blocks were verified against the same checksum when they were
// added, so hits are not hashed again. A larger read bypasses the cache.
func (w *Writer) ReadAt(m Mapping, size int64, p []byte, off int64) (int, error) {
	switch {
	case off < 0:
		return 0, fmt.Errorf("%w: %d", ErrInvalidOffset, off)
	case size < 0 || size > ReadSizeMax:
		return 0, fmt.Errorf("%w: %d, limit %d", ErrInvalidSize, size, int64(ReadSizeMax))
	case off >= size:
		return 0, io.EOF
	}
	want := min(int64(len(p)), size-off)
	cached := w.cache != nil && want <= w.cacheMax
	if w.cache != nil && !cached {
		w.stats.bypassed.Add(1)
	}
	n, err := w.readRange(m, p[:want], off, cached)
	w.stats.reads.Add(1)
	w.stats.bytes.Add(uint64(n))
	if err == nil && want < int64(len(p)) {
		err = io.EOF
	}
	return n, err
}

// readRange fills p with the value's bytes [off, off+len(p)), which lie
// inside the value, through the cache if cached. It returns the count of
// correct bytes before the first failure, as ReadAt does.
func (w *Writer) readRange(m Mapping, p []byte, off int64, cached bool) (int, error) {
	pieces, err := w.plan(m, p, off, cached)
	if err != nil {
		return 0, err
	}
	if len(pieces) == 0 { // all holes or cache hits
		return len(p), nil
	}
	failed, err := w.run(len(pieces), func(i int) error { return w.read(pieces[i], cached) })
	if err != nil {
		pc := pieces[failed]
		return int(int64(pc.fb)*int64(w.blockSize) + int64(pc.skip) - off), err
	}
	return len(p), nil
}

// plan walks the blocks of p = the value's bytes [off, off+len(p)): it
// zero-fills the holes at once, copies out the blocks found in the cache
// (if cached), and returns the I/Os for the other mapped blocks, in
// file-block order. The walk touches only the entries in range, and checks
// each of them and their order, so a damaged mapping can neither panic nor
// loop.
func (w *Writer) plan(m Mapping, p []byte, off int64, cached bool) ([]readPiece, error) {
	bs := int64(w.blockSize)
	b := FileBlock(off / bs)
	end := FileBlock((off + int64(len(p)) + bs - 1) / bs)
	pl := planner{w: w, p: p, off: off}
	i := m.find(b)
	for b < end {
		if i >= len(m.Entries) || m.Entries[i].FileBlock > b {
			next := end
			if i < len(m.Entries) {
				next = min(next, m.Entries[i].FileBlock)
			}
			clear(w.span(p, off, b, next))
			b = next
			continue
		}
		e := m.Entries[i]
		if err := checkEntry(e, w.blockSize); err != nil {
			return nil, err
		}
		if e.FileEnd() <= b || (i > 0 && m.Entries[i-1].FileEnd() > e.FileBlock) {
			return nil, fmt.Errorf("entry %d at file block %d out of order: %w", i, e.FileBlock, ErrBadMapping)
		}
		stop := min(e.FileEnd(), end)
		if cached && e.Sums != nil {
			for ; b < stop; b++ {
				at := uint64(b - e.FileBlock)
				skip := max(off-int64(b)*bs, 0)
				if !w.cacheGet(e.Start+format.Block(at), e.Sums[at], w.span(p, off, b, b+1), int(skip)) {
					pl.add(e, i, b, b+1)
				}
			}
		} else {
			pl.add(e, i, b, stop)
			b = stop
		}
		i++
	}
	pl.flush()
	return pl.pieces, nil
}

// planner gathers the blocks a read must take from the disk into runs
// contiguous both in the value and on disk, all with checksums or all
// without, and cuts each run into IOSize pieces.
type planner struct {
	w      *Writer
	p      []byte
	off    int64
	pieces []readPiece
	// The run being gathered (n == 0: none). Its sums alias the checksums
	// of entry ent while it lies inside that entry, and are a copy of its
	// own (ent == -1) once it spans entries.
	fb   FileBlock
	phys format.Block
	n    uint64
	sums []uint64
	ent  int
}

// add appends file blocks [from, to) of entry e, the mapping's entry i, to
// the run, or flushes the run and starts another if they do not continue
// it.
func (pl *planner) add(e Entry, i int, from, to FileBlock) {
	at, n := uint64(from-e.FileBlock), uint64(to-from)
	phys := e.Start + format.Block(at)
	continues := pl.n > 0 && pl.fb+FileBlock(pl.n) == from && pl.phys+format.Block(pl.n) == phys &&
		(pl.sums == nil) == (e.Sums == nil)
	if !continues {
		pl.flush()
		pl.fb, pl.phys, pl.n, pl.ent = from, phys, n, i
		if e.Sums != nil {
			pl.sums = e.Sums[at : at+n]
		}
		return
	}
	switch {
	case e.Sums == nil:
	case pl.ent == i: // still inside entry i: widen the alias
		pl.sums = e.Sums[at-pl.n : at+n]
	case pl.ent >= 0: // leaving the entry: copy, never append into it
		pl.sums = append(append(make([]uint64, 0, 2*(pl.n+n)), pl.sums...), e.Sums[at:at+n]...)
		pl.ent = -1
	default:
		pl.sums = append(pl.sums, e.Sums[at:at+n]...)
	}
	pl.n += n
}

// flush cuts the run into pieces of at most IOSize and ends it.
func (pl *planner) flush() {
	w, bs := pl.w, int64(pl.w.blockSize)
	for k := uint64(0); k < pl.n; k += w.ioBlocks {
		n := min(w.ioBlocks, pl.n-k)
		fb := pl.fb + FileBlock(k)
		pc := readPiece{fb: fb, phys: pl.phys + format.Block(k), n: n, dst: w.span(pl.p, pl.off, fb, fb+FileBlock(n))}
		if pl.sums != nil {
			pc.sums = pl.sums[k : k+n]
		}
		if start := int64(fb) * bs; start < pl.off {
			pc.skip = int(pl.off - start)
		}
		pl.pieces = append(pl.pieces, pc)
	}
	pl.n, pl.sums = 0, nil
}

// span returns the part of p (the value's bytes from off) that file blocks
// [from, to) cover.
func (w *Writer) span(p []byte, off int64, from, to FileBlock) []byte {
	bs := int64(w.blockSize)
	lo := max(int64(from)*bs, off) - off
	hi := min(int64(to)*bs, off+int64(len(p))) - off
	return p[lo:hi]
}

// read reads one piece, verifies it and copies it out. It reads
// straight into the caller's buffer when the piece fills whole blocks of it
// and the buffer suits the file (aligned, for direct I/O). If cached, it
// copies each block for the cache first and verifies the copy, so that
// what it caches is exactly what passed the checksum, and offers it to the
// cache.
func (w *Writer) read(pc readPiece, cached bool) error {
	bs := w.blockSize
	size := int(pc.n) * bs
	buf := pc.dst
	bounce := pc.skip != 0 || len(pc.dst) != size || (w.f.Direct() && !vfs.IsAligned(pc.dst))
	if bounce {
		bp := w.bufs.get(size)
		defer w.bufs.put(bp)
		buf = (*bp)[:size]
	}
	k, err := w.io(func() (int, error) { return w.f.ReadAt(buf, int64(pc.phys)*int64(bs)) })
	if err != nil {
		if errors.Is(err, io.EOF) {
			bad := uint64(k / bs)
			return format.Corruptf(w.where(pc, bad), format.ErrTruncated, "mapped block past the end of the data file")
		}
		return fmt.Errorf("cowdb/cowio: reading file block %d at block %d (%d blocks): %w", pc.fb, pc.phys, pc.n, err)
	}
	w.stats.blocksRead.Add(pc.n)
	for j, want := range pc.sums {
		blk := buf[j*bs : (j+1)*bs]
		if cached {
			blk = w.blockCopy(blk)
		}
		if got := format.Checksum(blk); got != want {
			return format.Corruptf(w.where(pc, uint64(j)), format.ErrBadChecksum, "stored %#016x, computed %#016x", want, got)
		}
		if cached {
			w.cacheSet(pc.phys+format.Block(j), want, blk)
			w.stats.filled.Add(1)
		}
	}
	if bounce {
		copy(pc.dst, buf[pc.skip:])
	}
	return nil
}

// where names block j of piece pc for a corruption report.
func (w *Writer) where(pc readPiece, j uint64) string {
	return fmt.Sprintf("cowio: file block %d at data block %d", uint64(pc.fb)+j, uint64(pc.phys)+j)
}

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
// concurrently. Each block of an entry that carries checksums is verified
// before any of its bytes are returned: a mismatch is a *format.CorruptError
// of kind format.ErrBadChecksum naming the file block and the physical
// block. ReadAt checks the entries it touches as Mapping.Validate does
// (ErrBadMapping). A negative off is ErrInvalidOffset, a size below 0 or
// above ReadSizeMax ErrInvalidSize. On an error, the count is that of the
// bytes before the first piece that failed, all of them correct.
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
	pieces, err := w.plan(m, p[:want], off)
	if err != nil {
		return 0, err
	}
	failed, err := w.run(len(pieces), func(i int) error { return w.read(pieces[i]) })
	if err != nil {
		pc := pieces[failed]
		return int(int64(pc.fb)*int64(w.blockSize) + int64(pc.skip) - off), err
	}
	if want < int64(len(p)) {
		return int(want), io.EOF
	}
	return int(want), nil
}

// plan walks the blocks of p = the value's bytes [off, off+len(p)): it
// zero-fills the holes at once and returns the I/Os for the mapped blocks,
// in file-block order. The walk touches only the entries in range, and
// checks each of them and their order, so a damaged mapping can neither
// panic nor loop.
func (w *Writer) plan(m Mapping, p []byte, off int64) ([]readPiece, error) {
	bs := int64(w.blockSize)
	b := FileBlock(off / bs)
	end := FileBlock((off + int64(len(p)) + bs - 1) / bs)
	var pieces []readPiece
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
		for ; b < stop; b += FileBlock(min(w.ioBlocks, uint64(stop-b))) {
			n := min(w.ioBlocks, uint64(stop-b))
			at := uint64(b - e.FileBlock)
			pc := readPiece{fb: b, phys: e.Start + format.Block(at), n: n, dst: w.span(p, off, b, b+FileBlock(n))}
			if e.Sums != nil {
				pc.sums = e.Sums[at : at+n]
			}
			if start := int64(b) * bs; start < off {
				pc.skip = int(off - start)
			}
			pieces = append(pieces, pc)
		}
		i++
	}
	return pieces, nil
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
// and the buffer suits the file (aligned, for direct I/O).
func (w *Writer) read(pc readPiece) error {
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
	for j, want := range pc.sums {
		if got := format.Checksum(buf[j*bs : (j+1)*bs]); got != want {
			return format.Corruptf(w.where(pc, uint64(j)), format.ErrBadChecksum, "stored %#016x, computed %#016x", want, got)
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

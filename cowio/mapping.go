package cowio

import (
	"fmt"
	"math"
	"sort"

	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
)

// FileBlock is the index of a block inside one value: byte offset inside the
// value = FileBlock × block size. It is a position in a value, never a place
// in the data file (that is a format.Block).
type FileBlock uint64

// Entry maps Len consecutive blocks of a value, starting at file block
// FileBlock, to the physical blocks [Start, Start+Len) of the data file.
type Entry struct {
	FileBlock FileBlock
	Start     format.Block
	Len       uint64
	// Sums holds the data checksum (format.Checksum of the whole block as
	// written) of each of the Len blocks, in order; nil when the entry
	// carries none, in which case its blocks are read unverified.
	Sums []uint64
}

// FileEnd returns the first file block after e.
func (e Entry) FileEnd() FileBlock { return e.FileBlock + FileBlock(e.Len) }

// Extent returns e's physical extent.
func (e Entry) Extent() extents.Extent { return extents.Extent{Start: e.Start, Len: e.Len} }

// Mapping lays a value out on the data file: entries sorted by FileBlock,
// not overlapping. File blocks no entry covers are holes, which read as
// zeros. A Mapping is a plain value; cowio never modifies one it is given.
type Mapping struct {
	Entries []Entry
}

// Blocks returns the number of mapped (non-hole) blocks.
func (m Mapping) Blocks() uint64 {
	var n uint64
	for _, e := range m.Entries {
		n += e.Len
	}
	return n
}

// Extents returns the physical extents of m in file-block order: what the
// store commits when it logs the remap, or releases if it does not.
func (m Mapping) Extents() []extents.Extent {
	out := make([]extents.Extent, len(m.Entries))
	for i, e := range m.Entries {
		out[i] = e.Extent()
	}
	return out
}

// Validate checks the whole of m: entries sorted by FileBlock and not
// overlapping, each non-empty, starting past block 0, with no address
// overflowing 2^63 bytes at blockSize, and Sums nil or one per block. The
// error wraps ErrBadMapping (and so format.ErrCorrupt) and names the entry.
// ReadAt checks the entries a read touches the same way, so Validate is for
// a caller that wants the whole mapping checked once, after decoding it.
func (m Mapping) Validate(blockSize int) error {
	var prevEnd FileBlock
	for i, e := range m.Entries {
		if err := checkEntry(e, blockSize); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		if i > 0 && e.FileBlock < prevEnd {
			return fmt.Errorf("entry %d at file block %d overlaps or precedes the previous entry ending at %d: %w",
				i, e.FileBlock, prevEnd, ErrBadMapping)
		}
		prevEnd = e.FileEnd()
	}
	return nil
}

// checkEntry checks one entry on its own (everything but the order).
func checkEntry(e Entry, blockSize int) error {
	maxBlocks := uint64(math.MaxInt64 / int64(blockSize))
	switch {
	case e.Len == 0:
		return fmt.Errorf("empty extent at file block %d: %w", e.FileBlock, ErrBadMapping)
	case e.Start == format.NoBlock:
		return fmt.Errorf("file block %d mapped to block 0: %w", e.FileBlock, ErrBadMapping)
	case uint64(e.Start) > maxBlocks || e.Len > maxBlocks-uint64(e.Start):
		return fmt.Errorf("extent [%d,+%d) past the largest data file: %w", e.Start, e.Len, ErrBadMapping)
	case uint64(e.FileBlock) > maxBlocks || e.Len > maxBlocks-uint64(e.FileBlock):
		return fmt.Errorf("file blocks [%d,+%d) past the largest value: %w", e.FileBlock, e.Len, ErrBadMapping)
	case e.Sums != nil && uint64(len(e.Sums)) != e.Len:
		return fmt.Errorf("%d checksums for %d blocks at file block %d: %w", len(e.Sums), e.Len, e.FileBlock, ErrBadMapping)
	}
	return nil
}

// find returns the index of the first entry that ends after fb, or
// len(m.Entries) if none does. On a sorted mapping that is the entry holding
// fb, if any, or else the next one.
func (m Mapping) find(fb FileBlock) int {
	return sort.Search(len(m.Entries), func(i int) bool { return m.Entries[i].FileEnd() > fb })
}

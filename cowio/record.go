package cowio

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cowdb/cowdb/internal/format"
)

// ExtentRecord is the value of one extent record in the namespace tree
// ('x' + inode ID + file block → record; docs/FORMAT.md "Trees"): the file
// blocks from the key's file block on are the Len physical blocks from
// Start, and Sums holds the data checksum of each of them.
//
// The checksums live in the record, not in a tree of their own, for the
// reason a B-tree branch holds its child's checksum (ZFS's block pointers):
// the pointer to a block carries what the block must hash to, so a lost or
// misdirected data write is caught when the pointer is followed; a clone or
// a snapshot that shares the record shares its checksums with no work; and
// a read finds the checksums in the lookup that finds the mapping, with no
// second tree to look up or to keep in step with the first.
//
// A record names at most ExtentRecordMaxBlocks blocks, so that it fits one
// leaf value of the smallest node; a longer extent is stored as several
// records, which the store writes.
type ExtentRecord struct {
	Start format.Block
	Len   uint64
	Flags ExtentFlags
	// Sums holds exactly Len checksums: format.Checksum of each block, in
	// order, as written (what Entry.Sums holds).
	Sums []uint64
}

// ExtentFlags qualify an extent record. No flag is defined yet: every bit
// is reserved, must be written as zero, and is refused by the decoder, so
// that a record from a newer writer is never misread as plain data.
type ExtentFlags uint32

// extentFlagsKnown is the set of flag bits this code understands.
const extentFlagsKnown ExtentFlags = 0

// The layout of an extent record is part of the on-disk format (little
// endian), a fixed header followed by one checksum per block:
//
//	offset  size   field
//	     0     8   Start  first physical block; never 0 (a superblock)
//	     8     8   Len    number of blocks, 1 to ExtentRecordMaxBlocks;
//	                      Start+Len does not overflow
//	    16     4   Flags  ExtentFlags; unknown bits are corruption
//	    20  8×Len  Sums   format.Checksum of each block, in order
//
// The constants below are part of that format.
const (
	// ExtentRecordHeaderSize is the size of the fixed part of an encoded
	// extent record, before its checksums.
	ExtentRecordHeaderSize = 20
	// ExtentRecordMaxBlocks is the most blocks one record names. It is
	// chosen so that the longest record (ExtentRecordSizeMax, 532 bytes)
	// fits the longest value of a node of the smallest block size
	// (format.NodeValueMax(format.NodeBlockSizeMin) = 988 bytes), and that
	// a leaf still holds several records.
	ExtentRecordMaxBlocks = 64
	// ExtentRecordSizeMax is the size of the longest encoded record.
	ExtentRecordSizeMax = ExtentRecordHeaderSize + 8*ExtentRecordMaxBlocks
)

// valid reports why r cannot be encoded, or nil.
func (r ExtentRecord) valid() error {
	if err := r.validHeader(); err != nil {
		return err
	}
	if uint64(len(r.Sums)) != r.Len {
		return fmt.Errorf("%w: %d checksums for %d blocks at block %d", ErrBadExtentRecord, len(r.Sums), r.Len, r.Start)
	}
	return nil
}

// validHeader checks every field of r but Sums.
func (r ExtentRecord) validHeader() error {
	switch {
	case r.Start == format.NoBlock:
		return fmt.Errorf("%w: start block 0", ErrBadExtentRecord)
	case r.Len == 0:
		return fmt.Errorf("%w: zero length at block %d", ErrBadExtentRecord, r.Start)
	case r.Len > ExtentRecordMaxBlocks:
		return fmt.Errorf("%w: %d blocks at block %d, limit %d", ErrBadExtentRecord, r.Len, r.Start, ExtentRecordMaxBlocks)
	case uint64(r.Start)+r.Len < uint64(r.Start):
		return fmt.Errorf("%w: extent [%d,+%d) overflows", ErrBadExtentRecord, r.Start, r.Len)
	case r.Flags&^extentFlagsKnown != 0:
		return fmt.Errorf("%w: unknown flags %#x", ErrBadExtentRecord, uint32(r.Flags))
	}
	return nil
}

// EncodeExtentRecord appends the encoding of r (ExtentRecordHeaderSize +
// 8 × r.Len bytes) to dst and returns the extended slice. r must be valid
// (as DecodeExtentRecord would accept it: a non-zero start, a length from 1
// to ExtentRecordMaxBlocks that does not overflow, no unknown flag, and
// exactly Len checksums); encoding an invalid record is a bug, and panics
// rather than persisting it.
func EncodeExtentRecord(dst []byte, r ExtentRecord) []byte {
	if err := r.valid(); err != nil {
		panic("cowdb: assertion failed: encoding " + err.Error())
	}
	dst = slices.Grow(dst, ExtentRecordHeaderSize+8*len(r.Sums))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.Start))
	dst = binary.LittleEndian.AppendUint64(dst, r.Len)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(r.Flags))
	for _, s := range r.Sums {
		dst = binary.LittleEndian.AppendUint64(dst, s)
	}
	return dst
}

// DecodeExtentRecord decodes an extent record of exactly
// ExtentRecordHeaderSize + 8 × Len bytes. Anything else, or a record with a
// zero start, a length of 0 or above ExtentRecordMaxBlocks, an overflowing
// extent or unknown flags, is an error wrapping ErrBadExtentRecord (and so
// format.ErrCorrupt). It never panics.
//
// The record's Sums is a new slice: it does not alias b, so b may be
// reused. (Aliasing would need b's bytes reinterpreted as uint64s, which
// node values, at any offset of a block, are not aligned for.)
func DecodeExtentRecord(b []byte) (ExtentRecord, error) {
	if len(b) < ExtentRecordHeaderSize {
		return ExtentRecord{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header",
			ErrBadExtentRecord, len(b), ExtentRecordHeaderSize)
	}
	r := ExtentRecord{
		Start: format.Block(binary.LittleEndian.Uint64(b[0:])),
		Len:   binary.LittleEndian.Uint64(b[8:]),
		Flags: ExtentFlags(binary.LittleEndian.Uint32(b[16:])),
	}
	if err := r.validHeader(); err != nil {
		return ExtentRecord{}, err
	}
	// r.Len <= ExtentRecordMaxBlocks, so this cannot overflow.
	if want := ExtentRecordHeaderSize + 8*int(r.Len); len(b) != want {
		return ExtentRecord{}, fmt.Errorf("%w: %d bytes for %d blocks, want %d", ErrBadExtentRecord, len(b), r.Len, want)
	}
	r.Sums = make([]uint64, r.Len)
	for i := range r.Sums {
		r.Sums[i] = binary.LittleEndian.Uint64(b[ExtentRecordHeaderSize+8*i:])
	}
	return r, nil
}

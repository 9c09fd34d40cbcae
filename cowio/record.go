package cowio

import (
	"encoding/binary"
	"fmt"

	"github.com/cowdb/cowdb/internal/format"
)

// ExtentRecord is the value of one extent record in the namespace tree
// ('x' + inode ID + file block → record; docs/FORMAT.md "Trees"): the file
// blocks from the key's file block on are the Len physical blocks from
// Start. The data checksums of those blocks live in the checksum tree,
// keyed by physical block, not here.
type ExtentRecord struct {
	Start format.Block
	Len   uint64
	Flags ExtentFlags
}

// ExtentFlags qualify an extent record. No flag is defined yet: every bit
// is reserved, must be written as zero, and is refused by the decoder, so
// that a record from a newer writer is never misread as plain data.
type ExtentFlags uint32

// extentFlagsKnown is the set of flag bits this code understands.
const extentFlagsKnown ExtentFlags = 0

// ExtentRecordSize is the size of an encoded extent record in bytes.
//
// The layout is part of the on-disk format (little endian):
//
//	offset  size  field
//	     0     8  Start  first physical block; never 0 (a superblock)
//	     8     8  Len    number of blocks; >= 1; Start+Len does not overflow
//	    16     4  Flags  ExtentFlags; unknown bits are corruption
const ExtentRecordSize = 20

// valid reports why r cannot be encoded or decoded, or nil.
func (r ExtentRecord) valid() error {
	switch {
	case r.Start == format.NoBlock:
		return fmt.Errorf("%w: start block 0", ErrBadExtentRecord)
	case r.Len == 0:
		return fmt.Errorf("%w: zero length at block %d", ErrBadExtentRecord, r.Start)
	case uint64(r.Start)+r.Len < uint64(r.Start):
		return fmt.Errorf("%w: extent [%d,+%d) overflows", ErrBadExtentRecord, r.Start, r.Len)
	case r.Flags&^extentFlagsKnown != 0:
		return fmt.Errorf("%w: unknown flags %#x", ErrBadExtentRecord, uint32(r.Flags))
	}
	return nil
}

// EncodeExtentRecord appends the encoding of r to dst and returns the
// extended slice. r must be valid (as DecodeExtentRecord would accept it);
// encoding an invalid record is a bug, and panics rather than persisting it.
func EncodeExtentRecord(dst []byte, r ExtentRecord) []byte {
	if err := r.valid(); err != nil {
		panic("cowdb: assertion failed: encoding " + err.Error())
	}
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.Start))
	dst = binary.LittleEndian.AppendUint64(dst, r.Len)
	return binary.LittleEndian.AppendUint32(dst, uint32(r.Flags))
}

// DecodeExtentRecord decodes an extent record of exactly ExtentRecordSize
// bytes. Anything else, or a record with a zero start or length, an
// overflowing extent or unknown flags, is an error wrapping
// ErrBadExtentRecord (and so format.ErrCorrupt). It never panics.
func DecodeExtentRecord(b []byte) (ExtentRecord, error) {
	if len(b) != ExtentRecordSize {
		return ExtentRecord{}, fmt.Errorf("%w: %d bytes, want %d", ErrBadExtentRecord, len(b), ExtentRecordSize)
	}
	r := ExtentRecord{
		Start: format.Block(binary.LittleEndian.Uint64(b[0:])),
		Len:   binary.LittleEndian.Uint64(b[8:]),
		Flags: ExtentFlags(binary.LittleEndian.Uint32(b[16:])),
	}
	if err := r.valid(); err != nil {
		return ExtentRecord{}, err
	}
	return r, nil
}

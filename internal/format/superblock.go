package format

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// The superblock: the root of a store, kept in two copies at blocks 0 and 1
// of the data file (DESIGN §3). A checkpoint with epoch E writes copy E % 2,
// so the other copy still holds checkpoint E-1 if the write is torn. Open
// takes the valid copy with the highest epoch (PickSuperblock).
//
// One copy is SuperblockSize bytes at the start of its block, little-endian;
// the rest of the block is zero when written and ignored when read. Because
// SuperblockSize fits in one 512-byte sector, a torn block write either
// leaves the superblock whole or damages it detectably (the checksum).
//
//	offset size field
//	     0    8 magic            SuperblockMagic ("cowdb-SB")
//	     8    4 version          FormatVersion
//	    12    4 block size       bytes, a power of two in [512, 65536]
//	    16    4 blocks per AG
//	    20    4 AG count         AGs the data file holds now
//	    24    4 max AG count     AGs the data file may grow to
//	    28    4 reserved         zero
//	    32    8 AG start         block where AG 0 begins (2: after the two superblocks)
//	    40    8 store ID         random, non-zero
//	    48    8 epoch            checkpoint epoch
//	    56    8 checkpoint LSN   last WAL record the checkpoint covers
//	    64    8 WAL segment      segment sequence number where replay starts
//	    72    8 WAL offset       byte offset in that segment where replay starts
//	    80   16 catalog root     block(8) checksum(8)
//	    96   16 refcount root    block(8) checksum(8)
//	   112    8 bitmap digest    xxhash of every AG's current bitmap copy (0: none)
//	   120    8 reserved         zero
//	   128    8 next inode ID
//	   136    8 created          unix nanoseconds
//	   144   64 reserved         8 × uint64, zero
//	   208    8 checksum         xxhash64 of bytes [0, 208)
//	   216                       (SuperblockSize)
//
// The constants below are part of the on-disk format: changing one changes
// what existing stores mean.
const (
	// SuperblockMagic is the first 8 bytes of a superblock: "cowdb-SB".
	SuperblockMagic uint64 = 0x42532d6264776f63
	// FormatVersion is the store format version this code writes and reads;
	// it is recorded in the superblock.
	FormatVersion uint32 = 1
	// SuperblockSize is the number of bytes of a superblock copy that are
	// used (and checksummed); the rest of its block is zero.
	SuperblockSize = 216
	// SuperblockCopies is the number of superblock copies, at blocks 0 and 1.
	SuperblockCopies = 2

	// BlockSizeMin and BlockSizeMax bound the block size; it is a power of
	// two between them.
	BlockSizeMin = 512
	BlockSizeMax = 65536

	superblockReservedWords = 8
	sbOffReserved           = 144
	sbOffChecksum           = sbOffReserved + 8*superblockReservedWords
)

// Superblock is the decoded root of a store. It is a plain comparable value:
// two superblocks are equal exactly when they encode to the same bytes.
type Superblock struct {
	// Magic, Version and Checksum are set by Encode and checked by Validate;
	// callers building a superblock leave them zero.
	Magic    uint64
	Version  uint32
	Checksum uint64

	BlockSize   uint32 // bytes per block
	BlocksPerAG uint32 // blocks in each allocation group
	AGCount     uint32 // allocation groups the data file holds now
	MaxAGCount  uint32 // allocation groups the data file may grow to
	AGStart     Block  // first block of AG 0; the superblocks sit before it

	StoreID uint64 // random, non-zero; marks this store's WAL and bitmaps
	Epoch   Epoch  // the checkpoint this superblock records

	// CheckpointLSN is the last WAL record whose effects the checkpoint
	// holds; replay applies the records after it. WALSegment and WALOffset
	// locate the first byte after that record: the segment's sequence
	// number and the byte offset inside it where replay starts reading.
	CheckpointLSN LSN
	WALSegment    uint64
	WALOffset     uint64

	CatalogRoot  Ref // catalog tree: root name -> root record
	RefcountRoot Ref // refcount tree: physical start -> (length, count)
	// BitmapDigest is the xxhash of (AG, epoch, checksum) of every AG's
	// current bitmap copy, in AG order: nothing else points at a bitmap
	// copy by checksum, so without it a lost, misdirected or damaged
	// bitmap write would let an older copy pass for the current one. 0:
	// not recorded (a store written before it existed). Bytes 120-127
	// are reserved, zero (they were the checksum tree's root, never
	// written: data checksums live in the extent records).
	BitmapDigest uint64

	NextInode       InodeID // the next inode ID to hand out; never 0
	CreatedUnixNano int64   // when the store was created
}

// SuperblockCopyIndex returns which copy (and so which block, 0 or 1) the
// superblock of epoch e is written to. PickSuperblock rejects a copy found in
// the other slot.
func SuperblockCopyIndex(e Epoch) int { return int(e % SuperblockCopies) }

// Encode stamps s with SuperblockMagic, FormatVersion and its checksum, and
// returns one block of blockSize bytes holding it, zero past SuperblockSize.
// Callers pass s.BlockSize, which keeps the buffer's length a multiple of
// the alignment O_DIRECT needs. Encode does not check the fields: call
// Validate after it to check a superblock before writing it. It panics if
// blockSize < SuperblockSize.
func (s *Superblock) Encode(blockSize int) []byte {
	if blockSize < SuperblockSize {
		panic(fmt.Sprintf("cowdb: assertion failed: superblock block size %d < %d", blockSize, SuperblockSize))
	}
	s.Magic = SuperblockMagic
	s.Version = FormatVersion
	buf := make([]byte, blockSize)
	s.putFields(buf)
	s.Checksum = Checksum(buf[:sbOffChecksum])
	binary.LittleEndian.PutUint64(buf[sbOffChecksum:], s.Checksum)
	return buf
}

// putFields writes every field but the checksum into b[:sbOffChecksum]; the
// reserved words are left as they are (zero in a fresh buffer).
func (s *Superblock) putFields(b []byte) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], s.Magic)
	le.PutUint32(b[8:], s.Version)
	le.PutUint32(b[12:], s.BlockSize)
	le.PutUint32(b[16:], s.BlocksPerAG)
	le.PutUint32(b[20:], s.AGCount)
	le.PutUint32(b[24:], s.MaxAGCount)
	le.PutUint32(b[28:], 0)
	le.PutUint64(b[32:], uint64(s.AGStart))
	le.PutUint64(b[40:], s.StoreID)
	le.PutUint64(b[48:], uint64(s.Epoch))
	le.PutUint64(b[56:], uint64(s.CheckpointLSN))
	le.PutUint64(b[64:], s.WALSegment)
	le.PutUint64(b[72:], s.WALOffset)
	putRef(b[80:], s.CatalogRoot)
	putRef(b[96:], s.RefcountRoot)
	le.PutUint64(b[112:], s.BitmapDigest)
	le.PutUint64(b[128:], uint64(s.NextInode))
	le.PutUint64(b[136:], uint64(s.CreatedUnixNano))
}

func putRef(b []byte, r Ref) {
	binary.LittleEndian.PutUint64(b[0:], uint64(r.Block))
	binary.LittleEndian.PutUint64(b[8:], r.Sum)
}

func getRef(b []byte) Ref {
	return Ref{Block: Block(binary.LittleEndian.Uint64(b[0:])), Sum: binary.LittleEndian.Uint64(b[8:])}
}

// DecodeSuperblock decodes and validates the superblock at the start of b
// (a whole block, or at least SuperblockSize bytes). Bytes past
// SuperblockSize are ignored. Every failure is a *CorruptError at
// "superblock" wrapping one of ErrTruncated, ErrBadMagic, ErrBadVersion,
// ErrBadChecksum, ErrMalformed or ErrBadGeometry, and so ErrCorrupt.
func DecodeSuperblock(b []byte) (Superblock, error) {
	const where = "superblock"
	if len(b) < SuperblockSize {
		return Superblock{}, Corruptf(where, ErrTruncated, "%d bytes, need %d", len(b), SuperblockSize)
	}
	le := binary.LittleEndian
	s := Superblock{
		Magic:           le.Uint64(b[0:]),
		Version:         le.Uint32(b[8:]),
		BlockSize:       le.Uint32(b[12:]),
		BlocksPerAG:     le.Uint32(b[16:]),
		AGCount:         le.Uint32(b[20:]),
		MaxAGCount:      le.Uint32(b[24:]),
		AGStart:         Block(le.Uint64(b[32:])),
		StoreID:         le.Uint64(b[40:]),
		Epoch:           Epoch(le.Uint64(b[48:])),
		CheckpointLSN:   LSN(le.Uint64(b[56:])),
		WALSegment:      le.Uint64(b[64:]),
		WALOffset:       le.Uint64(b[72:]),
		CatalogRoot:     getRef(b[80:]),
		RefcountRoot:    getRef(b[96:]),
		BitmapDigest:    le.Uint64(b[112:]),
		NextInode:       InodeID(le.Uint64(b[128:])),
		CreatedUnixNano: int64(le.Uint64(b[136:])),
		Checksum:        le.Uint64(b[sbOffChecksum:]),
	}
	// Magic and version come first: a block of another kind or version
	// should say so, not "bad checksum".
	if err := s.checkHeader(); err != nil {
		return Superblock{}, err
	}
	if sum := Checksum(b[:sbOffChecksum]); sum != s.Checksum {
		return Superblock{}, Corruptf(where, ErrBadChecksum, "stored %#016x, computed %#016x", s.Checksum, sum)
	}
	// The reserved bytes are checksummed, so non-zero ones were written on
	// purpose by a writer this version does not understand.
	if le.Uint32(b[28:]) != 0 || le.Uint64(b[120:]) != 0 || !allZero(b[sbOffReserved:sbOffChecksum]) {
		return Superblock{}, Corruptf(where, ErrMalformed, "reserved bytes not zero")
	}
	if err := s.checkFields(); err != nil {
		return Superblock{}, err
	}
	return s, nil
}

// Validate checks s: magic, version, that Checksum matches the fields, and
// that the fields are sane (block size a power of two in [BlockSizeMin,
// BlockSizeMax], geometry non-zero, consistent and addressable, store ID and
// next inode non-zero, roots inside the data file). Errors are as for
// DecodeSuperblock. A superblock is valid only after Encode has stamped it.
func (s *Superblock) Validate() error {
	if err := s.checkHeader(); err != nil {
		return err
	}
	var b [SuperblockSize]byte
	s.putFields(b[:])
	if sum := Checksum(b[:sbOffChecksum]); sum != s.Checksum {
		return Corruptf("superblock", ErrBadChecksum, "stored %#016x, computed %#016x", s.Checksum, sum)
	}
	return s.checkFields()
}

func (s *Superblock) checkHeader() error {
	if s.Magic != SuperblockMagic {
		return Corruptf("superblock", ErrBadMagic, "%#016x", s.Magic)
	}
	if s.Version != FormatVersion {
		return Corruptf("superblock", ErrBadVersion, "version %d, this code reads %d", s.Version, FormatVersion)
	}
	return nil
}

// checkFields checks the sanity of every field the checksum cannot vouch for.
func (s *Superblock) checkFields() error {
	if err := s.checkGeometry(); err != nil {
		return Corruptf("superblock", ErrBadGeometry, "%v", err)
	}
	if s.StoreID == 0 {
		return Corruptf("superblock", ErrMalformed, "zero store ID")
	}
	if s.NextInode == 0 {
		return Corruptf("superblock", ErrMalformed, "zero next inode ID")
	}
	end := s.AGStart + Block(s.AGCount)*Block(s.BlocksPerAG)
	for _, r := range []struct {
		name string
		ref  Ref
	}{{"catalog", s.CatalogRoot}, {"refcount", s.RefcountRoot}} {
		if !r.ref.IsZero() && (r.ref.Block < s.AGStart || r.ref.Block >= end) {
			return Corruptf("superblock", ErrMalformed, "%s root block %d outside [%d, %d)", r.name, r.ref.Block, s.AGStart, end)
		}
	}
	return nil
}

// checkGeometry reports, as a plain error, what is wrong with the block size
// and AG geometry, or nil.
func (s *Superblock) checkGeometry() error {
	bs := s.BlockSize
	if bs < BlockSizeMin || bs > BlockSizeMax || bs&(bs-1) != 0 {
		return fmt.Errorf("block size %d is not a power of two in [%d, %d]", bs, BlockSizeMin, BlockSizeMax)
	}
	if s.AGCount == 0 || s.MaxAGCount < s.AGCount {
		return fmt.Errorf("AG count %d, max %d", s.AGCount, s.MaxAGCount)
	}
	if s.AGStart < SuperblockCopies || s.AGStart > Block(s.BlocksPerAG) {
		return fmt.Errorf("AG start %d outside [%d, blocks per AG %d]", s.AGStart, SuperblockCopies, s.BlocksPerAG)
	}
	// Each AG starts with two bitmap copies and needs room for at least one
	// block besides them.
	if bm := AGBitmapBlocks(s.BlocksPerAG, int(bs)); uint64(s.BlocksPerAG) <= 2*uint64(bm) {
		return fmt.Errorf("%d blocks per AG cannot hold two %d-block bitmap copies", s.BlocksPerAG, bm)
	}
	// The largest file must be addressable in int64 bytes.
	hi, blocks := bits.Mul64(uint64(s.MaxAGCount), uint64(s.BlocksPerAG))
	blocks, carry := bits.Add64(blocks, uint64(s.AGStart), 0)
	hi2, size := bits.Mul64(blocks, uint64(bs))
	if hi != 0 || carry != 0 || hi2 != 0 || size > math.MaxInt64 {
		return fmt.Errorf("%d AGs of %d blocks of %d bytes overflow a file offset", s.MaxAGCount, s.BlocksPerAG, bs)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// PickSuperblock decodes both superblock copies (copies[i] read from block
// i) and returns the valid one with the highest epoch and its index.
//
// A copy is valid when it decodes and sits in its own slot: its epoch % 2
// equals its index (SuperblockCopyIndex); a valid copy in the wrong slot is
// a misdirected write and counts as damage (ErrMisplaced). Because of that
// rule two valid copies never have equal epochs. Two valid copies of
// different stores or block sizes are refused with ErrForeign or
// ErrConflict rather than guessed between: the older one is not a previous
// checkpoint of the same store. If no copy is valid the error names both
// failures and wraps both (so errors.Is finds either kind, and ErrCorrupt).
// On error the returned index is -1.
func PickSuperblock(copies [2][]byte) (Superblock, int, error) {
	var sbs [SuperblockCopies]Superblock
	var errs [SuperblockCopies]error
	for i := range copies {
		where := fmt.Sprintf("superblock copy %d", i)
		sb, err := DecodeSuperblock(copies[i])
		if err == nil && SuperblockCopyIndex(sb.Epoch) != i {
			err = Corruptf(where, ErrMisplaced, "epoch %d belongs in copy %d", sb.Epoch, SuperblockCopyIndex(sb.Epoch))
		}
		sbs[i], errs[i] = sb, Locate(err, where)
	}
	switch {
	case errs[0] != nil && errs[1] != nil:
		return Superblock{}, -1, fmt.Errorf("cowdb/format: no valid superblock: %w; %w", errs[0], errs[1])
	case errs[1] != nil:
		return sbs[0], 0, nil
	case errs[0] != nil:
		return sbs[1], 1, nil
	}
	if sbs[0].StoreID != sbs[1].StoreID {
		return Superblock{}, -1, Corruptf("superblock", ErrForeign, "copies name stores %#x and %#x", sbs[0].StoreID, sbs[1].StoreID)
	}
	if sbs[0].BlockSize != sbs[1].BlockSize {
		return Superblock{}, -1, Corruptf("superblock", ErrConflict, "copies have block sizes %d and %d", sbs[0].BlockSize, sbs[1].BlockSize)
	}
	if sbs[1].Epoch > sbs[0].Epoch {
		return sbs[1], 1, nil
	}
	return sbs[0], 0, nil
}

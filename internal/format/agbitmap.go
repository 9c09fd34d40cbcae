package format

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// An AG bitmap copy: one of the two copies of an allocation group's
// free-space bitmap (DESIGN §3). A checkpoint writes a dirty AG's bitmap
// into its older copy, stamped with the checkpoint's epoch; open uses the
// valid copy with the highest epoch not above the superblock's
// (PickAGBitmap). Where the copies sit inside an AG is the extents
// package's business; this file only encodes one copy.
//
// A copy is a 48-byte little-endian header followed by the bits, zero
// padded to whole blocks (AGBitmapBlocks):
//
//	offset size field
//	     0    8 magic       AGBitmapMagic ("cowdb-AG")
//	     8    4 version     AGBitmapVersion
//	    12    4 AG index
//	    16    8 store ID    the superblock's
//	    24    8 epoch       the checkpoint that wrote this copy
//	    32    4 nbits       blocks in the AG, >= 1
//	    36    4 reserved    zero
//	    40    8 checksum    xxhash64 of bytes [0, 40) then the nbytes bits bytes
//	    48  nbytes bits     nbytes = ceil(nbits / 8)
//	48+nbytes   zero padding to the end of the last block (not checksummed)
//
// Bit i describes block i of the AG (counted from the AG's first block):
// byte i/8, bit i%8 counted from the least significant bit (LSB-first), set
// meaning allocated. The padding bits of the last byte (i >= nbits) are zero.
//
// The constants below are part of the on-disk format: changing one changes
// what existing stores mean.
const (
	// AGBitmapMagic is the first 8 bytes of an AG bitmap copy: "cowdb-AG".
	AGBitmapMagic uint64 = 0x47412d6264776f63
	// AGBitmapVersion is the AG bitmap copy format this code writes and reads.
	AGBitmapVersion uint32 = 1
	// AGBitmapHeaderSize is the size of the header before the bits.
	AGBitmapHeaderSize = 48

	agbOffChecksum = 40
)

// AGBitmap is one decoded copy of an AG's free-space bitmap. It is a plain
// value; Bits is owned by the AGBitmap (DecodeAGBitmap copies it out of the
// buffer it reads).
type AGBitmap struct {
	StoreID uint64 // the store this bitmap belongs to; non-zero
	AG      uint32 // index of the allocation group
	Epoch   Epoch  // the checkpoint that wrote this copy
	NBits   uint32 // blocks in the AG; >= 1
	Bits    []byte // AGBitmapBytes(NBits) bytes, bit i LSB-first in byte i/8
}

// NewAGBitmap returns an AG bitmap with nbits blocks, all free.
func NewAGBitmap(storeID uint64, ag uint32, epoch Epoch, nbits uint32) AGBitmap {
	return AGBitmap{StoreID: storeID, AG: ag, Epoch: epoch, NBits: nbits, Bits: make([]byte, AGBitmapBytes(nbits))}
}

// AGBitmapBytes returns how many bytes hold nbits bits: ceil(nbits / 8).
func AGBitmapBytes(nbits uint32) int { return int((uint64(nbits) + 7) / 8) }

// AGBitmapBlocks returns how many blocks of blockSize bytes one copy of a
// bitmap of nbits bits occupies, header included. It panics if blockSize is
// not positive.
func AGBitmapBlocks(nbits uint32, blockSize int) int {
	if blockSize <= 0 {
		panic(fmt.Sprintf("cowdb: assertion failed: AG bitmap block size %d", blockSize))
	}
	n := AGBitmapHeaderSize + AGBitmapBytes(nbits)
	return (n + blockSize - 1) / blockSize
}

// Allocated reports whether block i of the AG is allocated. It panics if
// i >= b.NBits.
func (b *AGBitmap) Allocated(i uint32) bool {
	b.checkIndex(i)
	return b.Bits[i/8]&(1<<(i%8)) != 0
}

// SetAllocated marks block i of the AG allocated or free. It panics if
// i >= b.NBits.
func (b *AGBitmap) SetAllocated(i uint32, allocated bool) {
	b.checkIndex(i)
	if allocated {
		b.Bits[i/8] |= 1 << (i % 8)
	} else {
		b.Bits[i/8] &^= 1 << (i % 8)
	}
}

func (b *AGBitmap) checkIndex(i uint32) {
	if i >= b.NBits || int(i/8) >= len(b.Bits) {
		panic(fmt.Sprintf("cowdb: assertion failed: AG bitmap bit %d of %d", i, b.NBits))
	}
}

// Validate checks the structure of b: NBits >= 1, len(Bits) ==
// AGBitmapBytes(NBits), the padding bits of the last byte zero, and a
// non-zero store ID. (Magic, version and checksum live only in the encoding
// and are checked by DecodeAGBitmap.) Errors are *CorruptError at
// "AG bitmap" wrapping ErrMalformed.
func (b *AGBitmap) Validate() error {
	const where = "AG bitmap"
	switch {
	case b.NBits == 0:
		return Corruptf(where, ErrMalformed, "zero bits")
	case len(b.Bits) != AGBitmapBytes(b.NBits):
		return Corruptf(where, ErrMalformed, "%d bytes of bits for %d bits", len(b.Bits), b.NBits)
	case b.NBits%8 != 0 && b.Bits[len(b.Bits)-1]>>(b.NBits%8) != 0:
		return Corruptf(where, ErrMalformed, "padding bits past bit %d set", b.NBits)
	case b.StoreID == 0:
		return Corruptf(where, ErrMalformed, "zero store ID")
	}
	return nil
}

// Encode returns one copy of b: AGBitmapBlocks(b.NBits, blockSize) ×
// blockSize bytes, zero padded. It panics (an assertion: the caller built a
// bad bitmap) if b fails Validate or blockSize is not positive.
func (b *AGBitmap) Encode(blockSize int) []byte {
	if err := b.Validate(); err != nil {
		panic(fmt.Sprintf("cowdb: assertion failed: encoding an invalid AG bitmap: %v", err))
	}
	buf := make([]byte, AGBitmapBlocks(b.NBits, blockSize)*blockSize)
	le := binary.LittleEndian
	le.PutUint64(buf[0:], AGBitmapMagic)
	le.PutUint32(buf[8:], AGBitmapVersion)
	le.PutUint32(buf[12:], b.AG)
	le.PutUint64(buf[16:], b.StoreID)
	le.PutUint64(buf[24:], uint64(b.Epoch))
	le.PutUint32(buf[32:], b.NBits)
	bits := buf[AGBitmapHeaderSize : AGBitmapHeaderSize+len(b.Bits)]
	copy(bits, b.Bits)
	le.PutUint64(buf[agbOffChecksum:], agBitmapSum(buf[:agbOffChecksum], bits))
	return buf
}

// agBitmapSum is the checksum of a copy: xxhash64 of the header before the
// checksum field followed by the bits, so the checksum need not sit at the
// end of a variable-length structure.
func agBitmapSum(head, bits []byte) uint64 {
	var d xxhash.Digest
	d.Reset()
	d.Write(head)
	d.Write(bits)
	return d.Sum64()
}

// DecodeAGBitmap decodes and validates one AG bitmap copy from buf, which
// holds at least the header and the bits it declares (normally the whole
// copy; bytes past the bits are ignored). It checks magic, version,
// checksum, reserved bytes and Validate; it allocates only the bits, never
// more than len(buf). Every failure is a *CorruptError at "AG bitmap"
// wrapping ErrTruncated, ErrBadMagic, ErrBadVersion, ErrBadChecksum or
// ErrMalformed, and so ErrCorrupt.
func DecodeAGBitmap(buf []byte) (AGBitmap, error) {
	const where = "AG bitmap"
	if len(buf) < AGBitmapHeaderSize {
		return AGBitmap{}, Corruptf(where, ErrTruncated, "%d bytes, header needs %d", len(buf), AGBitmapHeaderSize)
	}
	le := binary.LittleEndian
	if m := le.Uint64(buf[0:]); m != AGBitmapMagic {
		return AGBitmap{}, Corruptf(where, ErrBadMagic, "%#016x", m)
	}
	if v := le.Uint32(buf[8:]); v != AGBitmapVersion {
		return AGBitmap{}, Corruptf(where, ErrBadVersion, "version %d, this code reads %d", v, AGBitmapVersion)
	}
	b := AGBitmap{
		AG:      le.Uint32(buf[12:]),
		StoreID: le.Uint64(buf[16:]),
		Epoch:   Epoch(le.Uint64(buf[24:])),
		NBits:   le.Uint32(buf[32:]),
	}
	// Check the declared length against the buffer before touching (or
	// allocating) the bits, so a hostile nbits costs nothing.
	nbytes := AGBitmapBytes(b.NBits)
	if nbytes > len(buf)-AGBitmapHeaderSize {
		return AGBitmap{}, Corruptf(where, ErrTruncated, "%d bits need %d bytes, buffer has %d", b.NBits, AGBitmapHeaderSize+nbytes, len(buf))
	}
	bits := buf[AGBitmapHeaderSize : AGBitmapHeaderSize+nbytes]
	stored := le.Uint64(buf[agbOffChecksum:])
	if sum := agBitmapSum(buf[:agbOffChecksum], bits); sum != stored {
		return AGBitmap{}, Corruptf(where, ErrBadChecksum, "stored %#016x, computed %#016x", stored, sum)
	}
	if le.Uint32(buf[36:]) != 0 {
		return AGBitmap{}, Corruptf(where, ErrMalformed, "reserved bytes not zero")
	}
	b.Bits = bytes.Clone(bits)
	if err := b.Validate(); err != nil {
		return AGBitmap{}, err
	}
	return b, nil
}

// PickAGBitmap decodes both copies of AG ag's bitmap and returns the one to
// use and its index: among the copies that decode, belong to storeID and to
// AG ag, and have an epoch not above maxEpoch (the superblock's epoch), the
// one with the highest epoch. A copy above maxEpoch was written by a
// checkpoint that never completed and is skipped (ErrEpochAhead); another
// store's copy is ErrForeign, another AG's ErrMisplaced. Two usable copies
// with the same epoch are accepted only if identical (copy 0 is returned);
// otherwise they are ErrConflict. If no copy is usable the error names both
// failures and wraps both, and so ErrCorrupt. On error the returned index
// is -1.
func PickAGBitmap(copies [2][]byte, maxEpoch Epoch, storeID uint64, ag uint32) (AGBitmap, int, error) {
	var bms [2]AGBitmap
	var errs [2]error
	for i := range copies {
		bms[i], errs[i] = pickableAGBitmap(copies[i], maxEpoch, storeID, ag, fmt.Sprintf("AG %d bitmap copy %d", ag, i))
	}
	switch {
	case errs[0] != nil && errs[1] != nil:
		return AGBitmap{}, -1, fmt.Errorf("cowdb/format: no usable bitmap for AG %d: %w; %w", ag, errs[0], errs[1])
	case errs[1] != nil:
		return bms[0], 0, nil
	case errs[0] != nil:
		return bms[1], 1, nil
	case bms[1].Epoch > bms[0].Epoch:
		return bms[1], 1, nil
	case bms[0].Epoch > bms[1].Epoch:
		return bms[0], 0, nil
	case bms[0].NBits == bms[1].NBits && bytes.Equal(bms[0].Bits, bms[1].Bits):
		return bms[0], 0, nil
	}
	return AGBitmap{}, -1, Corruptf(fmt.Sprintf("AG %d bitmap", ag), ErrConflict, "both copies have epoch %d but differ", bms[0].Epoch)
}

// pickableAGBitmap decodes one copy and checks that PickAGBitmap may use it;
// errors are located at where.
func pickableAGBitmap(buf []byte, maxEpoch Epoch, storeID uint64, ag uint32, where string) (AGBitmap, error) {
	b, err := DecodeAGBitmap(buf)
	switch {
	case err != nil:
		return AGBitmap{}, Locate(err, where)
	case b.StoreID != storeID:
		return AGBitmap{}, Corruptf(where, ErrForeign, "store %#x, want %#x", b.StoreID, storeID)
	case b.AG != ag:
		return AGBitmap{}, Corruptf(where, ErrMisplaced, "holds AG %d", b.AG)
	case b.Epoch > maxEpoch:
		return AGBitmap{}, Corruptf(where, ErrEpochAhead, "epoch %d above checkpoint %d", b.Epoch, maxEpoch)
	}
	return b, nil
}

package format_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cowdb/cowdb/internal/format"
)

// superblockSeeds returns valid superblock encodings at several block sizes
// and epochs, plus damaged variants: flipped bits, truncations, a zero
// block, a bad version behind a good checksum.
func superblockSeeds() [][]byte {
	var seeds [][]byte
	for i, bs := range []int{512, 4096, 65536} {
		sb := sampleSuperblock()
		sb.BlockSize, sb.Epoch = uint32(bs), format.Epoch(i)
		b := sb.Encode(bs)
		seeds = append(seeds, b, b[:format.SuperblockSize], b[:format.SuperblockSize-1])
		flipped := bytes.Clone(b)
		flipped[17] ^= 0x20
		seeds = append(seeds, flipped)
		badVersion := bytes.Clone(b)
		binary.LittleEndian.PutUint32(badVersion[8:], 99)
		format.ResignSuperblock(badVersion)
		seeds = append(seeds, badVersion)
	}
	return append(seeds, nil, make([]byte, 512), []byte("cowdb-SB"))
}

// agBitmapSeeds returns valid AG bitmap copies of several sizes plus damaged
// variants, including a hostile bit count.
func agBitmapSeeds() [][]byte {
	var seeds [][]byte
	for _, nbits := range []uint32{1, 8, 20, 3712, 32768} {
		b := format.NewAGBitmap(0x1122334455667788, 3, format.Epoch(nbits), nbits)
		b.SetAllocated(nbits-1, true)
		enc := b.Encode(512)
		seeds = append(seeds, enc, enc[:format.AGBitmapHeaderSize+format.AGBitmapBytes(nbits)])
		flipped := bytes.Clone(enc)
		flipped[format.AGBitmapHeaderSize] ^= 1
		seeds = append(seeds, flipped, enc[:format.AGBitmapHeaderSize])
	}
	hostile := sampleAGBitmap()
	h := hostile.Encode(512)
	binary.LittleEndian.PutUint32(h[32:], 0xffffffff)
	return append(seeds, h, nil, make([]byte, 512))
}

// FuzzDecodeSuperblock checks that DecodeSuperblock never panics, that every
// failure is ErrCorrupt, and that whatever it accepts is valid and encodes
// back to the same bytes (so decoding is canonical).
func FuzzDecodeSuperblock(f *testing.F) {
	for _, s := range superblockSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sb, err := format.DecodeSuperblock(data)
		if err != nil {
			if !errors.Is(err, format.ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if err := sb.Validate(); err != nil {
			t.Fatalf("decoded superblock does not validate: %v", err)
		}
		again := sb
		enc := again.Encode(format.SuperblockSize)
		if !bytes.Equal(enc, data[:format.SuperblockSize]) || again != sb {
			t.Fatalf("re-encoding differs:\n got % x\nwant % x", enc, data[:format.SuperblockSize])
		}
	})
}

// FuzzPickSuperblock checks on arbitrary pairs of blocks that PickSuperblock
// never panics, that its errors are ErrCorrupt, and that a picked copy is the
// decoding of the bytes at its index, sits in its slot, and is newer than the
// other copy if that one is valid too.
func FuzzPickSuperblock(f *testing.F) {
	seeds := superblockSeeds()
	for i := range seeds {
		f.Add(seeds[i], seeds[(i+1)%len(seeds)])
	}
	f.Add(encodeSuperblockAt(4, 9), encodeSuperblockAt(5, 9))
	f.Add(encodeSuperblockAt(4, 9), encodeSuperblockAt(5, 10))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		copies := [2][]byte{a, b}
		sb, i, err := format.PickSuperblock(copies)
		if err != nil {
			if !errors.Is(err, format.ErrCorrupt) || i != -1 {
				t.Fatalf("index %d, error %v", i, err)
			}
			return
		}
		want, derr := format.DecodeSuperblock(copies[i])
		if derr != nil || want != sb || format.SuperblockCopyIndex(sb.Epoch) != i {
			t.Fatalf("picked copy %d epoch %d, which decodes to %v", i, sb.Epoch, derr)
		}
		if other, err := format.DecodeSuperblock(copies[1-i]); err == nil &&
			format.SuperblockCopyIndex(other.Epoch) == 1-i && other.Epoch > sb.Epoch {
			t.Fatalf("picked epoch %d over valid epoch %d", sb.Epoch, other.Epoch)
		}
	})
}

// FuzzDecodeAGBitmap checks that DecodeAGBitmap never panics, fails only
// with ErrCorrupt, never returns more bits than the buffer held, and that
// whatever it accepts re-encodes to the same header and bits.
func FuzzDecodeAGBitmap(f *testing.F) {
	for _, s := range agBitmapSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := format.DecodeAGBitmap(data)
		if err != nil {
			if !errors.Is(err, format.ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if cap(b.Bits) > len(data) {
			t.Fatalf("%d bytes of bits from a %d-byte buffer", cap(b.Bits), len(data))
		}
		n := format.AGBitmapHeaderSize + len(b.Bits)
		enc := b.Encode(512)
		if !bytes.Equal(enc[:n], data[:n]) {
			t.Fatalf("re-encoding differs:\n got % x\nwant % x", enc[:n], data[:n])
		}
	})
}

// FuzzPickAGBitmap checks on arbitrary pairs of buffers that PickAGBitmap
// never panics, fails only with ErrCorrupt, and that a picked copy belongs to
// the store and AG asked for and is not above the checkpoint.
func FuzzPickAGBitmap(f *testing.F) {
	seeds := agBitmapSeeds()
	for i := range seeds {
		f.Add(seeds[i], seeds[(i+3)%len(seeds)], uint64(i*4000))
	}
	f.Fuzz(func(t *testing.T, a, b []byte, maxEpoch uint64) {
		const store, ag = 0x1122334455667788, 3
		bm, i, err := format.PickAGBitmap([2][]byte{a, b}, format.Epoch(maxEpoch), store, ag)
		if err != nil {
			if !errors.Is(err, format.ErrCorrupt) || i != -1 {
				t.Fatalf("index %d, error %v", i, err)
			}
			return
		}
		if bm.StoreID != store || bm.AG != ag || bm.Epoch > format.Epoch(maxEpoch) || (i != 0 && i != 1) {
			t.Fatalf("picked copy %d: %+v", i, bm)
		}
	})
}

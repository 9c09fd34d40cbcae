package format_test

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cowdb/cowdb/internal/format"
	"pgregory.net/rapid"
)

// TestSuperblockLayout pins the on-disk layout: it encodes a fixed
// superblock and compares every field at the offset the diagram in
// superblock.go documents, so a change to the encoding cannot go unnoticed.
func TestSuperblockLayout(t *testing.T) {
	sb := sampleSuperblock()
	b := sb.Encode(4096)
	if len(b) != 4096 {
		t.Fatalf("Encode(4096) returned %d bytes", len(b))
	}
	le := binary.LittleEndian
	u64 := map[int]uint64{
		0: 0x42532d6264776f63, 32: 2, 40: 0x1122334455667788, 48: 41, 56: 9000, 64: 7, 72: 123456,
		80: 100, 88: 0xaaaa, 96: 200, 104: 0xbbbb, 112: 0xcccc, 120: 0, 128: 77, 136: 1_700_000_000_000_000_000,
	}
	for off, want := range u64 {
		if got := le.Uint64(b[off:]); got != want {
			t.Errorf("uint64 at offset %d = %#x, want %#x", off, got, want)
		}
	}
	u32 := map[int]uint32{8: 1, 12: 4096, 16: 32768, 20: 3, 24: 64, 28: 0}
	for off, want := range u32 {
		if got := le.Uint32(b[off:]); got != want {
			t.Errorf("uint32 at offset %d = %#x, want %#x", off, got, want)
		}
	}
	if string(b[0:8]) != "cowdb-SB" {
		t.Errorf("magic bytes %q", b[0:8])
	}
	if got, want := le.Uint64(b[208:]), format.Checksum(b[:208]); got != want || got != sb.Checksum {
		t.Errorf("checksum at 208 = %#x, want %#x (struct has %#x)", got, want, sb.Checksum)
	}
	for i, c := range b[144:208] {
		if c != 0 {
			t.Fatalf("reserved byte %d = %#x", 144+i, c)
		}
	}
	for i, c := range b[format.SuperblockSize:] {
		if c != 0 {
			t.Fatalf("byte %d past the superblock = %#x", format.SuperblockSize+i, c)
		}
	}
	if format.SuperblockSize > 512 {
		t.Errorf("SuperblockSize %d does not fit one sector", format.SuperblockSize)
	}
}

// TestSuperblockRoundTrip checks, on random valid superblocks, that Encode
// stamps a value that Validate accepts and that decoding the encoding gives
// it back exactly, whatever the block size of the buffer.
func TestSuperblockRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sb := genSuperblock(t)
		b := sb.Encode(int(sb.BlockSize))
		if len(b) != int(sb.BlockSize) {
			t.Fatalf("encoded %d bytes for block size %d", len(b), sb.BlockSize)
		}
		if err := sb.Validate(); err != nil {
			t.Fatalf("Validate after Encode: %v", err)
		}
		got, err := format.DecodeSuperblock(b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if got != sb {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, sb)
		}
	})
}

// TestSuperblockDamage checks that each kind of damage to an encoded
// superblock gives its own error, wrapping ErrCorrupt and naming the place.
func TestSuperblockDamage(t *testing.T) {
	le := binary.LittleEndian
	put32 := func(off int, v uint32) func([]byte) {
		return func(b []byte) { le.PutUint32(b[off:], v); format.ResignSuperblock(b) }
	}
	put64 := func(off int, v uint64) func([]byte) {
		return func(b []byte) { le.PutUint64(b[off:], v); format.ResignSuperblock(b) }
	}
	cases := []struct {
		name   string
		damage func([]byte) []byte
		want   error
	}{
		{"zero block", func(b []byte) []byte { return make([]byte, len(b)) }, format.ErrBadMagic},
		{"magic", func(b []byte) []byte { b[3] ^= 1; return b }, format.ErrBadMagic},
		{"version", func(b []byte) []byte { put32(8, 2)(b); return b }, format.ErrBadVersion},
		{"checksum of a field", func(b []byte) []byte { b[50] ^= 0x80; return b }, format.ErrBadChecksum},
		{"checksum itself", func(b []byte) []byte { b[210] ^= 1; return b }, format.ErrBadChecksum},
		{"truncated", func(b []byte) []byte { return b[:format.SuperblockSize-1] }, format.ErrTruncated},
		{"empty", func(b []byte) []byte { return nil }, format.ErrTruncated},
		{"block size not power of two", func(b []byte) []byte { put32(12, 3000)(b); return b }, format.ErrBadGeometry},
		{"block size too small", func(b []byte) []byte { put32(12, 256)(b); return b }, format.ErrBadGeometry},
		{"block size too large", func(b []byte) []byte { put32(12, 1<<17)(b); return b }, format.ErrBadGeometry},
		{"zero blocks per AG", func(b []byte) []byte { put32(16, 0)(b); return b }, format.ErrBadGeometry},
		{"AG too small for bitmaps", func(b []byte) []byte { put32(16, 2)(b); return b }, format.ErrBadGeometry},
		{"zero AG count", func(b []byte) []byte { put32(20, 0)(b); return b }, format.ErrBadGeometry},
		{"AG count above max", func(b []byte) []byte { put32(24, 2)(b); return b }, format.ErrBadGeometry},
		{"AG start 1", func(b []byte) []byte { put64(32, 1)(b); return b }, format.ErrBadGeometry},
		{"AG start huge", func(b []byte) []byte { put64(32, 1<<40)(b); return b }, format.ErrBadGeometry},
		{"size overflow", func(b []byte) []byte {
			le.PutUint32(b[16:], 0xffffffff)
			le.PutUint32(b[12:], 65536)
			put32(24, 0xffffffff)(b)
			return b
		}, format.ErrBadGeometry},
		{"reserved word", func(b []byte) []byte { put64(200, 1)(b); return b }, format.ErrMalformed},
		{"reserved pad", func(b []byte) []byte { put32(28, 1)(b); return b }, format.ErrMalformed},
		{"zero store ID", func(b []byte) []byte { put64(40, 0)(b); return b }, format.ErrMalformed},
		{"zero next inode", func(b []byte) []byte { put64(128, 0)(b); return b }, format.ErrMalformed},
		{"root in superblocks", func(b []byte) []byte { put64(80, 1)(b); return b }, format.ErrMalformed},
		{"root past the file", func(b []byte) []byte { put64(96, 2+3*32768)(b); return b }, format.ErrMalformed},
		{"reserved after the bitmap digest", func(b []byte) []byte { put64(120, 1)(b); return b }, format.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb := sampleSuperblock()
			_, err := format.DecodeSuperblock(tc.damage(sb.Encode(4096)))
			requireDamage(t, err, tc.want, "superblock")
		})
	}
}

// TestSuperblockValidateStruct checks Validate on a value rather than bytes:
// a field changed after Encode breaks the checksum, an unstamped value is
// rejected, and an edge-of-range geometry is accepted.
func TestSuperblockValidateStruct(t *testing.T) {
	sb := sampleSuperblock()
	requireDamage(t, sb.Validate(), format.ErrBadMagic, "superblock")
	sb.Encode(4096)
	if err := sb.Validate(); err != nil {
		t.Fatalf("valid superblock: %v", err)
	}
	sb.Epoch++
	requireDamage(t, sb.Validate(), format.ErrBadChecksum, "superblock")
	sb.Version = 9
	requireDamage(t, sb.Validate(), format.ErrBadVersion, "superblock")

	edge := sampleSuperblock()
	edge.BlockSize, edge.BlocksPerAG, edge.AGStart = 512, 3, 3
	edge.AGCount, edge.MaxAGCount = 1, 1
	edge.CatalogRoot, edge.RefcountRoot, edge.BitmapDigest = format.Ref{Block: 5}, format.Ref{}, 0
	edge.Encode(512)
	if err := edge.Validate(); err != nil {
		t.Fatalf("smallest geometry: %v", err)
	}
	edge.CatalogRoot.Block = 6
	edge.Encode(512)
	requireDamage(t, edge.Validate(), format.ErrMalformed, "superblock")
}

// TestSuperblockEncodePanicsOnShortBlock checks the assertion that the
// buffer can hold a superblock.
func TestSuperblockEncodePanicsOnShortBlock(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "assertion failed") {
			t.Fatalf("recovered %v, want an assertion panic", r)
		}
	}()
	sb := sampleSuperblock()
	sb.Encode(format.SuperblockSize - 1)
}

// encodeSuperblockAt returns sample superblock bytes at the given epoch and store.
func encodeSuperblockAt(epoch format.Epoch, store uint64) []byte {
	sb := sampleSuperblock()
	sb.Epoch, sb.StoreID = epoch, store
	return sb.Encode(4096)
}

// TestPickSuperblock checks the selection rules one case at a time: newest
// valid copy wins, a damaged or misplaced copy is passed over, two bad
// copies are reported with both failures, two stores are refused.
func TestPickSuperblock(t *testing.T) {
	const store = 0x1122334455667788
	torn := encodeSuperblockAt(5, store)
	torn[60] ^= 0xff
	cases := []struct {
		name    string
		copies  [2][]byte
		want    int
		epoch   format.Epoch
		errKind []error
	}{
		{"both valid, copy 1 newer", [2][]byte{encodeSuperblockAt(4, store), encodeSuperblockAt(5, store)}, 1, 5, nil},
		{"both valid, copy 0 newer", [2][]byte{encodeSuperblockAt(6, store), encodeSuperblockAt(5, store)}, 0, 6, nil},
		{"copy 1 torn", [2][]byte{encodeSuperblockAt(4, store), torn}, 0, 4, nil},
		{"copy 0 never written", [2][]byte{make([]byte, 4096), encodeSuperblockAt(1, store)}, 1, 1, nil},
		{"newest misplaced", [2][]byte{encodeSuperblockAt(4, store), encodeSuperblockAt(6, store)}, 0, 4, nil},
		{"both bad", [2][]byte{make([]byte, 4096), torn}, -1, 0, []error{format.ErrBadMagic, format.ErrBadChecksum}},
		{"both misplaced", [2][]byte{encodeSuperblockAt(1, store), encodeSuperblockAt(2, store)}, -1, 0, []error{format.ErrMisplaced}},
		{"two stores", [2][]byte{encodeSuperblockAt(4, store), encodeSuperblockAt(5, store+1)}, -1, 0, []error{format.ErrForeign}},
		{"short buffers", [2][]byte{nil, encodeSuperblockAt(3, store)[:100]}, -1, 0, []error{format.ErrTruncated}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb, i, err := format.PickSuperblock(tc.copies)
			if tc.errKind != nil {
				if err == nil || i != -1 {
					t.Fatalf("got copy %d, err %v; want an error", i, err)
				}
				for _, k := range append(tc.errKind, format.ErrCorrupt) {
					if !errors.Is(err, k) {
						t.Errorf("error %q is not %v", err, k)
					}
				}
				return
			}
			if err != nil || i != tc.want || sb.Epoch != tc.epoch {
				t.Fatalf("got copy %d epoch %d err %v; want copy %d epoch %d", i, sb.Epoch, err, tc.want, tc.epoch)
			}
		})
	}
}

// TestPickSuperblockNamesBothCopies checks that when no copy is valid the
// error says what is wrong with each, by copy number.
func TestPickSuperblockNamesBothCopies(t *testing.T) {
	bad := encodeSuperblockAt(3, 1)
	bad[8] = 7
	format.ResignSuperblock(bad)
	_, _, err := format.PickSuperblock([2][]byte{make([]byte, 512), bad})
	msg := fmt.Sprint(err)
	for _, want := range []string{"superblock copy 0", "bad magic", "superblock copy 1", "version"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
}

// TestPickSuperblockAfterTornCheckpoints simulates the checkpoint protocol
// and a crash: checkpoints 0..n are written alternately to blocks 0 and 1,
// the last write torn at 512-byte sector granularity (each sector new or
// old, at random). Pick must return the last checkpoint whose write fully
// landed: n if the superblock's sector was written, else n-1.
func TestPickSuperblockAfterTornCheckpoints(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		base := genSuperblock(t)
		bs := int(base.BlockSize)
		n := rapid.IntRange(0, 12).Draw(t, "checkpoints")
		var disk [2][]byte
		disk[0], disk[1] = make([]byte, bs), make([]byte, bs)
		for e := 0; e < n; e++ {
			sb := base
			sb.Epoch = format.Epoch(e)
			copy(disk[e%2], sb.Encode(bs))
		}
		last := base
		last.Epoch = format.Epoch(n)
		next := last.Encode(bs)
		slot := disk[n%2]
		for s := 0; s < bs/512; s++ {
			if rapid.Bool().Draw(t, fmt.Sprintf("sector%d", s)) {
				copy(slot[s*512:(s+1)*512], next[s*512:(s+1)*512])
			}
		}
		landed := string(slot[:512]) == string(next[:512])
		sb, i, err := format.PickSuperblock(disk)
		switch {
		case landed:
			if err != nil || sb != last || i != n%2 {
				t.Fatalf("after full write of %d: got epoch %d copy %d err %v", n, sb.Epoch, i, err)
			}
		case n == 0:
			if err == nil {
				t.Fatalf("no checkpoint ever landed, yet picked epoch %d", sb.Epoch)
			}
		default:
			if err != nil || sb.Epoch != format.Epoch(n-1) || i != (n-1)%2 {
				t.Fatalf("after torn write of %d: got epoch %d copy %d err %v", n, sb.Epoch, i, err)
			}
		}
	})
}

// TestSuperblockGolden pins the exact bytes of one encoding, so the format
// cannot drift between versions by accident.
func TestSuperblockGolden(t *testing.T) {
	sb := sampleSuperblock()
	got := hex.EncodeToString(sb.Encode(512)[:format.SuperblockSize])
	const want = "" +
		"636f7764622d5342010000000010000000800000030000004000000000000000" +
		"0200000000000000887766554433221129000000000000002823000000000000" +
		"070000000000000040e20100000000006400000000000000aaaa000000000000" +
		"c800000000000000bbbb000000000000cccc0000000000000000000000000000" +
		"4d0000000000000000002a36fe9c971700000000000000000000000000000000" +
		"0000000000000000000000000000000000000000000000000000000000000000" +
		"00000000000000000000000000000000ce63d41a375fb5de"
	if got != want {
		t.Fatalf("encoding changed:\n got %s\nwant %s", got, want)
	}
}

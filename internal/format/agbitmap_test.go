package format_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/cowdb/cowdb/internal/format"
	"pgregory.net/rapid"
)

// sampleAGBitmap returns a valid 20-bit bitmap of AG 3 with blocks 0, 1, 9
// and 19 allocated.
func sampleAGBitmap() format.AGBitmap {
	b := format.NewAGBitmap(0x1122334455667788, 3, 41, 20)
	for _, i := range []uint32{0, 1, 9, 19} {
		b.SetAllocated(i, true)
	}
	return b
}

// TestAGBitmapLayout pins the on-disk layout of a copy: header fields at the
// documented offsets, LSB-first bits, checksum over header and bits, zero
// padding to one block.
func TestAGBitmapLayout(t *testing.T) {
	bm := sampleAGBitmap()
	b := bm.Encode(512)
	if len(b) != 512 {
		t.Fatalf("Encode(512) returned %d bytes", len(b))
	}
	le := binary.LittleEndian
	if string(b[0:8]) != "cowdb-AG" || le.Uint64(b[0:]) != format.AGBitmapMagic {
		t.Errorf("magic bytes %q", b[0:8])
	}
	checks := []struct {
		off       int
		got, want uint64
	}{
		{8, uint64(le.Uint32(b[8:])), 1},
		{12, uint64(le.Uint32(b[12:])), 3},
		{16, le.Uint64(b[16:]), 0x1122334455667788},
		{24, le.Uint64(b[24:]), 41},
		{32, uint64(le.Uint32(b[32:])), 20},
		{36, uint64(le.Uint32(b[36:])), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("field at offset %d = %#x, want %#x", c.off, c.got, c.want)
		}
	}
	// Bits 0, 1 -> byte 0 = 0b11; bit 9 -> byte 1 = 0b10; bit 19 -> byte 2 = 0b1000.
	if got := b[48:51]; !bytes.Equal(got, []byte{0x03, 0x02, 0x08}) {
		t.Errorf("bits = % x, want 03 02 08", got)
	}
	sum := format.Checksum(append(append([]byte{}, b[:40]...), b[48:51]...))
	if got := le.Uint64(b[40:]); got != sum {
		t.Errorf("checksum %#x, want %#x", got, sum)
	}
	if !bytes.Equal(b[51:], make([]byte, 512-51)) {
		t.Errorf("padding not zero")
	}
}

// TestAGBitmapBlocks checks the size of one copy against a hand count,
// including the boundary where the bits exactly fill a block.
func TestAGBitmapBlocks(t *testing.T) {
	cases := []struct {
		nbits uint32
		bs    int
		want  int
	}{
		{1, 512, 1},
		{(512 - 48) * 8, 512, 1},
		{(512-48)*8 + 1, 512, 2},
		{32768, 4096, 2}, // the header pushes a 4 KiB bitmap into a second block
		{(4096 - 48) * 8, 4096, 1},
		{0xffffffff, 65536, 8193},
	}
	for _, c := range cases {
		if got := format.AGBitmapBlocks(c.nbits, c.bs); got != c.want {
			t.Errorf("AGBitmapBlocks(%d, %d) = %d, want %d", c.nbits, c.bs, got, c.want)
		}
	}
}

// TestAGBitmapRoundTrip checks on random bitmaps that decode(encode(b))
// equals b, that the copy has the advertised size, and that the bit
// accessors agree with a simple model (a set of allocated blocks).
func TestAGBitmapRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := 1 << rapid.IntRange(9, 16).Draw(t, "blockShift")
		nbits := rapid.Uint32Range(1, 5000).Draw(t, "nbits")
		bm := format.NewAGBitmap(rapid.Uint64Min(1).Draw(t, "store"), rapid.Uint32().Draw(t, "ag"),
			format.Epoch(rapid.Uint64().Draw(t, "epoch")), nbits)
		model := map[uint32]bool{}
		for _, op := range rapid.SliceOfN(rapid.Uint32Range(0, 2*nbits-1), 0, 300).Draw(t, "ops") {
			i, set := op%nbits, op < nbits
			bm.SetAllocated(i, set)
			model[i] = set
		}
		buf := bm.Encode(bs)
		if len(buf) != format.AGBitmapBlocks(nbits, bs)*bs {
			t.Fatalf("encoded %d bytes, want %d blocks of %d", len(buf), format.AGBitmapBlocks(nbits, bs), bs)
		}
		got, err := format.DecodeAGBitmap(buf)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if got.StoreID != bm.StoreID || got.AG != bm.AG || got.Epoch != bm.Epoch || got.NBits != bm.NBits || !bytes.Equal(got.Bits, bm.Bits) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, bm)
		}
		for i := range nbits {
			if got.Allocated(i) != model[i] {
				t.Fatalf("bit %d = %v, model says %v", i, got.Allocated(i), model[i])
			}
		}
	})
}

// TestAGBitmapDamage checks that each kind of damage to an encoded copy
// gives its own error, wrapping ErrCorrupt and naming the place.
func TestAGBitmapDamage(t *testing.T) {
	le := binary.LittleEndian
	cases := []struct {
		name   string
		damage func([]byte) []byte
		want   error
	}{
		{"zero block", func(b []byte) []byte { return make([]byte, len(b)) }, format.ErrBadMagic},
		{"magic", func(b []byte) []byte { b[7] ^= 0x40; return b }, format.ErrBadMagic},
		{"version", func(b []byte) []byte { le.PutUint32(b[8:], 2); format.ResignAGBitmap(b); return b }, format.ErrBadVersion},
		{"checksum of a header field", func(b []byte) []byte { b[25] ^= 1; return b }, format.ErrBadChecksum},
		{"checksum of a bit", func(b []byte) []byte { b[49] ^= 0x10; return b }, format.ErrBadChecksum},
		{"checksum itself", func(b []byte) []byte { b[47] ^= 1; return b }, format.ErrBadChecksum},
		{"truncated header", func(b []byte) []byte { return b[:47] }, format.ErrTruncated},
		{"truncated bits", func(b []byte) []byte { return b[:50] }, format.ErrTruncated},
		{"hostile nbits", func(b []byte) []byte { le.PutUint32(b[32:], 0xffffffff); return b }, format.ErrTruncated},
		{"zero nbits", func(b []byte) []byte { le.PutUint32(b[32:], 0); format.ResignAGBitmap(b); return b }, format.ErrMalformed},
		{"padding bit", func(b []byte) []byte { b[50] |= 0x80; format.ResignAGBitmap(b); return b }, format.ErrMalformed},
		{"reserved", func(b []byte) []byte { le.PutUint32(b[36:], 1); format.ResignAGBitmap(b); return b }, format.ErrMalformed},
		{"zero store ID", func(b []byte) []byte { le.PutUint64(b[16:], 0); format.ResignAGBitmap(b); return b }, format.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bm := sampleAGBitmap()
			_, err := format.DecodeAGBitmap(tc.damage(bm.Encode(512)))
			requireDamage(t, err, tc.want, "AG bitmap")
		})
	}
}

// TestAGBitmapHostileLengthAllocation checks that a header claiming 2^32
// bits in a small buffer is refused without allocating for the claim: the
// bytes allocated per decode stay far below the claimed 512 MiB.
func TestAGBitmapHostileLengthAllocation(t *testing.T) {
	bm := sampleAGBitmap()
	buf := bm.Encode(512)
	binary.LittleEndian.PutUint32(buf[32:], 0xffffffff)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 100
	for range runs {
		if _, err := format.DecodeAGBitmap(buf); !errors.Is(err, format.ErrTruncated) {
			t.Fatalf("err = %v, want ErrTruncated", err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 4096 {
		t.Fatalf("%d bytes allocated per hostile decode", per)
	}
}

// TestAGBitmapEncodeAsserts checks that encoding an invalid bitmap (the
// caller's bug) panics instead of writing a copy that could never be read.
func TestAGBitmapEncodeAsserts(t *testing.T) {
	bad := map[string]format.AGBitmap{
		"short bits":    {StoreID: 1, NBits: 20, Bits: make([]byte, 2)},
		"padding bit":   {StoreID: 1, NBits: 4, Bits: []byte{0x10}},
		"zero store":    {NBits: 8, Bits: make([]byte, 1)},
		"zero bits":     {StoreID: 1},
		"long bits":     {StoreID: 1, NBits: 8, Bits: make([]byte, 2)},
		"bad blocksize": {StoreID: 1, NBits: 8, Bits: make([]byte, 1)},
	}
	for name, b := range bad {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "assertion failed") {
					t.Fatalf("recovered %v, want an assertion panic", r)
				}
			}()
			bs := 512
			if name == "bad blocksize" {
				bs = 0
			}
			b.Encode(bs)
		})
	}
}

// encodeBitmapAt returns the sample bitmap encoded with the given epoch,
// store and AG, with block 5 allocated or not.
func encodeBitmapAt(epoch format.Epoch, store uint64, ag uint32, block5 bool) []byte {
	b := sampleAGBitmap()
	b.Epoch, b.StoreID, b.AG = epoch, store, ag
	b.SetAllocated(5, block5)
	return b.Encode(512)
}

// TestPickAGBitmap checks the selection rules one case at a time: the newest
// copy not above the superblock's epoch wins; a damaged, foreign, misplaced
// or too-new copy is passed over; equal epochs must agree; and with no usable
// copy the error names both.
func TestPickAGBitmap(t *testing.T) {
	const store, ag = 0x1122334455667788, 3
	torn := encodeBitmapAt(9, store, ag, false)
	torn[100] = 0xee
	torn[49] ^= 4
	cases := []struct {
		name   string
		copies [2][]byte
		want   int
		epoch  format.Epoch
		kinds  []error
	}{
		{"copy 1 newer", [2][]byte{encodeBitmapAt(3, store, ag, false), encodeBitmapAt(8, store, ag, true)}, 1, 8, nil},
		{"copy 0 newer", [2][]byte{encodeBitmapAt(9, store, ag, false), encodeBitmapAt(8, store, ag, true)}, 0, 9, nil},
		{"newer above checkpoint", [2][]byte{encodeBitmapAt(11, store, ag, false), encodeBitmapAt(8, store, ag, true)}, 1, 8, nil},
		{"newer torn", [2][]byte{torn, encodeBitmapAt(8, store, ag, true)}, 1, 8, nil},
		{"newer foreign", [2][]byte{encodeBitmapAt(9, store+1, ag, false), encodeBitmapAt(2, store, ag, true)}, 1, 2, nil},
		{"newer of another AG", [2][]byte{encodeBitmapAt(4, store, ag, false), encodeBitmapAt(9, store, ag+1, true)}, 0, 4, nil},
		{"equal and identical", [2][]byte{encodeBitmapAt(7, store, ag, true), encodeBitmapAt(7, store, ag, true)}, 0, 7, nil},
		{"equal but different", [2][]byte{encodeBitmapAt(7, store, ag, true), encodeBitmapAt(7, store, ag, false)}, -1, 0, []error{format.ErrConflict}},
		{"both unusable", [2][]byte{torn, encodeBitmapAt(10, store, ag, true)}, -1, 0, []error{format.ErrBadChecksum, format.ErrEpochAhead}},
		{"both foreign or misplaced", [2][]byte{encodeBitmapAt(1, 5, ag, true), encodeBitmapAt(1, store, 0, true)}, -1, 0, []error{format.ErrForeign, format.ErrMisplaced}},
		{"both empty", [2][]byte{nil, make([]byte, 512)}, -1, 0, []error{format.ErrTruncated, format.ErrBadMagic}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, i, err := format.PickAGBitmap(tc.copies, 9, store, ag)
			if tc.kinds != nil {
				if err == nil || i != -1 {
					t.Fatalf("got copy %d, err %v; want an error", i, err)
				}
				for _, k := range append(tc.kinds, format.ErrCorrupt) {
					if !errors.Is(err, k) {
						t.Errorf("error %q is not %v", err, k)
					}
				}
				return
			}
			if err != nil || i != tc.want || b.Epoch != tc.epoch {
				t.Fatalf("got copy %d epoch %d err %v; want copy %d epoch %d", i, b.Epoch, err, tc.want, tc.epoch)
			}
			want, _ := format.DecodeAGBitmap(tc.copies[tc.want])
			if !bytes.Equal(b.Bits, want.Bits) {
				t.Fatalf("returned bits of the wrong copy")
			}
		})
	}
}

// TestPickAGBitmapNamesBothCopies checks that the combined error names the
// AG and each copy with its failure.
func TestPickAGBitmapNamesBothCopies(t *testing.T) {
	_, _, err := format.PickAGBitmap([2][]byte{make([]byte, 512), encodeBitmapAt(50, 0x1122334455667788, 3, true)}, 9, 0x1122334455667788, 3)
	msg := fmt.Sprint(err)
	for _, want := range []string{"AG 3 bitmap copy 0", "bad magic", "AG 3 bitmap copy 1", "epoch 50 above checkpoint 9"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
}

// TestPickAGBitmapModel checks PickAGBitmap against a direct statement of
// the rule on random pairs of copies: each copy is either damaged or valid
// with a random store, AG and epoch; the expected answer is the usable copy
// with the highest epoch (equal epochs: identical copies give copy 0,
// different ones an error).
func TestPickAGBitmapModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		const store, ag = 42, 7
		maxEpoch := format.Epoch(rapid.Uint64Range(0, 6).Draw(t, "maxEpoch"))
		var copies [2][]byte
		var usable [2]bool
		var epochs [2]format.Epoch
		var alloc [2]bool
		for i := range copies {
			epochs[i] = format.Epoch(rapid.Uint64Range(0, 8).Draw(t, fmt.Sprintf("epoch%d", i)))
			alloc[i] = rapid.Bool().Draw(t, fmt.Sprintf("alloc%d", i))
			st := rapid.SampledFrom([]uint64{store, store, store, 43}).Draw(t, fmt.Sprintf("store%d", i))
			g := rapid.SampledFrom([]uint32{ag, ag, ag, 8}).Draw(t, fmt.Sprintf("ag%d", i))
			copies[i] = encodeBitmapAt(epochs[i], st, g, alloc[i])
			damaged := rapid.IntRange(0, 3).Draw(t, fmt.Sprintf("damaged%d", i)) == 0
			if damaged {
				copies[i][rapid.IntRange(0, 50).Draw(t, fmt.Sprintf("at%d", i))] ^= 1 << rapid.IntRange(0, 7).Draw(t, fmt.Sprintf("bit%d", i))
			}
			usable[i] = !damaged && st == store && g == ag && epochs[i] <= maxEpoch
		}
		want := -1
		switch {
		case usable[0] && usable[1] && epochs[0] == epochs[1]:
			if alloc[0] == alloc[1] {
				want = 0
			}
		case usable[0] && usable[1] && epochs[1] > epochs[0]:
			want = 1
		case usable[0]:
			want = 0
		case usable[1]:
			want = 1
		}
		b, got, err := format.PickAGBitmap(copies, maxEpoch, store, ag)
		if got != want || (err == nil) != (want >= 0) {
			t.Fatalf("picked copy %d (err %v), model says %d", got, err, want)
		}
		if err != nil && !errors.Is(err, format.ErrCorrupt) {
			t.Fatalf("error %v is not ErrCorrupt", err)
		}
		if want >= 0 && (b.Epoch != epochs[want] || b.Allocated(5) != alloc[want]) {
			t.Fatalf("returned %+v, not copy %d", b, want)
		}
	})
}

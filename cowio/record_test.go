package cowio_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"pgregory.net/rapid"

	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/internal/format"
)

// sumsOf returns n distinct checksums derived from seed, standing in for
// the checksums of n blocks.
func sumsOf(seed, n uint64) []uint64 {
	rng := rand.New(rand.NewPCG(seed, n))
	s := make([]uint64, n)
	for i := range s {
		s[i] = rng.Uint64()
	}
	return s
}

// rec returns a valid record of n blocks from start, with checksums.
func rec(start format.Block, n uint64) cowio.ExtentRecord {
	return cowio.ExtentRecord{Start: start, Len: n, Sums: sumsOf(uint64(start), n)}
}

// TestExtentRecordRoundTrip checks that valid records encode to the header
// and one checksum per block, append to what dst holds, and decode to
// themselves; and that each kind of invalid encoding is refused as
// corruption.
func TestExtentRecordRoundTrip(t *testing.T) {
	for _, r := range []cowio.ExtentRecord{
		rec(1, 1), rec(2, cowio.ExtentRecordMaxBlocks), rec(1<<40, 7), rec(^format.Block(0)-1, 1),
		{Start: 3, Len: 2, Sums: []uint64{0, ^uint64(0)}},
	} {
		b := cowio.EncodeExtentRecord([]byte("prefix"), r)
		if len(b) != 6+cowio.ExtentRecordHeaderSize+8*int(r.Len) || string(b[:6]) != "prefix" {
			t.Fatalf("EncodeExtentRecord(%+v) = %x", r, b)
		}
		got, err := cowio.DecodeExtentRecord(b[6:])
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("DecodeExtentRecord(Encode(%+v)) = %+v, %v", r, got, err)
		}
		// The decoded checksums are the record's own: reusing the buffer
		// does not change them.
		clear(b)
		if !reflect.DeepEqual(got.Sums, r.Sums) {
			t.Fatalf("decoded checksums alias the encoding")
		}
	}
	valid := cowio.EncodeExtentRecord(nil, rec(5, 3))
	bad := map[string][]byte{
		"empty":        nil,
		"short header": valid[:19],
		"no sums":      valid[:cowio.ExtentRecordHeaderSize],
		"short sums":   valid[:len(valid)-1],
		"one sum less": valid[:len(valid)-8],
		"long":         append(bytes.Clone(valid), 0),
		"one sum more": append(bytes.Clone(valid), make([]byte, 8)...),
		"block 0":      patch(valid, 0, 0),
		"zero len":     patch(valid, 8, 0),
		"len too long": raw(5, cowio.ExtentRecordMaxBlocks+1, 0, cowio.ExtentRecordMaxBlocks+1),
		"huge len":     raw(5, 1<<61, 0, 3),
		"overflow":     raw(^uint64(0)-1, 3, 0, 3),
		"flags":        patch(valid, 16, 1),
		"high flag":    patch(valid, 19, 0x80),
	}
	for name, b := range bad {
		if _, err := cowio.DecodeExtentRecord(b); !errors.Is(err, cowio.ErrBadExtentRecord) || !errors.Is(err, format.ErrCorrupt) {
			t.Errorf("%s: DecodeExtentRecord(%x) = %v, want ErrBadExtentRecord", name, b, err)
		}
	}
}

// TestExtentRecordFitsNode checks the reason for ExtentRecordMaxBlocks:
// the longest record fits the longest value of a node of the smallest
// block size.
func TestExtentRecordFitsNode(t *testing.T) {
	longest := cowio.EncodeExtentRecord(nil, rec(9, cowio.ExtentRecordMaxBlocks))
	if len(longest) != cowio.ExtentRecordSizeMax {
		t.Fatalf("longest record is %d bytes, ExtentRecordSizeMax %d", len(longest), cowio.ExtentRecordSizeMax)
	}
	if limit := format.NodeValueMax(format.NodeBlockSizeMin); len(longest) > limit {
		t.Fatalf("longest record is %d bytes; a %d-byte node holds values of up to %d", len(longest), format.NodeBlockSizeMin, limit)
	}
}

// TestEncodeExtentRecordRefusesInvalid checks that encoding a record the
// decoder would refuse panics instead of persisting it.
func TestEncodeExtentRecordRefusesInvalid(t *testing.T) {
	for _, r := range []cowio.ExtentRecord{
		{Start: 0, Len: 1, Sums: []uint64{1}},
		{Start: 1, Len: 0},
		{Start: 1, Len: 0, Sums: []uint64{}},
		{Start: ^format.Block(0) - 1, Len: 3, Sums: make([]uint64, 3)},
		{Start: 1, Len: 1, Flags: 4, Sums: []uint64{1}},
		{Start: 1, Len: 1},
		{Start: 1, Len: 2, Sums: []uint64{1}},
		{Start: 1, Len: 1, Sums: []uint64{1, 2}},
		rec(1, cowio.ExtentRecordMaxBlocks+1),
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("EncodeExtentRecord(%+v) did not panic", r)
				}
			}()
			cowio.EncodeExtentRecord(nil, r)
		}()
	}
}

// TestExtentRecordProperty checks, over random valid records, that
// decode(encode(r)) == r and that the encoding has the documented size.
func TestExtentRecordProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.Uint64Range(1, cowio.ExtentRecordMaxBlocks).Draw(rt, "len")
		r := cowio.ExtentRecord{
			Start: format.Block(rapid.Uint64Range(1, ^uint64(0)-n).Draw(rt, "start")),
			Len:   n,
			Sums:  rapid.SliceOfN(rapid.Uint64(), int(n), int(n)).Draw(rt, "sums"),
		}
		b := cowio.EncodeExtentRecord(nil, r)
		if len(b) != cowio.ExtentRecordHeaderSize+8*int(n) {
			rt.Fatalf("%d blocks encode to %d bytes", n, len(b))
		}
		got, err := cowio.DecodeExtentRecord(b)
		if err != nil || !reflect.DeepEqual(got, r) {
			rt.Fatalf("decode(encode(%+v)) = %+v, %v", r, got, err)
		}
	})
}

// raw encodes a record header of n blocks without validating it, followed
// by sums zero checksums.
func raw(start, n uint64, flags uint32, sums int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, start)
	b = binary.LittleEndian.AppendUint64(b, n)
	b = binary.LittleEndian.AppendUint32(b, flags)
	return append(b, make([]byte, 8*sums)...)
}

// patch returns a copy of b with byte i set to v; byte 8 set to 0 also
// clears the rest of the length field.
func patch(b []byte, i int, v byte) []byte {
	c := bytes.Clone(b)
	c[i] = v
	if i == 8 && v == 0 {
		clear(c[8:16])
	}
	return c
}

// FuzzDecodeExtentRecord checks that DecodeExtentRecord never panics, that
// whatever it accepts re-encodes to the same bytes and decodes again to the
// same record, and that whatever it refuses is reported as corruption.
func FuzzDecodeExtentRecord(f *testing.F) {
	f.Add(cowio.EncodeExtentRecord(nil, rec(5, 3)))
	f.Add(cowio.EncodeExtentRecord(nil, rec(1<<50, 1)))
	f.Add(cowio.EncodeExtentRecord(nil, rec(2, cowio.ExtentRecordMaxBlocks)))
	f.Add(cowio.EncodeExtentRecord(nil, cowio.ExtentRecord{Start: 7, Len: 2, Sums: []uint64{0, 0}}))
	f.Add(raw(5, cowio.ExtentRecordMaxBlocks+1, 0, cowio.ExtentRecordMaxBlocks+1))
	f.Add(make([]byte, cowio.ExtentRecordHeaderSize))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := cowio.DecodeExtentRecord(b)
		if err != nil {
			if !errors.Is(err, cowio.ErrBadExtentRecord) || !errors.Is(err, format.ErrCorrupt) {
				t.Fatalf("refused with %v, not ErrBadExtentRecord", err)
			}
			return
		}
		again := cowio.EncodeExtentRecord(nil, r)
		if !bytes.Equal(again, b) {
			t.Fatalf("decoded %x as %+v, which encodes to %x", b, r, again)
		}
		if r2, err := cowio.DecodeExtentRecord(again); err != nil || !reflect.DeepEqual(r2, r) {
			t.Fatalf("re-decoding %+v gave %+v, %v", r, r2, err)
		}
	})
}

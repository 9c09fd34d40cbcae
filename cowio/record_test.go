package cowio_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/internal/format"
)

// TestExtentRecordRoundTrip checks that valid records encode to
// ExtentRecordSize bytes, append to what dst holds, and decode to
// themselves; and that each kind of invalid encoding is refused as
// corruption.
func TestExtentRecordRoundTrip(t *testing.T) {
	for _, r := range []cowio.ExtentRecord{
		{Start: 1, Len: 1}, {Start: 2, Len: 1 << 20}, {Start: 1 << 40, Len: 7}, {Start: ^format.Block(0) - 1, Len: 1},
	} {
		b := cowio.EncodeExtentRecord([]byte("prefix"), r)
		if len(b) != 6+cowio.ExtentRecordSize || string(b[:6]) != "prefix" {
			t.Fatalf("EncodeExtentRecord(%+v) = %x", r, b)
		}
		got, err := cowio.DecodeExtentRecord(b[6:])
		if err != nil || got != r {
			t.Fatalf("DecodeExtentRecord(Encode(%+v)) = %+v, %v", r, got, err)
		}
	}
	valid := cowio.EncodeExtentRecord(nil, cowio.ExtentRecord{Start: 5, Len: 3})
	bad := map[string][]byte{
		"empty":     nil,
		"short":     valid[:19],
		"long":      append(bytes.Clone(valid), 0),
		"block 0":   patch(valid, 0, 0),
		"zero len":  patch(valid, 8, 0),
		"overflow":  raw(^uint64(0)-1, 3, 0),
		"flags":     patch(valid, 16, 1),
		"high flag": patch(valid, 19, 0x80),
	}
	for name, b := range bad {
		if _, err := cowio.DecodeExtentRecord(b); !errors.Is(err, cowio.ErrBadExtentRecord) || !errors.Is(err, format.ErrCorrupt) {
			t.Errorf("%s: DecodeExtentRecord(%x) = %v, want ErrBadExtentRecord", name, b, err)
		}
	}
}

// TestEncodeExtentRecordRefusesInvalid checks that encoding a record the
// decoder would refuse panics instead of persisting it.
func TestEncodeExtentRecordRefusesInvalid(t *testing.T) {
	for _, r := range []cowio.ExtentRecord{{Start: 0, Len: 1}, {Start: 1, Len: 0}, {Start: 2, Len: ^uint64(0)}, {Start: 1, Len: 1, Flags: 4}} {
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

// raw encodes a record without validating it.
func raw(start, n uint64, flags uint32) []byte {
	b := binary.LittleEndian.AppendUint64(nil, start)
	b = binary.LittleEndian.AppendUint64(b, n)
	return binary.LittleEndian.AppendUint32(b, flags)
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
// whatever it accepts re-encodes to the same bytes, and that whatever it
// refuses is reported as corruption.
func FuzzDecodeExtentRecord(f *testing.F) {
	f.Add(cowio.EncodeExtentRecord(nil, cowio.ExtentRecord{Start: 5, Len: 3}))
	f.Add(cowio.EncodeExtentRecord(nil, cowio.ExtentRecord{Start: 1 << 50, Len: 1 << 20}))
	f.Add(make([]byte, cowio.ExtentRecordSize))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := cowio.DecodeExtentRecord(b)
		if err != nil {
			if !errors.Is(err, format.ErrCorrupt) {
				t.Fatalf("refused with %v, not corruption", err)
			}
			return
		}
		if again := cowio.EncodeExtentRecord(nil, r); !bytes.Equal(again, b) {
			t.Fatalf("decoded %x as %+v, which encodes to %x", b, r, again)
		}
	})
}

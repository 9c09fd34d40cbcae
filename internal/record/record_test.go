package record_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/internal/record"
	"pgregory.net/rapid"
)

// genOp draws a valid operation of any kind, with only its kind's fields
// set, as Decode returns them.
func genOp(t *rapid.T) record.Op {
	key := func(label string) []byte {
		return rapid.SliceOfN(rapid.Byte(), 1, record.KeySizeMax).Draw(t, label)
	}
	name := rapid.StringMatching(`[a-z0-9._:@-]{1,40}`).Draw(t, "name")
	inode := format.InodeID(rapid.Uint64().Draw(t, "inode"))
	size := rapid.Int64Min(0).Draw(t, "size")
	value := rapid.SliceOfN(rapid.Byte(), 0, 300).Draw(t, "value")
	switch k := record.Kind(rapid.IntRange(1, 10).Draw(t, "kind")); k {
	case record.Put:
		return record.Op{Kind: k, Key: key("key"), Inode: inode, Size: size, Flags: rapid.Uint8().Draw(t, "flags"), Value: value}
	case record.Delete:
		return record.Op{Kind: k, Key: key("key")}
	case record.Remap:
		sums := rapid.SliceOfN(rapid.Uint64(), 0, 64).Draw(t, "sums")
		return record.Op{Kind: k, Inode: inode, FileBlock: rapid.Uint64().Draw(t, "fb"),
			Phys: format.Block(rapid.Uint64().Draw(t, "phys")), Len: uint64(len(sums)), Sums: sums}
	case record.Truncate:
		return record.Op{Kind: k, Key: key("key"), Inode: inode, Size: size}
	case record.DeferredWrite:
		return record.Op{Kind: k, Inode: inode, Off: rapid.Int64Min(0).Draw(t, "off"), Value: value}
	case record.Clone:
		from := rapid.SampledFrom([]string{"", name}).Draw(t, "from")
		return record.Op{Kind: k, Key: key("src"), Dst: key("dst"), Name: from, Inode: inode}
	case record.Snapshot:
		return record.Op{Kind: k, Name: name, Time: rapid.Int64().Draw(t, "time")}
	case record.DropProgress:
		return record.Op{Kind: k, Name: name, Value: value}
	default:
		return record.Op{Kind: k, Name: name}
	}
}

// normalize makes empty slices nil so that encoded and decoded batches
// compare equal regardless of how an empty field was spelled.
func normalize(ops []record.Op) []record.Op {
	out := append([]record.Op(nil), ops...)
	for i := range out {
		for _, b := range []*[]byte{&out[i].Key, &out[i].Dst, &out[i].Value} {
			if len(*b) == 0 {
				*b = nil
			}
		}
		if len(out[i].Sums) == 0 {
			out[i].Sums = nil
		}
	}
	return out
}

// TestRoundTrip checks that every valid batch decodes to what was encoded,
// and that appending to a non-empty buffer leaves its prefix alone.
func TestRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ops := rapid.SliceOfN(rapid.Custom(genOp), 1, 20).Draw(t, "ops")
		prefix := []byte("prefix")
		enc, err := record.Append(append([]byte(nil), prefix...), ops)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if !bytes.HasPrefix(enc, prefix) {
			t.Fatalf("Append clobbered the prefix")
		}
		got, err := record.Decode(enc[len(prefix):])
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(ops)) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, ops)
		}
	})
}

// TestAppendRefusesInvalid checks that Append refuses each broken limit and
// appends nothing, so that nothing it writes can fail to decode.
func TestAppendRefusesInvalid(t *testing.T) {
	long := bytes.Repeat([]byte{'k'}, record.KeySizeMax+1)
	cases := map[string][]record.Op{
		"empty batch":     nil,
		"unknown kind":    {{Kind: 0}},
		"kind past end":   {{Kind: 200}},
		"empty key":       {{Kind: record.Delete}},
		"long key":        {{Kind: record.Delete, Key: long}},
		"empty dst":       {{Kind: record.Clone, Key: []byte("a")}},
		"long name":       {{Kind: record.Snapshot, Name: string(long[:record.NameSizeMax+1])}},
		"empty name":      {{Kind: record.Restore}},
		"negative size":   {{Kind: record.Truncate, Key: []byte("a"), Size: -1}},
		"negative offset": {{Kind: record.DeferredWrite, Off: -4}},
		"sums/len differ": {{Kind: record.Remap, Len: 2, Sums: []uint64{1}}},
		"one bad of two":  {{Kind: record.Delete, Key: []byte("a")}, {Kind: record.Delete}},
	}
	for name, ops := range cases {
		dst := []byte("x")
		out, err := record.Append(dst, ops)
		if err == nil {
			t.Errorf("%s: Append accepted it", name)
		}
		if !bytes.Equal(out, dst) {
			t.Errorf("%s: Append wrote %d bytes despite the error", name, len(out)-len(dst))
		}
	}
}

// TestDecodeDamage checks that each kind of malformed batch is refused
// with an error wrapping format.ErrCorrupt.
func TestDecodeDamage(t *testing.T) {
	good, err := record.Append(nil, []record.Op{
		{Kind: record.Put, Key: []byte("key"), Inode: 7, Size: 3, Value: []byte("abc")},
		{Kind: record.Remap, Inode: 7, FileBlock: 0, Phys: 100, Len: 2, Sums: []uint64{1, 2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":          {},
		"bad version":    append([]byte{9}, good[1:]...),
		"zero ops":       {record.Version, 0},
		"hostile count":  {record.Version, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"unknown kind":   {record.Version, 1, 77},
		"trailing bytes": append(append([]byte(nil), good...), 0),
		"hostile length": {record.Version, 1, byte(record.Delete), 0xff, 0xff, 0xff, 0xff, 0x0f},
		"long key":       append([]byte{record.Version, 1, byte(record.Delete), 0x81, 0x08}, bytes.Repeat([]byte{1}, 1025)...),
		"hostile sums":   {record.Version, 1, byte(record.Remap), 1, 0, 5, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"empty key":      {record.Version, 1, byte(record.Delete), 0},
	}
	for i := 1; i < len(good); i++ {
		cases["truncated at "+string(rune('0'+i%10))+"/"+string(rune('a'+i/10))] = good[:i]
	}
	for name, b := range cases {
		if _, err := record.Decode(b); !errors.Is(err, format.ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
}

// FuzzDecode checks that Decode never panics, and that whatever it accepts
// re-encodes to exactly the same bytes (the encoding is canonical).
func FuzzDecode(f *testing.F) {
	seeds := [][]record.Op{
		{{Kind: record.Put, Key: []byte("k"), Inode: 1, Size: 1, Value: []byte("v")}},
		{{Kind: record.Remap, Inode: 3, FileBlock: 10, Phys: 99, Len: 1, Sums: []uint64{42}}},
		{{Kind: record.Clone, Key: []byte("a"), Dst: []byte("b"), Name: "snap", Inode: 9}},
		{{Kind: record.Snapshot, Name: "s1", Time: 1700000000}, {Kind: record.Restore, Name: "s1"}},
		{{Kind: record.DeferredWrite, Inode: 2, Off: 4095, Value: []byte("xyz")}, {Kind: record.Delete, Key: []byte("q")}},
	}
	for _, ops := range seeds {
		b, err := record.Append(nil, ops)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ops, err := record.Decode(b)
		if err != nil {
			if !errors.Is(err, format.ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		re, err := record.Append(nil, ops)
		if err != nil {
			t.Fatalf("decoded batch does not re-encode: %v", err)
		}
		if !bytes.Equal(re, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, re)
		}
	})
}

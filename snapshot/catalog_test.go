package snapshot_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/snapshot"
	"pgregory.net/rapid"
)

// nameGen draws valid snapshot names.
var nameGen = rapid.StringOfN(rapid.SampledFrom([]rune("abcXYZ019-_.:@")), 1, snapshot.NameMax, -1)

// TestKeysRoundTrip checks that every kind of catalog key parses back to
// what made it, and that the kinds sort apart: the live root first, then
// the drops, then the snapshots by name.
func TestKeysRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		name := nameGen.Draw(t, "name")
		id := rapid.Uint64Min(1).Draw(t, "id")
		if kind, n, d, err := snapshot.ParseKey(snapshot.LiveKey); err != nil || kind != snapshot.KeyLive || n != "" || d != 0 {
			t.Fatalf("live key: %v %q %d %v", kind, n, d, err)
		}
		sk := snapshot.SnapshotKey(name)
		if kind, n, d, err := snapshot.ParseKey(sk); err != nil || kind != snapshot.KeySnapshot || n != name || d != 0 {
			t.Fatalf("snapshot key of %q: %v %q %d %v", name, kind, n, d, err)
		}
		dk := snapshot.DropKey(id)
		if kind, n, d, err := snapshot.ParseKey(dk); err != nil || kind != snapshot.KeyDrop || n != "" || d != id {
			t.Fatalf("drop key of %d: %v %q %d %v", id, kind, n, d, err)
		}
		if bytes.Compare(snapshot.LiveKey, dk) >= 0 || bytes.Compare(dk, sk) >= 0 {
			t.Fatalf("keys out of order: %x %x %x", snapshot.LiveKey, dk, sk)
		}
		other := rapid.Uint64Min(1).Draw(t, "other")
		if c := bytes.Compare(dk, snapshot.DropKey(other)); (c < 0) != (id < other) || (c == 0) != (id == other) {
			t.Fatalf("drop keys of %d and %d compare %d", id, other, c)
		}
	})
}

// TestParseKeyRejects checks that keys of no known shape are corruption.
func TestParseKeyRejects(t *testing.T) {
	for name, k := range map[string][]byte{
		"empty":       nil,
		"two zeros":   {0, 0},
		"bare s":      {'s'},
		"bad name":    []byte("sa b"),
		"long name":   append([]byte{'s'}, bytes.Repeat([]byte{'a'}, snapshot.NameMax+1)...),
		"short drop":  {'d', 1, 2},
		"long drop":   append(snapshot.DropKey(1), 0),
		"drop zero":   append([]byte{'d'}, make([]byte, 8)...),
		"unknown":     []byte("x"),
		"upper S":     []byte("Sname"),
		"bare d":      {'d'},
		"name prefix": {'s', 0},
	} {
		kind, _, _, err := snapshot.ParseKey(k)
		if !errors.Is(err, format.ErrMalformed) || kind != 0 {
			t.Errorf("%s: got %v, %v; want ErrMalformed", name, kind, err)
		}
	}
}

// TestDropKeyZeroPanics checks the assertion that a drop ID is an LSN.
func TestDropKeyZeroPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("DropKey(0) did not panic")
		}
	}()
	snapshot.DropKey(0)
}

// recordGen draws valid root records.
var recordGen = rapid.Custom(func(t *rapid.T) snapshot.Record {
	r := snapshot.Record{
		Kind:    rapid.SampledFrom([]snapshot.RootKind{snapshot.RootLive, snapshot.RootSnapshot, snapshot.RootDropping}).Draw(t, "kind"),
		Created: rapid.Int64().Draw(t, "created"),
	}
	if r.Kind == snapshot.RootDropping {
		r.Cursor = rapid.SliceOfN(rapid.Byte(), 1, 200).Draw(t, "cursor")
	} else if rapid.Bool().Draw(t, "non-empty") {
		r.Root = format.Ref{Block: format.Block(rapid.Uint64Min(format.SuperblockCopies).Draw(t, "block")), Sum: rapid.Uint64().Draw(t, "sum")}
	}
	return r
})

func recordsEqual(a, b snapshot.Record) bool {
	return a.Kind == b.Kind && a.Root == b.Root && a.Created == b.Created && bytes.Equal(a.Cursor, b.Cursor)
}

// TestRecordRoundTrip checks that every valid record decodes to itself,
// and that a decoded cursor is a copy: overwriting the encoding leaves it.
func TestRecordRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := recordGen.Draw(t, "record")
		b := snapshot.AppendRecord([]byte("prefix"), r)[len("prefix"):]
		if want := snapshot.RecordHeaderSize + len(r.Cursor); len(b) != want {
			t.Fatalf("%d bytes, want %d", len(b), want)
		}
		got, err := snapshot.DecodeRecord(b)
		if err != nil || !recordsEqual(got, r) {
			t.Fatalf("got %+v, %v; want %+v", got, err, r)
		}
		clear(b)
		if !recordsEqual(got, r) {
			t.Fatalf("decoded record changed with its encoding: %+v", got)
		}
	})
}

// TestRecordCompatible checks that live and snapshot records are the
// 25-byte records written before dropping records existed, byte for byte:
// kind, root block, root checksum, created, little-endian.
func TestRecordCompatible(t *testing.T) {
	old := []byte{2}
	old = binary.LittleEndian.AppendUint64(old, 9)
	old = binary.LittleEndian.AppendUint64(old, 77)
	old = binary.LittleEndian.AppendUint64(old, 1234)
	r := snapshot.Record{Kind: snapshot.RootSnapshot, Root: format.Ref{Block: 9, Sum: 77}, Created: 1234}
	if got := snapshot.AppendRecord(nil, r); !bytes.Equal(got, old) {
		t.Fatalf("encoded %x, want %x", got, old)
	}
	old[0] = 1
	if got, err := snapshot.DecodeRecord(old); err != nil || got.Kind != snapshot.RootLive || got.Root != r.Root || got.Created != 1234 || got.Cursor != nil {
		t.Fatalf("decoded %+v, %v", got, err)
	}
}

// TestDecodeRecordRejects checks each kind of bad record.
func TestDecodeRecordRejects(t *testing.T) {
	live := snapshot.AppendRecord(nil, snapshot.Record{Kind: snapshot.RootLive, Root: format.Ref{Block: 9, Sum: 77}, Created: 5})
	drop := snapshot.AppendRecord(nil, snapshot.Record{Kind: snapshot.RootDropping, Created: 5, Cursor: []byte{1, 2, 3}})
	with := func(b []byte, i int, v byte) []byte {
		b = bytes.Clone(b)
		b[i] = v
		return b
	}
	cases := map[string]struct {
		b    []byte
		kind error
	}{
		"empty":           {nil, format.ErrTruncated},
		"short":           {live[:24], format.ErrTruncated},
		"kind 0":          {with(live, 0, 0), format.ErrMalformed},
		"kind 4":          {with(live, 0, 4), format.ErrMalformed},
		"live tail":       {append(bytes.Clone(live), 0), format.ErrMalformed},
		"sum, no block":   {append(append([]byte{1}, make([]byte, 8)...), live[9:]...), format.ErrMalformed},
		"superblock root": {append(append([]byte{2, 1}, make([]byte, 7)...), live[9:]...), format.ErrMalformed},
		"drop no cursor":  {drop[:snapshot.RecordHeaderSize], format.ErrMalformed},
		"drop with root":  {with(drop, 1, 9), format.ErrMalformed},
		"drop with sum":   {with(drop, 9, 1), format.ErrMalformed},
	}
	for name, c := range cases {
		_, err := snapshot.DecodeRecord(c.b)
		var ce *format.CorruptError
		if !errors.Is(err, c.kind) || !errors.As(err, &ce) || ce.Where != "catalog root record" {
			t.Errorf("%s: got %v, want %v at the catalog root record", name, err, c.kind)
		}
	}
}

// TestAppendRecordPanics checks the encoder's assertion on records no
// decoder accepts.
func TestAppendRecordPanics(t *testing.T) {
	for name, r := range map[string]snapshot.Record{
		"kind 0":         {},
		"kind 4":         {Kind: 4},
		"sum, no block":  {Kind: snapshot.RootLive, Root: format.Ref{Sum: 1}},
		"superblock":     {Kind: snapshot.RootLive, Root: format.Ref{Block: 1}},
		"live cursor":    {Kind: snapshot.RootLive, Cursor: []byte{1}},
		"drop no cursor": {Kind: snapshot.RootDropping},
		"drop with root": {Kind: snapshot.RootDropping, Root: format.Ref{Block: 9}, Cursor: []byte{1}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			snapshot.AppendRecord(nil, r)
		}()
	}
}

// FuzzDecodeRecord checks that the root record decoder never panics, that
// what it accepts re-encodes to the same bytes, and that it decodes what
// it re-encodes to the same record.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(snapshot.AppendRecord(nil, snapshot.Record{Kind: snapshot.RootLive, Root: format.Ref{Block: 9, Sum: 77}, Created: 1234}))
	f.Add(snapshot.AppendRecord(nil, snapshot.Record{Kind: snapshot.RootSnapshot, Created: -1}))
	f.Add(snapshot.AppendRecord(nil, snapshot.Record{Kind: snapshot.RootDropping, Created: 7, Cursor: []byte("cursor bytes")}))
	f.Add([]byte{})
	f.Add(make([]byte, snapshot.RecordHeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := snapshot.DecodeRecord(b)
		if err != nil {
			if !errors.Is(err, format.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		enc := snapshot.AppendRecord(nil, r)
		if !bytes.Equal(enc, b) {
			t.Fatalf("record %x re-encodes to %x", b, enc)
		}
		if again, err := snapshot.DecodeRecord(enc); err != nil || !recordsEqual(again, r) {
			t.Fatalf("re-encoded record decodes to %+v, %v; want %+v", again, err, r)
		}
	})
}

// FuzzParseKey checks that the catalog key parser never panics and that
// what it accepts is what the key builders make.
func FuzzParseKey(f *testing.F) {
	f.Add(snapshot.LiveKey)
	f.Add(snapshot.SnapshotKey("nightly"))
	f.Add(snapshot.DropKey(42))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, k []byte) {
		kind, name, id, err := snapshot.ParseKey(k)
		var want []byte
		switch {
		case err != nil:
			if !errors.Is(err, format.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		case kind == snapshot.KeyLive:
			want = snapshot.LiveKey
		case kind == snapshot.KeySnapshot:
			want = snapshot.SnapshotKey(name)
		case kind == snapshot.KeyDrop:
			want = snapshot.DropKey(id)
		default:
			t.Fatalf("kind %v", kind)
		}
		if !bytes.Equal(want, k) {
			t.Fatalf("key %x parses to %v %q %d, which is %x", k, kind, name, id, want)
		}
	})
}

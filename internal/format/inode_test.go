package format_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cowdb/cowdb/internal/format"
	"pgregory.net/rapid"
)

// TestInodeRoundTrip checks that every valid inode record, inline or not,
// decodes to what was encoded.
func TestInodeRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		inline := rapid.Bool().Draw(t, "inline")
		n := format.Inode{ID: format.InodeID(rapid.Uint64Min(1).Draw(t, "id"))}
		if inline {
			n.Flags = format.InodeInline
			n.Value = rapid.SliceOfN(rapid.Byte(), 0, 1024).Draw(t, "value")
			n.Size = int64(len(n.Value))
		} else {
			n.Size = rapid.Int64Min(0).Draw(t, "size")
		}
		got, err := format.DecodeInode(format.AppendInode(nil, n))
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != n.ID || got.Size != n.Size || got.Flags != n.Flags || !bytes.Equal(got.Value, n.Value) {
			t.Fatalf("got %+v, want %+v", got, n)
		}
	})
}

// TestExtentKeyRoundTrip checks extent keys round-trip.
func TestExtentKeyRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		id := format.InodeID(rapid.Uint64Min(1).Draw(t, "id"))
		fb := rapid.Uint64().Draw(t, "fb")
		gid, gfb, ok := format.ParseExtentKey(format.ExtentKey(nil, id, fb))
		if !ok || gid != id || gfb != fb {
			t.Fatalf("extent key round trip: %v %v %v", gid, gfb, ok)
		}
	})
}

// TestInodeDecodeRejects checks that each kind of damage is reported as
// corruption.
func TestInodeDecodeRejects(t *testing.T) {
	good := format.AppendInode(nil, format.Inode{ID: 7, Flags: format.InodeInline, Size: 3, Value: []byte("abc")})
	bad := map[string][]byte{
		"short":     good[:5],
		"flags":     append([]byte{0x82}, good[1:]...),
		"zero id":   append(append([]byte{1}, make([]byte, 8)...), good[9:]...),
		"size":      good[:len(good)-1],
		"blob tail": append(format.AppendInode(nil, format.Inode{ID: 1, Size: 5}), 'z'),
		"neg size":  format.AppendInode(nil, format.Inode{ID: 1, Size: -1}),
	}
	for name, b := range bad {
		if _, err := format.DecodeInode(b); !errors.Is(err, format.ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
}

// FuzzDecodeInode checks that the inode record decoder never panics and
// that whatever they accept re-encodes to the same bytes.
func FuzzDecodeInode(f *testing.F) {
	f.Add(format.AppendInode(nil, format.Inode{ID: 7, Flags: format.InodeInline, Size: 3, Value: []byte("abc")}))
	f.Add(format.AppendInode(nil, format.Inode{ID: 9, Size: 1 << 20}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := format.DecodeInode(b); err == nil {
			if !bytes.Equal(format.AppendInode(nil, n), b) {
				t.Fatalf("inode %x does not re-encode", b)
			}
		} else if !errors.Is(err, format.ErrCorrupt) {
			t.Fatalf("inode error %v does not wrap ErrCorrupt", err)
		}
	})
}

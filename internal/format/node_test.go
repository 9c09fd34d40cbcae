package format_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/cowdb/cowdb/internal/format"
)

func sampleLeaf() *format.Node {
	return &format.Node{
		Kind: format.NodeLeaf, Tree: 3, Epoch: 7,
		Keys:   [][]byte{[]byte("a"), []byte("b"), []byte("kzz")},
		Values: [][]byte{[]byte("1"), {}, bytes.Repeat([]byte("v"), 100)},
	}
}

func sampleBranch() *format.Node {
	return &format.Node{
		Kind: format.NodeBranch, Tree: 1, Level: 2, Epoch: 9,
		Keys:     [][]byte{[]byte("a"), []byte("m")},
		Children: []format.Ref{{Block: 5, Sum: 55}, {Block: 6, Sum: 66}},
	}
}

func encode(t testing.TB, n *format.Node, size int) []byte {
	t.Helper()
	b := make([]byte, size)
	if _, err := format.EncodeNode(b, n); err != nil {
		t.Fatalf("EncodeNode: %v", err)
	}
	return b
}

// TestNodeRoundTrip checks that leaves and branches decode to what was
// encoded, with the checksum EncodeNode reported, at every block size.
func TestNodeRoundTrip(t *testing.T) {
	for _, size := range []int{4096, 8192, 65536} {
		for _, n := range []*format.Node{sampleLeaf(), sampleBranch()} {
			b := make([]byte, size)
			sum, err := format.EncodeNode(b, n)
			if err != nil {
				t.Fatal(err)
			}
			got, err := format.DecodeNode(b)
			if err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
			if got.Sum != sum || got.Kind != n.Kind || got.Tree != n.Tree || got.Level != n.Level || got.Epoch != n.Epoch {
				t.Fatalf("header mismatch: %+v vs %+v", got, n)
			}
			if fmt.Sprint(got.Keys) != fmt.Sprint(n.Keys) || fmt.Sprint(got.Values) != fmt.Sprint(n.Values) ||
				fmt.Sprint(got.Children) != fmt.Sprint(n.Children) {
				t.Fatalf("entries mismatch: %+v vs %+v", got, n)
			}
		}
	}
}

// TestNodeMaxEntries checks the size rule the tree relies on: two entries
// with the longest key and value fit one node, a third does not, and a
// longer key or value is refused.
func TestNodeMaxEntries(t *testing.T) {
	for _, size := range []int{4096, 16384} {
		vmax := format.NodeValueMax(size)
		n := &format.Node{Kind: format.NodeLeaf}
		for i := range 3 {
			k := bytes.Repeat([]byte{byte('a' + i)}, format.NodeKeyMax)
			n.Keys = append(n.Keys, k)
			n.Values = append(n.Values, make([]byte, vmax))
		}
		two := &format.Node{Kind: format.NodeLeaf, Keys: n.Keys[:2], Values: n.Values[:2]}
		if _, err := format.EncodeNode(make([]byte, size), two); err != nil {
			t.Fatalf("two max entries at %d: %v", size, err)
		}
		if size == 4096 {
			if _, err := format.EncodeNode(make([]byte, size), n); !errors.Is(err, format.ErrNodeOverflow) {
				t.Fatalf("three max entries: %v", err)
			}
		}
		long := &format.Node{Kind: format.NodeLeaf, Keys: [][]byte{make([]byte, format.NodeKeyMax+1)}, Values: [][]byte{nil}}
		if _, err := format.EncodeNode(make([]byte, size), long); !errors.Is(err, format.ErrNodeOverflow) {
			t.Fatalf("long key: %v", err)
		}
		big := &format.Node{Kind: format.NodeLeaf, Keys: [][]byte{{1}}, Values: [][]byte{make([]byte, vmax+1)}}
		if _, err := format.EncodeNode(make([]byte, size), big); !errors.Is(err, format.ErrNodeOverflow) {
			t.Fatalf("long value: %v", err)
		}
	}
	if got := format.NodeValueMax(4096); got != 988 {
		t.Fatalf("NodeValueMax(4096) = %d, documented 988", got)
	}
}

// TestNodeEncodeRefusesBadNodes checks that the encoder refuses what the
// decoder would reject: unordered keys, empty nodes, wrong levels, child 0.
func TestNodeEncodeRefusesBadNodes(t *testing.T) {
	bad := []*format.Node{
		{Kind: format.NodeLeaf},
		{Kind: format.NodeLeaf, Keys: [][]byte{[]byte("b"), []byte("a")}, Values: [][]byte{nil, nil}},
		{Kind: format.NodeLeaf, Level: 1, Keys: [][]byte{[]byte("a")}, Values: [][]byte{nil}},
		{Kind: format.NodeBranch, Level: 0, Keys: [][]byte{[]byte("a")}, Children: []format.Ref{{Block: 3}}},
		{Kind: format.NodeBranch, Level: 1, Keys: [][]byte{[]byte("a")}, Children: []format.Ref{{}}},
		{Kind: 9, Keys: [][]byte{[]byte("a")}, Values: [][]byte{nil}},
		{Kind: format.NodeLeaf, Keys: [][]byte{{}}, Values: [][]byte{nil}},
	}
	for i, n := range bad {
		if _, err := format.EncodeNode(make([]byte, 4096), n); !errors.Is(err, format.ErrNodeOverflow) {
			t.Errorf("case %d: %v", i, err)
		}
	}
	if _, err := format.EncodeNode(make([]byte, 1000), sampleLeaf()); err == nil {
		t.Error("block size 1000 accepted")
	}
}

// TestNodeDecodeDetectsDamage checks that every single-bit flip of an
// encoded node, a zeroed block and a misplaced length are reported as
// ErrCorrupt, with the specific kind where one applies.
func TestNodeDecodeDetectsDamage(t *testing.T) {
	b := encode(t, sampleLeaf(), 4096)
	for bit := 0; bit < 8*4096; bit += 7 {
		c := bytes.Clone(b)
		c[bit/8] ^= 1 << (bit % 8)
		if _, err := format.DecodeNode(c); !errors.Is(err, format.ErrCorrupt) {
			t.Fatalf("bit %d flipped: %v", bit, err)
		}
	}
	if _, err := format.DecodeNode(make([]byte, 4096)); !errors.Is(err, format.ErrBadMagic) {
		t.Fatalf("zero block: %v", err)
	}
	if _, err := format.DecodeNode(b[:100]); !errors.Is(err, format.ErrTruncated) {
		t.Fatalf("short block: %v", err)
	}
	// A structurally bad node with a correct checksum: the used length
	// claims one byte less than the entries take.
	c := bytes.Clone(b)
	le := binary.LittleEndian
	le.PutUint32(c[12:], le.Uint32(c[12:])-1)
	le.PutUint64(c[24:], format.NodeSum(c))
	if _, err := format.DecodeNode(c); !errors.Is(err, format.ErrMalformed) {
		t.Fatalf("short used: %v", err)
	}
}

// FuzzDecodeNode checks that DecodeNode never panics, that every failure
// wraps ErrCorrupt, and that whatever it accepts re-encodes to the same
// bytes (accepted nodes are canonical). The input is the start of a
// 4096-byte block (the rest is zero), so inputs stay short and the fuzzer
// fast; with fixSum the checksum is made right, so mutations reach the
// structural checks behind it.
func FuzzDecodeNode(f *testing.F) {
	for _, n := range []*format.Node{sampleLeaf(), sampleBranch()} {
		b := encode(f, n, 4096)
		used := format.NodeHeaderSize + int(binary.LittleEndian.Uint32(b[12:]))
		f.Add(b[:used], false)
		f.Add(b[:used], true)
	}
	f.Add([]byte{}, false)
	f.Add([]byte{1, 2, 3}, true)
	f.Fuzz(func(t *testing.T, in []byte, fixSum bool) {
		b := make([]byte, 4096)
		copy(b, in)
		if fixSum {
			binary.LittleEndian.PutUint64(b[24:], format.NodeSum(b))
		}
		n, err := format.DecodeNode(b)
		if err != nil {
			if !errors.Is(err, format.ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		out := make([]byte, len(b))
		if _, err := format.EncodeNode(out, &n); err != nil {
			t.Fatalf("accepted node does not re-encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatal("accepted node re-encodes differently")
		}
	})
}

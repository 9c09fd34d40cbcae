package vfs_test

import (
	"bytes"
	"testing"

	"github.com/cowdb/cowdb/vfs"
)

// faultFile writes blocks 0..7 of a file through fs, one 4096-byte write
// each filled with its block number plus 1, and returns the file's content
// read back from mem, the image underneath.
func faultFile(t *testing.T, fs vfs.FS, mem *vfs.MemFS) []byte {
	t.Helper()
	f, err := fs.OpenFile("/f", vfs.Create)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(8 * 4096); err != nil {
		t.Fatal(err)
	}
	for b := range 8 {
		n, err := f.WriteAt(bytes.Repeat([]byte{byte(b + 1)}, 4096), int64(b)*4096)
		if n != 4096 || err != nil {
			t.Fatalf("write %d: %d, %v", b, n, err)
		}
	}
	g, err := mem.OpenFile("/f", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	got := make([]byte, 8*4096)
	if _, err := g.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	return got
}

// blockOf returns the fill byte of block b of content, or -1 if the block
// is not uniform.
func blockOf(content []byte, b int) int {
	blk := content[b*4096 : (b+1)*4096]
	if !bytes.Equal(blk, bytes.Repeat(blk[:1], 4096)) {
		return -1
	}
	return int(blk[0])
}

// TestStorageFaultsLost checks that a lost write is reported successful,
// changes nothing, is recorded, and that only the chosen write is lost.
func TestStorageFaultsLost(t *testing.T) {
	mem := vfs.NewMem()
	sfs := vfs.WithStorageFaults(mem, vfs.StorageFaults{Kind: vfs.LostWrite, Path: "/f", Index: 3})
	got := faultFile(t, sfs, mem)
	for b := range 8 {
		want := b + 1
		if b == 2 {
			want = 0 // the truncation's zeros
		}
		if g := blockOf(got, b); g != want {
			t.Fatalf("block %d holds %d, want %d", b, g, want)
		}
	}
	fs := sfs.Faults()
	if sfs.Writes() != 8 || len(fs) != 1 {
		t.Fatalf("writes %d, faults %v", sfs.Writes(), fs)
	}
	if f := fs[0]; f.Kind != vfs.LostWrite || f.Index != 3 || f.Off != 2*4096 || f.Len != 4096 || f.Target != -1 || f.Head[0] != 3 {
		t.Fatalf("fault recorded as %+v", f)
	}
}

// TestStorageFaultsMisdirected checks that a misdirected write lands whole
// at another aligned offset inside the file, leaving its own range as it
// was, for many seeds.
func TestStorageFaultsMisdirected(t *testing.T) {
	for seed := range int64(50) {
		mem := vfs.NewMem()
		idx := 1 + seed%8
		sfs := vfs.WithStorageFaults(mem, vfs.StorageFaults{Kind: vfs.MisdirectedWrite, Index: idx, Seed: seed})
		got := faultFile(t, sfs, mem)
		fs := sfs.Faults()
		if len(fs) != 1 || fs[0].Kind != vfs.MisdirectedWrite {
			t.Fatalf("seed %d: faults %+v", seed, fs)
		}
		f := fs[0]
		if f.Target < 0 || f.Target%4096 != 0 || f.Target == f.Off || f.Target+f.Len > 8*4096 {
			t.Fatalf("seed %d: target %d for write at %d", seed, f.Target, f.Off)
		}
		// Replay the writes on a model: the faulted one lands on the victim.
		var want [8]int
		for b := range 8 {
			if b == int(idx-1) {
				want[f.Target/4096] = b + 1
			} else {
				want[b] = b + 1
			}
		}
		for b := range 8 {
			if g := blockOf(got, b); g != want[b] {
				t.Fatalf("seed %d: block %d holds %d, want %d (fault %+v)", seed, b, g, want[b], f)
			}
		}
	}
}

// TestStorageFaultsMisdirectedNoRoom checks that a misdirected write with
// nowhere else to go in its file is lost instead, and recorded so.
func TestStorageFaultsMisdirectedNoRoom(t *testing.T) {
	mem := vfs.NewMem()
	sfs := vfs.WithStorageFaults(mem, vfs.StorageFaults{Kind: vfs.MisdirectedWrite, Index: 1})
	f, err := sfs.OpenFile("/g", vfs.Create)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := f.WriteAt(make([]byte, 4096), 0); n != 4096 || err != nil {
		t.Fatal(n, err)
	}
	if fi, _ := mem.Stat("/g"); fi.Size != 0 {
		t.Fatalf("size %d after a lost write", fi.Size)
	}
	if fs := sfs.Faults(); len(fs) != 1 || fs[0].Kind != vfs.LostWrite {
		t.Fatalf("faults %+v", fs)
	}
}

// TestStorageFaultsProbability checks that Prob faults about the share of
// writes it says, reproducibly from Seed, only on the matching path, and
// that Clear stops it.
func TestStorageFaultsProbability(t *testing.T) {
	run := func() (int, []vfs.StorageFault) {
		mem := vfs.NewMem()
		sfs := vfs.WithStorageFaults(mem, vfs.StorageFaults{Path: "/p", Prob: 0.25, Seed: 9})
		for _, name := range []string{"/p", "/q"} {
			f, err := sfs.OpenFile(name, vfs.Create)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 400 {
				if _, err := f.WriteAt([]byte{1}, int64(i)); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
		}
		return int(sfs.Writes()), sfs.Faults()
	}
	n, a := run()
	_, b := run()
	if n != 400 {
		t.Fatalf("%d matching writes, want 400 (only /p matches)", n)
	}
	if len(a) < 60 || len(a) > 140 {
		t.Fatalf("%d of 400 writes faulted at Prob 0.25", len(a))
	}
	if len(a) != len(b) || a[0].Index != b[0].Index {
		t.Fatal("same seed, different faults")
	}
	mem := vfs.NewMem()
	sfs := vfs.WithStorageFaults(mem, vfs.StorageFaults{Prob: 1})
	sfs.Clear()
	f, err := sfs.OpenFile("/p", vfs.Create)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{1}, 0); err != nil {
		t.Fatal(err)
	}
	if fi, _ := mem.Stat("/p"); fi.Size != 1 || len(sfs.Faults()) != 0 {
		t.Fatal("write faulted after Clear")
	}
}

// TestStorageFaultsMatch checks that Match narrows both the count and the
// choice of the faulted write to the writes it accepts.
func TestStorageFaultsMatch(t *testing.T) {
	mem := vfs.NewMem()
	odd := func(off int64, p []byte) bool { return (off/4096)%2 == 1 }
	sfs := vfs.WithStorageFaults(mem, vfs.StorageFaults{Index: 2, Match: odd})
	got := faultFile(t, sfs, mem)
	for b := range 8 {
		want := b + 1
		if b == 3 { // the second odd block
			want = 0
		}
		if g := blockOf(got, b); g != want {
			t.Fatalf("block %d holds %d, want %d", b, g, want)
		}
	}
	if sfs.Writes() != 4 {
		t.Fatalf("%d matching writes, want 4", sfs.Writes())
	}
}

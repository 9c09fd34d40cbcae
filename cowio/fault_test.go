package cowio_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/vfs"
)

// TestWriteNewIOError fails the k-th WriteAt of a multi-piece WriteNew on
// fragmented space, for k = 1, 2, ... until no fault fires, and checks each
// time that WriteNew fails with the injected EIO naming a file block, that
// every staging block is released (the space is exactly as before), that no
// byte outside the failed write's staging blocks changed (an earlier value
// still reads back), and that the Writer works again once the device does.
func TestWriteNewIOError(t *testing.T) {
	for _, inFlight := range []int{1, 4} {
		mem := vfs.NewMem()
		efs := vfs.WithErrors(mem, nil)
		f, err := efs.OpenFile("data", vfs.Create|vfs.Direct)
		if err != nil {
			t.Fatal(err)
		}
		space := newFakeSpace(1024, 3)
		w := newWriter(t, f, space, &cowio.Options{IOSize: 2 * bs, InFlight: inFlight})
		rng := rand.New(rand.NewPCG(13, uint64(inFlight)))
		old := randBytes(rng, 5*bs+1)
		oldMap, err := w.WriteNew(old, 0)
		if err != nil {
			t.Fatal(err)
		}
		space.commit(t, oldMap)
		p := randBytes(rng, 20*bs+3)
		for k := int64(1); ; k++ {
			before, image := space.snapshot(), fileImage(t, mem)
			fault := &vfs.Fault{Kind: vfs.OpWrite, Index: k}
			efs.SetInjector(fault)
			m, err := w.WriteNew(p, 0)
			efs.SetInjector(nil)
			if fault.Fired() == 0 {
				if err != nil {
					t.Fatalf("k=%d: no fault fired but WriteNew = %v", k, err)
				}
				checkMapping(t, m, p)
				readAll(t, w, m, p)
				if k < 2 {
					t.Fatal("the write never reached the device")
				}
				break
			}
			if !errors.Is(err, vfs.ErrIO) || !errors.Is(err, vfs.ErrInjected) || !strings.Contains(err.Error(), "file block") {
				t.Fatalf("k=%d: WriteNew = %v, want the injected EIO naming a file block", k, err)
			}
			if len(m.Entries) != 0 {
				t.Fatalf("k=%d: a failed WriteNew returned a mapping", k)
			}
			if after := space.snapshot(); !slices.Equal(before, after) {
				t.Fatalf("k=%d: the space changed across a failed WriteNew", k)
			}
			checkUnchangedOutside(t, image, fileImage(t, mem), space.lastExtsBlocks())
			readAll(t, w, oldMap, old)
		}
		space.check(t)
		f.Close()
	}
}

// fileImage returns the current content of the MemFS data file.
func fileImage(t *testing.T, mem *vfs.MemFS) []byte {
	f, err := mem.OpenFile("data", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, fi.Size)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// checkUnchangedOutside fails t if after differs from before anywhere but
// in the given blocks.
func checkUnchangedOutside(t *testing.T, before, after []byte, staged map[int64]bool) {
	t.Helper()
	for b := int64(0); b*bs < int64(max(len(before), len(after))); b++ {
		if staged[b] {
			continue
		}
		x, y := blockOf(before, b), blockOf(after, b)
		if !bytes.Equal(x, y) {
			t.Fatalf("block %d changed by a failed WriteNew", b)
		}
	}
}

// blockOf returns block b of img, zero-extended (an unwritten tail reads as
// zeros).
func blockOf(img []byte, b int64) []byte {
	out := make([]byte, bs)
	if b*bs < int64(len(img)) {
		copy(out, img[b*bs:])
	}
	return out
}

// lastExtsBlocks returns the blocks of the last allocation.
func (s *fakeSpace) lastExtsBlocks() map[int64]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int64]bool{}
	for _, e := range s.lastExts {
		for b := e.Start; b < e.End(); b++ {
			out[int64(b)] = true
		}
	}
	return out
}

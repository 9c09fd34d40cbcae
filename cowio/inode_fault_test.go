package cowio_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/vfs"
)

// TestInodeWriteAtIOError fails the k-th data write of a multi-piece
// WriteAt over a committed blob, for k = 1, 2, ... until no fault fires,
// and checks each time that WriteAt fails with the injected EIO, that the
// blob reads back unchanged, that the write left nothing in flight and no
// staging block outside the hint's reservation (nothing leaked), and that
// the next WriteAt succeeds once the device does. It runs with the CoW
// extent-size hint on (so the failing write takes reserved blocks too) and
// off, and with one and several I/Os in flight.
func TestInodeWriteAtIOError(t *testing.T) {
	for _, c := range []struct{ chunk, inFlight int }{{1, 1}, {1, 4}, {8, 1}, {8, 4}} {
		t.Run(fmt.Sprintf("cowextsize=%d/inflight=%d", c.chunk, c.inFlight), func(t *testing.T) {
			efs := vfs.WithErrors(vfs.NewMem(), nil)
			f, err := efs.OpenFile("data", vfs.Create|vfs.Direct)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			space := newFakeSpace(4096, 3)
			w := newWriter(t, f, space, &cowio.Options{IOSize: 2 * bs, InFlight: c.inFlight})
			st := &testStore{space: space}
			ino := newInode(t, w, 1, uint64(c.chunk))
			rng := rand.New(rand.NewPCG(21, uint64(c.chunk)))
			model := randBytes(rng, 30*bs)
			r, err := ino.WriteAt(model, 0)
			if err != nil {
				t.Fatal(err)
			}
			st.commit(t, ino, r)
			// Take part of the reservation, so the failing write both uses
			// reserved blocks and allocates.
			r, err = ino.WriteAt(model[:bs], 33*bs)
			if err != nil {
				t.Fatal(err)
			}
			st.commit(t, ino, r)
			model = append(model, make([]byte, 3*bs)...)
			model = append(model, model[:bs]...)
			p := randBytes(rng, 11*bs)
			for k := int64(1); ; k++ {
				fault := &vfs.Fault{Kind: vfs.OpWrite, Index: k}
				efs.SetInjector(fault)
				r, err := ino.WriteAt(p, 28*bs)
				efs.SetInjector(nil)
				if fault.Fired() == 0 {
					if err != nil {
						t.Fatalf("k=%d: no fault fired but WriteAt = %v", k, err)
					}
					st.commit(t, ino, r)
					model = append(model, make([]byte, 39*bs-len(model))...)
					copy(model[28*bs:], p)
					checkInode(t, ino, model)
					if k < 3 {
						t.Fatal("the write never reached the device in pieces")
					}
					break
				}
				if !errors.Is(err, vfs.ErrIO) || !errors.Is(err, vfs.ErrInjected) || r != nil {
					t.Fatalf("k=%d: WriteAt = %v, %v; want the injected EIO", k, r, err)
				}
				checkInode(t, ino, model)
				s := ino.Stats()
				if s.InFlight != 0 || uint64(space.count(stStaging)) != s.Reserved {
					t.Fatalf("k=%d: %d in flight, %d blocks staging, %d reserved", k, s.InFlight, space.count(stStaging), s.Reserved)
				}
			}
			ino.ReleaseReserved()
			if n := space.count(stStaging); n != 0 {
				t.Fatalf("%d staging blocks leaked", n)
			}
			space.check(t)
		})
	}
}

// TestInodeFragmentation overwrites a blob in 4 KiB writes, each
// committed and its old block freed at once, with the CoW extent-size hint
// off and at two sizes, and logs the extent counts. Sequentially (block
// after block) the blob must stay within a few extents per checksum-merge
// bound whatever the hint, since each write goes next to its neighbour.
// Randomly (one write per block of the blob, in random order) the count
// must stay below one extent per block, and the hint must lower it. The
// space is the fake near-goal allocator, so the figures show the layout
// policy, not the store's allocator. The default run uses a 16 MiB blob
// to stay quick under -race; -long runs the 64 MiB figures.
func TestInodeFragmentation(t *testing.T) {
	blocks := 16 << 20 / bs
	if *long {
		blocks = 64 << 20 / bs
	}
	writes := blocks
	random := map[uint64]int{}
	for _, chunk := range []uint64{1, 32, 256} {
		for _, seq := range []bool{true, false} {
			space := newFakeSpace(uint64(3*blocks), 0)
			w := newWriter(t, openData(t, onMem), space, nil)
			st := &testStore{space: space}
			ino := newInode(t, w, 1, chunk)
			r, err := ino.WriteAt(make([]byte, blocks*bs), 0)
			if err != nil {
				t.Fatal(err)
			}
			st.commit(t, ino, r)
			rng := rand.New(rand.NewPCG(8, 8))
			p := vfs.AlignedBuf(bs)
			for i := range writes {
				fb := rng.IntN(blocks)
				if seq {
					fb = i % blocks
				}
				r, err := ino.WriteAt(p, int64(fb)*bs)
				if err != nil {
					t.Fatal(err)
				}
				st.commit(t, ino, r)
			}
			s := ino.Stats()
			order := "random"
			if seq {
				order = "sequential"
			}
			t.Logf("cowextsize %3d: %d %s 4 KiB overwrites of a %d MiB blob: %d extents, %d blocks reserved",
				chunk, writes, order, blocks*bs>>20, s.Entries, s.Reserved)
			switch {
			case seq && s.Entries > 4*blocks/1024+2:
				t.Errorf("cowextsize %d: %d extents after sequential overwrites", chunk, s.Entries)
			case s.Entries >= blocks:
				t.Errorf("cowextsize %d: %d extents for %d blocks", chunk, s.Entries, blocks)
			case s.Reserved > uint64(blocks):
				t.Errorf("cowextsize %d: %d blocks reserved for a %d-block blob", chunk, s.Reserved, blocks)
			}
			if !seq {
				random[chunk] = s.Entries
			}
		}
	}
	if random[32] >= random[1] || random[256] >= random[1] {
		t.Errorf("the hint did not lower the extent count of random overwrites: %v", random)
	}
}

// TestInodeWriteAtNoSpace fills a small space and checks that a write
// whose hint padding does not fit still succeeds without it, that one
// whose own blocks do not fit fails with ErrNoSpace leaving the value, the
// staging map and the space as they were, and that it succeeds once space
// is freed.
func TestInodeWriteAtNoSpace(t *testing.T) {
	space := newFakeSpace(2+20, 0)
	w := newWriter(t, openData(t, onMem), space, nil)
	st := &testStore{space: space}
	ino := newInode(t, w, 1, 8)
	rng := rand.New(rand.NewPCG(4, 4))
	model := randBytes(rng, 16*bs)
	r, err := ino.WriteAt(model, 0)
	if err != nil {
		t.Fatal(err)
	}
	st.commit(t, ino, r)
	tail := randBytes(rng, bs)
	if r, err = ino.WriteAt(tail, 16*bs); err != nil {
		t.Fatalf("a write whose padding does not fit: %v", err)
	}
	st.commit(t, ino, r)
	model = append(model, tail...)
	if s := ino.Stats(); s.Reserved != 0 {
		t.Fatalf("%d blocks reserved with no room for them", s.Reserved)
	}
	before := space.snapshot()
	p := randBytes(rng, 4*bs)
	if r, err := ino.WriteAt(p, 0); !errors.Is(err, cowio.ErrNoSpace) || r != nil {
		t.Fatalf("WriteAt with 3 free blocks for 4 = %v, %v; want ErrNoSpace", r, err)
	}
	if s := ino.Stats(); s.InFlight != 0 || s.Reserved != 0 || !reflect.DeepEqual(before, space.snapshot()) {
		t.Fatalf("a failed allocation changed the inode (%+v) or the space", s)
	}
	checkInode(t, ino, model)
	st.truncate(t, ino, 8)
	model = model[:8*bs]
	if r, err = ino.WriteAt(p, 0); err != nil {
		t.Fatal(err)
	}
	st.commit(t, ino, r)
	copy(model, p)
	checkInode(t, ino, model)
	space.check(t)
}

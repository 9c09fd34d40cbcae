package cowio_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
)

// taggedBlock returns a block whose every 8-byte word holds the same tag,
// naming the write and the file block, so a reader can tell a whole block
// of one write from garbage (a torn or foreign block).
func taggedBlock(write uint32, fb uint64) []byte {
	b := make([]byte, bs)
	tag := uint64(write)<<32 | fb
	for i := 0; i < bs; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], tag)
	}
	return b
}

// blockTag returns the tag of block b, or ok false if b is not one whole
// tagged block (or all zeros: a hole, tag 0).
func blockTag(b []byte) (write uint32, fb uint64, ok bool) {
	tag := binary.LittleEndian.Uint64(b)
	for i := 8; i < len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:]) != tag {
			return 0, 0, false
		}
	}
	return uint32(tag >> 32), tag & (1<<32 - 1), true
}

// TestInodeOverlappingWrites runs writers that overwrite random,
// overlapping ranges of one inode (each write's blocks tagged with its
// number and file block), committing each write, and readers that read
// random ranges meanwhile. Every block a reader sees must be a whole block
// of a write committed to that file block, or a hole, never garbage. At the
// end the value must equal the committed writes applied serially in commit
// (LSN) order, and replaying the journal on a fresh Inode must give the same
// mapping. The old blocks stay busy until the end, as the store keeps them
// while readers may see them.
func TestInodeOverlappingWrites(t *testing.T) {
	const writers, readers, writes, blocks = 4, 3, 40, 64
	space := newFakeSpace(1<<15, 5)
	w := newWriter(t, openData(t, onMem), space, &cowio.Options{IOSize: 2 * bs, InFlight: 4})
	st := &testStore{space: space, deferFree: true}
	ino := newInode(t, w, 7, 4)
	var nextWrite atomic.Uint32
	var done atomic.Bool
	var wg, rg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 99))
			for range writes {
				n := 1 + rng.IntN(12)
				fb := rng.IntN(blocks - n + 1)
				id := nextWrite.Add(1)
				var p []byte
				for k := range n {
					p = append(p, taggedBlock(id, uint64(fb+k))...)
				}
				r, err := ino.WriteAt(p, int64(fb*bs))
				if err != nil {
					t.Error(err)
					return
				}
				st.commit(t, ino, r)
			}
		})
	}
	for g := range readers {
		rg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for !done.Load() {
				readTagged(t, ino, rng, blocks)
			}
		})
	}
	wg.Wait()
	done.Store(true)
	rg.Wait()
	// The serial model: the journal in LSN order, each remap's blocks
	// taken from the tags its write put there.
	model := make([]uint32, blocks)
	for _, rec := range st.journal {
		r := rec.remap
		got := make([]byte, r.Len*bs)
		fresh, _ := cowio.NewInode(w, 99, cowio.Mapping{Entries: r.New}, nil)
		if _, err := fresh.ReadAt(int64(r.FileBlock)*bs+int64(len(got)), got, int64(r.FileBlock)*bs); err != nil {
			t.Fatal(err)
		}
		for i := range r.Len {
			id, fb, ok := blockTag(got[i*bs : (i+1)*bs])
			if !ok || fb != uint64(r.FileBlock)+i {
				t.Fatalf("remap at LSN %d maps a wrong block at file block %d", rec.lsn, uint64(r.FileBlock)+i)
			}
			model[fb] = id
		}
	}
	final := make([]byte, blocks*bs)
	if n, err := ino.ReadAt(blocks*bs, final, 0); n != len(final) || (err != nil && err != io.EOF) {
		t.Fatalf("final ReadAt = %d, %v", n, err)
	}
	for fb := range blocks {
		id, _, ok := blockTag(final[fb*bs : (fb+1)*bs])
		if !ok || id != model[fb] {
			t.Fatalf("file block %d holds write %d (ok %v), the serial order says %d", fb, id, ok, model[fb])
		}
	}
	replay := replayJournal(t, w, st.journal, ino.ID(), cowio.Mapping{})
	if !reflect.DeepEqual(replay.Mapping(), ino.Mapping()) {
		t.Fatal("replaying the journal gave another mapping")
	}
	space.free(t, st.busy)
	ino.ReleaseReserved()
	if c := space.count(stStaging); c != 0 {
		t.Fatalf("%d blocks left staging", c)
	}
	if c := uint64(space.count(stCommitted)); c != ino.Stats().Mapped {
		t.Fatalf("%d blocks committed, the inode maps %d", c, ino.Stats().Mapped)
	}
	space.check(t)
}

// readTagged reads a random range of the inode and checks that every block
// is a hole or a whole tagged block of its own file block.
func readTagged(t *testing.T, ino *cowio.Inode, rng *rand.Rand, blocks int) {
	n := 1 + rng.IntN(16)
	fb := rng.IntN(blocks - n + 1)
	got := make([]byte, n*bs)
	if k, err := ino.ReadAt(int64(blocks*bs), got, int64(fb*bs)); k != len(got) || (err != nil && err != io.EOF) {
		t.Errorf("ReadAt = %d, %v", k, err)
		return
	}
	for i := range n {
		id, tagFB, ok := blockTag(got[i*bs : (i+1)*bs])
		if !ok || (id != 0 && tagFB != uint64(fb+i)) {
			t.Errorf("file block %d read as garbage (tag ok %v, write %d, file block %d)", fb+i, ok, id, tagFB)
		}
	}
}

// replayJournal applies the journal's changes of inode id, in order, to a
// fresh Inode starting from m, as recovery does, checks that each change
// takes a reference from the same blocks as it did live, and returns the
// Inode.
func replayJournal(t tester, w *cowio.Writer, journal []journalRec, id format.InodeID, m cowio.Mapping) *cowio.Inode {
	ino, err := cowio.NewInode(w, id, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range journal {
		if rec.ino != id {
			continue
		}
		var old []extents.Extent
		if rec.remap != nil {
			r := *rec.remap
			old, err = ino.Apply(&r, rec.lsn)
		} else {
			old, err = ino.TruncateBlocks(rec.truncate, rec.lsn)
		}
		if err != nil {
			t.Fatalf("replay at LSN %d: %v", rec.lsn, err)
		}
		if fmt.Sprint(old) != fmt.Sprint(rec.old) {
			t.Fatalf("replay at LSN %d took a reference from %v, live from %v", rec.lsn, old, rec.old)
		}
	}
	return ino
}

// TestInodeReplayDeterminism applies random writes and truncations to an
// inode that starts from a loaded mapping, then replays the journal on a
// fresh Inode loaded from the same mapping, twice, and checks that both
// give the live mapping and the same extents losing a reference at every
// step.
func TestInodeReplayDeterminism(t *testing.T) {
	space := newFakeSpace(1<<15, 3)
	w := newWriter(t, openData(t, onMem), space, nil)
	st := &testStore{space: space}
	initial, err := w.WriteNew(make([]byte, 40*bs), 0)
	if err != nil {
		t.Fatal(err)
	}
	space.commit(t, initial)
	loaded := cowio.Mapping{Entries: append([]cowio.Entry(nil), initial.Entries...)}
	for i := range loaded.Entries {
		loaded.Entries[i].Sums = nil // the store loads extent records without checksums
	}
	ino, err := cowio.NewInode(w, 3, loaded, &cowio.InodeOptions{CowExtSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	for range 200 {
		if rng.IntN(10) == 0 {
			st.truncate(t, ino, cowio.FileBlock(rng.IntN(60)))
			continue
		}
		n := 1 + rng.IntN(10)
		r, err := ino.WriteAt(make([]byte, n*bs), int64(rng.IntN(60))*bs)
		if err != nil {
			t.Fatal(err)
		}
		st.commit(t, ino, r)
	}
	for range 2 {
		replay := replayJournal(t, w, st.journal, 3, loaded)
		if !reflect.DeepEqual(replay.Mapping(), ino.Mapping()) {
			t.Fatal("replay gave another mapping")
		}
	}
}

package cowio_test

import (
	"bytes"
	"errors"
	"flag"
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

var (
	long = flag.Bool("long", false, "run the long versions of the randomized inode tests")
	seed = flag.Uint64("seed", 0, "seed of the randomized inode tests (0: a fixed default)")
)

// testStore plays the store's part for Inodes: it logs each remap by
// appending it to a journal and handing out the next LSN, commits the new
// blocks in the fake space, and frees the blocks that lose their reference
// (at once, or, with deferFree, only when the test says so, as a store
// keeps them busy while readers may still see them).
type testStore struct {
	space     *fakeSpace
	lsn       atomic.Uint64
	deferFree bool

	mu      sync.Mutex
	journal []journalRec // in LSN order
	busy    []extents.Extent
}

// journalRec is one logged change: a remap as rebuilt from the log, or a
// truncation.
type journalRec struct {
	ino      format.InodeID
	lsn      format.LSN
	remap    *cowio.Remap // nil for a truncation
	truncate cowio.FileBlock
	old      []extents.Extent // what the change took a reference from
}

// commit commits r through ino.Commit, as the store will.
func (s *testStore) commit(t tester, ino *cowio.Inode, r *cowio.Remap) {
	var lsn format.LSN
	old, err := ino.Commit(r, func(r *cowio.Remap) (format.LSN, error) {
		lsn = format.LSN(s.lsn.Add(1))
		s.space.commit(t, cowio.Mapping{Entries: r.New})
		rebuilt := &cowio.Remap{Inode: r.Inode, FileBlock: r.FileBlock, Len: r.Len, New: r.New}
		s.mu.Lock()
		s.journal = append(s.journal, journalRec{ino: r.Inode, lsn: lsn, remap: rebuilt, old: r.Old})
		s.mu.Unlock()
		return lsn, nil
	})
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	s.mu.Lock()
	rec := s.journal[len(s.journal)-1]
	s.mu.Unlock()
	if rec.lsn == lsn && !reflect.DeepEqual(rec.old, old) {
		t.Fatalf("Commit removed %v, logged %v", old, rec.old)
	}
	s.release(t, old)
}

// truncate truncates ino at file block from through CommitTruncate.
func (s *testStore) truncate(t tester, ino *cowio.Inode, from cowio.FileBlock) {
	old, err := ino.CommitTruncate(from, func(old []extents.Extent) (format.LSN, error) {
		lsn := format.LSN(s.lsn.Add(1))
		s.mu.Lock()
		s.journal = append(s.journal, journalRec{ino: ino.ID(), lsn: lsn, truncate: from, old: old})
		s.mu.Unlock()
		return lsn, nil
	})
	if err != nil {
		t.Fatalf("CommitTruncate: %v", err)
	}
	s.release(t, old)
}

// release frees the blocks that lost their reference, or keeps them busy.
func (s *testStore) release(t tester, old []extents.Extent) {
	if s.deferFree {
		s.mu.Lock()
		s.busy = append(s.busy, old...)
		s.mu.Unlock()
		return
	}
	s.space.free(t, old)
}

// free turns committed blocks free again.
func (s *fakeSpace) free(t tester, exts []extents.Extent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range exts {
		for b := e.Start; b < e.End(); b++ {
			if s.state[b] != stCommitted {
				t.Errorf("freeing block %d in state %d", b, s.state[b])
			}
			s.state[b] = stFree
		}
	}
}

func newInode(t tester, w *cowio.Writer, id format.InodeID, chunk uint64) *cowio.Inode {
	ino, err := cowio.NewInode(w, id, cowio.Mapping{}, &cowio.InodeOptions{CowExtSize: chunk})
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

// checkInode fails t unless ino reads back exactly model (as a value of
// len(model) bytes) and its committed mapping is valid.
func checkInode(t tester, ino *cowio.Inode, model []byte) {
	if err := ino.Mapping().Validate(bs); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(model)+1)
	n, err := ino.ReadAt(int64(len(model)), got, 0)
	if n != len(model) || err != io.EOF {
		t.Fatalf("ReadAt of the whole %d-byte value = %d, %v", len(model), n, err)
	}
	if !bytes.Equal(got[:n], model) {
		t.Fatalf("inode %d: the value differs from the model at byte %d", ino.ID(), firstDiff(got[:n], model))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestInodeModel runs several inodes at once over one Writer and one
// fragmented space, each in its own goroutine doing random aligned WriteAt
// (one block to hundreds, inside, across and past holes), Commit, random
// unaligned ReadAt and block-aligned Truncate, against a byte-slice model of
// each value. At the end every block of the space is accounted for:
// committed blocks are exactly those the inodes map, and nothing is left
// staging once the reserved blocks are released. Run -long for more rounds;
// a failure prints the seed (-seed) that reproduces it.
func TestInodeModel(t *testing.T) {
	rounds := 150
	if *long {
		rounds = 3000
	}
	s := *seed
	if s == 0 {
		s = 1
	}
	for _, c := range []struct {
		chunk  uint64
		cached bool
	}{{1, false}, {8, false}, {8, true}} {
		chunk := c.chunk
		t.Run(fmt.Sprintf("cowextsize=%d/cache=%v", chunk, c.cached), func(t *testing.T) {
			t.Logf("reproduce with: go test ./cowio -run 'TestInodeModel' -seed %d", s)
			space := newFakeSpace(1<<16, 7)
			opts := &cowio.Options{IOSize: 8 * bs, InFlight: 3}
			if c.cached {
				// A cache smaller than the values, over a space that
				// reuses freed blocks at once: hits, evictions and
				// rewritten blocks all happen.
				opts.Cache, opts.CacheReadMax = newCache(t, 256*bs), 24*bs
			}
			w := newWriter(t, openData(t, onMem), space, opts)
			st := &testStore{space: space}
			inodes := make([]*cowio.Inode, 4)
			models := make([][]byte, len(inodes))
			var wg sync.WaitGroup
			for g := range inodes {
				inodes[g] = newInode(t, w, format.InodeID(g+1), chunk)
				wg.Go(func() {
					models[g] = runInodeModel(t, st, inodes[g], rand.New(rand.NewPCG(s, uint64(g))), rounds)
				})
			}
			wg.Wait()
			var mapped uint64
			for g, ino := range inodes {
				checkInode(t, ino, models[g])
				stats := ino.Stats()
				mapped += stats.Mapped
				if stats.InFlight != 0 {
					t.Fatalf("inode %d: %d writes left in flight", ino.ID(), stats.InFlight)
				}
				ino.ReleaseReserved()
			}
			if c := space.count(stCommitted); uint64(c) != mapped {
				t.Fatalf("%d blocks committed, inodes map %d", c, mapped)
			}
			if c := space.count(stStaging); c != 0 {
				t.Fatalf("%d blocks left staging", c)
			}
			space.check(t)
			t.Logf("read stats: %+v", w.Stats())
		})
	}
}

// runInodeModel drives one inode with random operations and returns the
// final model.
func runInodeModel(t *testing.T, st *testStore, ino *cowio.Inode, rng *rand.Rand, rounds int) []byte {
	var model []byte
	for range rounds {
		switch op := rng.IntN(10); {
		case op < 5: // write
			blocks := 1 + rng.IntN(4)
			if rng.IntN(8) == 0 {
				blocks = 1 + rng.IntN(300) // huge
			}
			off := bs * rng.IntN(len(model)/bs+40) // inside, or past the end across a hole
			p := randBytes(rng, blocks*bs)
			r, err := ino.WriteAt(p, int64(off))
			if err != nil {
				t.Error(err)
				return model
			}
			st.commit(t, ino, r)
			if off+len(p) > len(model) {
				model = append(model, make([]byte, off+len(p)-len(model))...)
			}
			copy(model[off:], p)
		case op < 9: // read a random range, unaligned
			off := rng.IntN(len(model) + bs)
			got := make([]byte, rng.IntN(20*bs))
			n, err := ino.ReadAt(int64(len(model)), got, int64(off))
			want := max(0, min(len(got), len(model)-off))
			if n != want || (err != nil && err != io.EOF) || (err == nil && want < len(got)) {
				t.Errorf("inode %d: ReadAt(%d at %d) of %d = %d, %v", ino.ID(), len(got), off, len(model), n, err)
				return model
			}
			if !bytes.Equal(got[:n], model[min(off, len(model)):][:n]) {
				t.Errorf("inode %d: ReadAt(%d at %d) returned wrong bytes", ino.ID(), len(got), off)
				return model
			}
		default: // truncate, to a block boundary, shrinking or growing
			size := bs * rng.IntN(len(model)/bs+20)
			if size < len(model) {
				st.truncate(t, ino, cowio.FileBlock(size/bs))
				model = model[:size]
			} else {
				model = append(model, make([]byte, size-len(model))...)
			}
		}
	}
	return model
}

// TestInodeReadsSeeOldUntilCommit writes over a committed range and checks
// that ReadAt returns the old bytes while the write is in flight (after
// WriteAt, before Commit), the new ones after, and the old ones again
// when the write is aborted instead.
func TestInodeReadsSeeOldUntilCommit(t *testing.T) {
	space := newFakeSpace(4096, 0)
	w := newWriter(t, openData(t, onMem), space, nil)
	st := &testStore{space: space}
	ino := newInode(t, w, 1, 0)
	rng := rand.New(rand.NewPCG(3, 3))
	old := randBytes(rng, 16*bs)
	r, err := ino.WriteAt(old, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkInode(t, ino, make([]byte, 16*bs)) // not committed yet: holes
	st.commit(t, ino, r)
	checkInode(t, ino, old)
	for _, commit := range []bool{false, true} {
		p := randBytes(rng, 4*bs)
		r, err := ino.WriteAt(p, 6*bs)
		if err != nil {
			t.Fatal(err)
		}
		checkInode(t, ino, old)
		if !commit {
			if !ino.Abort(r) || ino.Abort(r) {
				t.Fatal("Abort did not report the write in flight exactly once")
			}
			checkInode(t, ino, old)
			continue
		}
		st.commit(t, ino, r)
		copy(old[6*bs:], p)
		checkInode(t, ino, old)
	}
	if n := uint64(space.count(stStaging)); n != ino.Stats().Reserved {
		t.Fatalf("%d blocks staging, %d reserved", n, ino.Stats().Reserved)
	}
}

// TestInodeApplyErrors checks that Apply refuses a change out of LSN order,
// a remap applied twice, and malformed remaps, leaving the inode unchanged.
func TestInodeApplyErrors(t *testing.T) {
	space := newFakeSpace(4096, 0)
	w := newWriter(t, openData(t, onMem), space, nil)
	ino := newInode(t, w, 1, 1)
	r, err := ino.WriteAt(make([]byte, 2*bs), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ino.Apply(r, 5); err != nil {
		t.Fatal(err)
	}
	before := ino.Mapping()
	if _, err := ino.Apply(r, 6); !errors.Is(err, cowio.ErrNotInFlight) {
		t.Fatalf("second Apply = %v, want ErrNotInFlight", err)
	}
	rebuilt := &cowio.Remap{Inode: 1, FileBlock: r.FileBlock, Len: r.Len, New: r.New}
	if _, err := ino.Apply(rebuilt, 5); !errors.Is(err, cowio.ErrOutOfOrder) {
		t.Fatalf("Apply at an old LSN = %v, want ErrOutOfOrder", err)
	}
	bad := []*cowio.Remap{
		{Inode: 1, FileBlock: 0, Len: 3, New: r.New},                                                   // New too short
		{Inode: 1, FileBlock: 1, Len: 2, New: r.New},                                                   // New misplaced
		{Inode: 1, FileBlock: 0, Len: 2, New: []cowio.Entry{{FileBlock: 0, Len: 2}}},                   // block 0
		{Inode: 1, FileBlock: 0, Len: 0},                                                               // empty
		{Inode: 1, FileBlock: 0, Len: 1, New: []cowio.Entry{{Start: 9, Len: 1, Sums: []uint64{1, 2}}}}, // sums
	}
	for i, b := range bad {
		if _, err := ino.Apply(b, format.LSN(10+i)); !errors.Is(err, cowio.ErrBadMapping) {
			t.Fatalf("bad remap %d: Apply = %v, want ErrBadMapping", i, err)
		}
	}
	if _, err := ino.Apply(&cowio.Remap{Inode: 2, FileBlock: 0, Len: 2, New: r.New}, 20); !errors.Is(err, cowio.ErrNotInFlight) {
		t.Fatalf("another inode's remap: Apply = %v, want ErrNotInFlight", err)
	}
	if !reflect.DeepEqual(before, ino.Mapping()) {
		t.Fatal("a refused Apply changed the mapping")
	}
	for _, c := range []struct {
		off int64
		n   int
		err error
	}{{1, bs, cowio.ErrUnaligned}, {0, bs + 1, cowio.ErrUnaligned}, {-bs, bs, cowio.ErrInvalidOffset}} {
		if _, err := ino.WriteAt(make([]byte, c.n), c.off); !errors.Is(err, c.err) {
			t.Fatalf("WriteAt(%d bytes at %d) = %v, want %v", c.n, c.off, err, c.err)
		}
	}
	if r, err := ino.WriteAt(nil, 0); r != nil || err != nil {
		t.Fatalf("empty WriteAt = %v, %v", r, err)
	}
}

// FuzzInodeApply feeds Apply remaps built from arbitrary numbers, as replay
// would from a damaged log: Apply must never panic, must refuse a malformed
// remap with ErrBadMapping and leave the mapping as it was, and must leave
// a valid mapping when it accepts one.
func FuzzInodeApply(f *testing.F) {
	f.Add(uint64(0), uint64(2), uint64(0), uint64(2), uint64(10), uint64(2), false)
	f.Add(uint64(5), uint64(3), uint64(5), uint64(1), uint64(0), uint64(1), true)
	f.Add(uint64(1<<60), uint64(1<<62), uint64(1<<60), uint64(9), uint64(1<<62), uint64(1<<62), false)
	f.Fuzz(func(t *testing.T, fb, n, e1fb, e1len, e1start, e2len uint64, sums bool) {
		space := newFakeSpace(64, 0)
		w := newWriter(t, openData(t, onMem), space, nil)
		ino, err := cowio.NewInode(w, 1, cowio.Mapping{Entries: []cowio.Entry{{FileBlock: 1, Start: 40, Len: 4}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		e1 := cowio.Entry{FileBlock: cowio.FileBlock(e1fb), Start: format.Block(e1start), Len: e1len}
		if sums && e1len < 64 {
			e1.Sums = make([]uint64, e1len)
		}
		e2 := cowio.Entry{FileBlock: e1.FileEnd(), Start: format.Block(e1start) + 100, Len: e2len}
		r := &cowio.Remap{Inode: 1, FileBlock: cowio.FileBlock(fb), Len: n, New: []cowio.Entry{e1, e2}}
		before := ino.Mapping()
		if _, err := ino.Apply(r, 1); err != nil {
			if !errors.Is(err, cowio.ErrBadMapping) {
				t.Fatalf("Apply = %v, want ErrBadMapping", err)
			}
			if !reflect.DeepEqual(before, ino.Mapping()) {
				t.Fatal("a refused remap changed the mapping")
			}
			return
		}
		if err := ino.Mapping().Validate(bs); err != nil {
			t.Fatalf("Apply accepted a remap and left a bad mapping: %v", err)
		}
	})
}

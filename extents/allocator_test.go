package extents_test

import (
	"errors"
	"flag"
	"slices"
	"testing"

	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
)

var long = flag.Bool("long", false, "run the long property and fuzz-seed suites")

// smallOpts gives AGs of 64 blocks of 512 bytes: blocks 0-1 superblocks,
// AG g at 2+64g, its blocks 0-1 bitmap copies, data from offset 2.
var smallOpts = extents.Options{StoreID: 7, BlockSize: 512, BlocksPerAG: 64, MaxAGCount: 4}

func newSmall(t *testing.T, nAG uint32, opts extents.Options) *extents.Allocator {
	t.Helper()
	a, err := extents.New(&opts, nAG)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func allocCommit(t *testing.T, a *extents.Allocator, n uint64, goal extents.Block) extents.Extent {
	t.Helper()
	e, err := a.Alloc(n, goal)
	must(t, err)
	if e.Len != n {
		t.Fatalf("alloc(%d) gave %v", n, e)
	}
	must(t, a.Commit(e))
	return e
}

func checkpoint(t *testing.T, a *extents.Allocator, epoch extents.Epoch, lsn extents.LSN) *extents.Checkpoint {
	t.Helper()
	cp, err := a.Seal(epoch, lsn)
	must(t, err)
	must(t, a.CheckpointDurable(cp))
	return cp
}

// TestGeometry checks the layout of a small geometry: superblocks, AG
// starts, bitmap copies and header size, and that nothing but data blocks
// is ever handed out when the whole space is allocated.
func TestGeometry(t *testing.T) {
	a := newSmall(t, 2, smallOpts)
	g := a.Geometry()
	if g.AGStart != 2 || g.AGFirst(1) != 66 || g.BitmapBlocks != 1 || g.HeaderBlocks() != 2 ||
		g.BitmapCopy(1, 1) != 67 || g.TotalBlocks() != 130 {
		t.Fatalf("geometry %+v", g)
	}
	es, err := a.AllocExtents(nil, 2*62, 0, 0)
	must(t, err)
	for _, e := range es {
		for b := e.Start; b < e.End(); b++ {
			if _, off, ok := g.AGOf(b); !ok || off < 2 {
				t.Fatalf("handed out non-data block %d", b)
			}
		}
	}
	if _, err := a.Alloc(1, 0); !errors.Is(err, extents.ErrNoSpace) {
		t.Fatalf("full: %v", err)
	}
	if total, err := a.Grow(4); err != nil || total != 258 {
		t.Fatalf("grow: %d, %v", total, err)
	}
	if _, err := a.Grow(5); !errors.Is(err, extents.ErrNoSpace) {
		t.Fatalf("grow past max: %v", err)
	}
}

// TestBusyBlocks checks the reuse rule: a freed block is not handed out
// before a checkpoint covering its free is durable, nor while a reader
// pinned at an older version remains, and blocks freed after the seal stay
// busy after that checkpoint.
func TestBusyBlocks(t *testing.T) {
	a := newSmall(t, 1, smallOpts)
	e := allocCommit(t, a, 62, 0) // the whole AG
	pin, err := a.Pin(0)
	must(t, err)
	first := extents.Extent{Start: e.Start, Len: 10}
	must(t, a.Free(first, 1))
	if _, err := a.Alloc(1, 0); !errors.Is(err, extents.ErrNoSpace) {
		t.Fatalf("busy block handed out before its checkpoint: %v", err)
	}
	cp, err := a.Seal(1, 1)
	must(t, err)
	late := extents.Extent{Start: e.Start + 10, Len: 5}
	must(t, a.Free(late, 2)) // after the seal: not covered by checkpoint 1
	must(t, a.CheckpointDurable(cp))
	if s := a.Stats(); s.BusyBlocks != 15 || s.FreeBlocks != 0 {
		t.Fatalf("pinned reader at 0: %+v", s)
	}
	must(t, a.Unpin(pin))
	got, err := a.Alloc(20, 0)
	must(t, err)
	if got != first {
		t.Fatalf("after unpin got %v, want %v", got, first)
	}
	if _, err := a.Pin(0); !errors.Is(err, extents.ErrPinTooOld) {
		t.Fatalf("pin older than reused blocks: %v", err)
	}
	checkpoint(t, a, 2, 2)
	if s := a.Stats(); s.BusyBlocks != 0 || s.FreeBlocks != 5 {
		t.Fatalf("after checkpoint 2: %+v", s)
	}
}

// TestRefcounts checks that records split and merge like XFS's refcount
// btree, that Dec of count-1 blocks frees them, and that a saturated range
// never moves.
func TestRefcounts(t *testing.T) {
	opts := smallOpts
	opts.RefcountMax = 4
	a := newSmall(t, 1, opts)
	e := allocCommit(t, a, 40, 0)
	s := e.Start
	must(t, a.Inc(extents.Extent{Start: s, Len: 10}))
	must(t, a.Inc(extents.Extent{Start: s + 5, Len: 10}))
	want := []extents.Record{{Start: s, Len: 5, Count: 2}, {Start: s + 5, Len: 5, Count: 3}, {Start: s + 10, Len: 5, Count: 2}}
	if got := slices.Collect(a.Records()); !slices.Equal(got, want) {
		t.Fatalf("records %v, want %v", got, want)
	}
	must(t, a.Dec(extents.Extent{Start: s + 5, Len: 5}, 1))
	want = []extents.Record{{Start: s, Len: 15, Count: 2}}
	if got := slices.Collect(a.Records()); !slices.Equal(got, want) {
		t.Fatalf("after merge: records %v, want %v", got, want)
	}
	if err := a.Free(extents.Extent{Start: s, Len: 1}, 2); !errors.Is(err, extents.ErrWrongState) {
		t.Fatalf("Free of a shared block: %v", err)
	}
	must(t, a.Dec(extents.Extent{Start: s + 10, Len: 10}, 3)) // 5 shared, 5 freed
	if st := a.Stats(); st.BusyBlocks != 5 || st.SharedBlocks != 10 || a.Count(s+12) != 1 || a.Count(s+17) != 0 {
		t.Fatalf("after dec: %+v", st)
	}
	sat := extents.Extent{Start: s + 30, Len: 2}
	for range 6 {
		must(t, a.Inc(sat))
	}
	for range 10 {
		must(t, a.Dec(sat, 4))
	}
	if a.Count(sat.Start) != 4 || a.State(sat.Start) != extents.StateCommitted {
		t.Fatalf("saturated block: count %d state %d", a.Count(sat.Start), a.State(sat.Start))
	}
}

// TestAllocPolicy checks near-fit (a blob's next extent lands right after
// its previous one, or at the nearest hole), best-fit without a goal, and
// partial results when no free extent is long enough.
func TestAllocPolicy(t *testing.T) {
	a := newSmall(t, 2, smallOpts)
	e1 := allocCommit(t, a, 8, 0)
	e2 := allocCommit(t, a, 8, e1.End())
	if e2.Start != e1.End() {
		t.Fatalf("near-fit: %v after %v", e2, e1)
	}
	// Punch holes of 3 and 6 blocks; a 5-block request without goal takes
	// the 6-block hole (best-fit), not the AG's big tail.
	must(t, a.Free(extents.Extent{Start: e1.Start + 2, Len: 3}, 1))
	must(t, a.Free(extents.Extent{Start: e2.Start + 1, Len: 6}, 1))
	checkpoint(t, a, 1, 1)
	if e, _ := a.Alloc(5, 0); e.Start != e2.Start+1 {
		t.Fatalf("best-fit gave %v, want start %d", e, e2.Start+1)
	}
	// A goal inside the 3-block hole gets it.
	if e, _ := a.Alloc(2, e1.Start+3); e.Start != e1.Start+3 {
		t.Fatalf("goal in a hole gave %v", e)
	}
	// Fill everything but scattered single blocks, then ask for 4.
	rest, err := a.AllocExtents(nil, uint64(a.Stats().FreeBlocks), 0, 0)
	must(t, err)
	for _, e := range rest {
		must(t, a.Commit(e))
	}
	for _, off := range []extents.Block{70, 72, 74} {
		must(t, a.Free(extents.Extent{Start: off, Len: 1}, 2))
	}
	checkpoint(t, a, 2, 2)
	e, err := a.Alloc(4, 72)
	if err != nil || e.Len != 1 {
		t.Fatalf("partial: %v, %v", e, err)
	}
	es, err := a.AllocExtents(nil, 2, 0, 0)
	if err != nil || len(es) != 2 {
		t.Fatalf("AllocExtents in dust: %v, %v", es, err)
	}
}

// TestReservations checks that reserved blocks cannot be taken by
// unreserved allocations, that the reservation can always be drawn, and
// that unreserving gives the rest back.
func TestReservations(t *testing.T) {
	a := newSmall(t, 1, smallOpts)
	r, err := a.Reserve(60)
	must(t, err)
	if _, err := a.Reserve(3); !errors.Is(err, extents.ErrNoSpace) {
		t.Fatalf("oversubscribed: %v", err)
	}
	if e, err := a.Alloc(5, 0); err != nil || e.Len != 2 {
		t.Fatalf("unreserved alloc got %v, %v; want the 2 unreserved blocks", e, err)
	}
	if _, err := a.Alloc(1, 0); !errors.Is(err, extents.ErrNoSpace) {
		t.Fatalf("alloc into a reservation: %v", err)
	}
	es, err := a.AllocExtents(nil, 50, 0, r)
	must(t, err)
	if a.Reserved(r) != 10 || len(es) != 1 {
		t.Fatalf("left %d, extents %v", a.Reserved(r), es)
	}
	if _, err := a.AllocReserved(r, 11, 0); !errors.Is(err, extents.ErrUnknownReservation) {
		t.Fatalf("over-draw: %v", err)
	}
	must(t, a.Unreserve(r))
	if e, err := a.Alloc(20, 0); err != nil || e.Len != 10 {
		t.Fatalf("after unreserve: %v, %v", e, err)
	}
}

// TestCheckpointImages checks that a checkpoint writes only the AGs
// changed since the previous one, into the slot not holding the newest
// copy, that work after the seal is not in the images while CommitTo
// blocks are, and that loading the images gives back the sealed state.
func TestCheckpointImages(t *testing.T) {
	a := newSmall(t, 3, smallOpts)
	disk := make([][2][]byte, 3)
	write := func(cp *extents.Checkpoint) []uint32 {
		must(t, a.Freeze(cp))
		var ags []uint32
		for img := range cp.Images() {
			disk[img.AG][img.Slot] = img.Data
			ags = append(ags, img.AG)
		}
		return ags
	}
	cp, err := a.Seal(1, 0)
	must(t, err)
	if ags := write(cp); !slices.Equal(ags, []uint32{0, 1, 2}) {
		t.Fatalf("first checkpoint wrote %v", ags)
	}
	must(t, a.CheckpointDurable(cp))
	e := allocCommit(t, a, 5, a.Geometry().AGFirst(1))
	must(t, a.Inc(e))
	cp, err = a.Seal(2, 1)
	must(t, err)
	late := allocCommit(t, a, 3, a.Geometry().AGFirst(2)) // after the seal
	node, err := a.Alloc(1, a.Geometry().AGFirst(0))      // a node of checkpoint 2
	must(t, err)
	must(t, a.CommitTo(cp, node))
	if ags := write(cp); !slices.Equal(ags, []uint32{0, 1}) {
		t.Fatalf("second checkpoint wrote %v", ags)
	}
	must(t, a.CheckpointDurable(cp))
	if !cp.RecordsChanged {
		t.Fatal("records changed but not reported")
	}
	l, err := extents.NewLoader(&smallOpts, 3, 2)
	must(t, err)
	for ag := range uint32(3) {
		slot, err := l.LoadAG(ag, disk[ag])
		must(t, err)
		if want := map[uint32]int{0: 1, 1: 1, 2: 0}[ag]; slot != want {
			t.Fatalf("AG %d loaded from slot %d, want %d", ag, slot, want)
		}
	}
	for r := range cp.Records() {
		must(t, l.LoadRecord(r))
	}
	b, err := l.Finish(1)
	must(t, err)
	if b.State(late.Start) != extents.StateFree || b.State(node.Start) != extents.StateCommitted || b.Count(e.Start) != 2 {
		t.Fatalf("loaded: late %d node %d count %d", b.State(late.Start), b.State(node.Start), b.Count(e.Start))
	}
	if s := b.Stats(); s.CommittedBlocks != 6 || s.SharedBlocks != 5 {
		t.Fatalf("loaded stats %+v", s)
	}
}

// TestLoadRejects checks that bad records and bitmaps are reported as
// corruption, and misuse as ErrInvalid.
func TestLoadRejects(t *testing.T) {
	a := newSmall(t, 1, smallOpts)
	e := allocCommit(t, a, 10, 0)
	cp, err := a.Seal(1, 0)
	must(t, err)
	var copies [2][]byte
	for img := range cp.Images() {
		copies[img.Slot] = img.Data
	}
	for _, tc := range []struct {
		name string
		recs []extents.Record
	}{
		{"count 1", []extents.Record{{Start: e.Start, Len: 2, Count: 1}}},
		{"free block", []extents.Record{{Start: e.End(), Len: 1, Count: 2}}},
		{"header", []extents.Record{{Start: 2, Len: 1, Count: 2}}},
		{"overlap", []extents.Record{{Start: e.Start, Len: 3, Count: 2}, {Start: e.Start + 2, Len: 1, Count: 3}}},
		{"unmerged", []extents.Record{{Start: e.Start, Len: 3, Count: 2}, {Start: e.Start + 3, Len: 1, Count: 2}}},
	} {
		l, err := extents.NewLoader(&smallOpts, 1, 1)
		must(t, err)
		if err := l.LoadRecord(tc.recs[0]); !errors.Is(err, extents.ErrInvalid) {
			t.Fatalf("%s: record before AGs: %v", tc.name, err)
		}
		_, err = l.LoadAG(0, copies)
		must(t, err)
		for _, r := range tc.recs {
			err = l.LoadRecord(r)
		}
		if !errors.Is(err, format.ErrCorrupt) {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	l, err := extents.NewLoader(&smallOpts, 1, 0) // the copy's epoch 1 is ahead
	must(t, err)
	if _, err := l.LoadAG(0, copies); !errors.Is(err, format.ErrEpochAhead) {
		t.Fatalf("copy ahead of the superblock: %v", err)
	}
}

package extents_test

import (
	"errors"
	"testing"

	"github.com/cowdb/cowdb/extents"
	"pgregory.net/rapid"
)

// TestClaim checks that Claim commits exactly the free blocks it names,
// refuses blocks in any other state without changing anything, and that
// claimed blocks behave as committed ones (Free, checkpoint images).
func TestClaim(t *testing.T) {
	a, err := extents.New(&extents.Options{StoreID: 7, BlocksPerAG: 64}, 2)
	if err != nil {
		t.Fatal(err)
	}
	g := a.Geometry()
	first := g.AGFirst(1) + extents.Block(g.HeaderBlocks())
	e := extents.Extent{Start: first + 10, Len: 5}
	if err := a.Claim(e); err != nil {
		t.Fatal(err)
	}
	for b := e.Start; b < e.End(); b++ {
		if s, c := a.State(b), a.Count(b); s != extents.StateCommitted || c != 1 {
			t.Fatalf("block %d: state %d count %d after Claim", b, s, c)
		}
	}
	for _, b := range []extents.Block{e.Start - 1, e.End()} {
		if s := a.State(b); s != extents.StateFree {
			t.Fatalf("neighbour %d: state %d, want free", b, s)
		}
	}
	before := a.Stats()
	st, err := a.Alloc(1, first)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []extents.Extent{
		{Start: e.Start + 4, Len: 2},  // overlaps a claimed block
		{Start: st.Start, Len: 1},     // staging
		{Start: g.AGFirst(0), Len: 1}, // header
	} {
		if err := a.Claim(bad); err == nil {
			t.Fatalf("Claim(%v) succeeded", bad)
		}
	}
	if after := a.Stats(); after.CommittedBlocks != before.CommittedBlocks || after.FreeBlocks != before.FreeBlocks-1 {
		t.Fatalf("refused claims changed the counts: %+v -> %+v", before, after)
	}
	if err := a.Free(e, 3); err != nil {
		t.Fatalf("Free of claimed blocks: %v", err)
	}
	if err := a.Claim(e); !errors.Is(err, extents.ErrWrongState) {
		t.Fatalf("Claim of busy blocks = %v, want ErrWrongState", err)
	}
	if err := a.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// TestClaimModel claims random extents of a fresh allocator and checks,
// against a set of claimed blocks, that Claim succeeds exactly when every
// block is free, and that the allocator's invariants hold throughout.
func TestClaimModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, err := extents.New(&extents.Options{StoreID: 7, BlocksPerAG: 64}, 3)
		if err != nil {
			t.Fatal(err)
		}
		g := a.Geometry()
		claimed := map[extents.Block]bool{}
		for range rapid.IntRange(1, 40).Draw(t, "n") {
			ag := uint32(rapid.IntRange(0, 2).Draw(t, "ag"))
			off := rapid.IntRange(int(g.HeaderBlocks()), 63).Draw(t, "off")
			n := rapid.IntRange(1, 64-off).Draw(t, "len")
			e := extents.Extent{Start: g.AGFirst(ag) + extents.Block(off), Len: uint64(n)}
			free := true
			for b := e.Start; b < e.End(); b++ {
				free = free && !claimed[b]
			}
			err := a.Claim(e)
			if free != (err == nil) {
				t.Fatalf("Claim(%v) = %v; model says free=%v", e, err, free)
			}
			if err == nil {
				for b := e.Start; b < e.End(); b++ {
					claimed[b] = true
				}
			}
			if err := a.CheckInvariants(); err != nil {
				t.Fatal(err)
			}
		}
		if got := a.Stats().CommittedBlocks; got != int64(len(claimed)) {
			t.Fatalf("%d committed blocks, model %d", got, len(claimed))
		}
	})
}

package extents

import (
	"fmt"
	"iter"
)

// CommittedExtents yields the maximal runs of committed blocks in block
// order: what a full check (DB.Check) compares with the blocks reachable
// from the live roots.
func (a *Allocator) CommittedExtents() iter.Seq[Extent] {
	return func(yield func(Extent) bool) {
		hdr := a.geo.HeaderBlocks()
		inv := make([]uint64, bitmapWords(a.geo.BlocksPerAG))
		for ag, g := range a.ags {
			// Runs of clear bits in the complement are committed runs; the
			// header and padding are set in the complement to skip them.
			for i, w := range g.committed {
				inv[i] = ^w
			}
			setRange(inv, 0, hdr)
			if pad := uint32(len(inv))*64 - a.geo.BlocksPerAG; pad > 0 {
				setRange(inv, a.geo.BlocksPerAG, pad)
			}
			first := a.geo.AGFirst(uint32(ag))
			ok := true
			freeRuns(inv, func(off, n uint32) {
				if ok {
					ok = yield(Extent{Start: first + Block(off), Len: uint64(n)})
				}
			})
			if !ok {
				return
			}
		}
	}
}

// CheckInvariants verifies the Allocator's internal consistency, in time
// proportional to the blocks and extents it holds: both free indexes of
// every AG hold the same maximal, disjoint extents, clear in the committed
// and staging bitmaps; staging and committed never overlap; busy extents
// are in neither; the per-state counts add up; every refcount record
// covers committed blocks only. It is for tests and the store's Check; an
// error means a bug in this package.
func (a *Allocator) CheckInvariants() error {
	var free, staging, committed, busy int64
	hdr := a.geo.HeaderBlocks()
	for ag, g := range a.ags {
		if err := g.checkIndexes(hdr); err != nil {
			return fmt.Errorf("cowdb/extents: AG %d: %w", ag, err)
		}
		if _, n, _ := g.largest(); a.agMax.t[a.agMax.size+ag] != n {
			return fmt.Errorf("cowdb/extents: AG %d: largest-extent tree stale", ag)
		}
		free += int64(g.free)
		for i := range g.committed {
			if g.committed[i]&g.staging[i] != 0 {
				return fmt.Errorf("cowdb/extents: AG %d word %d: staging and committed overlap", ag, i)
			}
		}
		staging += int64(countSet(g.staging, 0, a.geo.BlocksPerAG))
		committed += int64(countSet(g.committed, hdr, a.geo.BlocksPerAG-hdr))
	}
	for _, b := range a.busyList.q[a.busyList.head:] {
		g := a.ags[b.ag]
		if b.off < hdr || countSet(g.committed, b.off, b.len)+countSet(g.staging, b.off, b.len) != 0 {
			return fmt.Errorf("cowdb/extents: busy extent %+v is allocated", b)
		}
		busy += int64(b.len)
	}
	if free != a.free || staging != a.staging || committed != a.committed || busy != a.busy {
		return fmt.Errorf("cowdb/extents: counts free %d/%d staging %d/%d committed %d/%d busy %d/%d",
			free, a.free, staging, a.staging, committed, a.committed, busy, a.busy)
	}
	if free+staging+committed+busy+int64(hdr)*int64(len(a.ags))+int64(a.geo.AGStart) != int64(a.geo.TotalBlocks()) {
		return fmt.Errorf("cowdb/extents: block states do not partition the file")
	}
	for r := range a.Records() {
		if _, _, err := a.committedExtent(Extent{Start: r.Start, Len: r.Len}); err != nil {
			return fmt.Errorf("cowdb/extents: record %+v: %w", r, err)
		}
	}
	return nil
}

// checkIndexes verifies that byStart and byLen hold the same extents, which
// are disjoint, not adjacent, past the header and clear in both bitmaps.
func (g *agroup) checkIndexes(hdr uint32) error {
	if g.byStart.len() != g.byLen.len() {
		return fmt.Errorf("indexes hold %d and %d extents", g.byStart.len(), g.byLen.len())
	}
	var err error
	var sum, end uint32
	first := true
	g.byStart.all(func(k uint64) bool {
		off, n := unpack(k)
		switch {
		case n == 0 || off < hdr || !first && off <= end:
			err = fmt.Errorf("free extent [%d,+%d) after %d", off, n, end)
		case countSet(g.committed, off, n)+countSet(g.staging, off, n) != 0:
			err = fmt.Errorf("free extent [%d,+%d) is allocated", off, n)
		default:
			if c, ok := g.byLen.seekGE(packLen(off, n)); !ok || g.byLen.at(c) != packLen(off, n) {
				err = fmt.Errorf("free extent [%d,+%d) missing from the length index", off, n)
			}
		}
		first, end, sum = false, off+n, sum+n
		return err == nil
	})
	if err == nil && sum != g.free {
		err = fmt.Errorf("free extents hold %d blocks, counted %d", sum, g.free)
	}
	return err
}

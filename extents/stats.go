package extents

import "iter"

// Stats is a snapshot of the Allocator's figures, in blocks.
type Stats struct {
	TotalBlocks     int64 // the data file
	HeaderBlocks    int64 // superblocks and AG bitmap copies
	FreeBlocks      int64 // allocatable now (reserved ones included)
	ReservedBlocks  int64 // free blocks set aside by Reserve
	StagingBlocks   int64 // handed out, not yet committed
	CommittedBlocks int64 // reachable from the live roots
	BusyBlocks      int64 // freed, waiting for a durable checkpoint or a pin
	SharedBlocks    int64 // committed blocks with a count of 2 or more
	FreeExtents     int64 // maximal runs of free blocks
	LargestFree     int64 // the longest free extent
	// Fragmentation is 1 - LargestFree/FreeBlocks: 0 when all free space
	// is one extent (or there is none), near 1 when it is dust. It says how
	// much of the free space a single large write cannot get contiguously.
	Fragmentation   float64
	RefcountRecords int64
	Pins            int64
	DirtyAGs        int64 // AGs the next checkpoint will write
}

// Stats computes the figures; it visits every AG once.
func (a *Allocator) Stats() Stats {
	s := Stats{
		TotalBlocks:     int64(a.geo.TotalBlocks()),
		HeaderBlocks:    int64(a.geo.AGStart) + int64(a.geo.AGCount)*int64(a.geo.HeaderBlocks()),
		FreeBlocks:      a.free,
		ReservedBlocks:  a.reserved,
		StagingBlocks:   a.staging,
		CommittedBlocks: a.committed,
		BusyBlocks:      a.busy,
		SharedBlocks:    a.refs.shared,
		RefcountRecords: int64(a.refs.starts.len()),
		Pins:            int64(len(a.pins.byID)),
	}
	for i, g := range a.ags {
		s.FreeExtents += int64(g.byStart.len())
		if _, n, ok := g.largest(); ok && int64(n) > s.LargestFree {
			s.LargestFree = int64(n)
		}
		if a.dirty[i] {
			s.DirtyAGs++
		}
	}
	if s.FreeBlocks > 0 {
		s.Fragmentation = 1 - float64(s.LargestFree)/float64(s.FreeBlocks)
	}
	return s
}

// FreeExtents yields the free extents in block order.
func (a *Allocator) FreeExtents() iter.Seq[Extent] {
	return func(yield func(Extent) bool) {
		for ag, g := range a.ags {
			first := a.geo.AGFirst(uint32(ag))
			ok := true
			g.byStart.all(func(k uint64) bool {
				off, n := unpack(k)
				ok = yield(Extent{Start: first + Block(off), Len: uint64(n)})
				return ok
			})
			if !ok {
				return
			}
		}
	}
}

// State is the state of one block (see the package comment).
type State uint8

const (
	StateHeader    State = iota // a superblock or AG bitmap copy block
	StateFree                   // allocatable now
	StateStaging                // handed out, not yet committed
	StateCommitted              // reachable from the live roots
	StateBusy                   // freed, not yet reusable
	StateOutside                // past the end of the data file
)

// State returns the state of block b. It searches the free index, so it
// is for checks and tests, not hot paths.
func (a *Allocator) State(b Block) State {
	if b < a.geo.AGStart {
		return StateHeader
	}
	ag, off, ok := a.geo.AGOf(b)
	switch {
	case !ok:
		return StateOutside
	case off < a.geo.HeaderBlocks():
		return StateHeader
	}
	g := a.ags[ag]
	switch {
	case allSet(g.committed, off, 1):
		return StateCommitted
	case allSet(g.staging, off, 1):
		return StateStaging
	}
	if c, ok := g.byStart.seekLE(packStart(off, ^uint32(0))); ok {
		if so, sn := unpack(g.byStart.at(c)); off < so+sn {
			return StateFree
		}
	}
	return StateBusy
}

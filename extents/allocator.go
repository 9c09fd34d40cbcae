package extents

import (
	"fmt"

	"github.com/cowdb/cowdb/internal/format"
)

// ReservationID names a reservation made by Reserve. 0 is never issued.
type ReservationID uint64

// PinID names a reader pin made by Pin. 0 is never issued.
type PinID uint64

// Allocator owns the state of every block of one data file. It is not safe
// for concurrent use: the store serializes calls under its own lock.
type Allocator struct {
	opts Options
	geo  Geometry
	ags  []*agroup

	// Block counts by state (header blocks are counted by the geometry).
	free, busy, staging, committed int64
	reserved                       int64

	reservations map[ReservationID]uint64
	nextRes      ReservationID

	busyList busyQueue
	pins     pinTable
	durable  LSN // LSN of the last durable checkpoint
	reused   LSN // highest free LSN whose blocks went back to the free set
	// seals counts Seal calls; durableGen is the seal number of the last
	// durable checkpoint. A free made after seal k is free in the image
	// of seal k+1 at the earliest, so it waits for durableGen >= k+1.
	seals, durableGen uint64

	refs refmap

	dirty    []bool // AGs whose committed bitmap changed since the last seal
	refDirty bool   // refcount records changed since the last seal
	cp       *Checkpoint
	rotor    uint32 // AG of the last allocation: where goal-less searches start
	agMax    maxTree
	scratch  []uint64 // reused by newAGroup
}

// updateMax records AG ag's largest free extent after its free set changed.
func (a *Allocator) updateMax(ag uint32) {
	_, n, _ := a.ags[ag].largest()
	a.agMax.set(int(ag), n)
}

// resetMax rebuilds the largest-extent tree for the current AGs.
func (a *Allocator) resetMax() {
	a.agMax.reset(len(a.ags))
	for ag := range a.ags {
		a.updateMax(uint32(ag))
	}
}

// New returns the allocator of a new data file of agCount AGs, every data
// block free and every AG dirty (the first checkpoint writes them all).
func New(opts *Options, agCount uint32) (*Allocator, error) {
	a, err := newEmpty(opts)
	if err != nil {
		return nil, err
	}
	if _, err := a.Grow(agCount); err != nil {
		return nil, err
	}
	return a, nil
}

func newEmpty(opts *Options) (*Allocator, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	a := &Allocator{
		opts: o,
		geo: Geometry{
			BlockSize:    o.BlockSize,
			BlocksPerAG:  o.BlocksPerAG,
			MaxAGCount:   o.MaxAGCount,
			AGStart:      format.SuperblockCopies,
			BitmapBlocks: uint32(format.AGBitmapBlocks(o.BlocksPerAG, o.BlockSize)),
		},
		reservations: make(map[ReservationID]uint64),
	}
	a.pins.init()
	return a, nil
}

// Geometry returns the current geometry.
func (a *Allocator) Geometry() Geometry { return a.geo }

// Grow extends the allocator to agCount AGs (the store has already grown
// the file), all their data blocks free and the new AGs dirty. It returns
// the new size of the data file in blocks. Shrinking is not supported: a
// count below the current one is ErrInvalid; above MaxAGCount, ErrNoSpace.
func (a *Allocator) Grow(agCount uint32) (uint64, error) {
	switch {
	case agCount < a.geo.AGCount:
		return 0, fmt.Errorf("%w: shrink from %d to %d AGs", ErrInvalid, a.geo.AGCount, agCount)
	case agCount > a.geo.MaxAGCount:
		return 0, fmt.Errorf("%w: %d AGs above the maximum %d", ErrNoSpace, agCount, a.geo.MaxAGCount)
	}
	for ag := a.geo.AGCount; ag < agCount; ag++ {
		var g *agroup
		g, a.scratch = newAGroup(a.geo.BlocksPerAG, a.geo.HeaderBlocks(), nil, a.scratch)
		a.ags = append(a.ags, g)
		a.dirty = append(a.dirty, true)
		a.free += int64(g.free)
	}
	a.geo.AGCount = agCount
	a.resetMax()
	return a.geo.TotalBlocks(), nil
}

// Reserve sets n free blocks aside for a writer that will allocate them
// later (XFS delalloc): other allocations cannot take them, so concurrent
// writers cannot oversubscribe the space. ErrNoSpace if fewer than n free
// blocks are unreserved.
func (a *Allocator) Reserve(n uint64) (ReservationID, error) {
	switch {
	case n == 0:
		return 0, fmt.Errorf("%w: empty reservation", ErrInvalid)
	case len(a.reservations) >= a.opts.ReservationsMax:
		return 0, fmt.Errorf("%w: %d reservations", ErrTooMany, len(a.reservations))
	case n > uint64(a.free-a.reserved):
		return 0, fmt.Errorf("%w: reserve %d blocks, %d available", ErrNoSpace, n, a.free-a.reserved)
	}
	a.nextRes++
	a.reservations[a.nextRes] = n
	a.reserved += int64(n)
	return a.nextRes, nil
}

// Unreserve releases what is left of reservation r.
func (a *Allocator) Unreserve(r ReservationID) error {
	n, ok := a.reservations[r]
	if !ok {
		return ErrUnknownReservation
	}
	delete(a.reservations, r)
	a.reserved -= int64(n)
	return nil
}

// Reserved returns the blocks left in reservation r (0 if unknown).
func (a *Allocator) Reserved(r ReservationID) uint64 { return a.reservations[r] }

// Alloc hands out up to n blocks as staging blocks, drawn from the
// unreserved free space, and returns them as one extent inside one AG:
//
//   - near goal: if goal is a data block, the free run at goal, else the
//     nearest free extent of n blocks among Options.NearSearchMax free
//     extents on either side in goal's AG (unless that AG is low on space,
//     under 1/16 free, when best-fit keeps its large extents whole);
//   - else best-fit: the smallest free extent of at least n blocks, in
//     goal's AG first, then in the following AGs (from the AG of the last
//     allocation when goal is NoBlock);
//   - else, with no free extent of n blocks anywhere, a partial result: the
//     largest free extent of goal's AG (or of the first AG that has one),
//     shorter than n. The caller allocates the rest with the next call,
//     goal = the end of this extent, or uses AllocExtents.
//
// ErrNoSpace if no unreserved block is free.
func (a *Allocator) Alloc(n uint64, goal Block) (Extent, error) {
	if n == 0 {
		return Extent{}, fmt.Errorf("%w: zero-length allocation", ErrInvalid)
	}
	avail := uint64(a.free - a.reserved)
	if avail == 0 {
		return Extent{}, fmt.Errorf("%w: %d blocks wanted, none available", ErrNoSpace, n)
	}
	return a.alloc(min(n, avail), goal), nil
}

// AllocReserved is Alloc drawing on reservation r instead of the
// unreserved space: n must not exceed what is left of r, and the blocks
// handed out are taken off r. It never fails for want of space.
func (a *Allocator) AllocReserved(r ReservationID, n uint64, goal Block) (Extent, error) {
	left, ok := a.reservations[r]
	switch {
	case n == 0:
		return Extent{}, fmt.Errorf("%w: zero-length allocation", ErrInvalid)
	case !ok || n > left:
		return Extent{}, fmt.Errorf("%w: %d blocks from reservation %d holding %d", ErrUnknownReservation, n, r, left)
	}
	e := a.alloc(n, goal)
	a.reservations[r] -= e.Len
	a.reserved -= int64(e.Len)
	return e, nil
}

// AllocExtents allocates exactly n blocks, as few extents as the free
// space allows (each next piece aimed at the end of the previous one), and
// appends them to dst. It is all or nothing: ErrNoSpace (and no change) if
// fewer than n unreserved blocks are free. r != 0 draws on reservation r
// as AllocReserved does.
func (a *Allocator) AllocExtents(dst []Extent, n uint64, goal Block, r ReservationID) ([]Extent, error) {
	if n == 0 {
		return dst, fmt.Errorf("%w: zero-length allocation", ErrInvalid)
	}
	if r != 0 {
		if left, ok := a.reservations[r]; !ok || n > left {
			return dst, fmt.Errorf("%w: %d blocks from reservation %d holding %d", ErrUnknownReservation, n, r, left)
		}
	} else if avail := uint64(a.free - a.reserved); n > avail {
		return dst, fmt.Errorf("%w: %d blocks wanted, %d available", ErrNoSpace, n, avail)
	}
	// Each piece is at least one block, so n bounds the loop.
	for left := n; left > 0; {
		e := a.alloc(left, goal)
		dst = append(dst, e)
		left -= e.Len
		goal = e.End()
		if r != 0 {
			a.reservations[r] -= e.Len
			a.reserved -= int64(e.Len)
		}
	}
	return dst, nil
}

// alloc picks and takes up to n blocks; there must be a free block.
func (a *Allocator) alloc(n uint64, goal Block) Extent {
	n = min(n, uint64(a.geo.BlocksPerAG))
	ag, eo, en, at := a.pick(uint32(n), goal)
	take := min(uint32(n), en-(at-eo))
	g := a.ags[ag]
	g.takeFree(eo, en, at, take)
	setRange(g.staging, at, take)
	a.free -= int64(take)
	a.staging += int64(take)
	a.rotor = ag
	a.updateMax(ag)
	return Extent{Start: a.geo.AGFirst(ag) + Block(at), Len: uint64(take)}
}

// pick chooses the free extent (ag, eo, en) to take blocks from, starting
// at at; see Alloc for the policy.
func (a *Allocator) pick(n uint32, goal Block) (ag, eo, en, at uint32) {
	start := a.rotor
	if gag, goff, ok := a.geo.AGOf(goal); ok {
		g := a.ags[gag]
		usable := a.geo.BlocksPerAG - a.geo.HeaderBlocks()
		if g.free >= usable/16 {
			if eo, en, at, ok := g.nearFit(goff, n, a.opts.NearSearchMax); ok {
				return gag, eo, en, at
			}
		}
		start = gag
	}
	if ag := a.agMax.firstCyclic(start, n); ag >= 0 {
		eo, en, _ := a.ags[ag].bestFit(n)
		return uint32(ag), eo, en, eo
	}
	if ag := a.agMax.firstCyclic(start, 1); ag >= 0 {
		eo, en, _ := a.ags[ag].largest()
		return uint32(ag), eo, en, eo
	}
	panic("cowdb: assertion failed: allocating with no free block")
}

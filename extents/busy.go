package extents

import (
	"fmt"
	"iter"
	"sort"
)

// busyExtent is a freed extent waiting to become allocatable, tagged with
// the LSN of the operation that freed it (for reader pins) and the seal
// number of the first checkpoint whose image shows it free (gen): the
// checkpoint sealed next after the free, or the one FreeTo freed it into.
// The checkpoint condition goes by gen rather than by LSN so that a free
// made after a seal is never released by that checkpoint, whose image and
// roots still hold the block, whatever LSN the caller gave it.
type busyExtent struct {
	ag       uint32
	off, len uint32
	lsn      LSN
	gen      uint64
}

// before orders busy extents by gen, then LSN.
func (b busyExtent) before(c busyExtent) bool {
	return b.gen < c.gen || b.gen == c.gen && b.lsn < c.lsn
}

// busyQueue holds busy extents ordered by gen and LSN, so release pops a
// prefix. Frees arrive in that order except those FreeTo tags with a
// sealed checkpoint's gen and LSN, which are inserted in place.
type busyQueue struct {
	q    []busyExtent
	head int
}

func (b *busyQueue) push(e busyExtent) {
	i := len(b.q)
	if i > b.head && e.before(b.q[i-1]) {
		i = b.head + sort.Search(len(b.q)-b.head, func(j int) bool { return e.before(b.q[b.head+j]) })
	}
	b.q = append(b.q, busyExtent{})
	copy(b.q[i+1:], b.q[i:])
	b.q[i] = e
}

// popThrough removes and yields the extents at the head of the queue
// freed at or before lsn into a checkpoint with a seal number of at most
// gen. It stops at the first that is not: every extent it yields meets
// both conditions, whatever the order of the rest.
func (b *busyQueue) popThrough(lsn LSN, gen uint64, f func(busyExtent)) {
	for b.head < len(b.q) && b.q[b.head].lsn <= lsn && b.q[b.head].gen <= gen {
		f(b.q[b.head])
		b.head++
	}
	if b.head == len(b.q) {
		b.q, b.head = b.q[:0], 0
	} else if b.head > len(b.q)/2 && b.head > 64 {
		b.q = append(b.q[:0], b.q[b.head:]...)
		b.head = 0
	}
}

// pinTable holds reader pins: PinID -> LSN, and the pinned LSNs with their
// multiplicity in a sorted slice so the oldest is at hand. Readers pin the
// newest version, so insertions are nearly always at the end.
type pinTable struct {
	byID map[PinID]LSN
	lsns []pinCount
	next PinID
}

type pinCount struct {
	lsn LSN
	n   int
}

func (p *pinTable) init() { p.byID = make(map[PinID]LSN) }

func (p *pinTable) add(lsn LSN) PinID {
	p.next++
	p.byID[p.next] = lsn
	i := sort.Search(len(p.lsns), func(i int) bool { return p.lsns[i].lsn >= lsn })
	if i < len(p.lsns) && p.lsns[i].lsn == lsn {
		p.lsns[i].n++
	} else {
		p.lsns = append(p.lsns, pinCount{})
		copy(p.lsns[i+1:], p.lsns[i:])
		p.lsns[i] = pinCount{lsn, 1}
	}
	return p.next
}

func (p *pinTable) remove(id PinID) bool {
	lsn, ok := p.byID[id]
	if !ok {
		return false
	}
	delete(p.byID, id)
	i := sort.Search(len(p.lsns), func(i int) bool { return p.lsns[i].lsn >= lsn })
	if p.lsns[i].n--; p.lsns[i].n == 0 {
		p.lsns = append(p.lsns[:i], p.lsns[i+1:]...)
	}
	return true
}

// oldest returns the oldest pinned LSN, ok false if nothing is pinned.
func (p *pinTable) oldest() (LSN, bool) {
	if len(p.lsns) == 0 {
		return 0, false
	}
	return p.lsns[0].lsn, true
}

// Pin records that a reader sees the version at lsn (every operation at or
// before lsn applied, none after): blocks freed by later operations stay
// busy until Unpin. The store pins the version it hands a reader, which is
// never older than the blocks already reused; an older lsn is ErrPinTooOld.
func (a *Allocator) Pin(lsn LSN) (PinID, error) {
	switch {
	case lsn < a.reused:
		return 0, fmt.Errorf("%w: version %d, blocks freed at %d already reused", ErrPinTooOld, lsn, a.reused)
	case len(a.pins.byID) >= a.opts.PinsMax:
		return 0, fmt.Errorf("%w: %d pins", ErrTooMany, len(a.pins.byID))
	}
	return a.pins.add(lsn), nil
}

// Unpin drops pin id and releases the busy blocks it was holding back.
func (a *Allocator) Unpin(id PinID) error {
	if !a.pins.remove(id) {
		return ErrUnknownPin
	}
	a.releaseBusy()
	return nil
}

// releaseBusy makes allocatable every busy extent free in the image of a
// durable checkpoint and freed at or before both that checkpoint's LSN and
// the oldest pin.
func (a *Allocator) releaseBusy() {
	limit := a.durable
	if p, ok := a.pins.oldest(); ok && p < limit {
		limit = p
	}
	a.busyList.popThrough(limit, a.durableGen, func(b busyExtent) {
		a.ags[b.ag].addFree(b.off, b.len)
		a.updateMax(b.ag)
		a.busy -= int64(b.len)
		a.free += int64(b.len)
		a.reused = max(a.reused, b.lsn)
	})
}

// Commit makes staging extent e committed, with count 1: the write that
// filled it has been remapped into the live tree. It changes e's AG bitmap,
// so the next checkpoint writes that AG. ErrWrongState unless every block
// of e is staging.
func (a *Allocator) Commit(e Extent) error {
	ag, off, err := a.stagingExtent(e)
	if err != nil {
		return err
	}
	a.touch(ag)
	a.commit(ag, off, uint32(e.Len))
	a.dirty[ag] = true
	return nil
}

func (a *Allocator) commit(ag, off, n uint32) {
	g := a.ags[ag]
	clearRange(g.staging, off, n)
	setRange(g.committed, off, n)
	a.staging -= int64(n)
	a.committed += int64(n)
}

// ReleaseStaging returns staging extent e to the free space at once: the
// write that was to fill it failed, and nothing ever referenced it.
// ErrWrongState unless every block of e is staging.
func (a *Allocator) ReleaseStaging(e Extent) error {
	ag, off, err := a.stagingExtent(e)
	if err != nil {
		return err
	}
	g := a.ags[ag]
	clearRange(g.staging, off, uint32(e.Len))
	g.addFree(off, uint32(e.Len))
	a.updateMax(ag)
	a.staging -= int64(e.Len)
	a.free += int64(e.Len)
	return nil
}

func (a *Allocator) stagingExtent(e Extent) (ag, off uint32, err error) {
	ag, off, err = a.geo.locate(e)
	if err != nil {
		return 0, 0, err
	}
	if !allSet(a.ags[ag].staging, off, uint32(e.Len)) {
		return 0, 0, fmt.Errorf("%w: %v is not all staging", ErrWrongState, e)
	}
	return ag, off, nil
}

// committedExtent validates that e is all committed.
func (a *Allocator) committedExtent(e Extent) (ag, off uint32, err error) {
	ag, off, err = a.geo.locate(e)
	if err != nil {
		return 0, 0, err
	}
	if !allSet(a.ags[ag].committed, off, uint32(e.Len)) {
		return 0, 0, fmt.Errorf("%w: %v is not all committed", ErrWrongState, e)
	}
	return ag, off, nil
}

// Free frees committed, unshared extent e (every block count 1) by the
// operation at lsn: the blocks become busy, free in the image of the next
// checkpoint sealed, and allocatable once that (or a later) checkpoint is
// durable with lsn at or before its LSN and no pin older than lsn remains.
// ErrWrongState if a block is not committed or is shared (use Dec for
// shared blocks).
func (a *Allocator) Free(e Extent, lsn LSN) error {
	ag, off, err := a.committedExtent(e)
	if err != nil {
		return err
	}
	if a.refs.overlaps(e) {
		return fmt.Errorf("%w: %v is shared", ErrWrongState, e)
	}
	a.touch(ag)
	a.dirty[ag] = true
	a.makeBusy(ag, off, uint32(e.Len), lsn, a.seals+1)
	return nil
}

// makeBusy moves committed blocks to the busy queue; gen is the seal
// number of the first checkpoint whose image shows them free.
func (a *Allocator) makeBusy(ag, off, n uint32, lsn LSN, gen uint64) {
	clearRange(a.ags[ag].committed, off, n)
	a.committed -= int64(n)
	a.busy += int64(n)
	a.busyList.push(busyExtent{ag: ag, off: off, len: n, lsn: lsn, gen: gen})
}

// BusyExtents yields the busy extents with the LSN that freed them, oldest
// first.
func (a *Allocator) BusyExtents() iter.Seq2[Extent, LSN] {
	return func(yield func(Extent, LSN) bool) {
		for _, b := range a.busyList.q[a.busyList.head:] {
			if !yield(Extent{Start: a.geo.AGFirst(b.ag) + Block(b.off), Len: uint64(b.len)}, b.lsn) {
				return
			}
		}
	}
}

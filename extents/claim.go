package extents

import "fmt"

// Claim makes the free extent e committed, with count 1, without passing
// through staging. It is for WAL replay: a remap record names the exact
// blocks it maps, which were staging when the checkpoint being replayed
// onto was sealed and so are free in it; replay claims them exactly as the
// first execution committed them. Like Commit it changes e's AG bitmap, so
// the next checkpoint writes that AG.
//
// ErrWrongState (and no change) unless every block of e is free; ErrNoSpace
// if claiming e would leave the reservations unmet; ErrInvalid for an
// extent outside the AGs' data blocks.
func (a *Allocator) Claim(e Extent) error {
	ag, off, err := a.geo.locate(e)
	if err != nil {
		return err
	}
	g := a.ags[ag]
	n := uint32(e.Len)
	c, ok := g.byStart.seekLE(packStart(off, ^uint32(0)))
	if !ok {
		return fmt.Errorf("%w: claiming %v: not free", ErrWrongState, e)
	}
	eo, en := unpack(g.byStart.at(c))
	if off < eo || uint64(off)+e.Len > uint64(eo)+uint64(en) {
		return fmt.Errorf("%w: claiming %v: not free", ErrWrongState, e)
	}
	if a.free-a.reserved < int64(n) {
		return fmt.Errorf("%w: claiming %v would take reserved blocks", ErrNoSpace, e)
	}
	a.touch(ag)
	g.takeFree(eo, en, off, n)
	a.free -= int64(n)
	setRange(g.committed, off, n)
	a.committed += int64(n)
	a.dirty[ag] = true
	a.updateMax(ag)
	return nil
}

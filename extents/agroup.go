package extents

import "slices"

// agroup is the in-memory state of one allocation group. Offsets are
// relative to the AG's first block.
//
// A block's state is read from three places: committed (bit set: header or
// committed), staging (bit set: staging), and the free indexes. A block in
// none of them is busy.
type agroup struct {
	committed []uint64 // header and committed blocks; padding bits set
	staging   []uint64 // staging blocks
	byStart   u64set   // free extents as off<<32 | len
	byLen     u64set   // free extents as len<<32 | off
	free      uint32   // blocks in free extents
	newest    int8     // bitmap copy slot holding the newest durable image; -1 none
}

func packStart(off, n uint32) uint64  { return uint64(off)<<32 | uint64(n) }
func packLen(off, n uint32) uint64    { return uint64(n)<<32 | uint64(off) }
func unpack(k uint64) (hi, lo uint32) { return uint32(k >> 32), uint32(k) }

// newAGroup returns an AG of nbits blocks whose first hdr blocks are header
// and whose committed bitmap is bm (nil: nothing committed). It builds the
// free indexes from the clear bits of bm, in bulk; scratch is reusable
// working memory, returned possibly grown.
func newAGroup(nbits, hdr uint32, bm []uint64, scratch []uint64) (*agroup, []uint64) {
	g := &agroup{newest: -1}
	if bm == nil {
		bm = make([]uint64, bitmapWords(nbits))
	}
	g.committed = bm
	setRange(bm, 0, hdr)
	if pad := uint32(len(bm))*64 - nbits; pad > 0 {
		setRange(bm, nbits, pad)
	}
	g.staging = make([]uint64, len(bm))
	runs := scratch[:0]
	freeRuns(bm, func(off, n uint32) {
		g.byStart.appendMax(packStart(off, n))
		runs = append(runs, packLen(off, n))
		g.free += n
	})
	for _, k := range sortByLen(runs) {
		g.byLen.appendMax(k)
	}
	return g, runs[:0]
}

// sortByLen sorts free runs given in offset order into (length, offset)
// order. Short runs, the many in a fragmented AG, go through a counting
// sort by length, which keeps their offset order; the few long ones are
// sorted by comparison and follow. Loading a fragmented 1 TiB store spends
// most of its time here otherwise.
func sortByLen(runs []uint64) []uint64 {
	const short = 256
	var counts [short + 1]int
	long := 0
	for _, k := range runs {
		if n := k >> 32; n < short {
			counts[n+1]++
		} else {
			long++
		}
	}
	for i := 1; i <= short; i++ {
		counts[i] += counts[i-1]
	}
	out := make([]uint64, len(runs))
	tail := out[len(runs)-long:]
	j := 0
	for _, k := range runs {
		if n := k >> 32; n < short {
			out[counts[n]] = k
			counts[n]++
		} else {
			tail[j] = k
			j++
		}
	}
	slices.Sort(tail)
	return out
}

// addFree returns [off, off+n) to the free indexes, merging it with free
// neighbours. The range must not overlap a free extent.
func (g *agroup) addFree(off, n uint32) {
	mo, mn := off, n
	var po, pn, so, sn uint32 // neighbours to merge; pn, sn = 0: none
	if c, ok := g.byStart.seekLE(packStart(off, 0)); ok {
		po, pn = unpack(g.byStart.at(c))
		if po+pn > off {
			panic("cowdb: assertion failed: freeing a free block")
		}
		if po+pn == off {
			mo, mn = po, mn+pn
		} else {
			pn = 0
		}
	}
	if c, ok := g.byStart.seekGE(packStart(off, 0)); ok {
		so, sn = unpack(g.byStart.at(c))
		if so < off+n {
			panic("cowdb: assertion failed: freeing a free block")
		}
		if so == off+n {
			mn += sn
		} else {
			sn = 0
		}
	}
	// Insert before removing so a lone chunk is never emptied and freed.
	g.insertFree(mo, mn)
	if pn > 0 {
		g.removeFree(po, pn)
	}
	if sn > 0 {
		g.removeFree(so, sn)
	}
}

func (g *agroup) removeFree(off, n uint32) {
	if !g.byStart.delete(packStart(off, n)) || !g.byLen.delete(packLen(off, n)) {
		panic("cowdb: assertion failed: free indexes disagree")
	}
	g.free -= n
}

// takeFree removes [off, off+n) from the free extent [eo, eo+en) holding it,
// giving back the parts on either side.
func (g *agroup) takeFree(eo, en, off, n uint32) {
	if off < eo || off+n > eo+en {
		panic("cowdb: assertion failed: taking blocks outside their free extent")
	}
	// Insert the remains before removing so a lone chunk is never emptied.
	if off > eo {
		g.insertFree(eo, off-eo)
	}
	if end := eo + en; off+n < end {
		g.insertFree(off+n, end-off-n)
	}
	g.removeFree(eo, en)
}

// insertFree adds an extent known not to touch another free extent.
func (g *agroup) insertFree(off, n uint32) {
	g.byStart.insert(packStart(off, n))
	g.byLen.insert(packLen(off, n))
	g.free += n
}

// largest returns the largest free extent (the highest-offset one of that
// length).
func (g *agroup) largest() (off, n uint32, ok bool) {
	k, ok := g.byLen.max()
	if !ok {
		return 0, 0, false
	}
	n, off = unpack(k)
	return off, n, true
}

// bestFit returns the smallest free extent of at least n blocks, the
// lowest-offset one among equals.
func (g *agroup) bestFit(n uint32) (eo, en uint32, ok bool) {
	if k, ok := g.byLen.max(); !ok || uint32(k>>32) < n {
		return 0, 0, false // cheap rejection: most AGs, when fragmented
	}
	c, ok := g.byLen.seekGE(packLen(0, n))
	if !ok {
		return 0, 0, false
	}
	en, eo = unpack(g.byLen.at(c))
	return eo, en, true
}

// nearFit looks for n free blocks close to goal: the free extent holding
// goal if it has n blocks from goal on, else the nearest extent of at least
// n blocks among limit extents after goal and limit before it (placed at
// the start of one after goal, at the end of one before). It returns the
// free extent and where to take the blocks from it.
func (g *agroup) nearFit(goal, n uint32, limit int) (eo, en, at uint32, ok bool) {
	bc, bok := g.byStart.seekLE(packStart(goal, ^uint32(0)))
	if bok {
		po, pn := unpack(g.byStart.at(bc))
		if po+pn > goal && po+pn-goal >= n {
			return po, pn, goal, true
		}
	}
	var fwd, back uint64 = 1 << 40, 1 << 40 // distances; 1<<40 = none found
	fc, fok := g.byStart.seekGE(packStart(goal+1, 0))
	if goal == ^uint32(0) {
		fok = false
	}
	for i := 0; fok && i < limit; i++ {
		so, sn := unpack(g.byStart.at(fc))
		if sn >= n {
			fwd, eo, en, at = uint64(so-goal), so, sn, so
			break
		}
		fc, fok = g.byStart.next(fc)
	}
	for i := 0; bok && i < limit; i++ {
		po, pn := unpack(g.byStart.at(bc))
		if pn >= n && po+pn <= goal {
			if d := uint64(goal - (po + pn)); d < fwd {
				back, eo, en, at = d, po, pn, po+pn-n
			}
			break
		}
		bc, bok = g.byStart.prev(bc)
	}
	return eo, en, at, fwd < 1<<40 || back < 1<<40
}

package extents

import (
	"fmt"
	"iter"
)

// Record is one refcount record: blocks [Start, Start+Len) each have
// reference count Count (>= 2). A committed block with no record has count
// 1. Records never overlap, never cross an AG boundary, and two adjacent
// records never have the same count (they are merged), so a set of records
// has one canonical form.
type Record struct {
	Start Block
	Len   uint64
	Count uint32
}

// End returns the first block after r.
func (r Record) End() Block { return r.Start + Block(r.Len) }

// refmap is the range map of records, ordered by start: the start keys in a
// u64set, the length and count beside them in a map.
type refmap struct {
	starts u64set
	vals   map[Block]refVal
	shared int64 // blocks covered by records
}

type refVal struct{ len, count uint32 }

func (m *refmap) get(c cursor) Record {
	s := Block(m.starts.at(c))
	v := m.vals[s]
	return Record{Start: s, Len: uint64(v.len), Count: v.count}
}

func (m *refmap) put(r Record) {
	if m.vals == nil {
		m.vals = make(map[Block]refVal)
	}
	m.starts.insert(uint64(r.Start))
	m.vals[r.Start] = refVal{uint32(r.Len), r.Count}
	m.shared += int64(r.Len)
}

func (m *refmap) del(r Record) {
	m.starts.delete(uint64(r.Start))
	delete(m.vals, r.Start)
	m.shared -= int64(r.Len)
}

// overlapping returns the records that overlap [s, e), in order.
func (m *refmap) overlapping(s, e Block, dst []Record) []Record {
	c, ok := m.starts.seekLE(uint64(s))
	if ok && m.get(c).End() <= s {
		c, ok = m.starts.next(c)
	} else if !ok {
		c, ok = m.starts.seekGE(uint64(s))
	}
	for ; ok; c, ok = m.starts.next(c) {
		r := m.get(c)
		if r.Start >= e {
			break
		}
		dst = append(dst, r)
	}
	return dst
}

func (m *refmap) overlaps(e Extent) bool {
	var buf [1]Record
	return len(m.overlapping(e.Start, e.End(), buf[:0])) > 0
}

// count returns the reference count of committed block b.
func (m *refmap) count(b Block) uint32 {
	if c, ok := m.starts.seekLE(uint64(b)); ok {
		if r := m.get(c); r.End() > b {
			return r.Count
		}
	}
	return 1
}

// adjust adds delta (+1 or -1) to the count of every block of [s, e), all
// committed. Saturated ranges (count limit) do not move. Blocks whose count
// drops from 1 to 0 are appended to freed.
func (m *refmap) adjust(s, e Block, delta int, limit uint32, freed []Extent) []Extent {
	step := func(c uint32) uint32 {
		switch {
		case c == limit:
			return c
		case delta > 0:
			return c + 1
		}
		return c - 1
	}
	old := m.overlapping(s, e, nil)
	var pieces []Record
	add := func(a, b Block, c uint32) {
		if a < b {
			pieces = append(pieces, Record{Start: a, Len: uint64(b - a), Count: c})
		}
	}
	gap := func(a, b Block) {
		if a >= b {
			return
		}
		if delta > 0 {
			add(a, b, step(1))
		} else {
			freed = append(freed, Extent{Start: a, Len: uint64(b - a)})
		}
	}
	// The left and right neighbours join the pieces so equal counts merge.
	lo, hi := s, e
	if len(old) > 0 {
		lo, hi = min(s, old[0].Start), max(e, old[len(old)-1].End())
	}
	if lo > 0 {
		if c, ok := m.starts.seekLE(uint64(lo) - 1); ok {
			if r := m.get(c); r.End() == lo {
				old = append([]Record{r}, old...)
			}
		}
	}
	if c, ok := m.starts.seekGE(uint64(hi)); ok {
		if r := m.get(c); r.Start == hi {
			old = append(old, r)
		}
	}
	p := s
	for _, r := range old {
		if r.Start >= e { // the right neighbour: the range's tail first
			gap(p, e)
			p = e
		}
		if r.End() <= s || r.Start >= e { // a neighbour
			add(r.Start, r.End(), r.Count)
			continue
		}
		gap(p, r.Start)
		add(r.Start, max(r.Start, s), r.Count)
		add(max(r.Start, s), min(r.End(), e), step(r.Count))
		add(min(r.End(), e), r.End(), r.Count)
		p = min(r.End(), e)
	}
	gap(p, e)
	for _, r := range old {
		m.del(r)
	}
	m.putMerged(pieces)
	return freed
}

// putMerged inserts pieces, ordered and disjoint, merging contiguous ones
// of equal count and dropping those of count 1 (no record).
func (m *refmap) putMerged(pieces []Record) {
	for i := 0; i < len(pieces); {
		r := pieces[i]
		j := i + 1
		for ; j < len(pieces) && pieces[j].Start == r.End() && pieces[j].Count == r.Count; j++ {
			r.Len += pieces[j].Len
		}
		if r.Count >= 2 {
			m.put(r)
		}
		i = j
	}
}

// Inc adds one reference to every block of committed extent e (a snapshot
// shadowing a shared node, a clone): count-1 blocks gain a record of 2,
// records split and merge as needed, saturated blocks stay at
// Options.RefcountMax. ErrWrongState unless every block is committed.
func (a *Allocator) Inc(e Extent) error {
	if _, _, err := a.committedExtent(e); err != nil {
		return err
	}
	a.touchRefs()
	a.refs.adjust(e.Start, e.End(), +1, a.opts.RefcountMax, nil)
	a.refDirty = true
	return nil
}

// Dec drops one reference from every block of committed extent e, by the
// operation at lsn. Blocks whose count was 1 are freed exactly as Free
// frees them (they become busy); saturated blocks do not move.
// ErrWrongState unless every block is committed.
func (a *Allocator) Dec(e Extent, lsn LSN) error {
	ag, _, err := a.committedExtent(e)
	if err != nil {
		return err
	}
	a.touchRefs()
	freed := a.refs.adjust(e.Start, e.End(), -1, a.opts.RefcountMax, nil)
	a.refDirty = true
	if len(freed) > 0 {
		a.touch(ag)
		a.dirty[ag] = true
	}
	first := a.geo.AGFirst(ag)
	for _, f := range freed {
		a.makeBusy(ag, uint32(f.Start-first), uint32(f.Len), lsn, a.seals+1)
	}
	return nil
}

// Count returns the reference count of block b: 0 unless b is committed,
// else 1 or its record's count.
func (a *Allocator) Count(b Block) uint32 {
	ag, off, ok := a.geo.AGOf(b)
	if !ok || off < a.geo.HeaderBlocks() || !allSet(a.ags[ag].committed, off, 1) {
		return 0
	}
	return a.refs.count(b)
}

// Records yields the refcount records in block order: the live state, to
// be persisted as the refcount tree. Changing the Allocator during the
// iteration is not allowed.
func (a *Allocator) Records() iter.Seq[Record] {
	return func(yield func(Record) bool) {
		a.refs.starts.all(func(k uint64) bool {
			v := a.refs.vals[Block(k)]
			return yield(Record{Start: Block(k), Len: uint64(v.len), Count: v.count})
		})
	}
}

// loadRecord adds a record read from disk after checking it: in order
// after prev, one AG, all committed, count in [2, RefcountMax], not the
// same count as an adjacent previous record.
func (a *Allocator) loadRecord(r, prev Record, first bool) error {
	ag, _, err := a.geo.locate(Extent{Start: r.Start, Len: r.Len})
	switch {
	case err != nil:
		return fmt.Errorf("record %+v: %v", r, err)
	case r.Count < 2 || r.Count > a.opts.RefcountMax:
		return fmt.Errorf("record %+v: count outside [2, %d]", r, a.opts.RefcountMax)
	case !first && r.Start < prev.End():
		return fmt.Errorf("record %+v overlaps or precedes %+v", r, prev)
	case !first && r.Start == prev.End() && r.Count == prev.Count:
		return fmt.Errorf("record %+v not merged with %+v", r, prev)
	}
	if _, _, err := a.committedExtent(Extent{Start: r.Start, Len: r.Len}); err != nil {
		return fmt.Errorf("record %+v in AG %d covers uncommitted blocks", r, ag)
	}
	a.refs.put(r)
	return nil
}

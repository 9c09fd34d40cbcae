package cowio

import (
	"slices"
	"sort"

	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
)

// mergeSumsMax bounds the length of an entry that carries checksums and is
// made by merging two physically contiguous neighbours: merging copies
// both checksum lists, so without a bound a blob written sequentially in
// small pieces would cost quadratic time. Entries without checksums merge
// without a bound, since merging them copies nothing.
const mergeSumsMax = 1 << 10

// fileBlockMax is one past the largest file block any inode maps: the
// blocks of a value of ReadSizeMax bytes at the smallest block size.
const fileBlockMax = FileBlock(ReadSizeMax / BlockSizeMin)

// The functions below work on a sorted list of entries that do not overlap
// (a committed mapping, or the reserved part of a staging map). They treat
// entry values as immutable and their checksum lists as read-only: a piece
// of an entry shares its parent's checksums through a full slice
// expression (so an append can never write into them) and a merge copies
// both into a new list. That is what lets ReadAt hand copies of entries to
// I/O outside the mapping lock while the list itself is spliced in place.

// sub returns the part of e covering file blocks [from, to), which must lie
// inside e.
func sub(e Entry, from, to FileBlock) Entry {
	at := uint64(from - e.FileBlock)
	n := uint64(to - from)
	out := Entry{FileBlock: from, Start: e.Start + format.Block(at), Len: n}
	if e.Sums != nil {
		out.Sums = e.Sums[at : at+n : at+n]
	}
	return out
}

// firstEnding returns the index of the first entry of list ending after fb.
func firstEnding(list []Entry, fb FileBlock) int {
	return sort.Search(len(list), func(i int) bool { return list[i].FileEnd() > fb })
}

// within returns copies of the parts of list's entries inside [a, b), in
// order.
func within(list []Entry, a, b FileBlock) []Entry {
	var out []Entry
	for i := firstEnding(list, a); i < len(list) && list[i].FileBlock < b; i++ {
		e := list[i]
		out = append(out, sub(e, max(a, e.FileBlock), min(b, e.FileEnd())))
	}
	return out
}

// splice replaces what list maps in [a, b) with repl (entries inside
// [a, b), sorted) and returns the new list and the parts of the old
// entries that were inside [a, b), in order. Entries cut by a or b keep
// their parts outside. Neighbours that become physically contiguous are
// merged. list's backing array is reused.
func splice(list []Entry, a, b FileBlock, repl []Entry) (out, removed []Entry) {
	i := firstEnding(list, a)
	j := i
	for j < len(list) && list[j].FileBlock < b {
		j++
	}
	mid := make([]Entry, 0, len(repl)+2)
	if i < j && list[i].FileBlock < a {
		mid = append(mid, sub(list[i], list[i].FileBlock, a))
	}
	mid = append(mid, repl...)
	if i < j && list[j-1].FileEnd() > b {
		e := list[j-1]
		mid = append(mid, sub(e, b, e.FileEnd()))
	}
	removed = within(list[i:j], a, b)
	out = slices.Replace(list, i, j, mid...)
	return mergeAround(out, i-1, i+len(mid)), removed
}

// mergeAround merges the physically contiguous neighbours among
// list[lo..hi] (clipped to the list) and returns the list.
func mergeAround(list []Entry, lo, hi int) []Entry {
	lo, hi = max(lo, 0), min(hi, len(list)-1)
	for k := hi; k > lo; k-- {
		if x, y := list[k-1], list[k]; mergeable(x, y) {
			m := Entry{FileBlock: x.FileBlock, Start: x.Start, Len: x.Len + y.Len}
			if x.Sums != nil {
				m.Sums = slices.Concat(x.Sums, y.Sums)
			}
			list[k-1] = m
			list = slices.Delete(list, k, k+1)
		}
	}
	return list
}

// mergeable reports whether y continues x both in the file and on disk,
// with checksums alike, so the two can be one entry.
func mergeable(x, y Entry) bool {
	if x.FileEnd() != y.FileBlock || x.Start+format.Block(x.Len) != y.Start {
		return false
	}
	if (x.Sums == nil) != (y.Sums == nil) {
		return false
	}
	return x.Sums == nil || x.Len+y.Len <= mergeSumsMax
}

// physExtents returns the physical extents of entries, in order.
func physExtents(entries []Entry) []extents.Extent {
	if len(entries) == 0 {
		return nil
	}
	out := make([]extents.Extent, len(entries))
	for i, e := range entries {
		out[i] = e.Extent()
	}
	return out
}

// gaps returns the file ranges in [a, b) that no entry of list covers.
func gaps(list []Entry, a, b FileBlock) [][2]FileBlock {
	var out [][2]FileBlock
	at := a
	for i := firstEnding(list, a); i < len(list) && list[i].FileBlock < b; i++ {
		if list[i].FileBlock > at {
			out = append(out, [2]FileBlock{at, list[i].FileBlock})
		}
		at = list[i].FileEnd()
	}
	if at < b {
		out = append(out, [2]FileBlock{at, b})
	}
	return out
}

// neighbour returns the physical block that file block fb would have if
// the layout of the nearest mapped block of list before fb (or else after
// it) went on linearly: where to allocate fb so that it extends its
// neighbour on disk. ok is false when list maps nothing to extrapolate
// from. dist is how far, in file blocks, that neighbour is from fb.
func neighbour(list []Entry, fb FileBlock) (goal format.Block, dist uint64, ok bool) {
	var prev, cur *Entry
	if i := firstEnding(list, fb); i < len(list) {
		cur = &list[i]
		if i > 0 {
			prev = &list[i-1]
		}
	} else if len(list) > 0 {
		prev = &list[len(list)-1]
	}
	return extrapolate(prev, cur, fb)
}

// extrapolate is neighbour's rule, given the entry cur that is the first to
// end after fb and the entry prev before it (either may be nil).
func extrapolate(prev, cur *Entry, fb FileBlock) (goal format.Block, dist uint64, ok bool) {
	if cur != nil && cur.FileBlock < fb {
		// cur maps fb-1 (and fb): the block after fb-1's is fb's own.
		return cur.Start + format.Block(fb-cur.FileBlock), 1, true
	}
	if prev != nil {
		last := prev.FileEnd() - 1
		return prev.Start + format.Block(prev.Len-1) + format.Block(fb-last), uint64(fb - last), true
	}
	if cur != nil {
		back := uint64(cur.FileBlock - fb)
		if uint64(cur.Start) > back+1 {
			return cur.Start - format.Block(back), back, true
		}
	}
	return format.NoBlock, 0, false
}

// leafMax is the most entries one leaf of an entryList holds.
const leafMax = 128

// entryList is a sorted list of entries that do not overlap, kept in
// leaves of at most leafMax entries, so that a splice touches a few leaves
// and not the whole list: a blob fragmented into tens of thousands of
// extents costs a few microseconds per overwrite, not a copy of the whole
// list. The leaves are non-empty and in order. An entryList is not safe for
// concurrent use; the Inode guards its lists with its mapping lock.
type entryList struct {
	leaves [][]Entry
}

// newEntryList returns a list holding sorted, non-overlapping entries
// (copied), with physically contiguous neighbours merged.
func newEntryList(entries []Entry) entryList {
	flat := mergeAround(append([]Entry(nil), entries...), 0, len(entries))
	return entryList{leaves: chunk(flat)}
}

// chunk cuts flat into leaves of at most leafMax entries, of even sizes.
func chunk(flat []Entry) [][]Entry {
	if len(flat) == 0 {
		return nil
	}
	n := (len(flat) + leafMax - 1) / leafMax
	out := make([][]Entry, n)
	for k := range n {
		lo, hi := k*len(flat)/n, (k+1)*len(flat)/n
		out[k] = flat[lo:hi:hi]
	}
	return out
}

// leafOf returns the index of the first leaf whose last entry ends after
// fb, or len(l.leaves) if none does.
func (l *entryList) leafOf(fb FileBlock) int {
	return sort.Search(len(l.leaves), func(i int) bool {
		lf := l.leaves[i]
		return lf[len(lf)-1].FileEnd() > fb
	})
}

// scan calls f with each entry that ends after a and starts before b, in
// order.
func (l *entryList) scan(a, b FileBlock, f func(e Entry)) {
	for li := l.leafOf(a); li < len(l.leaves); li++ {
		lf := l.leaves[li]
		for i := firstEnding(lf, a); i < len(lf); i++ {
			if lf[i].FileBlock >= b {
				return
			}
			f(lf[i])
		}
	}
}

// within returns copies of the parts of the list's entries inside [a, b).
func (l *entryList) within(a, b FileBlock) []Entry {
	var out []Entry
	l.scan(a, b, func(e Entry) { out = append(out, sub(e, max(a, e.FileBlock), min(b, e.FileEnd()))) })
	return out
}

// gaps returns the file ranges in [a, b) that no entry covers.
func (l *entryList) gaps(a, b FileBlock) [][2]FileBlock {
	var out [][2]FileBlock
	at := a
	l.scan(a, b, func(e Entry) {
		if e.FileBlock > at {
			out = append(out, [2]FileBlock{at, e.FileBlock})
		}
		at = e.FileEnd()
	})
	if at < b {
		out = append(out, [2]FileBlock{at, b})
	}
	return out
}

// splice is the list version of the function splice: it replaces what the
// list maps in [a, b) with repl and returns the parts of the old entries
// inside [a, b). It rebuilds only the leaves the range touches and their
// two neighbours (so merges across a leaf edge happen too).
func (l *entryList) splice(a, b FileBlock, repl []Entry) (removed []Entry) {
	li := l.leafOf(a)
	lj := li
	for lj < len(l.leaves) && l.leaves[lj][0].FileBlock < b {
		lj++
	}
	if len(repl) == 0 && (li == len(l.leaves) || l.leaves[li][firstEnding(l.leaves[li], a)].FileBlock >= b) {
		return nil // nothing to remove, nothing to add
	}
	lo, hi := max(li-1, 0), min(lj+1, len(l.leaves))
	n := len(repl) + 2
	for _, lf := range l.leaves[lo:hi] {
		n += len(lf)
	}
	flat := make([]Entry, 0, n)
	for _, lf := range l.leaves[lo:hi] {
		flat = append(flat, lf...)
	}
	flat, removed = splice(flat, a, b, repl)
	l.leaves = slices.Replace(l.leaves, lo, hi, chunk(flat)...)
	return removed
}

// neighbour is the list version of the function neighbour.
func (l *entryList) neighbour(fb FileBlock) (goal format.Block, dist uint64, ok bool) {
	var prev, cur *Entry
	li := l.leafOf(fb)
	if li < len(l.leaves) {
		lf := l.leaves[li]
		i := firstEnding(lf, fb)
		cur = &lf[i]
		if i > 0 {
			prev = &lf[i-1]
		}
	}
	if prev == nil && li > 0 {
		lf := l.leaves[li-1]
		prev = &lf[len(lf)-1]
	}
	return extrapolate(prev, cur, fb)
}

// all returns a copy of every entry, in order.
func (l *entryList) all() []Entry {
	var out []Entry
	for _, lf := range l.leaves {
		out = append(out, lf...)
	}
	return out
}

// stats returns the number of entries and of blocks they map.
func (l *entryList) stats() (entries int, blocks uint64) {
	for _, lf := range l.leaves {
		entries += len(lf)
		for _, e := range lf {
			blocks += e.Len
		}
	}
	return entries, blocks
}

package cowio

import (
	"fmt"

	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
)

// Remap is a write that has reached the disk but is not yet part of the
// value: what the store logs, and then applies with Commit or Apply.
//
// New covers the written file blocks [FileBlock, FileBlock+Len) exactly, in
// order and without holes, with the checksum of every block as written; its
// blocks are staging blocks until the store commits them. Old lists the
// extents that lose a reference when the remap is applied: the committed
// blocks that mapped the range, cut at its edges, in file order. WriteAt
// computes Old at allocation time, when the sequence counter was Seq;
// Commit and Apply recompute it if another committed change came in
// between, so after them Old is exact.
//
// A Remap the store rebuilds from its log for replay needs only Inode,
// FileBlock, Len and New.
type Remap struct {
	Inode     format.InodeID
	FileBlock FileBlock
	Len       uint64
	New       []Entry
	Old       []extents.Extent
	Seq       uint64

	id uint64 // the write in flight; 0 for a remap rebuilt from the log
}

// WriteAt writes p at byte offset off of the value, both multiples of the
// block size, into new staging blocks, and returns the Remap that would put
// them in place. It does not change the value: the store logs the remap and
// applies it (Commit), or gives it up (Abort). An empty p returns a nil
// Remap and does nothing.
//
// Under the mapping lock, in one critical section, WriteAt looks up the
// committed mapping and the staging map for the range, takes the staging
// blocks the CoW extent-size hint reserved there, and allocates every other
// block it needs in a single AllocStaging call: the range's unreserved
// blocks and, under the hint, the unreserved rest of the aligned chunks the
// range touches, which it reserves. The goal is the block that would follow
// the nearest mapped neighbour (committed or staging) if its extent went on,
// so that sequential and random overwrites stay contiguous. Then it releases
// the lock and writes p from aligned buffers in IOSize pieces issued
// concurrently (Writer's machinery), checksumming every block; a write of
// at most the Writer's CacheReadMax bytes also fills its cache, as WriteNew
// does (a block that is never committed only wastes its cache entry: its
// key names its contents, so it can never be returned for other bytes).
//
// On an I/O error WriteAt removes the write's blocks from the staging map,
// releases them to the Space (reserved blocks it took included) and
// returns the error: the value is unchanged. Misaligned arguments are
// ErrUnaligned, a negative off ErrInvalidOffset, a range past ReadSizeMax
// ErrTooLarge, and no space an error wrapping ErrNoSpace. p is not retained
// and must not change during the call.
func (ino *Inode) WriteAt(p []byte, off int64) (*Remap, error) {
	a, n, err := ino.blockRange(len(p), off)
	if err != nil || n == 0 {
		return nil, err
	}
	r, err := ino.stage(a, n)
	if err != nil {
		return nil, err
	}
	// Write with file blocks relative to p, as Writer.writePiece expects.
	rel := make([]Entry, len(r.New))
	for i, e := range r.New {
		rel[i] = e
		rel[i].FileBlock -= a
	}
	m := Mapping{Entries: rel}
	pieces := ino.w.split(m)
	fill := ino.w.fills(len(p))
	_, err = ino.w.run(len(pieces), func(i int) error { return ino.w.writePiece(p, m, pieces[i], fill) })
	if err != nil {
		ino.Abort(r)
		return nil, fmt.Errorf("cowdb/cowio: inode %d, write at file block %d (file blocks below relative to it): %w", ino.id, a, err)
	}
	return r, nil
}

// blockRange checks WriteAt's arguments and returns the first file block
// and the number of blocks.
func (ino *Inode) blockRange(size int, off int64) (FileBlock, uint64, error) {
	bs := int64(ino.w.blockSize)
	switch {
	case off < 0:
		return 0, 0, fmt.Errorf("%w: %d", ErrInvalidOffset, off)
	case off%bs != 0 || int64(size)%bs != 0:
		return 0, 0, fmt.Errorf("%w: %d bytes at %d, block size %d", ErrUnaligned, size, off, bs)
	case int64(size) > WriteMax || off > ReadSizeMax-int64(size):
		return 0, 0, fmt.Errorf("%w: %d bytes at %d", ErrTooLarge, size, off)
	}
	return FileBlock(off / bs), uint64(int64(size) / bs), nil
}

// stage is WriteAt's critical section: under the mapping lock it looks up
// the range in the committed mapping and the staging map, allocates every
// block needed at once, and records the write in the staging map. Nothing
// it looks at can change between the lookup and the allocation, which is
// the seed's lesson: a mapping is never trusted across a lock drop.
func (ino *Inode) stage(a FileBlock, n uint64) (*Remap, error) {
	b := a + FileBlock(n)
	lo, hi := a, b
	if c := FileBlock(ino.chunk); c > 1 {
		lo, hi = a/c*c, min((b+c-1)/c*c, fileBlockMax)
	}
	ino.mu.Lock()
	defer ino.mu.Unlock()
	// Reserved blocks inside the range are this write's; the rest of the
	// range, and the unreserved blocks of the chunks around it, need
	// allocating.
	var taken []Entry
	taken = ino.mu.reserved.splice(a, b, nil)
	// A write whose range is all reserved allocates nothing; one that
	// must allocate pads its allocation to the chunks around it.
	need := gaps(taken, a, b)
	if len(need) > 0 {
		need = append(append(ino.mu.reserved.gaps(lo, a), need...), ino.mu.reserved.gaps(b, hi)...)
	}
	alloc, err := ino.allocLocked(need, a, b)
	if err != nil {
		ino.mu.reserved.splice(a, b, taken)
		return nil, err
	}
	var mine []Entry
	for _, e := range alloc {
		if e.FileBlock >= a && e.FileBlock < b {
			mine = append(mine, e)
			continue
		}
		ino.mu.reserved.splice(e.FileBlock, e.FileEnd(), []Entry{e})
	}
	mine = sortEntries(append(mine, taken...))
	mine = mergeAround(mine, 0, len(mine))
	sums := make([]uint64, n)
	for i := range mine {
		at := uint64(mine[i].FileBlock - a)
		mine[i].Sums = sums[at : at+mine[i].Len : at+mine[i].Len]
	}
	id := ino.mu.nextID
	ino.mu.nextID++
	ino.mu.inflight[id] = mine
	return &Remap{
		Inode: ino.id, FileBlock: a, Len: n, New: mine, id: id, Seq: ino.mu.seq,
		Old: physExtents(ino.mu.committed.within(a, b)),
	}, nil
}

// allocLocked allocates the file ranges need (sorted, not overlapping) in
// one AllocStaging call and returns them as entries split at the write's
// edges a and b, so each lies either inside [a, b) or outside it. If the
// padding the hint asks for cannot be had, it tries once more for the
// write's own blocks only.
func (ino *Inode) allocLocked(need [][2]FileBlock, a, b FileBlock) ([]Entry, error) {
	var count uint64
	for _, g := range need {
		count += uint64(g[1] - g[0])
	}
	if count == 0 {
		return nil, nil
	}
	exts, err := ino.w.space.AllocStaging(count, ino.goalLocked(need[0][0]))
	if err != nil {
		var own [][2]FileBlock
		var ownCount uint64
		for _, g := range need {
			if g[0] < b && g[1] > a {
				own = append(own, [2]FileBlock{max(g[0], a), min(g[1], b)})
				ownCount += uint64(own[len(own)-1][1] - own[len(own)-1][0])
			}
		}
		if ownCount == count || ownCount == 0 {
			return nil, fmt.Errorf("cowdb/cowio: inode %d: allocating %d blocks: %w", ino.id, count, err)
		}
		return ino.allocLocked(own, a, b)
	}
	return ino.layoutGaps(need, exts, count, a, b), nil
}

// layoutGaps assigns the allocated extents, in order, to the file ranges
// need, cutting entries at gap ends and at the write's edges a and b.
// A wrong answer from AllocStaging is a bug in the Space, and panics.
func (ino *Inode) layoutGaps(need [][2]FileBlock, exts []extents.Extent, count uint64, a, b FileBlock) []Entry {
	var total uint64
	for _, e := range exts {
		if e.Len == 0 || e.Start == format.NoBlock {
			panic(fmt.Sprintf("cowdb: assertion failed: AllocStaging(%d) returned %v", count, exts))
		}
		total += e.Len
	}
	if total != count {
		panic(fmt.Sprintf("cowdb: assertion failed: AllocStaging(%d) returned %d blocks", count, total))
	}
	var out []Entry
	gi, fb := 0, need[0][0]
	for _, e := range exts {
		for e.Len > 0 {
			end := need[gi][1]
			if fb < a && end > a {
				end = a
			} else if fb < b && end > b {
				end = b
			}
			k := min(e.Len, uint64(end-fb))
			out = append(out, Entry{FileBlock: fb, Start: e.Start, Len: k})
			e.Start += format.Block(k)
			e.Len -= k
			if fb += FileBlock(k); fb == need[gi][1] && gi+1 < len(need) {
				gi++
				fb = need[gi][0]
			}
		}
	}
	return out
}

// goalLocked returns where to allocate file block fb: next to its nearest
// mapped neighbour in the committed mapping or the staging map.
func (ino *Inode) goalLocked(fb FileBlock) format.Block {
	best, bestDist := format.NoBlock, ^uint64(0)
	try := func(g format.Block, d uint64, ok bool) {
		if ok && d < bestDist {
			best, bestDist = g, d
		}
	}
	try(ino.mu.committed.neighbour(fb))
	try(ino.mu.reserved.neighbour(fb))
	for _, es := range ino.mu.inflight {
		try(neighbour(es, fb))
	}
	return best
}

// sortEntries sorts entries that do not overlap by file block.
func sortEntries(es []Entry) []Entry {
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].FileBlock < es[j-1].FileBlock; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
	return es
}

// Abort gives up a remap WriteAt returned and the store will not commit (its
// log write failed): the write leaves the staging map and its blocks return
// to the Space. Aborting a remap that is no longer in flight does nothing
// and reports false.
func (ino *Inode) Abort(r *Remap) bool {
	ino.mu.Lock()
	_, ok := ino.mu.inflight[r.id]
	delete(ino.mu.inflight, r.id)
	ino.mu.Unlock()
	if ok && r.id != 0 {
		ino.w.space.ReleaseStaging(physExtents(r.New))
	}
	return ok && r.id != 0
}

// Commit puts a remap WriteAt returned in place, for the live path. Under
// the inode's commit lock it re-validates r against the sequence counter
// (recomputing r.Old if a committed change came in since WriteAt), calls
// log (the store logs r, with its data durable first, and returns the
// record's LSN; log must not call the Inode), then applies r at that LSN
// as Apply does and returns the extents that lose a reference. Because the
// commit lock is held from the re-validation to the apply, r.Old as log
// sees it is exactly what the apply removes. If log fails, Commit aborts r
// (the value is unchanged, the staging blocks are released) and returns
// the error.
func (ino *Inode) Commit(r *Remap, log func(r *Remap) (format.LSN, error)) ([]extents.Extent, error) {
	ino.commitMu.Lock()
	defer ino.commitMu.Unlock()
	ino.mu.Lock()
	if _, ok := ino.mu.inflight[r.id]; !ok || r.id == 0 {
		ino.mu.Unlock()
		return nil, fmt.Errorf("%w: inode %d", ErrNotInFlight, ino.id)
	}
	if r.Seq != ino.mu.seq {
		r.Old = physExtents(ino.mu.committed.within(r.FileBlock, r.FileBlock+FileBlock(r.Len)))
		r.Seq = ino.mu.seq
	}
	ino.mu.Unlock()
	lsn, err := log(r)
	if err != nil {
		ino.Abort(r)
		return nil, err
	}
	return ino.Apply(r, lsn)
}

// Apply makes r part of the value as the committed change of log sequence
// number lsn: the committed mapping maps r's range to r.New, r.Old becomes
// the committed blocks that mapped it before (returned too), the sequence
// counter moves on, and r's write leaves the staging map. It is what Commit
// does after logging, and what replay does with each remap of the log, in
// log order, on an Inode loaded as of the checkpoint.
//
// The rule for overlapping writes: the later committed wins, per block, in
// commit (LSN) order, whatever the order of their WriteAt calls; lsn must be
// above that of every earlier committed change of the inode, or Apply
// returns ErrOutOfOrder and changes nothing. So applying the same remaps in
// the same order to the same starting mapping always gives the same mapping
// and the same Old lists, and the final value equals the writes applied
// serially in commit order. A malformed r (New not covering its range
// exactly, in order, with valid entries) is an error wrapping
// ErrBadMapping, and a remap that is neither in flight nor rebuilt from the
// log (applied or aborted already) ErrNotInFlight; neither changes
// anything.
//
// The committed mapping keeps r.New's checksum lists: the caller must not
// modify them afterwards.
func (ino *Inode) Apply(r *Remap, lsn format.LSN) ([]extents.Extent, error) {
	if err := ino.checkRemap(r); err != nil {
		return nil, err
	}
	ino.mu.Lock()
	defer ino.mu.Unlock()
	if err := ino.checkLSNLocked(lsn); err != nil {
		return nil, err
	}
	if _, ok := ino.mu.inflight[r.id]; (r.id != 0 && !ok) || r.Inode != ino.id {
		return nil, fmt.Errorf("%w: remap of inode %d on inode %d", ErrNotInFlight, r.Inode, ino.id)
	}
	delete(ino.mu.inflight, r.id)
	var removed []Entry
	removed = ino.mu.committed.splice(r.FileBlock, r.FileBlock+FileBlock(r.Len), append([]Entry(nil), r.New...))
	ino.mu.seq++
	ino.mu.applied = lsn
	r.Old, r.Seq = physExtents(removed), ino.mu.seq
	return r.Old, nil
}

// checkRemap checks that r.New covers [r.FileBlock, r.FileBlock+r.Len)
// exactly, in order, with valid entries.
func (ino *Inode) checkRemap(r *Remap) error {
	if r.Len == 0 || r.FileBlock >= fileBlockMax || r.Len > uint64(fileBlockMax-r.FileBlock) {
		return fmt.Errorf("remap of %d blocks at file block %d: %w", r.Len, r.FileBlock, ErrBadMapping)
	}
	at := r.FileBlock
	for i, e := range r.New {
		if err := checkEntry(e, ino.w.blockSize); err != nil {
			return fmt.Errorf("remap entry %d: %w", i, err)
		}
		if e.FileBlock != at {
			return fmt.Errorf("remap entry %d at file block %d, want %d: %w", i, e.FileBlock, at, ErrBadMapping)
		}
		at = e.FileEnd()
	}
	if at != r.FileBlock+FileBlock(r.Len) {
		return fmt.Errorf("remap entries end at file block %d, want %d: %w", at, r.FileBlock+FileBlock(r.Len), ErrBadMapping)
	}
	return nil
}

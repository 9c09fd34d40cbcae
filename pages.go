package cowdb

import (
	"slices"
	"sync"

	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/internal/format"
)

// Dirty pages (DESIGN §7): an unaligned blob write does not read, patch and
// rewrite whole blocks on the caller's time. It logs its bytes in a
// DeferredWrite record and keeps the patched blocks in memory, as dirty
// pages outside the ristretto cache (which may drop entries); writeback
// later turns them into aligned copy-on-write writes and remaps, many small
// writes to one block costing one block write.
//
// Readers of older versions must still see the bytes of their version, and
// a page written back is only in the tree from the writeback's LSN on. So
// each file block keeps a short history of events, in LSN order: "from LSN
// L the block's bytes are this page" or "from LSN L the tree's mapping holds
// the block's bytes" (a cover: writeback, an aligned write, a truncation or
// the value's deletion). A reader of the version at LSN v takes the last
// event at or before v: a page it overlays on what the tree maps, a cover
// (or no event) leaves the tree's bytes. Events no reader can reach are
// pruned: for each block, everything before the last event at or before
// the oldest version any reader holds.
//
// Lock order: db.deferMu → inodeState.wmu → db.mu → pageSet.mu →
// inodeState.mu. Readers take pageSet.mu and inodeState.mu only.

// page is a block's newest bytes from some LSN on: the whole block, or
// (mask set) only the bytes the mask marks, the others being the tree's.
// An unaligned write patches a page without reading the block first: the
// bytes it did not write are left to the tree, read when the page is read
// or written back. Pages are immutable once recorded: a patch makes a new
// one.
type page struct {
	data []byte   // one block; unmarked bytes are zero and meaningless
	mask pageMask // nil: every byte is the page's
}

// pageMask marks the bytes of a block a partial page holds, one bit each.
type pageMask []uint64

// newPageMask returns an empty mask for blocks of bs bytes.
func newPageMask(bs int) pageMask { return make(pageMask, (bs+63)/64) }

// set marks bytes [lo, hi).
func (m pageMask) set(lo, hi int) {
	for i := lo; i < hi; {
		w, b := i/64, i%64
		n := min(64-b, hi-i)
		bits := ^uint64(0)
		if n < 64 {
			bits = (uint64(1)<<n - 1) << b
		}
		m[w] |= bits
		i += n
	}
}

// full reports whether every byte of a bs-byte block is marked.
func (m pageMask) full(bs int) bool {
	for i := 0; i < bs/64; i++ {
		if m[i] != ^uint64(0) {
			return false
		}
	}
	return true
}

// ranges calls fn for each run [lo, hi) of marked bytes within [from, to).
func (m pageMask) ranges(from, to int, fn func(lo, hi int)) {
	for i := from; i < to; {
		if m[i/64]>>(i%64)&1 == 0 {
			i++
			continue
		}
		j := i + 1
		for j < to && m[j/64]>>(j%64)&1 == 1 {
			j++
		}
		fn(i, j)
		i = j
	}
}

// patched returns a new page: base (nil: none) with b written at byte off
// of a bs-byte block.
func patched(base *page, b []byte, off, bs int) *page {
	np := &page{data: make([]byte, bs)}
	if base != nil {
		copy(np.data, base.data)
		if base.mask != nil {
			np.mask = slices.Clone(base.mask)
		}
	} else if off > 0 || off+len(b) < bs {
		np.mask = newPageMask(bs)
	}
	copy(np.data[off:], b)
	if np.mask != nil {
		np.mask.set(off, off+len(b))
		if np.mask.full(bs) {
			np.mask = nil
		}
	}
	return np
}

// over copies the page's bytes within block bytes [lo, hi) into dst, which
// holds those bytes of the block (dst[0] is byte lo).
func (p *page) over(dst []byte, lo, hi int) {
	if p.mask == nil {
		copy(dst, p.data[lo:hi])
		return
	}
	p.mask.ranges(lo, hi, func(a, b int) { copy(dst[a-lo:b-lo], p.data[a:b]) })
}

// pageEvent is one entry of a block's history.
type pageEvent struct {
	lsn format.LSN
	p   *page // the block's newest bytes from lsn on; nil: the tree's mapping holds them
}

// inodeState is the store's in-memory state of one blob value beyond its
// tree records: its dirty pages and the lock that orders its writers. It
// lives in the pageSet while a writer uses it or it has events.
type inodeState struct {
	id format.InodeID
	// wmu orders the inode's writers: aligned writes share it (they only
	// add covers); deferred writes, truncations and writeback hold it
	// alone, so the pages they read cannot change under them and a
	// writeback never commits a page older than an aligned write.
	wmu sync.RWMutex

	users int // writers holding the state; under pageSet.mu

	mu struct {
		sync.Mutex
		blocks map[cowio.FileBlock][]pageEvent
		dirty  int // blocks whose last event is a page
	}
}

// pageSet holds the inodeStates of the store.
type pageSet struct {
	mu     sync.Mutex
	inodes map[format.InodeID]*inodeState
	bytes  int64 // bytes of page data held, dirty or kept for readers
	dirty  int64 // blocks whose last event is a page, over every inode
}

// pageOp is an event a writer stages, applied at its commit's LSN: a page
// of block fb, or (data nil) a cover of the blocks [fb, end) that have a
// history.
type pageOp struct {
	id      format.InodeID
	fb, end cowio.FileBlock
	p       *page
}

// use returns the inodeState of id, made if absent, held for a writer
// until the matching unuse.
func (s *pageSet) use(id format.InodeID) *inodeState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.getLocked(id, true)
	st.users++
	return st
}

// unuse releases a state use returned.
func (s *pageSet) unuse(st *inodeState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.users--
	s.forgetIfIdleLocked(st)
}

func (s *pageSet) getLocked(id format.InodeID, create bool) *inodeState {
	st := s.inodes[id]
	if st == nil && create {
		if s.inodes == nil {
			s.inodes = make(map[format.InodeID]*inodeState)
		}
		st = &inodeState{id: id}
		st.mu.blocks = make(map[cowio.FileBlock][]pageEvent)
		s.inodes[id] = st
	}
	return st
}

// forgetIfIdleLocked drops st when nothing uses it and it has no event.
func (s *pageSet) forgetIfIdleLocked(st *inodeState) {
	st.mu.Lock()
	empty := len(st.mu.blocks) == 0
	st.mu.Unlock()
	if st.users == 0 && empty {
		delete(s.inodes, st.id)
	}
}

// apply records the staged events ops at lsn and returns the page bytes
// now held. Called under db.mu, in LSN order, by the commit that logged
// them (or replayed them).
func (s *pageSet) apply(ops []pageOp, lsn format.LSN) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, op := range ops {
		st := s.getLocked(op.id, op.p != nil)
		if st == nil {
			continue // a cover of an inode without pages: nothing to hide
		}
		st.mu.Lock()
		switch {
		case op.p != nil:
			s.addLocked(st, op.fb, pageEvent{lsn: lsn, p: op.p})
		case uint64(op.end-op.fb) <= uint64(len(st.mu.blocks)):
			for fb := op.fb; fb < op.end; fb++ {
				s.addLocked(st, fb, pageEvent{lsn: lsn})
			}
		default:
			for fb := range st.mu.blocks {
				if fb >= op.fb && fb < op.end {
					s.addLocked(st, fb, pageEvent{lsn: lsn})
				}
			}
		}
		st.mu.Unlock()
	}
	return s.bytes
}

// addLocked appends ev to block fb's history, replacing an event of the
// same LSN (one record may patch a block twice). A cover of a block whose
// history is empty or already ends in a cover adds nothing.
func (s *pageSet) addLocked(st *inodeState, fb cowio.FileBlock, ev pageEvent) {
	evs := st.mu.blocks[fb]
	wasDirty := len(evs) > 0 && evs[len(evs)-1].p != nil
	if n := len(evs); n > 0 && evs[n-1].lsn == ev.lsn {
		s.bytes -= evs[n-1].p.size()
		evs = evs[:n-1]
	}
	if ev.p != nil || len(evs) > 0 && evs[len(evs)-1].p != nil {
		evs = append(evs, ev)
		s.bytes += ev.p.size()
	}
	if len(evs) == 0 {
		delete(st.mu.blocks, fb)
	} else {
		st.mu.blocks[fb] = evs
	}
	switch isDirty := len(evs) > 0 && evs[len(evs)-1].p != nil; {
	case isDirty && !wasDirty:
		st.mu.dirty++
		s.dirty++
	case !isDirty && wasDirty:
		st.mu.dirty--
		s.dirty--
	}
}

// size is the memory a page holds (0 for nil: a cover).
func (p *page) size() int64 {
	if p == nil {
		return 0
	}
	return int64(len(p.data) + 8*len(p.mask))
}

// pageAt returns the page of block fb a reader of the version at lsn sees,
// or nil when the tree's mapping holds its bytes.
func (st *inodeState) pageAt(fb cowio.FileBlock, lsn format.LSN) *page {
	evs := st.mu.blocks[fb]
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].lsn <= lsn {
			return evs[i].p
		}
	}
	return nil
}

// overlay copies the pages a reader of the version at lsn sees over p, the
// bytes [off, off+len(p)) of inode id as the tree maps them.
func (s *pageSet) overlay(id format.InodeID, lsn format.LSN, p []byte, off int64, bs int64) {
	s.mu.Lock()
	st := s.inodes[id]
	s.mu.Unlock()
	if st == nil || len(p) == 0 {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.mu.blocks) == 0 {
		return
	}
	a, b := cowio.FileBlock(off/bs), cowio.FileBlock((off+int64(len(p))+bs-1)/bs)
	visit := func(fb cowio.FileBlock) {
		pg := st.pageAt(fb, lsn)
		if pg == nil {
			return
		}
		start := int64(fb) * bs
		lo, hi := max(start, off), min(start+bs, off+int64(len(p)))
		pg.over(p[lo-off:hi-off], int(lo-start), int(hi-start))
	}
	if uint64(b-a) <= uint64(len(st.mu.blocks)) {
		for fb := a; fb < b; fb++ {
			visit(fb)
		}
		return
	}
	for fb := range st.mu.blocks {
		if fb >= a && fb < b {
			visit(fb)
		}
	}
}

// coverAll returns a cover of every block of every inode with a history.
func (s *pageSet) coverAll(end cowio.FileBlock) []pageOp {
	s.mu.Lock()
	defer s.mu.Unlock()
	ops := make([]pageOp, 0, len(s.inodes))
	for id := range s.inodes {
		ops = append(ops, pageOp{id: id, end: end})
	}
	return ops
}

// hasDirty reports whether inode id has dirty pages.
func (s *pageSet) hasDirty(id format.InodeID) bool {
	s.mu.Lock()
	st := s.inodes[id]
	s.mu.Unlock()
	if st == nil {
		return false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.mu.dirty > 0
}

// has reports whether inode id has a page history.
func (s *pageSet) has(id format.InodeID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inodes[id] != nil
}

// latest returns the newest page of block fb of inode id (for a writer
// patching it), or nil.
func (s *pageSet) latest(id format.InodeID, fb cowio.FileBlock) *page {
	s.mu.Lock()
	st := s.inodes[id]
	s.mu.Unlock()
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	evs := st.mu.blocks[fb]
	if len(evs) == 0 {
		return nil
	}
	return evs[len(evs)-1].p
}

// dirtyPages returns the blocks of st whose last event is a page, with
// those pages, in file-block order.
func (st *inodeState) dirtyPages() (fbs []cowio.FileBlock, pages []*page) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for fb, evs := range st.mu.blocks {
		if evs[len(evs)-1].p != nil {
			fbs = append(fbs, fb)
		}
	}
	slices.Sort(fbs)
	pages = make([]*page, len(fbs))
	for i, fb := range fbs {
		evs := st.mu.blocks[fb]
		pages[i] = evs[len(evs)-1].p
	}
	return fbs, pages
}

// samePages reports whether the newest events of blocks fbs are still the
// pages given (a writeback checks this under db.mu before it logs).
func (st *inodeState) samePages(fbs []cowio.FileBlock, pages []*page) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	for i, fb := range fbs {
		evs := st.mu.blocks[fb]
		if len(evs) == 0 || evs[len(evs)-1].p != pages[i] {
			return false
		}
	}
	return true
}

// prune drops the events no reader can reach: for each block, those before
// the last event at or before oldest, and a block's history altogether once
// that event is a cover. It returns the page bytes still held.
func (s *pageSet) prune(oldest format.LSN) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.inodes {
		st.mu.Lock()
		for fb, evs := range st.mu.blocks {
			k := -1
			for i := len(evs) - 1; i >= 0; i-- {
				if evs[i].lsn <= oldest {
					k = i
					break
				}
			}
			if k < 0 {
				continue
			}
			for _, ev := range evs[:k] {
				s.bytes -= ev.p.size()
			}
			evs = evs[k:]
			if len(evs) == 1 && evs[0].p == nil {
				delete(st.mu.blocks, fb)
				continue
			}
			st.mu.blocks[fb] = evs
		}
		st.mu.Unlock()
		s.forgetIfIdleLocked(st)
	}
	return s.bytes
}

// dirtyInodes returns the IDs of the inodes with dirty pages.
func (s *pageSet) dirtyInodes() []format.InodeID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []format.InodeID
	for id, st := range s.inodes {
		st.mu.Lock()
		if st.mu.dirty > 0 {
			ids = append(ids, id)
		}
		st.mu.Unlock()
	}
	return ids
}

// stats returns the dirty blocks and the page bytes held.
func (s *pageSet) stats() (dirty int64, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dirty, s.bytes
}

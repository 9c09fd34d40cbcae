package extents

import (
	"fmt"

	"github.com/cowdb/cowdb/internal/format"
)

// Loader rebuilds an Allocator from a checkpoint: every AG's bitmap copies
// (LoadAG), then the refcount records in block order (LoadRecord), then
// Finish. Anything wrong with what was read from disk is an error wrapping
// format.ErrCorrupt; misuse (an AG twice, records before the AGs) is
// ErrInvalid. A Loader is not safe for concurrent use.
type Loader struct {
	a      *Allocator
	epoch  Epoch
	loaded []bool
	nAG    uint32
	prev   Record
	nRec   int
}

// NewLoader starts loading a data file of agCount AGs whose superblock has
// epoch epoch. opts must match the superblock's geometry and store ID.
func NewLoader(opts *Options, agCount uint32, epoch Epoch) (*Loader, error) {
	a, err := newEmpty(opts)
	if err != nil {
		return nil, err
	}
	if a.opts.StoreID == 0 || agCount == 0 || agCount > a.geo.MaxAGCount {
		return nil, fmt.Errorf("%w: store ID %#x, %d AGs (max %d)", ErrInvalid, a.opts.StoreID, agCount, a.geo.MaxAGCount)
	}
	// The per-AG tables grow as AGs are loaded (reach), so a hostile AG
	// count costs nothing until the caller has read that many bitmaps.
	a.geo.AGCount = agCount
	return &Loader{a: a, epoch: epoch}, nil
}

// reach extends the per-AG tables to hold AG ag.
func (l *Loader) reach(ag uint32) {
	if n := int(ag) + 1; n > len(l.loaded) {
		l.loaded = append(l.loaded, make([]bool, n-len(l.loaded))...)
		l.a.ags = append(l.a.ags, make([]*agroup, n-len(l.a.ags))...)
		l.a.dirty = append(l.a.dirty, make([]bool, n-len(l.a.dirty))...)
	}
}

// LoadAG loads AG ag from its two bitmap copies (as read from
// Geometry.BitmapCopy(ag, 0) and (ag, 1); a nil or short copy is simply
// invalid): the valid copy of this store and AG with the highest epoch not
// above the superblock's is used, and its slot returned. The AG's free
// indexes are rebuilt from its bitmap, a word at a time.
//
// If the other copy is not a valid older copy of this AG (it is damaged,
// never written, or was written by a checkpoint whose superblock never
// became durable, so its epoch is above the superblock's), the AG is dirty:
// the first checkpoint rewrites that slot. Otherwise the next checkpoint
// would reuse the abandoned copy's epoch without overwriting it, and a
// later open would take the abandoned copy for the newest.
func (l *Loader) LoadAG(ag uint32, copies [2][]byte) (slot int, err error) {
	a := l.a
	if ag >= a.geo.AGCount {
		return -1, fmt.Errorf("%w: AG %d out of range (%d AGs)", ErrInvalid, ag, a.geo.AGCount)
	}
	l.reach(ag)
	if l.loaded[ag] {
		return -1, fmt.Errorf("%w: AG %d loaded twice", ErrInvalid, ag)
	}
	bm, slot, err := format.PickAGBitmap(copies, l.epoch, a.opts.StoreID, ag)
	if err != nil {
		return -1, err
	}
	where := fmt.Sprintf("AG %d bitmap copy %d", ag, slot)
	if bm.NBits != a.geo.BlocksPerAG {
		return -1, format.Corruptf(where, format.ErrBadGeometry, "%d bits, AGs have %d blocks", bm.NBits, a.geo.BlocksPerAG)
	}
	words := bytesToWords(bm.Bits, bm.NBits)
	hdr := a.geo.HeaderBlocks()
	if !allSet(words, 0, hdr) {
		return -1, format.Corruptf(where, format.ErrMalformed, "header blocks [0, %d) not allocated", hdr)
	}
	g, scratch := newAGroup(a.geo.BlocksPerAG, hdr, words, a.scratch)
	a.scratch = scratch
	g.newest = int8(slot)
	a.ags[ag] = g
	a.dirty[ag] = !olderCopy(copies[1-slot], bm, a.opts.StoreID)
	a.free += int64(g.free)
	a.committed += int64(a.geo.BlocksPerAG - hdr - g.free)
	l.loaded[ag] = true
	l.nAG++
	return slot, nil
}

// LoadRecord adds the next refcount record, in block order, after every AG
// is loaded. A record that overlaps or precedes the previous one, should
// have been merged with it, has a count outside [2, RefcountMax], crosses
// an AG or covers a block not allocated is corrupt.
func (l *Loader) LoadRecord(r Record) error {
	if l.nAG != l.a.geo.AGCount {
		return fmt.Errorf("%w: refcount record before all AGs are loaded", ErrInvalid)
	}
	if err := l.a.loadRecord(r, l.prev, l.nRec == 0); err != nil {
		return format.Corruptf("refcount record", format.ErrMalformed, "%v", err)
	}
	l.prev = r
	l.nRec++
	return nil
}

// olderCopy reports whether buf is a valid copy of cur's AG of this store
// that can never be preferred to cur: its epoch is not above cur's (at an
// equal epoch, PickAGBitmap has checked the copies are identical).
func olderCopy(buf []byte, cur format.AGBitmap, storeID uint64) bool {
	b, err := format.DecodeAGBitmap(buf)
	return err == nil && b.StoreID == storeID && b.AG == cur.AG && b.Epoch <= cur.Epoch
}

// Finish returns the loaded Allocator, with durable the LSN the
// checkpoint covers (WAL replay then applies later operations). The only
// dirty AGs are those whose other bitmap copy LoadAG found not to be a
// valid older copy. The Loader must not be used afterwards.
func (l *Loader) Finish(durable LSN) (*Allocator, error) {
	if l.nAG != l.a.geo.AGCount {
		return nil, fmt.Errorf("%w: %d of %d AGs loaded", ErrInvalid, l.nAG, l.a.geo.AGCount)
	}
	a := l.a
	a.durable = durable
	// Any block free in the images may have been freed at any LSN up to
	// durable, so no reader may pin an older version.
	a.reused = durable
	a.resetMax()
	l.a = nil
	return a, nil
}

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
	a.geo.AGCount = agCount
	a.ags = make([]*agroup, agCount)
	a.dirty = make([]bool, agCount)
	return &Loader{a: a, epoch: epoch, loaded: make([]bool, agCount)}, nil
}

// LoadAG loads AG ag from its two bitmap copies (as read from
// Geometry.BitmapCopy(ag, 0) and (ag, 1); a nil or short copy is simply
// invalid): the valid copy of this store and AG with the highest epoch not
// above the superblock's is used, and its slot returned. The AG's free
// indexes are rebuilt from its bitmap, a word at a time.
func (l *Loader) LoadAG(ag uint32, copies [2][]byte) (slot int, err error) {
	a := l.a
	if ag >= a.geo.AGCount || l.loaded[ag] {
		return -1, fmt.Errorf("%w: AG %d of %d loaded twice or out of range", ErrInvalid, ag, a.geo.AGCount)
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

// Finish returns the loaded Allocator, with durable the LSN the
// checkpoint covers (WAL replay then applies later operations). No AG is
// dirty. The Loader must not be used afterwards.
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

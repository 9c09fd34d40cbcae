package extents

import (
	"encoding/binary"
	"fmt"
	"iter"
	"slices"

	"github.com/cowdb/cowdb/internal/format"
)

// Checkpoint is the allocation state that checkpoint Epoch persists: the
// committed set as of LSN, plus the blocks the checkpoint itself commits
// (CommitTo) or frees (FreeTo). It holds copies of the bitmaps of the AGs
// it writes, so work after Seal does not change it.
type Checkpoint struct {
	Epoch   Epoch
	LSN     LSN
	AGCount uint32 // AGs the checkpoint's superblock covers
	// RecordsChanged reports whether the refcount records changed since
	// the previous checkpoint; if not, the store may keep the old tree.
	RecordsChanged bool

	storeID uint64
	geo     Geometry
	images  map[uint32][]uint64 // committed bitmap as of the seal, per AG
	dirty   map[uint32]bool     // AGs this checkpoint writes
	records []Record            // the records as of the seal, once recsCopied
	// recsCopied is set when records holds the sealed records: at the seal
	// if they changed since the previous checkpoint, else at the first
	// change after the seal (until then the live records are the sealed
	// ones).
	recsCopied bool
	frozen     bool
	gen        uint64         // seal number (Allocator.seals)
	slots      map[uint32]int // slot each written AG goes to
}

// AGImage is one encoded AG bitmap copy for the store to write: Data is
// Geometry.BitmapBlocks blocks, to be written at Block (copy Slot of AG
// AG, the one not holding the newest durable image).
type AGImage struct {
	AG    uint32
	Slot  int
	Block Block
	Data  []byte
}

// Seal starts checkpoint epoch covering every operation at or before lsn
// (all of them so far: the store calls Seal under the lock that orders
// operations, at the moment it seals its roots). Only one checkpoint may be
// open; ErrCheckpoint otherwise. Options.StoreID must be set.
func (a *Allocator) Seal(epoch Epoch, lsn LSN) (*Checkpoint, error) {
	switch {
	case a.cp != nil:
		return nil, fmt.Errorf("%w: checkpoint %d still open", ErrCheckpoint, a.cp.Epoch)
	case a.opts.StoreID == 0:
		return nil, fmt.Errorf("%w: no store ID", ErrInvalid)
	case lsn < a.durable:
		return nil, fmt.Errorf("%w: sealing LSN %d before durable %d", ErrInvalid, lsn, a.durable)
	}
	a.seals++
	cp := &Checkpoint{
		Epoch: epoch, LSN: lsn, AGCount: a.geo.AGCount, gen: a.seals,
		storeID: a.opts.StoreID, geo: a.geo,
		images: make(map[uint32][]uint64), dirty: make(map[uint32]bool),
		slots: make(map[uint32]int),
	}
	for ag, d := range a.dirty {
		if d {
			cp.images[uint32(ag)] = slices.Clone(a.ags[ag].committed)
			cp.dirty[uint32(ag)] = true
			a.dirty[ag] = false
		}
	}
	if a.refDirty {
		cp.RecordsChanged, cp.recsCopied = true, true
		cp.records = slices.Collect(a.Records())
		a.refDirty = false
	}
	for ag := range cp.dirty {
		cp.slots[ag] = 0
		if a.ags[ag].newest == 0 {
			cp.slots[ag] = 1
		}
	}
	a.cp = cp
	return cp, nil
}

// touch keeps the open checkpoint's image of AG ag as of the seal before
// the live committed bitmap of ag changes.
func (a *Allocator) touch(ag uint32) {
	cp := a.cp
	if cp == nil || cp.frozen || ag >= cp.AGCount {
		return
	}
	if _, ok := cp.images[ag]; !ok {
		cp.images[ag] = slices.Clone(a.ags[ag].committed)
	}
}

// touchRefs keeps the open checkpoint's records as of the seal before the
// live records change.
func (a *Allocator) touchRefs() {
	if cp := a.cp; cp != nil && !cp.recsCopied {
		cp.records = slices.Collect(a.Records())
		cp.recsCopied = true
	}
}

// sealedShared reports whether e overlaps a record of cp's sealed state.
func (a *Allocator) sealedShared(cp *Checkpoint, e Extent) bool {
	if !cp.recsCopied {
		return a.refs.overlaps(e)
	}
	i, _ := slices.BinarySearchFunc(cp.records, e.Start, func(r Record, b Block) int {
		if r.End() <= b {
			return -1
		}
		return 1
	})
	return i < len(cp.records) && cp.records[i].Start < e.End()
}

func (a *Allocator) openCheckpoint(cp *Checkpoint) error {
	if cp == nil || cp != a.cp {
		return ErrCheckpoint
	}
	return nil
}

// CommitTo commits staging extent e into the open checkpoint cp as well as
// the live state: the blocks the checkpoint allocated for its own nodes,
// reachable from its roots. ErrCheckpoint after Freeze.
func (a *Allocator) CommitTo(cp *Checkpoint, e Extent) error {
	if err := a.openCheckpoint(cp); err != nil || cp.frozen {
		return ErrCheckpoint
	}
	ag, off, err := a.stagingExtent(e)
	if err != nil {
		return err
	}
	if ag >= cp.AGCount {
		return fmt.Errorf("%w: %v beyond checkpoint's %d AGs", ErrInvalid, e, cp.AGCount)
	}
	a.touch(ag)
	a.commit(ag, off, uint32(e.Len))
	a.markCheckpointDirty(cp, ag)
	setRange(cp.images[ag], off, uint32(e.Len))
	return nil
}

// FreeTo frees committed extent e, unshared both now and at the seal, as
// part of checkpoint cp: the blocks are free in cp's image (cp no longer
// reaches them, e.g. the previous copy of a tree the checkpoint rewrote)
// and busy, tagged with cp's LSN, until cp is durable. The blocks must be
// held by cp's image (committed before the seal, or by CommitTo):
// ErrWrongState for blocks committed after the seal, which newer versions
// may reach. ErrCheckpoint after Freeze.
func (a *Allocator) FreeTo(cp *Checkpoint, e Extent) error {
	if err := a.openCheckpoint(cp); err != nil || cp.frozen {
		return ErrCheckpoint
	}
	ag, off, err := a.committedExtent(e)
	if err != nil {
		return err
	}
	if a.refs.overlaps(e) || a.sealedShared(cp, e) {
		return fmt.Errorf("%w: %v is shared now or at the seal", ErrWrongState, e)
	}
	if ag >= cp.AGCount {
		return fmt.Errorf("%w: %v beyond checkpoint's %d AGs", ErrInvalid, e, cp.AGCount)
	}
	// Without an image of its own, the AG has not changed since the seal.
	if img, ok := cp.images[ag]; ok && !allSet(img, off, uint32(e.Len)) {
		return fmt.Errorf("%w: %v was committed after the seal", ErrWrongState, e)
	}
	a.touch(ag)
	a.makeBusy(ag, off, uint32(e.Len), cp.LSN, cp.gen)
	a.markCheckpointDirty(cp, ag)
	clearRange(cp.images[ag], off, uint32(e.Len))
	return nil
}

func (a *Allocator) markCheckpointDirty(cp *Checkpoint, ag uint32) {
	if !cp.dirty[ag] {
		cp.dirty[ag] = true
		cp.slots[ag] = 0
		if a.ags[ag].newest == 0 {
			cp.slots[ag] = 1
		}
	}
}

// Freeze ends CommitTo and FreeTo for cp: its images are final, and from
// now on cp.Images and cp.Records may be used without the store's lock
// while the Allocator goes on changing.
func (a *Allocator) Freeze(cp *Checkpoint) error {
	if err := a.openCheckpoint(cp); err != nil {
		return err
	}
	cp.frozen = true
	for ag := range cp.images {
		if !cp.dirty[ag] {
			delete(cp.images, ag) // copied for safety, but unchanged
		}
	}
	return nil
}

// Images yields the encoded bitmap of every AG the checkpoint writes, in
// AG order. Each is encoded on demand, so the whole set is never in memory
// at once. It must not run concurrently with CommitTo or FreeTo (Freeze
// first).
func (cp *Checkpoint) Images() iter.Seq[AGImage] {
	return func(yield func(AGImage) bool) {
		ags := make([]uint32, 0, len(cp.dirty))
		for ag := range cp.dirty {
			ags = append(ags, ag)
		}
		slices.Sort(ags)
		for _, ag := range ags {
			bm := format.AGBitmap{
				StoreID: cp.storeID, AG: ag, Epoch: cp.Epoch, NBits: cp.geo.BlocksPerAG,
				Bits: wordsToBytes(cp.images[ag], cp.geo.BlocksPerAG),
			}
			slot := cp.slots[ag]
			img := AGImage{AG: ag, Slot: slot, Block: cp.geo.BitmapCopy(ag, slot), Data: bm.Encode(cp.geo.BlockSize)}
			if !yield(img) {
				return
			}
		}
	}
}

// Dirty returns the number of AG images the checkpoint writes.
func (cp *Checkpoint) Dirty() int { return len(cp.dirty) }

// Records yields the refcount records as of the seal when RecordsChanged
// (else nothing: the previous checkpoint's records still hold). After
// Freeze it may run without the store's lock.
func (cp *Checkpoint) Records() iter.Seq[Record] {
	if !cp.RecordsChanged {
		return func(func(Record) bool) {}
	}
	return slices.Values(cp.records)
}

// CheckpointDurable records that cp's superblock is durable: the AG images
// it wrote become the newest copies, and busy blocks freed before the seal
// (or by FreeTo into cp), at or before cp.LSN, become allocatable unless a
// reader pinned at an older version can still see them. Blocks freed after
// the seal stay busy until a later checkpoint is durable.
func (a *Allocator) CheckpointDurable(cp *Checkpoint) error {
	if err := a.openCheckpoint(cp); err != nil {
		return err
	}
	for ag := range cp.dirty {
		a.ags[ag].newest = int8(cp.slots[ag])
	}
	a.durable = max(a.durable, cp.LSN)
	a.durableGen = max(a.durableGen, cp.gen)
	a.cp = nil
	a.releaseBusy()
	return nil
}

// AbortCheckpoint gives up cp (its I/O failed): its AGs and records are
// dirty again, so the next checkpoint writes them, and nothing is released.
// What cp's CommitTo and FreeTo did stands in the live state: the blocks
// it committed stay committed, and those it freed stay busy until a later
// checkpoint is durable, so the store must not point at them again.
func (a *Allocator) AbortCheckpoint(cp *Checkpoint) error {
	if err := a.openCheckpoint(cp); err != nil {
		return err
	}
	for ag := range cp.dirty {
		a.dirty[ag] = true
	}
	if cp.RecordsChanged {
		a.refDirty = true
	}
	a.cp = nil
	return nil
}

// wordsToBytes converts an in-memory bitmap to the on-disk LSB-first bytes,
// with the padding bits past nbits clear.
func wordsToBytes(bm []uint64, nbits uint32) []byte {
	out := make([]byte, len(bm)*8)
	for i, w := range bm {
		binary.LittleEndian.PutUint64(out[i*8:], w)
	}
	out = out[:format.AGBitmapBytes(nbits)]
	if r := nbits % 8; r != 0 {
		out[len(out)-1] &= byte(1)<<r - 1
	}
	return out
}

// bytesToWords converts on-disk bitmap bytes to words, setting the padding
// bits past nbits.
func bytesToWords(b []byte, nbits uint32) []uint64 {
	bm := make([]uint64, bitmapWords(nbits))
	for i := range bm {
		if i*8+8 <= len(b) {
			bm[i] = binary.LittleEndian.Uint64(b[i*8:])
			continue
		}
		var w [8]byte
		copy(w[:], b[min(i*8, len(b)):])
		bm[i] = binary.LittleEndian.Uint64(w[:])
	}
	if pad := uint32(len(bm))*64 - nbits; pad > 0 {
		setRange(bm, nbits, pad)
	}
	return bm
}

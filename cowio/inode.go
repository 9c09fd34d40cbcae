package cowio

import (
	"fmt"
	"sync"

	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
)

// Limits and defaults of an Inode.
const (
	// CowExtSizeDefault is the default CoW extent-size hint, in blocks
	// (128 KiB at 4 KiB blocks, XFS's default cowextsize).
	CowExtSizeDefault = 32
	// CowExtSizeMax bounds InodeOptions.CowExtSize, and so the blocks one
	// write may reserve beyond its range (2 × (CowExtSizeMax - 1)).
	CowExtSizeMax = 1 << 12
)

// InodeOptions configures an Inode. A nil *InodeOptions means all
// defaults; a zero field means its default.
type InodeOptions struct {
	// CowExtSize is the CoW extent-size hint, in blocks, from 1 to
	// CowExtSizeMax. A write allocates for the whole aligned chunks of
	// CowExtSize blocks its range touches, not only for the range: the
	// blocks outside the range stay reserved in the staging map, and a
	// later write of those file blocks uses them instead of allocating, so
	// the chunk ends up contiguous on disk however it is overwritten (XFS's
	// cowextsize). Reserved blocks are staging blocks: never written until
	// a write uses them, and free again after a crash. 1 turns the hint
	// off; 0 means CowExtSizeDefault.
	CowExtSize uint64
}

// Inode is the write-path state of one value (a blob): its committed
// mapping, as the store hands it in and as commits change it; its staging
// map (XFS's CoW fork), the staging blocks of the writes in flight and the
// blocks reserved by the CoW extent-size hint; a sequence counter that every
// committed change bumps; and the mapping lock that guards them.
//
// Inode is safe for concurrent use by multiple goroutines. Each method
// holds the mapping lock only around lookups and updates of the maps,
// never around data I/O. Commit and CommitTruncate also hold the inode's
// commit lock around the store's log call, which serializes the committed
// changes of one inode in log order.
//
// Lock order: the commit lock, then whatever the store's log function
// takes; the mapping lock, then the Space's lock (WriteAt allocates while
// holding the mapping lock, which is the point). So the store must never
// call an Inode method while holding the lock its Space or its log function
// takes, and its Space must never call back into an Inode.
type Inode struct {
	id    format.InodeID
	w     *Writer
	chunk uint64 // CoW extent-size hint in blocks; 1: off

	commitMu sync.Mutex // held across log + apply by Commit, CommitTruncate

	mu struct {
		sync.Mutex
		committed entryList // holes unmapped
		reserved  entryList // staging blocks reserved by the hint; Sums nil
		inflight  map[uint64][]Entry
		nextID    uint64     // id of the next write; ids start at 1
		seq       uint64     // bumped by every committed change
		applied   format.LSN // LSN of the last committed change; 0: none yet
	}
}

// NewInode returns the Inode id over the writer w (its data file, block
// size and Space), starting from the committed mapping m (the inode's extent
// records as the store loaded them; Sums may be nil). It copies m. An
// invalid m is an error wrapping ErrBadMapping, a bad option one wrapping
// ErrInvalidOptions.
func NewInode(w *Writer, id format.InodeID, m Mapping, opts *InodeOptions) (*Inode, error) {
	if w == nil {
		return nil, fmt.Errorf("%w: nil writer", ErrInvalidOptions)
	}
	o := InodeOptions{}
	if opts != nil {
		o = *opts
	}
	if o.CowExtSize == 0 {
		o.CowExtSize = CowExtSizeDefault
	}
	if o.CowExtSize > CowExtSizeMax {
		return nil, fmt.Errorf("%w: CowExtSize %d: must be from 1 to %d", ErrInvalidOptions, o.CowExtSize, CowExtSizeMax)
	}
	if err := m.Validate(w.blockSize); err != nil {
		return nil, err
	}
	ino := &Inode{id: id, w: w, chunk: o.CowExtSize}
	ino.mu.committed = newEntryList(m.Entries)
	ino.mu.inflight = map[uint64][]Entry{}
	ino.mu.nextID = 1
	return ino, nil
}

// ID returns the inode's ID.
func (ino *Inode) ID() format.InodeID { return ino.id }

// Mapping returns a copy of the committed mapping.
func (ino *Inode) Mapping() Mapping {
	ino.mu.Lock()
	defer ino.mu.Unlock()
	return Mapping{Entries: ino.mu.committed.all()}
}

// InodeStats describes an Inode at one moment.
type InodeStats struct {
	Entries  int        // entries of the committed mapping (physically contiguous runs, merged)
	Mapped   uint64     // committed blocks mapped
	Reserved uint64     // staging blocks reserved by the CoW extent-size hint
	InFlight int        // writes between WriteAt and Commit, Apply or Abort
	Staging  uint64     // staging blocks of those writes
	Seq      uint64     // the sequence counter
	Applied  format.LSN // LSN of the last committed change
}

// Stats returns the inode's figures.
func (ino *Inode) Stats() InodeStats {
	ino.mu.Lock()
	defer ino.mu.Unlock()
	s := InodeStats{InFlight: len(ino.mu.inflight), Seq: ino.mu.seq, Applied: ino.mu.applied}
	s.Entries, s.Mapped = ino.mu.committed.stats()
	_, s.Reserved = ino.mu.reserved.stats()
	for _, es := range ino.mu.inflight {
		s.Staging += Mapping{Entries: es}.Blocks()
	}
	return s
}

// ReadAt reads len(p) bytes at offset off of the inode's value, of size
// bytes, as Writer.ReadAt does, from the committed mapping as it is when
// ReadAt starts: every block reads either as it was before a concurrent
// commit or as it is after it, never as the staging blocks of a write not
// yet committed. The store must keep the blocks a commit takes a reference
// from unallocated until every ReadAt that started before that commit has
// returned (its reader pins do that).
func (ino *Inode) ReadAt(size int64, p []byte, off int64) (int, error) {
	var m Mapping
	if off >= 0 && off < size && size <= ReadSizeMax {
		bs := int64(ino.w.blockSize)
		end := off + min(int64(len(p)), size-off)
		ino.mu.Lock()
		m.Entries = ino.mu.committed.within(FileBlock(off/bs), FileBlock((end+bs-1)/bs))
		ino.mu.Unlock()
	}
	return ino.w.ReadAt(m, size, p, off)
}

// ReleaseReserved returns every staging block the CoW extent-size hint
// reserved to the Space and reports how many there were. The store calls
// it before it drops the Inode (and may call it at any time, under space
// pressure): reserved blocks are in memory only, so nothing else would ever
// free them until the process restarts.
func (ino *Inode) ReleaseReserved() uint64 {
	ino.mu.Lock()
	res := ino.mu.reserved.all()
	ino.mu.reserved = entryList{}
	ino.mu.Unlock()
	if len(res) > 0 {
		ino.w.space.ReleaseStaging(physExtents(res))
	}
	return Mapping{Entries: res}.Blocks()
}

// TruncateBlocks removes from the committed mapping every block from file
// block from on, as the committed change of log sequence number lsn, and
// returns the extents that lose a reference, in file order. Growth needs no
// call: blocks past the mapping are holes. It also releases the reserved
// staging blocks from from on. lsn must be above that of every earlier
// committed change of the inode (ErrOutOfOrder otherwise, and nothing
// changes). Writes in flight are not affected: one committed later maps its
// blocks again, as the later change.
func (ino *Inode) TruncateBlocks(from FileBlock, lsn format.LSN) ([]extents.Extent, error) {
	ino.mu.Lock()
	if err := ino.checkLSNLocked(lsn); err != nil {
		ino.mu.Unlock()
		return nil, err
	}
	var removed, res []Entry
	removed = ino.mu.committed.splice(from, fileBlockMax, nil)
	res = ino.mu.reserved.splice(from, fileBlockMax, nil)
	ino.mu.seq++
	ino.mu.applied = lsn
	ino.mu.Unlock()
	if len(res) > 0 {
		ino.w.space.ReleaseStaging(physExtents(res))
	}
	return physExtents(removed), nil
}

// CommitTruncate is TruncateBlocks for the live path: under the inode's
// commit lock it computes the extents that lose a reference, calls log with
// them (the store logs the truncation and returns its LSN; log must not
// call the Inode), and applies the truncation at that LSN. If log fails,
// nothing changes and its error is returned.
func (ino *Inode) CommitTruncate(from FileBlock, log func(old []extents.Extent) (format.LSN, error)) ([]extents.Extent, error) {
	ino.commitMu.Lock()
	defer ino.commitMu.Unlock()
	ino.mu.Lock()
	old := physExtents(ino.mu.committed.within(from, fileBlockMax))
	ino.mu.Unlock()
	lsn, err := log(old)
	if err != nil {
		return nil, err
	}
	return ino.TruncateBlocks(from, lsn)
}

// checkLSNLocked refuses a committed change that is not after the last one.
func (ino *Inode) checkLSNLocked(lsn format.LSN) error {
	if lsn <= ino.mu.applied {
		return fmt.Errorf("%w: LSN %d after %d on inode %d", ErrOutOfOrder, lsn, ino.mu.applied, ino.id)
	}
	return nil
}

package cowdb

import (
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/internal/record"
)

// MaxValueSize is the largest value Put accepts, in bytes (1 GiB). A value
// is written whole and logged as one record naming every block and its
// checksum (8 bytes per block), which this bound keeps within the log's
// record size. Larger data goes through blobs, written in pieces.
const MaxValueSize = 1 << 30

// walRecordMax is the log's record size limit the store asks for: one
// MaxValueSize value's remap with its checksums, and room to spare.
const walRecordMax = 8 << 20

// Values above InlineMax are stored in extents (DESIGN §7): the whole value
// is written with aligned direct I/O into freshly allocated staging blocks
// (cowio.Writer.WriteNew, the last partial block zero padded), then, under
// db.mu, one log record holds the Put of the inode record and a Remap of
// every extent, appended with wal.NeedsDataSync so the log flush syncs the
// data file first (the data is durable before the record that maps it),
// and the staging blocks are committed. Replay claims the exact blocks each
// Remap names.

// dataSpace is the cowio.Space of the store: staging blocks from the
// allocator, under db.mu unless the caller already holds it (an Update
// transaction writing a large value).
type dataSpace struct {
	db     *DB
	locked bool // the calling goroutine holds db.mu
}

// AllocStaging implements cowio.Space, growing the data file if needed.
func (s dataSpace) AllocStaging(n uint64, goal format.Block) ([]extents.Extent, error) {
	db := s.db
	if !s.locked {
		db.mu.Lock()
		defer db.mu.Unlock()
	}
	a := db.mu.alloc
	// Leave what the next checkpoint and the dirty pages' writeback need
	// (admitNeedLocked), growing the file if that is what it takes.
	if free := uint64(a.Stats().FreeBlocks); free < n+db.admitNeedLocked() {
		if err := db.ensureSpaceLocked(n + db.admitNeedLocked()); err != nil {
			return nil, fmt.Errorf("%w: %w", cowio.ErrNoSpace, err)
		}
	}
	exts, err := a.AllocExtents(nil, n, goal, 0)
	if errors.Is(err, extents.ErrNoSpace) {
		if err := db.ensureSpaceLocked(n + db.admitNeedLocked()); err != nil {
			return nil, fmt.Errorf("%w: %w", cowio.ErrNoSpace, err)
		}
		exts, err = a.AllocExtents(nil, n, goal, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", cowio.ErrNoSpace, err)
	}
	db.mu.headroom -= min(db.mu.headroom, n)
	return exts, nil
}

// ReleaseStaging implements cowio.Space.
func (s dataSpace) ReleaseStaging(exts []extents.Extent) {
	if !s.locked {
		s.db.mu.Lock()
		defer s.db.mu.Unlock()
	}
	s.db.releaseStagingLocked(exts)
}

func (db *DB) releaseStagingLocked(exts []extents.Extent) {
	for _, e := range exts {
		if err := db.mu.alloc.ReleaseStaging(e); err != nil {
			panic(fmt.Sprintf("cowdb: assertion failed: releasing staging %v: %v", e, err))
		}
	}
}

// putLarge writes value to new blocks, then logs and applies its Put and
// remaps. Called without db.mu.
func (db *DB) putLarge(key, value []byte) error {
	if db.closed.Load() {
		return ErrClosed
	}
	if db.opts.ReadOnly {
		return ErrReadOnly
	}
	m, err := db.cw.WriteNew(value, format.NoBlock)
	if errors.Is(err, cowio.ErrNoSpace) {
		// Release the busy blocks with a checkpoint, and the extent-size
		// hint's reservations, then try once more (DESIGN §8).
		db.inodes.ReleaseReserved()
		if cerr := db.checkpoint(); cerr != nil && !errors.Is(cerr, ErrNoSpace) {
			return cerr
		}
		m, err = db.cw.WriteNew(value, format.NoBlock)
	}
	if err != nil {
		return db.dataError(err)
	}
	var w0 *writer
	err = db.write(func(w *writer) error {
		w0 = w
		return w.putBlob(key, int64(len(value)), m, false)
	})
	if w0 == nil || !w0.committed {
		db.mu.Lock()
		db.releaseStagingLocked(m.Extents())
		db.mu.Unlock()
	}
	return err
}

// dataError maps a data path error to the public sentinels.
func (db *DB) dataError(err error) error {
	switch {
	case errors.Is(err, cowio.ErrNoSpace):
		if errors.Is(err, ErrNoSpace) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	case errors.Is(err, cowio.ErrTooLarge):
		return fmt.Errorf("%w: %w", ErrValueTooLarge, err)
	}
	return err
}

// putBlob logs and applies the Put of a value of size bytes laid out by m
// (staging blocks). owned says the writer owns the staging blocks and
// releases them if it is aborted; otherwise the caller does.
func (w *writer) putBlob(key []byte, size int64, m cowio.Mapping, owned bool) error {
	w.db.mu.nextInode++
	id := w.db.mu.nextInode - 1
	ops := []record.Op{{Kind: record.Put, Key: append([]byte{}, key...), Inode: id, Size: size}}
	for _, e := range m.Entries {
		ops = append(ops, record.Op{Kind: record.Remap, Inode: id, FileBlock: uint64(e.FileBlock), Phys: e.Start, Len: e.Len, Sums: e.Sums})
	}
	if owned {
		w.owned = append(w.owned, m.Extents()...)
	}
	for _, op := range ops {
		if err := w.do(op); err != nil {
			return err
		}
	}
	w.commits = append(w.commits, m.Extents()...)
	w.needsDataSync = true
	w.largeValues++
	return nil
}

// applyRemap maps file blocks [FileBlock, FileBlock+Len) of op.Inode to
// [Phys, Phys+Len), whose checksums are op.Sums: whatever mapped those file
// blocks before loses the tree's reference (unmap), and the new extent is
// stored as records of at most cowio.ExtentRecordMaxBlocks blocks, each
// holding its blocks' checksums. The live path commits the staging blocks
// once the record is logged (writer.commits); replay claims them now, as
// the blocks a record names are free in the checkpoint it replays onto.
func (w *writer) applyRemap(op record.Op) error {
	if op.Inode == 0 || op.Len == 0 || op.Phys == format.NoBlock || uint64(len(op.Sums)) != op.Len ||
		op.FileBlock > maxFileBlock || op.Len > maxFileBlock-op.FileBlock {
		return fmt.Errorf("%w: remap of inode %d: %d blocks at %d, %d checksums", record.ErrBadBatch, op.Inode, op.Len, op.Phys, len(op.Sums))
	}
	if w.replay {
		if err := w.db.growForReplayLocked(extents.Extent{Start: op.Phys, Len: op.Len}); err != nil {
			return err
		}
		if err := w.db.mu.alloc.Claim(extents.Extent{Start: op.Phys, Len: op.Len}); err != nil {
			return fmt.Errorf("%w: remap of inode %d names blocks %d+%d: %w", format.ErrCorrupt, op.Inode, op.Phys, op.Len, err)
		}
	}
	w.db.mu.hasBlobs = true
	a, b := cowio.FileBlock(op.FileBlock), cowio.FileBlock(op.FileBlock+op.Len)
	if err := w.unmap(op.Inode, a, b); err != nil {
		return err
	}
	for off := uint64(0); off < op.Len; off += cowio.ExtentRecordMaxBlocks {
		n := min(op.Len-off, cowio.ExtentRecordMaxBlocks)
		rec := cowio.EncodeExtentRecord(nil, cowio.ExtentRecord{Start: op.Phys + format.Block(off), Len: n, Sums: op.Sums[off : off+n]})
		if err := w.set(format.ExtentKey(nil, op.Inode, op.FileBlock+off), rec); err != nil {
			return err
		}
	}
	w.coverPages(op.Inode, a, b)
	return nil
}

// maxFileBlock bounds the file blocks of a blob: MaxBlobSize at the
// smallest block size, so no block arithmetic overflows.
const maxFileBlock = MaxBlobSize / 4096

// unmap removes file blocks [a, b) of inode id from the tree's extent
// records: records inside the range are deleted, and a record across an
// edge is cut, its surviving part stored anew under its first file block.
// The deleted and replaced records drop their references when the batch
// commits; each surviving part takes one first (writer.incs), so blocks
// still mapped never reach a count of zero on the way.
func (w *writer) unmap(id format.InodeID, a, b cowio.FileBlock) error {
	// A record covering a starts at most ExtentRecordMaxBlocks-1 before it.
	lo := a - min(a, cowio.ExtentRecordMaxBlocks-1)
	type cut struct {
		fb  cowio.FileBlock
		rec cowio.ExtentRecord
	}
	var cuts []cut
	for e, err := range w.rangeOf(format.ExtentKey(nil, id, uint64(lo)), format.ExtentKey(nil, id, uint64(b))) {
		if err != nil {
			return err
		}
		_, fb, ok := format.ParseExtentKey(e.Key)
		if !ok {
			return format.Corruptf(fmt.Sprintf("inode %d", id), format.ErrMalformed, "extent key %x", e.Key)
		}
		r, err := cowio.DecodeExtentRecord(e.Value)
		if err != nil {
			return fmt.Errorf("cowdb: inode %d, extent at file block %d: %w", id, fb, err)
		}
		if cowio.FileBlock(fb)+cowio.FileBlock(r.Len) <= a {
			continue
		}
		cuts = append(cuts, cut{cowio.FileBlock(fb), r})
	}
	for _, c := range cuts {
		end := c.fb + cowio.FileBlock(c.rec.Len)
		if err := w.unset(format.ExtentKey(nil, id, uint64(c.fb))); err != nil {
			return err
		}
		if c.fb < a {
			n := uint64(a - c.fb)
			if err := w.keep(id, c.fb, cowio.ExtentRecord{Start: c.rec.Start, Len: n, Sums: c.rec.Sums[:n]}); err != nil {
				return err
			}
		}
		if end > b {
			skip := uint64(b - c.fb)
			n := c.rec.Len - skip
			if err := w.keep(id, b, cowio.ExtentRecord{Start: c.rec.Start + format.Block(skip), Len: n, Sums: c.rec.Sums[skip:]}); err != nil {
				return err
			}
		}
	}
	return nil
}

// keep stores the surviving part r of a cut record at file block fb,
// taking the reference the new record holds.
func (w *writer) keep(id format.InodeID, fb cowio.FileBlock, r cowio.ExtentRecord) error {
	w.incs = append(w.incs, extents.Extent{Start: r.Start, Len: r.Len})
	return w.set(format.ExtentKey(nil, id, uint64(fb)), cowio.EncodeExtentRecord(nil, r))
}

// applyTruncate sets the size of op.Key's blob (inode op.Inode) to op.Size.
// Shrinking unmaps every block from the first one wholly past the size;
// the bytes past the size in the last block are zeroed by the
// DeferredWrite the same record carries, so growth reads zeros without
// allocating anything.
func (w *writer) applyTruncate(op record.Op) error {
	if len(op.Key) == 0 || len(op.Key) > MaxKeySize || op.Size < 0 || op.Size > MaxBlobSize {
		return fmt.Errorf("%w: truncate of key %q to %d", record.ErrBadBatch, op.Key, op.Size)
	}
	k := format.InodeKey(nil, op.Key)
	rec, ok, err := w.get(k)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: truncate of key %q, which holds nothing", record.ErrBadBatch, op.Key)
	}
	ino, err := format.DecodeInode(rec)
	if err != nil {
		return fmt.Errorf("cowdb: key %q: %w", op.Key, err)
	}
	if ino.ID != op.Inode || ino.Inline() {
		return fmt.Errorf("%w: truncate of key %q names inode %d, which it does not hold as a blob", record.ErrBadBatch, op.Key, op.Inode)
	}
	if op.Size < ino.Size {
		bs := int64(w.db.bs)
		from := cowio.FileBlock((op.Size + bs - 1) / bs)
		if err := w.unmap(ino.ID, from, maxFileBlock); err != nil {
			return err
		}
		w.coverFrom(ino.ID, from)
		// The bytes past the size in the last block become zeros: a
		// partial page of them, derived from the operation itself (so
		// the log needs no zeros), when the block holds anything.
		if tail := op.Size % bs; tail != 0 {
			fb := cowio.FileBlock(op.Size / bs)
			m, err := w.view().mapping(ino.ID, fb, fb+1)
			if err != nil {
				return err
			}
			if base := w.newestPage(ino.ID, fb); base != nil || len(m.Entries) > 0 {
				p := patched(base, make([]byte, bs-tail), int(tail), int(bs))
				w.pageOps = append(w.pageOps, pageOp{id: ino.ID, fb: fb, p: p})
			}
		}
	}
	ino.Size = op.Size
	return w.set(k, format.AppendInode(nil, ino))
}

// applyDeferred patches the blocks [Off, Off+len(Value)) of op.Inode touches
// as dirty pages: each block's newest page (this batch's, or the store's)
// with the record's bytes written over it, or, when the tree holds the
// block's newest bytes, a partial page of the record's bytes alone. No
// block is read: the bytes a partial page lacks are the tree's, read when
// the page is read or written back.
func (w *writer) applyDeferred(op record.Op) error {
	if op.Inode == 0 || len(op.Value) == 0 || op.Off < 0 || op.Off > MaxBlobSize-int64(len(op.Value)) {
		return fmt.Errorf("%w: deferred write of %d bytes at %d of inode %d", record.ErrBadBatch, len(op.Value), op.Off, op.Inode)
	}
	bs := int64(w.db.bs)
	for pos := op.Off; pos < op.Off+int64(len(op.Value)); {
		fb := cowio.FileBlock(pos / bs)
		start := int64(fb) * bs
		n := min(start+bs, op.Off+int64(len(op.Value))) - pos
		var base *page
		if n < bs {
			base = w.newestPage(op.Inode, fb)
		}
		p := patched(base, op.Value[pos-op.Off:pos-op.Off+n], int(pos-start), int(bs))
		w.pageOps = append(w.pageOps, pageOp{id: op.Inode, fb: fb, p: p})
		pos += n
	}
	return nil
}

// newestPage returns the newest page of block fb of inode id as the batch
// has it, or nil when the tree holds the block's newest bytes.
func (w *writer) newestPage(id format.InodeID, fb cowio.FileBlock) *page {
	for i := len(w.pageOps) - 1; i >= 0; i-- {
		op := w.pageOps[i]
		switch {
		case op.id != id:
		case op.p != nil && op.fb == fb:
			return op.p
		case op.p == nil && fb >= op.fb && fb < op.end:
			return nil
		}
	}
	return w.db.pages.latest(id, fb)
}

// readMappedBlock reads block fb of inode id as v maps it (holes: zeros).
func (db *DB) readMappedBlock(v view, id format.InodeID, fb cowio.FileBlock) ([]byte, error) {
	m, err := v.mapping(id, fb, fb+1)
	if err != nil {
		return nil, err
	}
	bs := int64(db.bs)
	p := make([]byte, bs)
	end := (int64(fb) + 1) * bs
	if _, err := db.cw.ReadAt(m, end, p, end-bs); err != nil {
		return nil, fmt.Errorf("cowdb: inode %d, file block %d: %w", id, fb, err)
	}
	return p, nil
}

// coverPages stages a cover of blocks [a, b) of inode id: from this
// batch's LSN on the tree holds their bytes. Only inodes with pages need
// one.
func (w *writer) coverPages(id format.InodeID, a, b cowio.FileBlock) {
	if w.hasPages(id) {
		w.pageOps = append(w.pageOps, pageOp{id: id, fb: a, end: b})
	}
}

// coverFrom stages a cover of every block of inode id from fb on (a
// truncation, or with fb 0 the value's release).
func (w *writer) coverFrom(id format.InodeID, fb cowio.FileBlock) {
	w.coverPages(id, fb, maxFileBlock)
}

// hasPages reports whether inode id may have pages: in the store, or
// staged by this batch.
func (w *writer) hasPages(id format.InodeID) bool {
	for _, op := range w.pageOps {
		if op.id == id {
			return true
		}
	}
	return w.db.pages.has(id)
}

// view is one readable state of the namespace tree: a published version
// (with the LSN it holds), or a writer's batch, which sees the newest pages.
type view struct {
	rangeOf func(start, end []byte) iter.Seq2[btree.Entry, error]
	get     func(k []byte) ([]byte, bool, error)
	lsn     format.LSN // dirty pages committed up to lsn overlay the data
	snap    *Snapshot  // the open snapshot read, if any
}

// latestLSN is the view LSN of a writer's batch: every page is visible.
const latestLSN = ^format.LSN(0)

// treeView returns the view of version ns at lsn.
func treeView(ns *btree.Tree, lsn format.LSN) view {
	return view{rangeOf: ns.Range, get: ns.Get, lsn: lsn}
}

// view returns the view of the writer's batch.
func (w *writer) view() view {
	return view{rangeOf: w.rangeOf, get: w.get, lsn: latestLSN}
}

// mapping returns the extent records of inode id covering file blocks
// [a, b), as the entries of a cowio.Mapping with their checksums.
func (v view) mapping(id format.InodeID, a, b cowio.FileBlock) (cowio.Mapping, error) {
	var m cowio.Mapping
	lo := a - min(a, cowio.ExtentRecordMaxBlocks-1)
	for e, err := range v.rangeOf(format.ExtentKey(nil, id, uint64(lo)), format.ExtentKey(nil, id, uint64(b))) {
		if err != nil {
			return m, err
		}
		_, fb, ok := format.ParseExtentKey(e.Key)
		if !ok {
			return m, format.Corruptf(fmt.Sprintf("inode %d", id), format.ErrMalformed, "extent key %x", e.Key)
		}
		r, err := cowio.DecodeExtentRecord(e.Value)
		if err != nil {
			return m, fmt.Errorf("cowdb: inode %d, extent at file block %d: %w", id, fb, err)
		}
		if cowio.FileBlock(fb)+cowio.FileBlock(r.Len) <= a {
			continue
		}
		m.Entries = append(m.Entries, cowio.Entry{FileBlock: cowio.FileBlock(fb), Start: r.Start, Len: r.Len, Sums: r.Sums})
	}
	return m, nil
}

// readAt reads len(p) bytes at off of the blob ino as v has it, with
// io.ReaderAt's semantics: the tree's mapping, then the dirty pages of v's
// LSN over it.
func (db *DB) readAt(v view, ino format.Inode, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: %d", ErrInvalidOffset, off)
	}
	if off >= ino.Size {
		return 0, io.EOF
	}
	bs := int64(db.bs)
	want := min(int64(len(p)), ino.Size-off)
	m, err := v.mapping(ino.ID, cowio.FileBlock(off/bs), cowio.FileBlock((off+want+bs-1)/bs))
	if err != nil {
		return 0, err
	}
	n, err := db.cw.ReadAt(m, ino.Size, p, off)
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("cowdb: inode %d: %w", ino.ID, err)
	}
	db.pages.overlay(ino.ID, v.lsn, p[:n], off, bs)
	return n, err
}

// readValue returns a copy of the value ino describes, as v has it.
func (db *DB) readValue(v view, ino format.Inode) ([]byte, error) {
	if ino.Inline() {
		return append([]byte{}, ino.Value...), nil
	}
	if ino.Size > MaxValueSize {
		return nil, fmt.Errorf("%w: a blob of %d bytes is read with OpenBlob, not whole (at most %d)", ErrValueTooLarge, ino.Size, MaxValueSize)
	}
	p := make([]byte, ino.Size)
	n, err := db.readAt(v, ino, p, 0)
	if err == io.EOF && int64(n) == ino.Size {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

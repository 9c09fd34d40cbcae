package cowdb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/internal/record"
	"github.com/cowdb/cowdb/vfs"
	"github.com/cowdb/cowdb/wal"
)

// Limits of blobs.
const (
	// MaxBlobSize is the largest size of a blob, in bytes (1 TiB).
	MaxBlobSize = 1 << 40
	// MaxWriteSize is the largest single Blob.WriteAt, in bytes (1 GiB):
	// one WriteAt is one log record, which names every block written and
	// its checksum (8 bytes a block). Streamed writes (Write, ReadFrom)
	// have no such bound: they flush in pieces.
	MaxWriteSize = 1 << 30
	// deferredUnalignedMax is the largest unaligned write logged whole as
	// dirty pages; a larger one sends its aligned middle straight to new
	// blocks and logs only its partial head and tail blocks.
	deferredUnalignedMax = 64 << 10
	// blobWriteRetries bounds how often one blob write checkpoints and
	// retries after the log was full or space ran out.
	blobWriteRetries = 3
)

// blobWrite is one WriteAt or Truncate of a blob, planned: an aligned part
// written to new blocks (mid at midOff), byte ranges logged as dirty pages
// (deferred), and the size it sets (-1: grow to cover the write only).
type blobWrite struct {
	mid      []byte
	midOff   int64
	deferred []deferredPiece
	truncate int64 // the new size of a Truncate; -1 for a write
	end      int64 // the write's end: the size grows to it
	// rmw, when set, are the partial edge pieces of a write done as one
	// read-modify-write of whole blocks (rmwP at rmwOff) instead.
	rmw    []deferredPiece
	rmwP   []byte
	rmwOff int64
	gen    uint64 // the handle's Restore generation
	sync   bool   // wait for durability (SyncAlways and not a buffered flush)
}

type deferredPiece struct {
	off  int64
	data []byte
}

// errWritebackRaced stops a writeback whose pages changed under it (the
// value was deleted or replaced meanwhile): nothing is logged.
var errWritebackRaced = errors.New("cowdb: dirty pages changed during writeback")

// maxWrite is the largest WriteAt: MaxWriteSize, and what one log record
// maps, at 16 bytes a block (its checksum and a share of the remap's
// fields), with 1 KiB of room for the rest of the record.
func (db *DB) maxWrite() int64 {
	return min(MaxWriteSize, int64(db.recordMax-1024)/16*int64(db.bs))
}

// planWrite splits a write of p at off into its routes (DESIGN §7): an
// aligned write above DeferredWriteMax goes to new blocks; a small one, or
// any unaligned write up to deferredUnalignedMax, is logged as dirty pages;
// a larger unaligned one sends its aligned middle to new blocks and logs
// its partial head and tail blocks.
func (db *DB) planWrite(p []byte, off int64) blobWrite {
	bs := int64(db.bs)
	n := int64(len(p))
	bw := blobWrite{truncate: -1, end: off + n}
	aligned := off%bs == 0 && n%bs == 0
	switch {
	case aligned && (n > int64(db.opts.DeferredWriteMax) || n > int64(db.recordMax/4)):
		bw.mid, bw.midOff = p, off
	case aligned || n <= min(deferredUnalignedMax, int64(db.recordMax/4)):
		bw.deferred = []deferredPiece{{off, p}}
	default:
		lo := (off + bs - 1) / bs * bs
		hi := (off + n) / bs * bs
		if lo > hi {
			// Inside one block, and too large to log: read, patch and
			// rewrite the block.
			bw.rmw, bw.rmwP, bw.rmwOff = []deferredPiece{{off, p}}, p, off
			return bw
		}
		if lo > off {
			bw.deferred = append(bw.deferred, deferredPiece{off, p[:lo-off]})
		}
		bw.mid, bw.midOff = p[lo-off:hi-off], lo
		if hi < off+n {
			bw.deferred = append(bw.deferred, deferredPiece{hi, p[hi-off:]})
		}
		if (lo-off)+(off+n-hi) > int64(db.recordMax/4) {
			// Partial blocks too large to log (big blocks, a small log):
			// read, patch and rewrite them with the middle instead.
			bw.rmw, bw.rmwP, bw.rmwOff = bw.deferred, p, off
			bw.deferred, bw.mid = nil, nil
		}
	}
	return bw
}

// patchEdges builds the aligned buffer of a read-modify-write: the partial
// edge blocks' current bytes, then bw.rmwP over them. Called with the
// inode's write lock held alone, so the blocks cannot change meanwhile.
func (db *DB) patchEdges(id format.InodeID, bw *blobWrite) error {
	bs := int64(db.bs)
	lo := bw.rmwOff / bs * bs
	hi := (bw.rmwOff + int64(len(bw.rmwP)) + bs - 1) / bs * bs
	buf := vfs.AlignedBuf(int(hi - lo))
	for _, edge := range [2]int64{lo, hi - bs} {
		b, err := db.currentBlock(id, cowio.FileBlock(edge/bs))
		if err != nil {
			return err
		}
		copy(buf[edge-lo:edge-lo+bs], b)
	}
	copy(buf[bw.rmwOff-lo:], bw.rmwP)
	bw.mid, bw.midOff = buf, lo
	return nil
}

// currentBlock returns block fb of inode id as it is now: the current
// version's data with the newest page over it.
func (db *DB) currentBlock(id format.InodeID, fb cowio.FileBlock) ([]byte, error) {
	r := db.acquire()
	b, err := db.readMappedBlock(treeView(r.v.ns, r.v.lsn), id, fb)
	db.release(r)
	if err != nil {
		return nil, err
	}
	if pg := db.pages.latest(id, fb); pg != nil {
		pg.over(b, 0, db.bs)
	}
	return b, nil
}

// writeBlob performs bw on the blob (key, *id): the aligned part through
// the inode's copy-on-write path, the rest as dirty pages, all in one log
// record, so the write is atomic. It converts an inline value to a blob
// first (the handle's id then changes). A full log or no space checkpoints
// and retries, with no lock held.
func (db *DB) writeBlob(key []byte, id *format.InodeID, gen uint64, bw blobWrite) error {
	bw.gen = gen
	if err := db.ensureBlob(key, id, gen); err != nil {
		return err
	}
	var err error
	for attempt := 0; ; attempt++ {
		var lsn format.LSN
		lsn, err = db.writeBlobOnce(key, id, bw)
		retry := errors.Is(err, wal.ErrLogFull) || errors.Is(err, ErrNoSpace)
		if retry && attempt < blobWriteRetries {
			if errors.Is(err, ErrNoSpace) {
				db.inodes.ReleaseReserved()
			}
			if cerr := db.checkpoint(); cerr != nil && !errors.Is(cerr, ErrNoSpace) {
				return cerr
			}
			continue
		}
		if err != nil {
			return db.dataError(err)
		}
		db.bg.kick()
		if db.overDirty() {
			// Best effort: the write is committed whatever happens here;
			// a writeback that cannot run now (no space) is retried by
			// the next checkpoint.
			if err := db.writeback(*id); err != nil {
				db.logger.Warn("cowdb: writeback under memory pressure failed", "dir", db.dir, "err", err)
			}
		}
		if bw.sync && db.opts.Sync == SyncAlways {
			return db.syncLSN(lsn)
		}
		return nil
	}
}

// writeBlobOnce is one attempt of writeBlob.
func (db *DB) writeBlobOnce(key []byte, id *format.InodeID, bw blobWrite) (format.LSN, error) {
	// Every blob writer shares deferMu: a checkpoint, Snapshot or Restore
	// takes it alone to write back every page with no writer under way.
	exclusive := len(bw.deferred) > 0 || bw.truncate >= 0 || len(bw.rmw) > 0
	db.deferMu.RLock()
	defer db.deferMu.RUnlock()
	st := db.pages.use(*id)
	defer db.pages.unuse(st)
	if exclusive {
		st.wmu.Lock()
		defer st.wmu.Unlock()
	} else {
		st.wmu.RLock()
		defer st.wmu.RUnlock()
	}
	if len(bw.rmw) > 0 {
		if err := db.patchEdges(*id, &bw); err != nil {
			return 0, err
		}
	}
	var lsn format.LSN
	log := func(r *cowio.Remap) (format.LSN, error) {
		var err error
		lsn, err = db.writeOnce(func(w *writer) error {
			return w.blobOps(key, id, bw, r)
		})
		return lsn, err
	}
	if len(bw.mid) == 0 && bw.truncate < 0 {
		_, err := log(nil)
		return lsn, err
	}
	ino, err := db.inodes.Acquire(*id, func() (cowio.Mapping, error) { return db.loadMapping(*id) })
	if err != nil {
		return 0, err
	}
	defer db.inodes.Release(ino)
	if bw.truncate >= 0 {
		from := cowio.FileBlock((bw.truncate + int64(db.bs) - 1) / int64(db.bs))
		_, err := ino.CommitTruncate(from, func([]extents.Extent) (format.LSN, error) { return log(nil) })
		return lsn, err
	}
	r, err := ino.WriteAt(bw.mid, bw.midOff)
	if err != nil {
		return 0, err
	}
	_, err = ino.Commit(r, log)
	return lsn, err
}

// ensureBlob converts the inline value *id of key to a blob holding the
// same bytes (as dirty pages), in a record of its own, and sets *id to the
// blob's inode. A value already a blob is left alone.
func (db *DB) ensureBlob(key []byte, id *format.InodeID, gen uint64) error {
	r := db.acquire()
	rec, ok, err := r.v.ns.Get(format.InodeKey(nil, key))
	db.release(r)
	if err != nil {
		return err
	}
	if !ok {
		return ErrStale
	}
	if ino, err := format.DecodeInode(rec); err != nil || !ino.Inline() {
		return err
	}
	// The conversion logs a DeferredWrite: like every write that does,
	// it shares deferMu, so a checkpoint or Snapshot cannot take its LSN
	// between this record and its pages' writeback (and it checkpoints,
	// when it must, only with deferMu released: commitRetrying).
	var blob format.InodeID
	err = db.commitRetrying(func() (format.LSN, error) {
		db.deferMu.RLock()
		defer db.deferMu.RUnlock()
		return db.writeOnce(func(w *writer) error {
			blob = 0
			ino, err := w.heldInode(key, *id, gen)
			if err != nil {
				return err
			}
			if !ino.Inline() {
				return nil
			}
			w.db.mu.nextInode++
			blob = w.db.mu.nextInode - 1
			if err := w.do(record.Op{Kind: record.Put, Key: bytes.Clone(key), Inode: blob, Size: ino.Size}); err != nil {
				return err
			}
			if len(ino.Value) > 0 {
				if err := w.do(record.Op{Kind: record.DeferredWrite, Inode: blob, Value: bytes.Clone(ino.Value)}); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err == nil && blob != 0 {
		*id = blob
	}
	return err
}

// blobOps adds bw's operations to w: under db.mu, with the key's current
// inode checked against the handle's, and r the aligned part's remap (nil
// if none).
func (w *writer) blobOps(key []byte, id *format.InodeID, bw blobWrite, r *cowio.Remap) error {
	ino, err := w.heldInode(key, *id, bw.gen)
	if err != nil {
		return err
	}
	if ino.Inline() {
		return ErrStale
	}
	if r != nil {
		if err := w.logRemap(ino.ID, r); err != nil {
			return err
		}
	}
	size := ino.Size
	switch {
	case bw.truncate >= 0:
		size = bw.truncate
	case bw.end > size:
		size = bw.end
	}
	if size != ino.Size || bw.truncate >= 0 {
		// A Truncate logs its size even when unchanged: the inode's
		// committed changes need a record of their own (CommitTruncate).
		if err := w.do(record.Op{Kind: record.Truncate, Key: bytes.Clone(key), Inode: ino.ID, Size: size}); err != nil {
			return err
		}
	}
	for _, d := range bw.deferred {
		if err := w.do(record.Op{Kind: record.DeferredWrite, Inode: ino.ID, Off: d.off, Value: d.data}); err != nil {
			return err
		}
	}
	return nil
}

// heldInode returns key's inode record as the batch has it, or ErrStale
// unless it is still inode id of a handle opened at Restore generation gen.
func (w *writer) heldInode(key []byte, id format.InodeID, gen uint64) (format.Inode, error) {
	ino, err := lookupInode(w.view(), key)
	if errors.Is(err, ErrNotFound) || err == nil && (ino.ID != id || w.db.mu.restores != gen) {
		return format.Inode{}, ErrStale
	}
	return ino, err
}

// logRemap adds the Remap operations of r, a write to inode id, to w: the
// blocks are committed with the record, and the data file is synced before
// the log flush that makes it durable.
func (w *writer) logRemap(id format.InodeID, r *cowio.Remap) error {
	for _, e := range r.New {
		op := record.Op{Kind: record.Remap, Inode: id, FileBlock: uint64(e.FileBlock), Phys: e.Start, Len: e.Len, Sums: e.Sums}
		if err := w.do(op); err != nil {
			return err
		}
		w.commits = append(w.commits, e.Extent())
	}
	w.needsDataSync = true
	return nil
}

// loadMapping reads inode id's committed mapping from the current version
// (the cowio.Table's load).
func (db *DB) loadMapping(id format.InodeID) (cowio.Mapping, error) {
	r := db.acquire()
	defer db.release(r)
	return treeView(r.v.ns, r.v.lsn).mapping(id, 0, maxFileBlock)
}

// overDirty reports whether the dirty pages hold more than their share of
// memory: a quarter of CacheSize.
func (db *DB) overDirty() bool {
	_, n := db.pages.stats()
	return n > db.opts.CacheSize/4
}

// Writeback batching: runs of consecutive dirty blocks are written as one
// I/O of up to writebackRunMax blocks, writebackParallel runs at once (a
// checkpoint's writeback of scattered pages is otherwise one synchronous
// 4 KiB write after another).
const (
	writebackRunMax   = 256
	writebackParallel = 16
)

// writeback turns the dirty pages of inode id into aligned copy-on-write
// writes and remaps, then prunes the page histories no reader can reach.
// It holds the inode's write lock alone, so no page changes under it; a
// page replaced meanwhile by a commit that does not take that lock (the
// value's deletion) makes the remap's log step refuse, and the write is
// given up.
func (db *DB) writeback(id format.InodeID) error {
	st := db.pages.use(id)
	defer db.pages.unuse(st)
	st.wmu.Lock()
	defer st.wmu.Unlock()
	return db.writebackLocked(st)
}

// wbRun is a run of consecutive dirty blocks being written back.
type wbRun struct {
	fbs   []cowio.FileBlock
	pages []*page
	r     *cowio.Remap
}

// writebackLocked is writeback with st's write lock held alone.
func (db *DB) writebackLocked(st *inodeState) error {
	id := st.id
	fbs, pages := st.dirtyPages()
	if len(fbs) == 0 {
		return nil
	}
	ino, err := db.inodes.Acquire(id, func() (cowio.Mapping, error) { return db.loadMapping(id) })
	if err != nil {
		return err
	}
	defer db.inodes.Release(ino)
	var runs []*wbRun
	for i := 0; i < len(fbs); {
		j := i + 1
		for j < len(fbs) && j-i < writebackRunMax && fbs[j] == fbs[j-1]+1 {
			j++
		}
		runs = append(runs, &wbRun{fbs: fbs[i:j], pages: pages[i:j]})
		i = j
	}
	for len(runs) > 0 {
		group := runs[:min(len(runs), writebackParallel)]
		runs = runs[len(group):]
		if err := db.writebackGroup(st, ino, group); err != nil {
			return err
		}
	}
	db.prunePages()
	return nil
}

// writebackGroup writes the runs' blocks concurrently, then commits each.
// On an error every remap not committed is given up.
func (db *DB) writebackGroup(st *inodeState, ino *cowio.Inode, group []*wbRun) error {
	n := 0
	for _, run := range group {
		n += len(run.fbs)
	}
	db.wbInFlight.Add(int64(n))
	defer db.wbInFlight.Add(-int64(n))
	errs := make([]error, len(group))
	var wg sync.WaitGroup
	for k, run := range group {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf, err := db.runBytes(st.id, run)
			if err == nil {
				run.r, err = ino.WriteAt(buf, int64(run.fbs[0])*int64(db.bs))
			}
			errs[k] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, run := range group {
			if run.r != nil {
				ino.Abort(run.r)
			}
		}
		return err
	}
	for k, run := range group {
		_, err := ino.Commit(run.r, func(r *cowio.Remap) (format.LSN, error) {
			return db.writeOnceAs(true, func(w *writer) error {
				if !st.samePages(run.fbs, run.pages) {
					return errWritebackRaced
				}
				return w.logRemap(st.id, r)
			})
		})
		run.r = nil
		if err != nil && !errors.Is(err, errWritebackRaced) {
			for _, rest := range group[k+1:] {
				ino.Abort(rest.r)
			}
			return err
		}
		if err == nil {
			db.stats.writebacks.Add(int64(len(run.fbs)))
		}
	}
	return nil
}

// runBytes returns the blocks of a writeback run as they are now: its
// pages, over the current version's data where a page is partial.
func (db *DB) runBytes(id format.InodeID, run *wbRun) ([]byte, error) {
	bs := db.bs
	buf := vfs.AlignedBuf(len(run.fbs) * bs)
	if slices.ContainsFunc(run.pages, func(p *page) bool { return p.mask != nil }) {
		a, b := run.fbs[0], run.fbs[len(run.fbs)-1]+1
		r := db.acquire()
		m, err := treeView(r.v.ns, r.v.lsn).mapping(id, a, b)
		if err == nil {
			_, err = db.cw.ReadAt(m, int64(b)*int64(bs), buf, int64(a)*int64(bs))
		}
		db.release(r)
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("cowdb: inode %d, writeback of file blocks %d-%d: %w", id, a, b-1, err)
		}
	}
	for k, p := range run.pages {
		p.over(buf[k*bs:(k+1)*bs], 0, bs)
	}
	return buf, nil
}

// writebackAll writes back every inode's dirty pages.
func (db *DB) writebackAll() error {
	for _, id := range db.pages.dirtyInodes() {
		if err := db.writeback(id); err != nil {
			return err
		}
	}
	return nil
}

// prunePages drops the page history no reader can reach.
func (db *DB) prunePages() {
	oldest := db.cur.Load().lsn
	if o, ok := db.readers.oldest(); ok && o < oldest {
		oldest = o
	}
	db.cache.SetPinned(db.pages.prune(oldest))
}

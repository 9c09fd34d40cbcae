package cowdb

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/cache"
	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/internal/record"
	"github.com/cowdb/cowdb/vfs"
	"github.com/cowdb/cowdb/wal"
)

// Tree kinds of the store's B+trees, stored in every node (btree.TreeKind).
// They are part of the on-disk format.
const (
	kindNamespace btree.TreeKind = 1 // a root's keys: inode and extent records
	kindCatalog   btree.TreeKind = 2 // root name -> root record
	kindRefcount  btree.TreeKind = 3 // physical start -> (length, count)
	kindChecksum  btree.TreeKind = 4 // physical start -> data checksums (later)
)

// File names inside a store's directory.
const (
	lockName    = "LOCK"
	dataName    = "data"
	dataTmpName = "data.tmp" // a data file being created; renamed when whole
	walDirName  = "wal"
)

// Limits of the write path.
const (
	// logFullRetries bounds how often one write checkpoints and retries
	// after the log reported it had no free segment.
	logFullRetries = 3
)

// DB is an open store. It is safe for concurrent use by multiple
// goroutines: readers (Get, View, Scan, Prefix) are lock-free over an
// immutable version published atomically; writers (Put, Delete, Update)
// are serialized by one mutex and share log flushes (group commit);
// checkpoints write in the background without holding that mutex during
// their I/O.
type DB struct {
	dir    string
	opts   Options
	fs     vfs.FS
	logger *slog.Logger

	lock io.Closer
	data vfs.File
	wal  *wal.Log // nil only while a new store is being created
	// recordMax is the log's record size limit.
	recordMax int
	bs        int // block size in bytes
	storeID   uint64
	created   int64 // unix nanoseconds
	geo       extents.Geometry
	// inlineMax is the largest value stored inline, after clamping
	// Options.InlineMax to what a node holds.
	inlineMax int
	// cw is the data path over the data file; cwLocked the same for a
	// caller that holds db.mu (an Update transaction).
	cw, cwLocked *cowio.Writer

	forest *btree.Forest
	cache  *cache.Cache
	nodes  *blockStore

	// cur is the version readers use: the live namespace tree as of the
	// last published commit.
	cur atomic.Pointer[version]
	// inodes keeps the write-path state of the blobs being written (one
	// cowio.Inode per value), pages their dirty pages (pages.go).
	inodes *cowio.Table
	pages  pageSet
	// deferMu is shared by the writes that log dirty pages and taken
	// alone by a checkpoint while it makes sure no page older than its
	// LSN is left unwritten. It is taken before any inode's write lock.
	deferMu sync.RWMutex
	readers readerSet
	closed  atomic.Bool
	// wbInFlight counts the dirty pages whose writeback is allocating.
	wbInFlight atomic.Int64
	// restores is db.mu.restores, readable without db.mu.
	restores atomic.Uint64

	// cpMu admits one checkpoint at a time. It is taken before mu.
	cpMu sync.Mutex
	// bg is the background checkpointer; nil in ReadOnly mode.
	bg *checkpointer

	mu struct {
		sync.Mutex
		alloc    *extents.Allocator
		live     *btree.Tree // the live namespace root (a counted root)
		catalog  *btree.Tree
		refcount *btree.Tree

		lastLSN   format.LSN          // last record appended (or replayed)
		opLSN     format.LSN          // LSN that frees made now are tagged with
		cp        *extents.Checkpoint // set while a checkpoint commits into its own image
		nextInode format.InodeID
		epoch     format.Epoch // last durable checkpoint
		cpLSN     format.LSN   // the LSN it covers
		pin       extents.PinID
		headroom  uint64 // free blocks at the last space check
		// hasBlobs is false while the live tree has never held an extent
		// record since Open: replacing or deleting a key then cannot
		// release extents, and the lookup of its old value is skipped.
		hasBlobs bool
		failed   error // sticky: a log or data write failed
		// agCopies is the (epoch, checksum) of every AG's current bitmap
		// copy as the last durable checkpoint left them: the superblock's
		// BitmapDigest is computed over it (bitmapDigest).
		agCopies []agCopy
		// snaps are the named snapshots; drops the roots being released
		// in the background, in the order they began (snapshots.go).
		snaps map[string]*snapState
		drops []*dropState
		// restores counts Restores since Open (db.restores mirrors it
		// for Blob handles, which go stale at each).
		restores uint64
		// released are blob inodes deleted or replaced whose write-path
		// state is still to be dropped (dropReleased, outside db.mu).
		released []format.InodeID
		closed   bool
	}

	stats counters
}

// version is one published state of the live store: an immutable
// namespace tree and the LSN of the last operation it holds.
type version struct {
	ns  *btree.Tree
	lsn format.LSN
}

// checkKey validates a user key: 1 to MaxKeySize bytes.
func checkKey(key []byte) error {
	switch {
	case len(key) == 0:
		return ErrInvalidKey
	case len(key) > MaxKeySize:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrKeyTooLarge, len(key), MaxKeySize)
	}
	return nil
}

// Close writes a checkpoint (unless the store is ReadOnly or failed) and
// releases the store's files and lock. Close is idempotent: later calls
// return nil, and every other method returns ErrClosed.
func (db *DB) Close() error {
	if !db.closed.CompareAndSwap(false, true) {
		return nil
	}
	db.bg.stop()
	var errs []error
	db.mu.Lock()
	db.mu.closed = true
	failed := db.mu.failed
	db.mu.Unlock()
	if !db.opts.ReadOnly && failed == nil {
		err := db.checkpoint()
		if errors.Is(err, ErrNoSpace) {
			// The log holds every write and the next Open replays it:
			// make it durable and close, rather than lose nothing but
			// refuse to close.
			db.logger.Warn("cowdb: no space for the closing checkpoint; the log keeps the writes", "dir", db.dir, "err", err)
			db.mu.Lock()
			lsn := db.mu.lastLSN
			db.mu.Unlock()
			err = db.syncLSN(lsn)
		}
		errs = append(errs, err)
	}
	if db.wal != nil {
		errs = append(errs, db.wal.Close())
	}
	errs = append(errs, db.data.Close())
	db.cache.Close()
	errs = append(errs, db.lock.Close())
	return errors.Join(errs...)
}

// Put stores value under key, replacing any value there. Under
// SyncAlways it is durable when Put returns.
func (db *DB) Put(key, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := db.checkValue(len(value)); err != nil {
		return err
	}
	if len(value) > db.inlineMax {
		return db.putLarge(key, value)
	}
	return db.write(func(w *writer) error { return w.put(key, value) })
}

// Get returns a copy of the value stored under key, or ErrNotFound.
func (db *DB) Get(key []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if db.closed.Load() {
		return nil, ErrClosed
	}
	r := db.acquire()
	defer db.release(r)
	return db.getIn(treeView(r.v.ns, r.v.lsn), key)
}

// getIn reads key's value as v has it.
func (db *DB) getIn(v view, key []byte) ([]byte, error) {
	rec, ok, err := v.get(format.InodeKey(make([]byte, 0, 1+len(key)), key))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	ino, err := format.DecodeInode(rec)
	if err != nil {
		return nil, fmt.Errorf("cowdb: key %q: %w", key, err)
	}
	return db.readValue(v, ino)
}

// Delete removes key and its value. A missing key is not an error. Under
// SyncAlways it is durable when Delete returns.
func (db *DB) Delete(key []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return db.write(func(w *writer) error { return w.del(key) })
}

// Sync makes every write that returned before it durable (it matters under
// SyncNever; under SyncAlways they already are).
func (db *DB) Sync() error {
	if db.closed.Load() {
		return ErrClosed
	}
	db.mu.Lock()
	lsn, failed := db.mu.lastLSN, db.mu.failed
	db.mu.Unlock()
	if failed != nil {
		return failed
	}
	return db.syncLSN(lsn)
}

// syncLSN waits until every record up to lsn is durable. A failure fails
// the store: the state of unsynced log bytes is then unknown.
func (db *DB) syncLSN(lsn format.LSN) error {
	if lsn == 0 || db.wal == nil {
		return nil
	}
	if err := db.wal.Sync(lsn); err != nil {
		return db.fail(err)
	}
	return nil
}

// fail records a write failure that leaves the store's durable state
// unknown (a failed log or data flush: fsyncgate). Every later write
// returns an error wrapping it; reads keep working.
func (db *DB) fail(err error) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.failLocked(err)
}

func (db *DB) failLocked(err error) error {
	if db.mu.failed == nil {
		db.mu.failed = fmt.Errorf("cowdb: store failed, writes refused until reopened: %w", err)
		db.logger.Error("cowdb: store failed", "dir", db.dir, "err", err)
	}
	return db.mu.failed
}

// usableLocked returns the error that stops a write now, if any.
func (db *DB) usableLocked() error {
	switch {
	case db.mu.closed:
		return ErrClosed
	case db.opts.ReadOnly:
		return ErrReadOnly
	case db.mu.failed != nil:
		return db.mu.failed
	}
	return nil
}

// write runs fn on a writer over the live tree under db.mu, logs the
// operations it produced as one record, publishes the new version and,
// under SyncAlways, waits for the record to be durable (group commit: the
// wait happens without db.mu, so concurrent writers share one flush).
func (db *DB) write(fn func(w *writer) error) error {
	return db.commitRetrying(func() (format.LSN, error) { return db.writeOnce(fn) })
}

// commitRetrying runs attempt, which commits one record (with whatever
// locks of its own it needs, and never checkpointing), as write does: after
// a full log, or no space, it checkpoints with no lock held and tries again
// a few times; then it acknowledges, waiting for durability under
// SyncAlways.
func (db *DB) commitRetrying(attempt func() (format.LSN, error)) error {
	spaceRetried := false
	for i := 0; ; i++ {
		lsn, err := attempt()
		if errors.Is(err, wal.ErrLogFull) && i < logFullRetries {
			if cerr := db.checkpoint(); cerr != nil {
				return cerr
			}
			continue
		}
		if errors.Is(err, ErrNoSpace) && !spaceRetried {
			// A checkpoint releases the busy blocks (DESIGN §8), and the
			// CoW extent-size hint its reservations, before the write
			// gives up.
			spaceRetried = true
			db.inodes.ReleaseReserved()
			if cerr := db.checkpoint(); cerr != nil && !errors.Is(cerr, ErrNoSpace) {
				return cerr
			}
			continue
		}
		if err != nil {
			return err
		}
		db.dropReleased()
		db.bg.kick()
		if db.opts.Sync == SyncAlways {
			return db.syncLSN(lsn)
		}
		return nil
	}
}

// dropReleased forgets the cowio.Inodes of blob values deleted or replaced,
// returning the blocks their extent-size hint reserved. An Inode still in
// use stays until the LRU drops it.
func (db *DB) dropReleased() {
	db.mu.Lock()
	ids := db.mu.released
	db.mu.released = nil
	db.mu.Unlock()
	for _, id := range ids {
		db.inodes.Drop(id)
	}
}

// writeOnce is one attempt of write; it returns the LSN the caller must
// wait for: its record's, or, when fn produced no operation, the last one
// appended, since what fn observed (a key already deleted, say) may come
// from a commit whose flush is still under way, and under SyncAlways the
// write must not be acknowledged before that state is durable.
func (db *DB) writeOnce(fn func(w *writer) error) (lsn format.LSN, err error) {
	return db.writeOnceAs(false, fn)
}

// writeOnceAs is writeOnce; internal writes (writeback, which the closing
// checkpoint runs) go on after Close has begun.
func (db *DB) writeOnceAs(internal bool, fn func(w *writer) error) (lsn format.LSN, err error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.usableLocked(); err != nil && !(internal && err == ErrClosed) {
		return 0, err
	}
	w, err := db.newWriterLocked()
	if err != nil {
		return 0, err
	}
	done := false
	defer func() {
		if !done {
			w.abort() // fn panicked: apply nothing, let the panic go on
		}
	}()
	if err := fn(w); err != nil {
		done = true
		w.abort()
		return 0, err
	}
	done = true
	return db.commitLocked(w)
}

// commitLocked logs w's operations as one record and publishes the tree
// they built, returning the record's LSN (the last LSN appended when w has
// no operation). Called with db.mu held.
func (db *DB) commitLocked(w *writer) (format.LSN, error) {
	if w.err != nil {
		w.abort()
		return 0, fmt.Errorf("cowdb: a write in the transaction failed, nothing applied: %w", w.err)
	}
	if len(w.ops) == 0 {
		w.abort()
		return db.mu.lastLSN, nil
	}
	freeing := !slices.ContainsFunc(w.ops, func(op record.Op) bool { return op.Kind != record.Delete })
	// The batch's own new pages count like the store's (admitNeedLocked).
	if err := db.checkHeadroomLocked(len(w.ops)+(len(w.pageOps)+nodesPerOp-1)/nodesPerOp, freeing); err != nil {
		w.abort()
		return 0, err
	}
	payload, err := record.Append(nil, w.ops)
	if err != nil {
		w.abort()
		return 0, fmt.Errorf("%w: %w", ErrValueTooLarge, err)
	}
	var flags wal.RecordFlags
	if w.needsDataSync {
		flags |= wal.NeedsDataSync
	}
	lsn, err := db.wal.Append(payload, flags)
	if err != nil {
		w.abort()
		switch {
		case errors.Is(err, wal.ErrLogFull):
			return 0, err
		case errors.Is(err, wal.ErrRecordTooLarge):
			return 0, fmt.Errorf("%w: the write's log record is %d bytes: %w", ErrValueTooLarge, len(payload), err)
		}
		return 0, db.failLocked(err)
	}
	for _, e := range w.commits {
		if err := db.mu.alloc.Commit(e); err != nil {
			w.abort()
			return 0, db.failLocked(fmt.Errorf("committing %v: %w", e, err))
		}
	}
	w.committed = true
	db.mu.released = append(db.mu.released, w.released...)
	db.stats.largeValues.Add(w.largeValues)
	db.stats.remaps.Add(int64(len(w.commits)))
	if err := db.publishLocked(w, lsn); err != nil {
		return 0, err
	}
	db.stats.writes.Add(1)
	db.stats.walBytes.Add(int64(len(payload)))
	return lsn, nil
}

// publishLocked commits w's batch with frees tagged lsn and makes the new
// version the one readers see. A failure here leaves the allocator's
// counts partly applied, so it fails the store.
func (db *DB) publishLocked(w *writer, lsn format.LSN) error {
	db.mu.opLSN = lsn
	for _, e := range w.incs {
		if err := db.mu.alloc.Inc(e); err != nil {
			w.abort()
			return db.failLocked(fmt.Errorf("referencing %v: %w", e, err))
		}
	}
	t, err := w.b.Commit()
	w.b = nil
	if err != nil {
		return db.failLocked(err)
	}
	db.mu.live = t
	db.mu.lastLSN = lsn
	if len(w.pageOps) > 0 {
		db.cache.SetPinned(db.pages.apply(w.pageOps, lsn))
	}
	db.cur.Store(&version{ns: t, lsn: lsn})
	return nil
}

// checkValue validates a value's size.
func (db *DB) checkValue(n int) error {
	if n > MaxValueSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrValueTooLarge, n, MaxValueSize)
	}
	return nil
}

// readerShards is the number of independently locked parts of the
// reader registry, so concurrent readers rarely share a mutex.
const readerShards = 16

// readerSet counts the readers of each published version, so that blocks
// a reader may still visit are not reused under it (DESIGN §8). Register
// and unregister take a short mutex of one shard, never db.mu, so readers
// do not wait for writers.
//
// Why a checkpoint's oldest() cannot miss a reader that needs protecting:
// oldest() runs after the checkpoint published its version L, and visits
// each shard under its lock. A reader registered in a shard before the
// visit is counted; one registering after it loads the current version
// (under the same lock) and so sees L or later, which reaches no block
// freed at or before L.
type readerSet struct {
	shards [readerShards]struct {
		sync.Mutex
		n map[format.LSN]int
		_ [48]byte // 64 bytes a shard: separate cache lines
	}
}

// reader is a registered read of one version.
type reader struct {
	v     *version
	shard uint32
}

// acquire returns the current version, registered as read.
func (db *DB) acquire() reader {
	i := rand.Uint32() % readerShards
	sh := &db.readers.shards[i]
	sh.Lock()
	v := db.cur.Load()
	if sh.n == nil {
		sh.n = make(map[format.LSN]int)
	}
	sh.n[v.lsn]++
	sh.Unlock()
	return reader{v: v, shard: i}
}

// release unregisters a read acquire returned.
func (db *DB) release(r reader) {
	sh := &db.readers.shards[r.shard]
	sh.Lock()
	if c := sh.n[r.v.lsn]; c <= 1 {
		delete(sh.n, r.v.lsn)
	} else {
		sh.n[r.v.lsn] = c - 1
	}
	sh.Unlock()
}

// oldest returns the oldest version a reader holds, if any.
func (r *readerSet) oldest() (format.LSN, bool) {
	var min format.LSN
	found := false
	for i := range r.shards {
		sh := &r.shards[i]
		sh.Lock()
		for lsn := range sh.n {
			if !found || lsn < min {
				min, found = lsn, true
			}
		}
		sh.Unlock()
	}
	return min, found
}

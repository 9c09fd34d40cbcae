package cowdb

import (
	"bytes"
	"fmt"
	"iter"
	"slices"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/internal/record"
)

// writer applies logical operations (internal/record ops) to a batch on
// the live namespace tree, and collects them for the log. The live path and
// WAL replay use the same apply, so replay repeats exactly what the first
// execution did (DESIGN §5): every derived effect — releasing the extents
// of a replaced blob, the reference counts btree adjusts — follows from the
// operation and the tree it is applied to.
//
// A btree.Batch has no range reads, so the writer keeps an overlay of the
// namespace keys it wrote (nil value: deleted) over the tree it started
// from; reads and prefix scans inside the batch merge the two. A writer is
// used under db.mu only.
type writer struct {
	db   *DB
	base *btree.Tree
	b    *btree.Batch
	over map[string][]byte // namespace key -> value, nil when deleted
	ops  []record.Op
	// needsDataSync is set when an operation maps data blocks written
	// before the record: the log flush must sync the data file first.
	needsDataSync bool
	// commits are the staging extents the operations map: committed once
	// the record is logged (committed is then set). owned are those the
	// writer releases if it is aborted (an Update's large values; a Put's
	// belong to its caller).
	commits   []extents.Extent
	owned     []extents.Extent
	committed bool
	// incs are the extents that gain a reference before the batch's
	// releases apply: the surviving parts of cut extent records (unmap).
	incs []extents.Extent
	// pageOps are the dirty-page events of the batch (pages.go), applied
	// at its LSN.
	pageOps []pageOp
	// released are the blob inodes the batch deleted or replaced.
	released []format.InodeID
	// largeValues counts the values written to extents (for Stats).
	largeValues int64
	keyBuf      []byte // scratch for namespace keys

	// replay is set when applying a logged record after a crash: remaps
	// claim the free blocks they name instead of committing staging ones.
	replay bool
	// err is the first failure of an operation's apply. An apply that
	// failed may have changed part of the batch (released a blob's
	// extent records, say) without its operation being kept for the log,
	// so the batch must never be committed, even if an Update's fn
	// ignores the error and returns nil.
	err error
}

// newWriterLocked opens a batch on the live tree.
func (db *DB) newWriterLocked() (*writer, error) {
	b, err := db.mu.live.Begin()
	if err != nil {
		return nil, db.failLocked(err)
	}
	return &writer{db: db, base: db.mu.live, b: b, over: make(map[string][]byte)}, nil
}

// abort forgets everything the writer did.
func (w *writer) abort() {
	if w.b != nil {
		w.b.Abort()
		w.b = nil
	}
	if !w.committed && len(w.owned) > 0 {
		w.db.releaseStagingLocked(w.owned)
		w.owned = nil
	}
}

// put logs and applies a Put of an inline value under key. key and value
// are copied: the value once, into the inode record, which the logged
// operation's Value aliases.
func (w *writer) put(key, value []byte) error {
	w.db.mu.nextInode++
	ino := format.Inode{ID: w.db.mu.nextInode - 1, Size: int64(len(value)), Flags: format.InodeInline, Value: value}
	rec := format.AppendInode(make([]byte, 0, format.InodeHeaderSize+len(value)), ino)
	op := record.Op{
		Kind: record.Put, Key: bytes.Clone(key), Inode: ino.ID,
		Size: ino.Size, Flags: ino.Flags, Value: rec[format.InodeHeaderSize:],
	}
	if err := w.applyPut(op, rec); err != nil {
		return w.poison(err)
	}
	w.ops = append(w.ops, op)
	return nil
}

// poison records err as the failure that forbids committing the batch.
func (w *writer) poison(err error) error {
	if w.err == nil {
		w.err = err
	}
	return err
}

// del logs and applies a Delete of key; a missing key logs nothing.
func (w *writer) del(key []byte) error {
	if _, ok, err := w.get(format.InodeKey(nil, key)); err != nil || !ok {
		return err
	}
	return w.do(record.Op{Kind: record.Delete, Key: bytes.Clone(key)})
}

// do applies op and, if that worked, keeps it for the log.
func (w *writer) do(op record.Op) error {
	if err := w.apply(op); err != nil {
		return w.poison(err)
	}
	w.ops = append(w.ops, op)
	return nil
}

// apply performs one logical operation on the batch. It is the one place
// that gives an operation its meaning, for the live path and for replay.
func (w *writer) apply(op record.Op) error {
	switch op.Kind {
	case record.Put:
		return w.applyPut(op, nil)
	case record.Delete:
		if len(op.Key) == 0 || len(op.Key) > MaxKeySize {
			return fmt.Errorf("%w: delete of key %q", record.ErrBadBatch, op.Key)
		}
		if err := w.releaseOld(op.Key); err != nil {
			return err
		}
		return w.unset(format.InodeKey(nil, op.Key))
	case record.Remap:
		return w.applyRemap(op)
	case record.Truncate:
		return w.applyTruncate(op)
	case record.DeferredWrite:
		return w.applyDeferred(op)
	case record.Clone:
		return w.applyClone(op)
	}
	if isRootOp(op.Kind) {
		return fmt.Errorf("%w: %v in a batch: root operations are logged alone", record.ErrBadBatch, op.Kind)
	}
	return fmt.Errorf("%w: operation %v is not supported by this version", record.ErrBadBatch, op.Kind)
}

// applyPut sets op.Key's inode record; rec is its encoding when the caller
// has it already, else nil.
func (w *writer) applyPut(op record.Op, rec []byte) error {
	if len(op.Key) == 0 || len(op.Key) > MaxKeySize || op.Inode == 0 || op.Size < 0 {
		return fmt.Errorf("%w: put of key %q inode %d size %d", record.ErrBadBatch, op.Key, op.Inode, op.Size)
	}
	if rec == nil {
		ino := format.Inode{ID: op.Inode, Size: op.Size, Flags: op.Flags}
		if ino.Inline() {
			if int64(len(op.Value)) != op.Size {
				return fmt.Errorf("%w: inline put of %d bytes claims size %d", record.ErrBadBatch, len(op.Value), op.Size)
			}
			ino.Value = op.Value
		} else if op.Flags != 0 {
			return fmt.Errorf("%w: put of key %q with flags %#x", record.ErrBadBatch, op.Key, op.Flags)
		}
		rec = format.AppendInode(nil, ino)
	}
	if err := w.releaseOld(op.Key); err != nil {
		return err
	}
	if op.Inode >= w.db.mu.nextInode {
		w.db.mu.nextInode = op.Inode + 1
	}
	// set copies the key (the overlay and the batch each keep their own),
	// so one scratch buffer serves every put.
	w.keyBuf = format.InodeKey(w.keyBuf[:0], op.Key)
	if err := w.set(w.keyBuf, rec); err != nil {
		return err
	}
	if op.Flags&format.InodeInline == 0 {
		w.db.mu.hasBlobs = true
		// The blob index: Diff and Check find a blob's key from its inode.
		w.keyBuf = format.BlobKeyKey(w.keyBuf[:0], op.Inode)
		return w.set(w.keyBuf, op.Key)
	}
	return nil
}

// releaseOld deletes the extent records of the blob key holds, if any, so
// their blocks lose the tree's reference (btree calls AdjustValue).
func (w *writer) releaseOld(key []byte) error {
	if !w.db.mu.hasBlobs {
		return nil
	}
	rec, ok, err := w.get(format.InodeKey(nil, key))
	if err != nil || !ok {
		return err
	}
	ino, err := format.DecodeInode(rec)
	if err != nil {
		return fmt.Errorf("cowdb: key %q: %w", key, err)
	}
	if ino.Inline() {
		return nil
	}
	w.released = append(w.released, ino.ID)
	w.coverPages(ino.ID, 0, maxFileBlock)
	if err := w.unset(format.BlobKeyKey(nil, ino.ID)); err != nil {
		return err
	}
	return w.releaseExtents(ino.ID)
}

// releaseExtents deletes every extent record of inode id. (Apart from
// releaseOld so that the common path allocates no iterator state.)
func (w *writer) releaseExtents(id format.InodeID) error {
	var keys [][]byte
	for e, err := range w.prefix(format.ExtentKey(nil, id, 0)[:9]) {
		if err != nil {
			return err
		}
		keys = append(keys, bytes.Clone(e.Key))
	}
	for _, k := range keys {
		if err := w.unset(k); err != nil {
			return err
		}
	}
	return nil
}

// get reads a namespace key as the batch has it.
func (w *writer) get(k []byte) ([]byte, bool, error) {
	if v, ok := w.over[string(k)]; ok {
		return v, v != nil, nil
	}
	return w.base.Get(k)
}

func (w *writer) set(k, v []byte) error {
	if err := w.b.Put(k, v); err != nil {
		return err
	}
	w.over[string(k)] = v
	return nil
}

func (w *writer) unset(k []byte) error {
	if err := w.b.Delete(k); err != nil {
		return err
	}
	w.over[string(k)] = nil
	return nil
}

// rangeOf yields the namespace entries in [start, end) as the batch has
// them (end nil: unbounded), in key order.
func (w *writer) rangeOf(start, end []byte) iter.Seq2[btree.Entry, error] {
	return mergeOverlay(w.base.Range(start, end), w.over, func(k string) bool {
		return k >= string(start) && (end == nil || k < string(end))
	})
}

// prefix yields the namespace entries starting with p as the batch has
// them, in key order.
func (w *writer) prefix(p []byte) iter.Seq2[btree.Entry, error] {
	return mergeOverlay(w.base.Prefix(p), w.over, func(k string) bool {
		return len(k) >= len(p) && k[:len(p)] == string(p)
	})
}

// mergeOverlay merges a tree iteration with the overlay entries in keep,
// the overlay winning (a nil value hides the key).
func mergeOverlay(base iter.Seq2[btree.Entry, error], over map[string][]byte, keep func(string) bool) iter.Seq2[btree.Entry, error] {
	return func(yield func(btree.Entry, error) bool) {
		var keys []string
		for k := range over {
			if keep(k) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		i := 0
		// emit yields the overlay entries below limit (all if limit is nil).
		emit := func(limit []byte) bool {
			for ; i < len(keys) && (limit == nil || keys[i] < string(limit)); i++ {
				if v := over[keys[i]]; v != nil {
					if !yield(btree.Entry{Key: []byte(keys[i]), Value: v}, nil) {
						return false
					}
				}
			}
			return true
		}
		for e, err := range base {
			if err != nil {
				yield(btree.Entry{}, err)
				return
			}
			if !emit(e.Key) {
				return
			}
			if _, shadowed := over[string(e.Key)]; shadowed {
				continue
			}
			if !yield(e, nil) {
				return
			}
		}
		emit(nil)
	}
}

package cowdb

import (
	"bytes"
	"fmt"
	"iter"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/internal/format"
)

// Item is one key and its value's size, yielded by Scan and Prefix. The
// value is read only when asked for (Value). An Item and its Key are valid
// only inside the loop body that received them: copy what you keep, and
// do not modify Key.
type Item struct {
	Key  []byte
	Size int64

	db  *DB
	v   view // the state the iteration reads
	ino format.Inode
}

// Value returns a copy of the item's value, read from the version the
// iteration reads.
func (it *Item) Value() ([]byte, error) {
	return it.db.readValue(it.v, it.ino)
}

// Open opens the item's value as a read-only Blob. For an item of the
// live store it reads the value as it is when each read runs, and gives
// ErrStale once the key is deleted or replaced; for an item of a
// Snapshot, the snapshot's value.
func (it *Item) Open() (*Blob, error) {
	if it.db.closed.Load() {
		return nil, ErrClosed
	}
	b := it.db.newBlob(it.Key, it.ino.ID, true)
	b.snap = it.v.snap
	return b, nil
}

// scanBounds turns a user range [start, end) into namespace keys.
func scanBounds(start, end []byte) (lo, hi []byte) {
	lo = format.InodeKey(nil, start)
	if end == nil {
		hi = []byte{format.KeyPrefixInode + 1}
	} else {
		hi = format.InodeKey(nil, end)
	}
	return lo, hi
}

// Scan yields the items with start <= key < end in key order (nil start or
// end: unbounded; start >= end yields nothing). One iteration reads one
// consistent version, the latest when it starts; the loop body may write
// to the store, and the iteration goes on over its version.
func (db *DB) Scan(start, end []byte) iter.Seq2[*Item, error] {
	return func(yield func(*Item, error) bool) {
		if start != nil && end != nil && bytes.Compare(start, end) >= 0 {
			return
		}
		lo, hi := scanBounds(start, end)
		db.iterate(func(ns *btree.Tree) iter.Seq2[btree.Entry, error] { return ns.Range(lo, hi) }, yield)
	}
}

// Prefix yields the items whose key starts with prefix, in key order;
// Prefix(nil) yields everything. It reads one version, as Scan does.
func (db *DB) Prefix(prefix []byte) iter.Seq2[*Item, error] {
	return func(yield func(*Item, error) bool) {
		p := format.InodeKey(nil, prefix)
		db.iterate(func(ns *btree.Tree) iter.Seq2[btree.Entry, error] { return ns.Prefix(p) }, yield)
	}
}

// iterate runs one iteration over the current version, registered as a
// reader for its whole length.
func (db *DB) iterate(src func(*btree.Tree) iter.Seq2[btree.Entry, error], yield func(*Item, error) bool) {
	if db.closed.Load() {
		yield(nil, ErrClosed)
		return
	}
	r := db.acquire()
	defer db.release(r)
	yieldItems(db, treeView(r.v.ns, r.v.lsn), src(r.v.ns), nil, yield)
}

// yieldItems turns namespace inode entries into Items. stop, if set, ends
// the iteration with ErrTxClosed once it reports true.
func yieldItems(db *DB, v view, src iter.Seq2[btree.Entry, error], stop func() bool, yield func(*Item, error) bool) {
	for e, err := range src {
		if err != nil {
			yield(nil, err)
			return
		}
		if stop != nil && stop() {
			yield(nil, ErrTxClosed)
			return
		}
		ino, err := format.DecodeInode(e.Value)
		if err != nil {
			yield(nil, fmt.Errorf("cowdb: key %q: %w", e.Key[1:], err))
			return
		}
		if !yield(&Item{Key: e.Key[1:], Size: ino.Size, db: db, v: v, ino: ino}, nil) {
			return
		}
	}
}

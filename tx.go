package cowdb

import (
	"iter"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/internal/format"
)

// Tx is a transaction: a read-write one inside Update, a read-only one
// inside View. A Tx is valid only inside the function it was passed to,
// and is used by one goroutine; after the function returns every method
// returns ErrTxClosed.
//
// An Update transaction holds the store's writer lock for the whole
// function, like bbolt's: its reads see the store as of its start plus its
// own writes, and nothing else writes meanwhile, so read-modify-write is
// safe. Its function must not call the DB's methods that write, sync or
// checkpoint (they would wait for it); it uses the Tx, and may call the
// DB's read methods.
type Tx struct {
	db   *DB
	w    *writer     // Update only
	ns   *btree.Tree // View only: the version read
	lsn  format.LSN  // View only: its LSN
	done bool
}

// Update runs fn in a read-write transaction and commits what it wrote as
// one atomic, logged batch: durable on return under SyncAlways. If fn
// returns an error, nothing is applied and that error is returned
// unchanged. If fn panics, nothing is applied and the panic goes on.
//
// In two rare cases fn runs again: when the log has no free segment for
// the batch (wal.ErrLogFull, only possible when checkpoints cannot keep
// up), or the store is out of space while a checkpoint could release busy
// blocks, the batch is dropped, a checkpoint runs, and fn is retried, a
// bounded number of times. So fn should have no effects beyond its Tx.
func (db *DB) Update(fn func(tx *Tx) error) error {
	var tx *Tx
	defer func() {
		if tx != nil {
			tx.done = true
		}
	}()
	return db.write(func(w *writer) error {
		tx = &Tx{db: db, w: w}
		err := fn(tx)
		tx.done = true
		return err
	})
}

// View runs fn in a read-only transaction over one consistent version of
// the store. Writes through its Tx return ErrReadOnly. View returns fn's
// error unchanged.
func (db *DB) View(fn func(tx *Tx) error) error {
	if db.closed.Load() {
		return ErrClosed
	}
	r := db.acquire()
	defer db.release(r)
	tx := &Tx{db: db, ns: r.v.ns, lsn: r.v.lsn}
	defer func() { tx.done = true }()
	return fn(tx)
}

// Get returns a copy of key's value as the transaction sees it, or
// ErrNotFound.
func (tx *Tx) Get(key []byte) ([]byte, error) {
	if tx.done {
		return nil, ErrTxClosed
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if tx.w == nil {
		return tx.db.getIn(treeView(tx.ns, tx.lsn), key)
	}
	rec, ok, err := tx.w.get(format.InodeKey(nil, key))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	ino, err := format.DecodeInode(rec)
	if err != nil {
		return nil, err
	}
	return tx.db.readValue(tx.w.view(), ino)
}

// Put stores value under key in the transaction.
func (tx *Tx) Put(key, value []byte) error {
	if err := tx.writable(key); err != nil {
		return err
	}
	if err := tx.db.checkValue(len(value)); err != nil {
		return err
	}
	if len(value) <= tx.db.inlineMax {
		return tx.w.put(key, value)
	}
	// The transaction holds db.mu: the data is written under it.
	m, err := tx.db.cwLocked.WriteNew(value, format.NoBlock)
	if err != nil {
		return tx.db.dataError(err)
	}
	return tx.w.putBlob(key, int64(len(value)), m, true)
}

// Delete removes key in the transaction; a missing key is not an error.
func (tx *Tx) Delete(key []byte) error {
	if err := tx.writable(key); err != nil {
		return err
	}
	return tx.w.del(key)
}

func (tx *Tx) writable(key []byte) error {
	switch {
	case tx.done:
		return ErrTxClosed
	case tx.w == nil:
		return ErrReadOnly
	}
	return checkKey(key)
}

// Scan yields the items with start <= key < end in key order, as the
// transaction sees them (nil start or end: unbounded).
func (tx *Tx) Scan(start, end []byte) iter.Seq2[*Item, error] {
	lo, hi := scanBounds(start, end)
	return tx.items(lo, hi, nil)
}

// Prefix yields the items whose key starts with prefix, in key order.
func (tx *Tx) Prefix(prefix []byte) iter.Seq2[*Item, error] {
	return tx.items(nil, nil, format.InodeKey(nil, prefix))
}

func (tx *Tx) items(lo, hi, prefix []byte) iter.Seq2[*Item, error] {
	return func(yield func(*Item, error) bool) {
		if tx.done {
			yield(nil, ErrTxClosed)
			return
		}
		var src iter.Seq2[btree.Entry, error]
		switch {
		case tx.w != nil && prefix != nil:
			src = tx.w.prefix(prefix)
		case tx.w != nil:
			src = tx.w.rangeOf(lo, hi)
		case prefix != nil:
			src = tx.ns.Prefix(prefix)
		default:
			src = tx.ns.Range(lo, hi)
		}
		v := treeView(tx.ns, tx.lsn)
		if tx.w != nil {
			v = tx.w.view()
		}
		yieldItems(tx.db, v, src, func() bool { return tx.done }, yield)
	}
}

package peers

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cowdb/cowdb"
	"github.com/dgraph-io/badger/v4"
	bolt "go.etcd.io/bbolt"
)

// errNotFound is what every adapter's get returns for a missing key, so the
// benchmarks and tests need not know each store's own sentinel.
var errNotFound = errors.New("cowdb/peers: key not found")

// cacheSize is the block cache given to the stores that have one and a
// small default (pebble's is 8 MiB): cowdb's default, 64 MiB, so that no
// store reads from the OS because of a smaller budget.
const cacheSize = 64 << 20

// store is one key-value store under test. Every write method is durable
// on return.
type store interface {
	// batch writes all pairs as one atomic, durable transaction.
	batch(keys, vals [][]byte) error
	// put writes one pair as its own durable transaction.
	put(k, v []byte) error
	// get returns a copy of k's value, or errNotFound.
	get(k []byte) ([]byte, error)
	close() error
}

// opener opens (creating if needed) a store in dir.
type opener func(dir string) (store, error)

// peer names a store and how to open it; peers lists them in table order.
// keyed is false for the raw device, whose gets return a block rather
// than the value put.
type peer struct {
	name  string
	open  opener
	keyed bool
}

var peers = []peer{
	{"cowdb", openCowdb, true},
	{"bbolt", openBolt, true},
	{"badger", openBadger, true},
	{"pebble", openPebble, true},
	{"raw", openRawStore, false},
}

// cowdbStore: default Options (SyncAlways, 64 MiB cache) but O_DIRECT
// required rather than automatic, so that a temp directory on a file
// system without it fails loudly instead of measuring the buffered
// fallback.
type cowdbStore struct{ db *cowdb.DB }

func openCowdb(dir string) (store, error) {
	db, err := cowdb.Open(dir, &cowdb.Options{
		DirectIO: cowdb.DirectIORequired,
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, err
	}
	return cowdbStore{db}, nil
}

func (s cowdbStore) batch(keys, vals [][]byte) error {
	return s.db.Update(func(tx *cowdb.Tx) error {
		for i := range keys {
			if err := tx.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s cowdbStore) put(k, v []byte) error { return s.db.Put(k, v) }

func (s cowdbStore) get(k []byte) ([]byte, error) {
	v, err := s.db.Get(k)
	if errors.Is(err, cowdb.ErrNotFound) {
		return nil, errNotFound
	}
	return v, err
}

func (s cowdbStore) close() error { return s.db.Close() }

// boltStore: default options (fsync of the data file per Update, NoSync
// false), one bucket. Writers are serialized by bbolt; each put is its own
// Update, so concurrent puts do not share an fsync (bbolt's Batch would
// coalesce them, but then a put no longer commits alone).
type boltStore struct{ db *bolt.DB }

var boltBucket = []byte("kv")

func openBolt(dir string) (store, error) {
	db, err := bolt.Open(filepath.Join(dir, "bolt.db"), 0o600, nil)
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(boltBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return boltStore{db}, nil
}

func (s boltStore) batch(keys, vals [][]byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(boltBucket)
		for i := range keys {
			if err := b.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s boltStore) put(k, v []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(boltBucket).Put(k, v) })
}

func (s boltStore) get(k []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(boltBucket).Get(k)
		if v == nil {
			return errNotFound
		}
		// The slice is valid only inside the transaction.
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

func (s boltStore) close() error { return s.db.Close() }

// badgerStore: default options with SyncWrites (the value log is synced
// before a commit returns; concurrent commits share that sync) and no
// logging.
type badgerStore struct{ db *badger.DB }

func openBadger(dir string) (store, error) {
	db, err := badger.Open(badger.DefaultOptions(dir).WithSyncWrites(true).WithLogger(nil))
	if err != nil {
		return nil, err
	}
	return badgerStore{db}, nil
}

func (s badgerStore) batch(keys, vals [][]byte) error {
	return s.db.Update(func(txn *badger.Txn) error {
		for i := range keys {
			if err := txn.Set(keys[i], vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s badgerStore) put(k, v []byte) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set(k, v) })
}

func (s badgerStore) get(k []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return errNotFound
		}
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	return out, err
}

func (s badgerStore) close() error { return s.db.Close() }

// pebbleStore: default options but a 64 MiB block cache (see cacheSize);
// every commit with pebble.Sync (concurrent commits share the WAL sync).
type pebbleStore struct{ db *pebble.DB }

func openPebble(dir string) (store, error) {
	cache := pebble.NewCache(cacheSize)
	defer cache.Unref() // the DB holds its own reference
	db, err := pebble.Open(dir, &pebble.Options{Cache: cache, Logger: quietPebble{}})
	if err != nil {
		return nil, err
	}
	return pebbleStore{db}, nil
}

func (s pebbleStore) batch(keys, vals [][]byte) error {
	b := s.db.NewBatch()
	defer b.Close()
	for i := range keys {
		if err := b.Set(keys[i], vals[i], nil); err != nil {
			return err
		}
	}
	return b.Commit(pebble.Sync)
}

func (s pebbleStore) put(k, v []byte) error { return s.db.Set(k, v, pebble.Sync) }

func (s pebbleStore) get(k []byte) ([]byte, error) {
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	return out, closer.Close()
}

func (s pebbleStore) close() error { return s.db.Close() }

// quietPebble drops pebble's informational messages and keeps its errors.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any) {}
func (quietPebble) Errorf(format string, args ...any) {
	slog.Error(fmt.Sprintf("pebble: "+format, args...))
}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

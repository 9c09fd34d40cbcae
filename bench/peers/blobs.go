package peers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cowdb/cowdb"
	"github.com/dgraph-io/badger/v4"
)

// chunkSize is the unit in which the key-value peers store a blob: each
// 64 KiB of it is one value, so a small write rewrites a whole chunk.
const chunkSize = 64 << 10

// Bulk batch sizes of the peers' ingest. bbolt fsyncs every Update, so a
// few MiB per Update keeps that cost small against the data. pebble turns a
// batch of half its memtable (2 MiB by default) or more into a flushable
// batch of its own; 1 MiB keeps ingest on its ordinary WAL-and-memtable
// path.
const (
	boltBulkBytes   = 4 << 20
	pebbleBulkBytes = 1 << 20
)

var (
	errBlobShort = errors.New("cowdb/peers: blob shorter than expected")
	errNoBulk    = errors.New("cowdb/peers: store has no bulk writer")
)

// blobStore is one store holding blobs, as the blob workloads use it. A
// blob is written whole by ingest, then overwritten in place and read at
// any offset.
type blobStore interface {
	// ingest stores the size bytes that r yields as the new blob name,
	// durable on return.
	ingest(name string, r io.Reader, size int64) error
	// writeAt writes p at off in blob name; it is durable once the next
	// commit returns.
	writeAt(name string, p []byte, off int64) error
	// commit makes every write so far durable.
	commit() error
	// settle writes out work the store deferred and can be asked to do
	// now (cowdb's checkpoint, pebble's memtable flush), so that a
	// measurement that ends with it pays for that work.
	settle() error
	// readAt fills p from offset off of blob name.
	readAt(name string, p []byte, off int64) error
	close() error
}

// blobOpener opens (creating if needed) a blob store in dir. grouped says
// that the caller commits every few writes rather than after each: a
// store whose writes are each durable on their own (cowdb under
// SyncAlways) then defers durability to commit instead.
type blobOpener func(dir string, grouped bool) (blobStore, error)

// blobPeer names a blob store and how to open it; blobPeers lists them in
// table order. exact is false for the raw device, whose unaligned writes
// write whole blocks without reading them first, so do not keep the bytes
// around the written range.
type blobPeer struct {
	name  string
	open  blobOpener
	exact bool
}

var blobPeers = []blobPeer{
	{"cowdb", openCowBlobs, true},
	{"bbolt", chunked(openBolt), true},
	{"badger", chunked(openBadger), true},
	{"pebble", chunked(openPebble), true},
	{"raw", openRawBlobs, false},
}

// cowBlobs is cowdb with its own blobs: ingest is io.Copy into a new Blob
// (Blob.ReadFrom, 8 MiB aligned chunks), durable at Close; writes and reads
// are Blob.WriteAt and Blob.ReadAt on a handle kept open per blob. Options
// as openCowdb's, but under SyncNever when grouped, with commit a DB.Sync.
type cowBlobs struct {
	db      *cowdb.DB
	grouped bool
	handles map[string]*cowdb.Blob
}

func openCowBlobs(dir string, grouped bool) (blobStore, error) {
	o := &cowdb.Options{DirectIO: cowdb.DirectIORequired, Logger: slog.New(slog.DiscardHandler)}
	if grouped {
		o.Sync = cowdb.SyncNever
	}
	db, err := cowdb.Open(dir, o)
	if err != nil {
		return nil, err
	}
	return &cowBlobs{db: db, grouped: grouped, handles: map[string]*cowdb.Blob{}}, nil
}

func (s *cowBlobs) ingest(name string, r io.Reader, size int64) error {
	if h := s.handles[name]; h != nil {
		h.Close()
		delete(s.handles, name)
	}
	b, err := s.db.CreateBlob([]byte(name))
	if err != nil {
		return err
	}
	n, err := io.Copy(b, r)
	if err = errors.Join(err, b.Close()); err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%w: ingested %d of %d bytes", errBlobShort, n, size)
	}
	return s.commit()
}

// handle returns the open handle of blob name, opening it on first use.
func (s *cowBlobs) handle(name string) (*cowdb.Blob, error) {
	if h := s.handles[name]; h != nil {
		return h, nil
	}
	h, err := s.db.OpenBlob([]byte(name))
	if err != nil {
		return nil, err
	}
	s.handles[name] = h
	return h, nil
}

func (s *cowBlobs) writeAt(name string, p []byte, off int64) error {
	h, err := s.handle(name)
	if err != nil {
		return err
	}
	_, err = h.WriteAt(p, off)
	return err
}

func (s *cowBlobs) commit() error {
	if !s.grouped {
		return nil // every write was durable on return
	}
	return s.db.Sync()
}

func (s *cowBlobs) settle() error { return s.db.Checkpoint() }

func (s *cowBlobs) readAt(name string, p []byte, off int64) error {
	h, err := s.handle(name)
	if err != nil {
		return err
	}
	n, err := h.ReadAt(p, off)
	if n == len(p) {
		return nil // io.EOF at the blob's end is no failure
	}
	return err
}

func (s *cowBlobs) close() error {
	var errs []error
	for _, h := range s.handles {
		errs = append(errs, h.Close())
	}
	return errors.Join(append(errs, s.db.Close())...)
}

// bulkWriter writes a stream of pairs in large batches, each of the
// store's own kind, all durable once flush returns.
type bulkWriter interface {
	// set adds a pair; k and v are valid only during the call.
	set(k, v []byte) error
	// flush writes what is left and makes every pair durable. It must be
	// called once, also after an error, to release the writer.
	flush() error
}

// bulkStore is a store with a bulk writer (the keyed peers).
type bulkStore interface {
	store
	bulk() bulkWriter
}

// chunkBlobs stores blobs in a key-value peer as chunkSize values under
// chunkKey(name, index). Ingest goes through the peer's bulk writer.
// writeAt is read-modify-write: it reads each chunk the range touches (or
// its pending copy), patches it, and keeps it pending; commit writes every
// pending chunk as one durable batch. A missing chunk reads as zeros.
type chunkBlobs struct {
	s       bulkStore
	pending map[string][]byte // chunk key → patched chunk, written at commit
	order   [][]byte          // the pending keys, in first-write order
}

// chunked turns a key-value peer's opener into a blob opener. grouped
// changes nothing: the peers commit only at commit either way.
func chunked(open opener) blobOpener {
	return func(dir string, _ bool) (blobStore, error) {
		s, err := open(dir)
		if err != nil {
			return nil, err
		}
		bs, ok := s.(bulkStore)
		if !ok {
			s.close()
			return nil, fmt.Errorf("%w: %T", errNoBulk, s)
		}
		return &chunkBlobs{s: bs, pending: map[string][]byte{}}, nil
	}
}

// chunkKey is the key of chunk i of blob name: zero-padded so that a
// blob's chunks sort in order and ingest appends to the key space.
func chunkKey(name string, i int64) []byte {
	return fmt.Appendf(nil, "blob/%s/%010d", name, i)
}

func (c *chunkBlobs) ingest(name string, r io.Reader, size int64) error {
	w := c.s.bulk()
	buf := make([]byte, chunkSize)
	var n int64
	for i := int64(0); ; i++ {
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			if serr := w.set(chunkKey(name, i), buf[:k]); serr != nil {
				return errors.Join(serr, w.flush())
			}
			n += int64(k)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return errors.Join(err, w.flush())
		}
	}
	if err := w.flush(); err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%w: ingested %d of %d bytes", errBlobShort, n, size)
	}
	return nil
}

// chunk returns chunk k as the pending writes left it: the pending copy,
// or a copy read from the store (zeros if missing), which the caller may
// patch.
func (c *chunkBlobs) chunk(k []byte) ([]byte, error) {
	if v, ok := c.pending[string(k)]; ok {
		return v, nil
	}
	v, err := c.s.get(k)
	if errors.Is(err, errNotFound) {
		return make([]byte, chunkSize), nil
	}
	return v, err
}

// spans calls fn for each chunk the range [off, off+n) touches, with the
// chunk's key, the range's offset within the chunk, and its part of the
// range, from byte from to byte to.
func spans(name string, off int64, n int, fn func(k []byte, in, from, to int) error) error {
	for done := 0; done < n; {
		i, in := off/chunkSize, int(off%chunkSize)
		k := min(n-done, chunkSize-in)
		if err := fn(chunkKey(name, i), in, done, done+k); err != nil {
			return err
		}
		done += k
		off += int64(k)
	}
	return nil
}

func (c *chunkBlobs) writeAt(name string, p []byte, off int64) error {
	return spans(name, off, len(p), func(k []byte, in, from, to int) error {
		v, err := c.chunk(k)
		if err != nil {
			return err
		}
		if end := in + to - from; len(v) < end { // a short last chunk grows
			v = append(v, make([]byte, end-len(v))...)
		}
		copy(v[in:], p[from:to])
		if _, ok := c.pending[string(k)]; !ok {
			c.order = append(c.order, k)
		}
		c.pending[string(k)] = v
		return nil
	})
}

func (c *chunkBlobs) commit() error {
	if len(c.order) == 0 {
		return nil
	}
	vals := make([][]byte, len(c.order))
	for i, k := range c.order {
		vals[i] = c.pending[string(k)]
	}
	err := c.s.batch(c.order, vals)
	clear(c.pending)
	c.order = c.order[:0]
	return err
}

// settler is a store with deferred work it can be asked to do now.
type settler interface{ settle() error }

func (c *chunkBlobs) settle() error {
	if s, ok := c.s.(settler); ok {
		return s.settle()
	}
	return nil
}

func (c *chunkBlobs) readAt(name string, p []byte, off int64) error {
	return spans(name, off, len(p), func(k []byte, in, from, to int) error {
		v, err := c.chunk(k)
		if err != nil {
			return err
		}
		if len(v) < in+to-from {
			return fmt.Errorf("%w: chunk %s holds %d bytes", errBlobShort, k, len(v))
		}
		copy(p[from:to], v[in:])
		return nil
	})
}

func (c *chunkBlobs) close() error { return c.s.close() }

// boltBulk commits one Update (so one fsync) per boltBulkBytes of pairs.
type boltBulk struct {
	s          boltStore
	keys, vals [][]byte
	size       int
}

func (s boltStore) bulk() bulkWriter { return &boltBulk{s: s} }

func (w *boltBulk) set(k, v []byte) error {
	if w.size+len(k)+len(v) > boltBulkBytes {
		if err := w.commit(); err != nil {
			return err
		}
	}
	// bbolt needs the slices until its Update ends.
	w.keys = append(w.keys, bytes.Clone(k))
	w.vals = append(w.vals, bytes.Clone(v))
	w.size += len(k) + len(v)
	return nil
}

func (w *boltBulk) commit() error {
	if len(w.keys) == 0 {
		return nil
	}
	err := w.s.batch(w.keys, w.vals)
	w.keys, w.vals, w.size = w.keys[:0], w.vals[:0], 0
	return err
}

func (w *boltBulk) flush() error { return w.commit() }

// badgerBulk is badger's WriteBatch, which cuts the stream into
// transactions of its own size and commits them in the background; with
// SyncWrites each is synced, and Flush waits for them all.
type badgerBulk struct{ wb *badger.WriteBatch }

func (s badgerStore) bulk() bulkWriter { return badgerBulk{s.db.NewWriteBatch()} }

func (w badgerBulk) set(k, v []byte) error {
	// The batch keeps the slices until its transaction commits.
	return w.wb.Set(bytes.Clone(k), bytes.Clone(v))
}

func (w badgerBulk) flush() error { return w.wb.Flush() }

// pebbleBulk commits a Batch without sync per pebbleBulkBytes, and the last
// one with pebble.Sync: its WAL sync makes the earlier batches, logged
// before it, durable too. A full batch is committed before the next pair
// is added, so the last batch is never empty (pebble commits an empty
// batch without syncing).
type pebbleBulk struct {
	db *pebble.DB
	b  *pebble.Batch
}

func (s pebbleStore) bulk() bulkWriter { return &pebbleBulk{db: s.db, b: s.db.NewBatch()} }

func (w *pebbleBulk) set(k, v []byte) error {
	if w.b.Len()+len(k)+len(v) > pebbleBulkBytes && !w.b.Empty() {
		err := w.b.Commit(pebble.NoSync)
		w.b.Close()
		w.b = w.db.NewBatch()
		if err != nil {
			return err
		}
	}
	return w.b.Set(k, v, nil) // copies k and v
}

func (w *pebbleBulk) flush() error {
	defer w.b.Close()
	return w.b.Commit(pebble.Sync)
}

// settle flushes pebble's memtable to an sstable, so that a measurement
// ending with it counts those writes; the compactions it starts run on in
// the background and are not waited for.
func (s pebbleStore) settle() error { return s.db.Flush() }

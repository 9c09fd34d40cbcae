package cowdb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/internal/record"
	"github.com/cowdb/cowdb/vfs"
)

// streamChunk is the size of the aligned pieces Write and ReadFrom buffer
// and flush (each one atomic WriteAt), and WriteTo reads: large enough
// that the device sees big direct I/Os, in a few concurrent pieces.
const streamChunk = 8 << 20

// Blob is an open value, read and written at any offset like a file
// (DESIGN §7). Each WriteAt is atomic and, under SyncAlways, durable on
// return; Write and ReadFrom buffer into large aligned chunks, each
// flushed as one atomic WriteAt, durable at Sync or Close. Reads see the
// handle's own buffered writes.
//
// A Blob belongs to one value: once its key is deleted or replaced (Put,
// CreateBlob, Delete, Clone onto it, Restore), every call returns
// ErrStale. After Close, or the DB's Close, calls return ErrClosed.
//
// ReadAt, WriteAt, Size and Truncate are safe for concurrent use; Read,
// Write, Seek, ReadFrom and WriteTo share the handle's position and its
// buffer, so use them from one goroutine at a time (they are serialized,
// but interleaving them from several goroutines makes no sense).
type Blob struct {
	db       *DB
	key      []byte
	id       atomic.Uint64 // the inode; changes once if an inline value becomes a blob
	readOnly bool
	gen      uint64    // DB.restores when opened: a Restore makes the handle stale
	snap     *Snapshot // the snapshot the blob is read from; nil: the live store

	mu     sync.Mutex // position, buffer, closed
	pos    int64
	buf    []byte // buffered Write bytes, at bufOff; capacity streamChunk
	bufOff int64
	// unsynced is set when a buffered flush was not waited for: Close
	// then syncs.
	unsynced bool
	closed   bool
}

// CreateBlob makes key hold a new, empty blob, replacing whatever it held,
// and returns it open. Durable on return under SyncAlways.
func (db *DB) CreateBlob(key []byte) (*Blob, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var id format.InodeID
	err := db.write(func(w *writer) error {
		w.db.mu.nextInode++
		id = w.db.mu.nextInode - 1
		return w.do(record.Op{Kind: record.Put, Key: bytes.Clone(key), Inode: id})
	})
	if err != nil {
		return nil, err
	}
	return db.newBlob(key, id, false), nil
}

// OpenBlob opens the value under key as a blob, or returns ErrNotFound. Any
// value can be opened, whatever its size; a small one stored inline becomes
// a blob at its first write.
func (db *DB) OpenBlob(key []byte) (*Blob, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if db.closed.Load() {
		return nil, ErrClosed
	}
	r := db.acquire()
	defer db.release(r)
	ino, err := lookupInode(treeView(r.v.ns, r.v.lsn), key)
	if err != nil {
		return nil, err
	}
	return db.newBlob(key, ino.ID, db.opts.ReadOnly), nil
}

func (db *DB) newBlob(key []byte, id format.InodeID, readOnly bool) *Blob {
	b := &Blob{db: db, key: bytes.Clone(key), readOnly: readOnly, gen: db.restores.Load()}
	b.id.Store(uint64(id))
	return b
}

// lookupInode returns the inode record key holds in v, or ErrNotFound.
func lookupInode(v view, key []byte) (format.Inode, error) {
	rec, ok, err := v.get(format.InodeKey(nil, key))
	if err != nil {
		return format.Inode{}, err
	}
	if !ok {
		return format.Inode{}, ErrNotFound
	}
	ino, err := format.DecodeInode(rec)
	if err != nil {
		return format.Inode{}, fmt.Errorf("cowdb: key %q: %w", key, err)
	}
	return ino, nil
}

// check returns why the handle cannot be used now, if it cannot.
func (b *Blob) check() error {
	if b.db.closed.Load() {
		return ErrClosed
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return nil
}

// inode returns the handle's inode record as the current version has it,
// registered as a read of that version until release.
func (b *Blob) inode() (format.Inode, view, reader, error) {
	var r reader
	var v view
	if b.snap != nil {
		var err error
		if v, err = b.snap.view(); err != nil {
			return format.Inode{}, view{}, reader{}, err
		}
		r = b.db.acquire() // cheap, and keeps release unconditional
	} else {
		r = b.db.acquire()
		v = treeView(r.v.ns, r.v.lsn)
	}
	ino, err := lookupInode(v, b.key)
	if errors.Is(err, ErrNotFound) || err == nil && ino.ID != format.InodeID(b.id.Load()) || b.snap == nil && b.db.restores.Load() != b.gen {
		err = ErrStale
	}
	if err != nil {
		b.db.release(r)
		return format.Inode{}, view{}, reader{}, err
	}
	return ino, v, r, nil
}

// ReadAt reads len(p) bytes at offset off, following io.ReaderAt: fewer
// bytes only with an error, io.EOF at the end of the value. A negative off
// is ErrInvalidOffset. A reader of a range under a concurrent write sees,
// per block, the data before it or after it, never a mix within a block of
// an aligned write and never garbage.
func (b *Blob) ReadAt(p []byte, off int64) (int, error) {
	if err := b.check(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("%w: %d", ErrInvalidOffset, off)
	}
	if err := b.flushBuffered(); err != nil {
		return 0, err
	}
	ino, v, r, err := b.inode()
	if err != nil {
		return 0, err
	}
	defer b.db.release(r)
	if ino.Inline() {
		if off >= int64(len(ino.Value)) {
			return 0, io.EOF
		}
		n := copy(p, ino.Value[off:])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	return b.db.readAt(v, ino, p, off)
}

// WriteAt writes p at offset off, growing the blob if it ends past the
// size (the bytes between read as zeros). It is atomic: after a crash the
// blob holds all of p or none of it. Under SyncAlways it is durable on
// return. A negative off is ErrInvalidOffset; a blob past MaxBlobSize, or
// p longer than MaxWriteSize, is ErrValueTooLarge. (One WriteAt is one log
// record, which holds 8 bytes of checksum per block written: with a
// WALSegmentSize below 64 MiB, the bound is lower, about WALSegmentSize/64
// blocks per WriteAt; Write and ReadFrom are not bounded.)
func (b *Blob) WriteAt(p []byte, off int64) (int, error) {
	if err := b.writable(); err != nil {
		return 0, err
	}
	if err := b.flushBuffered(); err != nil {
		return 0, err
	}
	return b.writeAt(p, off, true)
}

// writeAt writes p at off; sync says whether to wait for durability.
func (b *Blob) writeAt(p []byte, off int64, sync bool) (int, error) {
	switch {
	case off < 0:
		return 0, fmt.Errorf("%w: %d", ErrInvalidOffset, off)
	case int64(len(p)) > b.db.maxWrite():
		return 0, fmt.Errorf("%w: one WriteAt of %d bytes, at most %d (MaxWriteSize, and what one log record of this store's WALSegmentSize maps)",
			ErrValueTooLarge, len(p), b.db.maxWrite())
	case off > MaxBlobSize-int64(len(p)):
		return 0, fmt.Errorf("%w: %d bytes at %d: a blob holds at most %d", ErrValueTooLarge, len(p), off, int64(MaxBlobSize))
	case len(p) == 0:
		_, _, r, err := b.inode()
		if err == nil {
			b.db.release(r)
		}
		return 0, err
	}
	bw := b.db.planWrite(p, off)
	bw.sync = sync
	id := format.InodeID(b.id.Load())
	err := b.db.writeBlob(b.key, &id, b.gen, bw)
	b.id.Store(uint64(id))
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// fresh returns ErrStale once the handle's value was deleted or replaced
// (for the buffered calls, which would otherwise learn it only at flush).
func (b *Blob) fresh() error {
	_, _, r, err := b.inode()
	if err == nil {
		b.db.release(r)
	}
	return err
}

// writable returns why the handle cannot write now, if it cannot.
func (b *Blob) writable() error {
	if err := b.check(); err != nil {
		return err
	}
	if b.readOnly {
		return ErrReadOnly
	}
	return nil
}

// Size returns the blob's size in bytes, its buffered writes included; 0
// if the handle is closed or stale.
func (b *Blob) Size() int64 {
	size, _ := b.size()
	return size
}

func (b *Blob) size() (int64, error) {
	if err := b.check(); err != nil {
		return 0, err
	}
	ino, _, r, err := b.inode()
	if err != nil {
		return 0, err
	}
	b.db.release(r)
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf) > 0 {
		return max(ino.Size, b.bufOff+int64(len(b.buf))), nil
	}
	return ino.Size, nil
}

// Truncate sets the blob's size. Shrinking releases the blocks past the
// new size; growing allocates nothing, and the new bytes read as zeros.
// Atomic, and durable on return under SyncAlways. A negative size is
// ErrInvalidOffset, one past MaxBlobSize ErrValueTooLarge.
func (b *Blob) Truncate(size int64) error {
	if err := b.writable(); err != nil {
		return err
	}
	switch {
	case size < 0:
		return fmt.Errorf("%w: size %d", ErrInvalidOffset, size)
	case size > MaxBlobSize:
		return fmt.Errorf("%w: size %d, at most %d", ErrValueTooLarge, size, int64(MaxBlobSize))
	}
	if err := b.flushBuffered(); err != nil {
		return err
	}
	id := format.InodeID(b.id.Load())
	err := b.db.writeBlob(b.key, &id, b.gen, blobWrite{truncate: size, sync: true})
	b.id.Store(uint64(id))
	return err
}

// Read reads from the handle's position, following io.Reader.
func (b *Blob) Read(p []byte) (int, error) {
	b.mu.Lock()
	pos := b.pos
	b.mu.Unlock()
	n, err := b.ReadAt(p, pos)
	b.mu.Lock()
	b.pos = pos + int64(n)
	b.mu.Unlock()
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// Seek sets the position of the next Read or Write, following io.Seeker
// (io.SeekEnd is relative to Size). A negative result is ErrInvalidOffset.
func (b *Blob) Seek(offset int64, whence int) (int64, error) {
	if err := b.check(); err != nil {
		return 0, err
	}
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		b.mu.Lock()
		base = b.pos
		b.mu.Unlock()
	case io.SeekEnd:
		size, err := b.size()
		if err != nil {
			return 0, err
		}
		base = size
	default:
		return 0, fmt.Errorf("%w: whence %d", ErrInvalidOffset, whence)
	}
	if offset < -base {
		return 0, fmt.Errorf("%w: seek to %d", ErrInvalidOffset, base+offset)
	}
	b.mu.Lock()
	b.pos = base + offset
	b.mu.Unlock()
	return base + offset, nil
}

// Write writes p at the handle's position and moves it on, following
// io.Writer. The bytes are buffered into large aligned chunks, each written
// as one atomic WriteAt when full, at Sync, at Close, and before any other
// call that reads or writes the blob; they are durable at Sync or Close.
func (b *Blob) Write(p []byte) (int, error) {
	if err := b.writable(); err != nil {
		return 0, err
	}
	if err := b.fresh(); err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pos > MaxBlobSize-int64(len(p)) {
		return 0, fmt.Errorf("%w: %d bytes at %d: a blob holds at most %d", ErrValueTooLarge, len(p), b.pos, int64(MaxBlobSize))
	}
	written := 0
	for len(p) > 0 {
		if len(b.buf) > 0 && b.bufOff+int64(len(b.buf)) != b.pos || len(b.buf) == streamChunk {
			if err := b.flushLocked(); err != nil {
				return written, err
			}
		}
		if b.buf == nil {
			b.buf = getChunk()[:0]
		}
		if len(b.buf) == 0 {
			b.bufOff = b.pos
		}
		n := min(len(p), streamChunk-len(b.buf))
		b.buf = append(b.buf, p[:n]...)
		p = p[n:]
		b.pos += int64(n)
		written += n
	}
	return written, nil
}

// ReadFrom writes what r yields at the handle's position until io.EOF,
// following io.ReaderFrom, so io.Copy into a Blob reads straight into
// large aligned chunks. Like Write, it is durable at Sync or Close. It
// fills the next chunk while the last one is being written, each chunk one
// atomic WriteAt, in order.
func (b *Blob) ReadFrom(r io.Reader) (int64, error) {
	if err := b.writable(); err != nil {
		return 0, err
	}
	if err := b.fresh(); err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.flushLocked(); err != nil {
		return 0, err
	}
	bufs := [2][]byte{getChunk(), getChunk()}
	var total int64
	var pending chan error // the chunk being written, if any
	var pendingN int64
	wait := func() error {
		if pending == nil {
			return nil
		}
		err := <-pending
		pending = nil
		if err != nil {
			b.pos -= pendingN // the position stays after what was written
			return err
		}
		total += pendingN
		return nil
	}
	defer func() {
		wait()
		putChunk(bufs[0])
		putChunk(bufs[1])
	}()
	for cur := 0; ; cur ^= 1 {
		buf := bufs[cur][:0]
		var rerr error
		for len(buf) < streamChunk && rerr == nil {
			var n int
			n, rerr = r.Read(buf[len(buf):streamChunk])
			buf = buf[:len(buf)+n]
		}
		if b.pos > MaxBlobSize-int64(len(buf)) {
			return total, fmt.Errorf("%w: a blob holds at most %d bytes", ErrValueTooLarge, int64(MaxBlobSize))
		}
		if err := wait(); err != nil {
			return total, err
		}
		if len(buf) > 0 {
			pending, pendingN = make(chan error, 1), int64(len(buf))
			go func(p []byte, off int64, done chan<- error) {
				_, err := b.writeAt(p, off, false)
				done <- err
			}(buf, b.pos, pending)
			b.pos += int64(len(buf))
			b.unsynced = true
		}
		if rerr != nil {
			err := wait()
			if rerr == io.EOF {
				rerr = nil
			}
			return total, errors.Join(rerr, err)
		}
	}
}

// chunks pools the aligned streaming buffers (streamChunk bytes each).
var chunks = sync.Pool{New: func() any { return vfs.AlignedBuf(streamChunk) }}

func getChunk() []byte  { return chunks.Get().([]byte)[:streamChunk] }
func putChunk(b []byte) { chunks.Put(b[:streamChunk]) }

// WriteTo writes the blob from the handle's position to its end to w,
// following io.WriterTo, in large chunks.
func (b *Blob) WriteTo(w io.Writer) (int64, error) {
	if err := b.check(); err != nil {
		return 0, err
	}
	buf := getChunk()
	defer putChunk(buf)
	var total int64
	for {
		n, err := b.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
			if m < n {
				return total, io.ErrShortWrite
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// flushBuffered writes the buffered Write bytes, if any.
func (b *Blob) flushBuffered() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

// flushLocked writes the buffer as one atomic WriteAt without waiting for
// durability. Called with b.mu held.
func (b *Blob) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	if _, err := b.writeAt(b.buf, b.bufOff, false); err != nil {
		return err
	}
	b.buf = b.buf[:0]
	b.unsynced = true
	return nil
}

// Sync writes the buffered bytes and makes every write of the store so far
// durable.
func (b *Blob) Sync() error {
	if err := b.check(); err != nil {
		return err
	}
	if err := b.flushBuffered(); err != nil {
		return err
	}
	if _, _, r, err := b.inode(); err != nil {
		return err
	} else {
		b.db.release(r)
	}
	if b.readOnly {
		return nil
	}
	b.mu.Lock()
	b.unsynced = false
	b.mu.Unlock()
	return b.db.Sync()
}

// Close writes the buffered bytes, makes them durable under SyncAlways,
// and closes the handle. Later calls return ErrClosed; Close again returns
// nil.
func (b *Blob) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	err := b.flushLocked()
	unsynced := b.unsynced
	b.closed = true
	if b.buf != nil {
		putChunk(b.buf)
		b.buf = nil
	}
	b.mu.Unlock()
	if err == nil && unsynced && b.db.opts.Sync == SyncAlways {
		err = b.db.Sync()
	}
	return err
}

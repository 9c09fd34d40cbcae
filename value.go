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
	exts, err := a.AllocExtents(nil, n, goal, 0)
	if errors.Is(err, extents.ErrNoSpace) {
		if err := db.ensureSpaceLocked(n + db.checkpointNeedLocked()); err != nil {
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
		// Release the busy blocks with a checkpoint, then try once more
		// (DESIGN §8).
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
// [Phys, Phys+Len). The live path commits the staging blocks once the
// record is logged (writer.commits); replay claims them now, as the blocks
// a record names are free in the checkpoint it replays onto.
func (w *writer) applyRemap(op record.Op) error {
	if op.Inode == 0 || op.Len == 0 || op.Phys == format.NoBlock || (op.Sums != nil && uint64(len(op.Sums)) != op.Len) {
		return fmt.Errorf("%w: remap of inode %d: %d blocks at %d", record.ErrBadBatch, op.Inode, op.Len, op.Phys)
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
	rec := cowio.EncodeExtentRecord(nil, cowio.ExtentRecord{Start: op.Phys, Len: op.Len})
	return w.set(format.ExtentKey(nil, op.Inode, op.FileBlock), rec)
}

// readValue returns a copy of the value ino describes; extents yields the
// namespace entries under a prefix in the version read.
func (db *DB) readValue(prefix func([]byte) iter.Seq2[btree.Entry, error], ino format.Inode) ([]byte, error) {
	if ino.Inline() {
		return append([]byte{}, ino.Value...), nil
	}
	if ino.Size > MaxValueSize {
		return nil, format.Corruptf(fmt.Sprintf("inode %d", ino.ID), format.ErrMalformed, "size %d", ino.Size)
	}
	var m cowio.Mapping
	for e, err := range prefix(format.ExtentKey(nil, ino.ID, 0)[:9]) {
		if err != nil {
			return nil, err
		}
		_, fb, ok := format.ParseExtentKey(e.Key)
		if !ok {
			return nil, format.Corruptf(fmt.Sprintf("inode %d", ino.ID), format.ErrMalformed, "extent key %x", e.Key)
		}
		r, err := cowio.DecodeExtentRecord(e.Value)
		if err != nil {
			return nil, err
		}
		m.Entries = append(m.Entries, cowio.Entry{FileBlock: cowio.FileBlock(fb), Start: r.Start, Len: r.Len})
	}
	p := make([]byte, ino.Size)
	n, err := db.cw.ReadAt(m, ino.Size, p, 0)
	if err == io.EOF && int64(n) == ino.Size {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("cowdb: reading inode %d: %w", ino.ID, err)
	}
	return p, nil
}

package cowdb

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/internal/record"
	"github.com/cowdb/cowdb/snapshot"
	"github.com/cowdb/cowdb/vfs"
)

// Checkpoint writes a checkpoint now (DESIGN §6): everything logged so far
// becomes durable in the data file and the log before it is recycled.
// Commits go on while its I/O runs. It returns nil at once when nothing
// changed since the last checkpoint.
func (db *DB) Checkpoint() error {
	if db.closed.Load() {
		return ErrClosed
	}
	if db.opts.ReadOnly {
		return ErrReadOnly
	}
	return db.checkpoint()
}

// sealWrittenBack seals a checkpoint with no dirty page left behind: the
// log records of the pages it covers are recycled after it, so every page
// logged at or before its LSN must be in the tree by then (DESIGN §7).
// Pages are written back first with writers running, then again with new
// deferred writes held off (db.deferMu) until the seal has taken its LSN.
//
// When there is no space to write the pages back, the checkpoint must
// still run: it is what releases the busy blocks that would give the
// space. The pages left dirty are then logged again (relogged, as XFS
// relogs items) after the checkpoint's LSN, so that its log can be
// recycled and replay still rebuilds them.
func (db *DB) sealWrittenBack() (*cpPlan, error) {
	if !db.opts.ReadOnly {
		if err := db.writebackAll(); err != nil && !errors.Is(err, ErrNoSpace) {
			return nil, err
		}
	}
	db.deferMu.Lock()
	defer db.deferMu.Unlock()
	relog := false
	if !db.opts.ReadOnly {
		err := db.writebackAll()
		switch {
		case errors.Is(err, ErrNoSpace):
			relog = true
		case err != nil:
			return nil, err
		}
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	plan, err := db.sealLocked()
	if err == nil && plan != nil && relog {
		err = db.relogPagesLocked()
		// The relogged records must be durable before the superblock
		// that lets the log before them be recycled.
		plan.walSync = db.mu.lastLSN
	}
	return plan, err
}

// relogPagesLocked logs every dirty page again, whole, as DeferredWrite
// records after the last LSN (see sealWrittenBack). A failure fails the
// store: the checkpoint being sealed would recycle the only record of
// those pages.
func (db *DB) relogPagesLocked() error {
	var ops []record.Op
	size := 0
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		payload, err := record.Append(nil, ops)
		if err == nil {
			var lsn format.LSN
			if lsn, err = db.wal.Append(payload, 0); err == nil {
				db.mu.lastLSN = lsn
				db.cur.Store(&version{ns: db.mu.live, lsn: lsn})
			}
		}
		ops, size = ops[:0], 0
		if err != nil {
			return db.failLocked(fmt.Errorf("relogging dirty pages: %w", err))
		}
		return nil
	}
	// Each piece is at most a quarter of a record, and a record is flushed
	// before its encoded size could pass half the limit (opOverhead covers
	// an operation's kind, inode, offset and length).
	const opOverhead = 32
	piece := max(1, db.recordMax/4)
	var err error
	add := func(id format.InodeID, off int64, b []byte) {
		for len(b) > 0 && err == nil {
			n := min(len(b), piece)
			if size+n+opOverhead > db.recordMax/2 {
				err = flush()
			}
			ops = append(ops, record.Op{Kind: record.DeferredWrite, Inode: id, Off: off, Value: b[:n]})
			size += n + opOverhead
			off, b = off+int64(n), b[n:]
		}
	}
	for _, id := range db.pages.dirtyInodes() {
		st := db.pages.use(id)
		fbs, pages := st.dirtyPages()
		db.pages.unuse(st)
		for i, fb := range fbs {
			// A partial page is logged as its runs of bytes, so replay
			// leaves the others to the tree as the page does.
			off := int64(fb) * int64(db.bs)
			pg := pages[i]
			if pg.mask == nil {
				add(id, off, pg.data)
			} else {
				pg.mask.ranges(0, db.bs, func(lo, hi int) { add(id, off+int64(lo), pg.data[lo:hi]) })
			}
			if err != nil {
				return err
			}
		}
	}
	return flush()
}

// agCopy identifies one AG's current bitmap copy.
type agCopy struct {
	epoch uint64
	sum   uint64 // format.Checksum of the whole copy as written
}

// bitmapDigest is the superblock's BitmapDigest of copies: a lost,
// misdirected or damaged bitmap write leaves an older copy in its place,
// which changes the digest Open computes (format.Superblock.BitmapDigest).
func bitmapDigest(copies []agCopy) uint64 {
	b := make([]byte, 0, 24*len(copies))
	for ag, c := range copies {
		b = binary.LittleEndian.AppendUint64(b, uint64(ag))
		b = binary.LittleEndian.AppendUint64(b, c.epoch)
		b = binary.LittleEndian.AppendUint64(b, c.sum)
	}
	return max(format.Checksum(b), 1) // 0 means "not recorded"
}

// cpPlan is a sealed checkpoint: what its I/O writes.
type cpPlan struct {
	cp    *extents.Checkpoint
	nodes []nodeWrite
	sb    format.Superblock
	// walSync is the LSN the log must be durable to before the
	// superblock is written: the checkpoint's, or past it when dirty
	// pages were relogged.
	walSync format.LSN
	// agCopies are the AGs' current bitmap copies once it is durable.
	agCopies []agCopy
}

// checkpoint seals the state under db.mu, does the I/O without it, then
// records the checkpoint durable. One runs at a time (db.cpMu).
func (db *DB) checkpoint() error {
	db.cpMu.Lock()
	defer db.cpMu.Unlock()
	start := time.Now()
	defer func() { db.stats.checkpointNanos.Add(int64(time.Since(start))) }()
	// The CoW extent-size hint's reservations live until the next
	// checkpoint (XFS garbage-collects its CoW fork on a timer the same
	// way): long enough for a burst of overwrites to land contiguously,
	// short enough that reserved blocks do not pass for used space.
	if db.inodes != nil {
		db.inodes.ReleaseReserved()
	}
	plan, err := db.sealWrittenBack()
	if db.inodes != nil {
		db.inodes.ReleaseReserved() // what the writeback's hint reserved again
	}
	if err != nil || plan == nil {
		return err
	}
	if err := db.writeCheckpoint(plan); err != nil {
		// The data file's state is unknown after a failed write or sync
		// (fsyncgate), and the trees already point at the new blocks: the
		// store fails, and the queued nodes stay readable from memory.
		return db.fail(fmt.Errorf("checkpoint %d: %w", plan.sb.Epoch, err))
	}
	db.nodes.written(plan.nodes)
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.updatePinLocked(plan.cp.LSN); err != nil {
		return db.failLocked(err)
	}
	if err := db.mu.alloc.CheckpointDurable(plan.cp); err != nil {
		return db.failLocked(err)
	}
	defer db.prunePages()
	db.mu.epoch, db.mu.cpLSN = plan.sb.Epoch, plan.sb.CheckpointLSN
	db.mu.agCopies = plan.agCopies
	db.mu.headroom = uint64(db.mu.alloc.Stats().FreeBlocks)
	db.stats.checkpoints.Add(1)
	db.stats.walBytesAtCheckpoint.Store(db.stats.walBytes.Load())
	if db.wal != nil {
		if err := db.wal.Recycle(plan.sb.CheckpointLSN + 1); err != nil {
			return db.failLocked(err)
		}
	}
	return nil
}

// sealLocked does a checkpoint's in-memory part (DESIGN §6 steps 1-2):
// the live and catalog trees get addresses for their dirty nodes (their
// blocks committed before the seal, so the sealed image holds them), the
// allocator is sealed at L, the refcount tree is rewritten from the sealed
// records into the checkpoint's own image, and the superblock is built. It
// returns nil when there is nothing to write.
//
// The superblock's WALSegment and WALOffset are left zero: the log finds
// where replay starts from CheckpointLSN alone, following its chain of
// segment headers (wal.Log.Replay), so they are reserved for a faster seek.
func (db *DB) sealLocked() (*cpPlan, error) {
	if db.mu.failed != nil {
		return nil, db.mu.failed
	}
	a := db.mu.alloc
	L := db.mu.lastLSN
	if db.mu.epoch > 0 && L == db.mu.cpLSN && db.forest.Stats().DirtyNodes == 0 && a.Stats().DirtyAGs == 0 {
		return nil, nil
	}
	need := db.checkpointNeedLocked() + uint64(a.Stats().RefcountRecords/refcountsPerNode)
	if err := db.ensureSpaceLocked(need); err != nil {
		return nil, err
	}
	epoch := db.mu.epoch + 1
	db.mu.opLSN = L
	if err := db.checkpointRootsLocked(epoch, L); err != nil {
		return nil, db.failLocked(err)
	}
	trees, err := db.forest.Checkpoint(epoch, db.mu.catalog)
	if err != nil {
		return nil, db.failLocked(err)
	}
	db.mu.catalog = trees[0]
	cp, err := a.Seal(epoch, L)
	if err != nil {
		return nil, db.failLocked(err)
	}
	if err := db.writeRefcountsLocked(cp); err != nil {
		return nil, db.failLocked(err)
	}
	if err := a.Freeze(cp); err != nil {
		return nil, db.failLocked(err)
	}
	copies := slices.Clone(db.mu.agCopies)
	for len(copies) < int(cp.AGCount) {
		copies = append(copies, agCopy{})
	}
	for img := range cp.Images() {
		copies[img.AG] = agCopy{epoch: uint64(epoch), sum: format.Checksum(img.Data)}
	}
	catRoot, _ := db.mu.catalog.Root()
	refRoot, _ := db.mu.refcount.Root()
	g := a.Geometry()
	sb := format.Superblock{
		BlockSize: uint32(db.bs), BlocksPerAG: g.BlocksPerAG, AGCount: cp.AGCount, MaxAGCount: g.MaxAGCount,
		AGStart: g.AGStart, StoreID: db.storeID, Epoch: epoch, CheckpointLSN: L,
		CatalogRoot: catRoot, RefcountRoot: refRoot,
		NextInode: db.mu.nextInode, CreatedUnixNano: db.created,
		BitmapDigest: bitmapDigest(copies),
	}
	return &cpPlan{cp: cp, nodes: db.nodes.takeQueue(), sb: sb, agCopies: copies}, nil
}

// checkpointRootsLocked writes every counted namespace root's dirty nodes
// — the live root, each snapshot, each drop not yet started — and brings
// the catalog in line: the live entry, one per snapshot, one per drop with
// its cursor, and none for snapshots deleted or drops finished since.
func (db *DB) checkpointRootsLocked(epoch format.Epoch, L format.LSN) error {
	names := slices.Sorted(maps.Keys(db.mu.snaps))
	trees := []*btree.Tree{db.mu.live}
	for _, n := range names {
		trees = append(trees, db.mu.snaps[n].tree)
	}
	var waiting []*dropState
	for _, d := range db.mu.drops {
		if d.d == nil {
			waiting = append(waiting, d)
			trees = append(trees, d.tree)
		}
	}
	out, err := db.forest.Checkpoint(epoch, trees...)
	if err != nil {
		return err
	}
	db.mu.live = out[0]
	db.cur.Store(&version{ns: out[0], lsn: L})
	for i, n := range names {
		db.mu.snaps[n].tree = out[1+i]
	}
	for i, d := range waiting {
		d.tree = out[1+len(names)+i]
		d.persisted = true
	}
	if len(waiting) > 0 {
		db.bg.kick() // their drop steps may start (kick never blocks)
	}
	want := map[string][]byte{}
	root, _ := db.mu.live.Root()
	want[string(snapshot.LiveKey)] = snapshot.AppendRecord(nil, snapshot.Record{Kind: snapshot.RootLive, Root: root, Created: db.created})
	for _, n := range names {
		s := db.mu.snaps[n]
		r, _ := s.tree.Root()
		want[string(snapshot.SnapshotKey(n))] = snapshot.AppendRecord(nil, snapshot.Record{Kind: snapshot.RootSnapshot, Root: r, Created: s.created})
	}
	for _, d := range db.mu.drops {
		dr := d.d
		if dr == nil {
			dr = db.forest.Drop(d.tree)
		}
		cur, err := dr.MarshalBinary()
		if err != nil {
			return fmt.Errorf("drop %d: %w", d.id, err)
		}
		want[string(snapshot.DropKey(d.id))] = snapshot.AppendRecord(nil, snapshot.Record{Kind: snapshot.RootDropping, Created: d.created, Cursor: cur})
	}
	var stale [][]byte
	for e, err := range db.mu.catalog.Range(nil, nil) {
		if err != nil {
			return err
		}
		if _, ok := want[string(e.Key)]; !ok {
			stale = append(stale, bytes.Clone(e.Key))
		}
	}
	for _, k := range stale {
		if err := db.delCatalogLocked(k); err != nil {
			return err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if err := db.putCatalogLocked([]byte(k), want[k]); err != nil {
			return err
		}
	}
	return nil
}

// delCatalogLocked removes one catalog entry.
func (db *DB) delCatalogLocked(key []byte) error {
	return db.changeCatalogLocked(func(b *btree.Batch) error { return b.Delete(key) })
}

// putCatalogLocked sets one catalog entry.
func (db *DB) putCatalogLocked(key, val []byte) error {
	if old, ok, err := db.mu.catalog.Get(key); err != nil {
		return err
	} else if ok && bytes.Equal(old, val) {
		return nil
	}
	return db.changeCatalogLocked(func(b *btree.Batch) error { return b.Put(key, val) })
}

// changeCatalogLocked applies change to the catalog in a batch of its own.
func (db *DB) changeCatalogLocked(change func(*btree.Batch) error) error {
	b, err := db.mu.catalog.Begin()
	if err != nil {
		return err
	}
	if err := change(b); err != nil {
		b.Abort()
		return err
	}
	t, err := b.Commit()
	if err != nil {
		return err
	}
	db.mu.catalog = t
	return nil
}

// writeRefcountsLocked rewrites the refcount tree from cp's records when
// they changed, with its node blocks allocated and freed inside cp's image
// (they are part of what cp persists). The whole tree is rebuilt: that
// costs O(records) per checkpoint that changed any, acceptable while
// records are few (they exist only for shared blocks); an incremental
// update is the better design once snapshots make them many.
func (db *DB) writeRefcountsLocked(cp *extents.Checkpoint) error {
	if !cp.RecordsChanged {
		return nil
	}
	db.mu.cp = cp
	defer func() { db.mu.cp = nil }()
	b, err := db.mu.refcount.Begin()
	if err != nil {
		return err
	}
	var old [][]byte
	for e, err := range db.mu.refcount.Range(nil, nil) {
		if err != nil {
			b.Abort()
			return err
		}
		old = append(old, bytes.Clone(e.Key))
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			b.Abort()
			return err
		}
	}
	for r := range cp.Records() {
		k, v := refcountEntry(r)
		if err := b.Put(k, v); err != nil {
			b.Abort()
			return err
		}
	}
	t, err := b.Commit()
	if err != nil {
		return err
	}
	trees, err := db.forest.Checkpoint(cp.Epoch, t)
	if err != nil {
		return err
	}
	db.mu.refcount = trees[0]
	return nil
}

// writeCheckpoint does a checkpoint's I/O (DESIGN §6 steps 2-3) without
// db.mu: the nodes, the dirty AG bitmaps into their older copies, a data
// sync, the log durable up to L, the superblock into copy epoch%2, and a
// data sync again.
func (db *DB) writeCheckpoint(p *cpPlan) error {
	blocks := len(p.nodes) + 1
	for img := range p.cp.Images() {
		blocks += len(img.Data) / db.bs
	}
	db.stats.checkpointBlocks.Add(int64(blocks))
	if err := db.writeNodes(p.nodes); err != nil {
		return err
	}
	for img := range p.cp.Images() {
		if err := db.writeBlocks(img.Block, img.Data); err != nil {
			return err
		}
	}
	if err := db.data.Datasync(); err != nil {
		return err
	}
	if db.wal != nil && max(p.sb.CheckpointLSN, p.walSync) > 0 {
		if err := db.wal.Sync(max(p.sb.CheckpointLSN, p.walSync)); err != nil {
			return err
		}
	}
	sb := p.sb.Encode(db.bs)
	mustValidate(&p.sb)
	if err := db.writeBlocks(format.Block(format.SuperblockCopyIndex(p.sb.Epoch)), sb); err != nil {
		return err
	}
	return db.data.Datasync()
}

// mustValidate checks a superblock Encode has stamped before it is written:
// writing a bad one would make the store unopenable.
func mustValidate(sb *format.Superblock) {
	if err := sb.Validate(); err != nil {
		panic(fmt.Sprintf("cowdb: assertion failed: checkpoint superblock invalid: %v", err))
	}
}

// updatePinLocked holds back the blocks the oldest reader may still visit
// (DESIGN §8) before a checkpoint at cpLSN releases busy blocks: one
// allocator pin at the oldest registered reader's version, moved at each
// checkpoint. A reader registering later sees a version at or after cpLSN,
// which reaches no block freed at or before it.
func (db *DB) updatePinLocked(cpLSN format.LSN) error {
	a := db.mu.alloc
	old := db.mu.pin
	db.mu.pin = 0
	if oldest, ok := db.readers.oldest(); ok && oldest < cpLSN {
		id, err := a.Pin(oldest)
		if err != nil {
			return fmt.Errorf("pinning readers at %d: %w", oldest, err)
		}
		db.mu.pin = id
	}
	if old != 0 {
		return a.Unpin(old)
	}
	return nil
}

// nodeRunMax bounds the bytes of one coalesced node write.
const nodeRunMax = 1 << 20

// writeNodes writes queued node blocks, coalescing runs of consecutive
// blocks into single writes of up to nodeRunMax bytes: a checkpoint
// allocates its nodes one after another, so most of them form long runs.
func (db *DB) writeNodes(ws []nodeWrite) error {
	ws = slices.Clone(ws)
	slices.SortFunc(ws, func(a, b nodeWrite) int { return cmp.Compare(a.b, b.b) })
	maxRun := max(1, nodeRunMax/db.bs)
	var buf []byte
	for i := 0; i < len(ws); {
		j := i + 1
		for j < len(ws) && j-i < maxRun && ws[j].b == ws[j-1].b+1 {
			j++
		}
		if j == i+1 {
			if err := db.writeBlocks(ws[i].b, ws[i].data); err != nil {
				return err
			}
			i = j
			continue
		}
		if buf == nil {
			buf = vfs.AlignedBuf(maxRun * db.bs)
		}
		run := buf[:(j-i)*db.bs]
		for k := i; k < j; k++ {
			copy(run[(k-i)*db.bs:], ws[k].data)
		}
		if err := db.writeBlocks(ws[i].b, run); err != nil {
			return err
		}
		i = j
	}
	return nil
}

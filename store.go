package cowdb

import (
	"fmt"
	"sync"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
)

// blockStore is the btree.BlockStore of the store's one Forest: nodes live
// in the data file, counts and space in the extents.Allocator.
//
// ReadNode is safe for concurrent use; every other method is called by the
// btree writer, which runs under db.mu, and so touches db.mu's fields
// without locking. Frees are tagged with db.mu.opLSN, the LSN of the
// operation being committed (DESIGN §8). While db.mu.cp is set (a
// checkpoint building the tree that persists its own refcount records),
// allocations and frees go into that checkpoint's image (CommitTo, FreeTo).
//
// WriteNode does no I/O: it queues the block, and the checkpoint writes
// the queue after releasing db.mu, so commits never wait for checkpoint
// I/O. Until a queued block is written, ReadNode serves it from the queue.
type blockStore struct {
	db *DB
	// lastNode is where the next node allocation aims, so that a
	// checkpoint lays out its nodes contiguously where space allows.
	lastNode format.Block

	pending struct {
		sync.RWMutex
		m     map[format.Block][]byte // queued or in-flight node writes
		queue []nodeWrite             // queued since the last take
	}
	bufs sync.Pool // aligned one-block read buffers
}

// nodeWrite is one queued node block.
type nodeWrite struct {
	b    format.Block
	data []byte // aligned, one block
}

func newBlockStore(db *DB) *blockStore {
	s := &blockStore{db: db}
	s.pending.m = make(map[format.Block][]byte)
	s.bufs.New = func() any { return vfs.AlignedBuf(db.bs) }
	return s
}

var _ btree.BlockStore = (*blockStore)(nil)

// ReadNode implements btree.BlockStore.
func (s *blockStore) ReadNode(b format.Block, buf []byte) error {
	s.pending.RLock()
	p, ok := s.pending.m[b]
	if ok {
		copy(buf, p)
	}
	s.pending.RUnlock()
	if ok {
		return nil
	}
	return s.db.readBlocks(b, buf)
}

// readBlocks reads len(p) bytes (whole blocks) at block b of the data
// file, through an aligned buffer when the file uses direct I/O.
func (db *DB) readBlocks(b format.Block, p []byte) error {
	db.stats.blockReads.Add(int64(len(p) / db.bs))
	off := int64(b) * int64(db.bs)
	if !db.data.Direct() || vfs.IsAligned(p) {
		_, err := db.data.ReadAt(p, off)
		return err
	}
	var tmp []byte
	if len(p) == db.bs {
		tmp = db.nodes.bufs.Get().([]byte)
		defer db.nodes.bufs.Put(tmp)
	} else {
		tmp = vfs.AlignedBuf(len(p))
	}
	if _, err := db.data.ReadAt(tmp, off); err != nil {
		return err
	}
	copy(p, tmp)
	return nil
}

// writeBlocks writes p (whole blocks) at block b of the data file, through
// an aligned copy when the file uses direct I/O and p is not aligned.
func (db *DB) writeBlocks(b format.Block, p []byte) error {
	db.stats.blockWrites.Add(int64(len(p) / db.bs))
	if db.data.Direct() && !vfs.IsAligned(p) {
		q := vfs.AlignedBuf(len(p))
		copy(q, p)
		p = q
	}
	_, err := db.data.WriteAt(p, int64(b)*int64(db.bs))
	return err
}

// AllocNode implements btree.BlockStore.
func (s *blockStore) AllocNode() (format.Block, error) {
	a := s.db.mu.alloc
	e, err := a.Alloc(1, s.lastNode)
	if err != nil {
		return 0, fmt.Errorf("%w: allocating a node: %w", ErrNoSpace, err)
	}
	if cp := s.db.mu.cp; cp != nil {
		err = a.CommitTo(cp, e)
	} else {
		err = a.Commit(e)
	}
	if err != nil {
		return 0, err
	}
	s.lastNode = e.Start + 1
	return e.Start, nil
}

// WriteNode implements btree.BlockStore: it queues the write.
func (s *blockStore) WriteNode(b format.Block, data []byte) error {
	if !vfs.IsAligned(data) {
		q := vfs.AlignedBuf(len(data))
		copy(q, data)
		data = q
	}
	s.pending.Lock()
	s.pending.m[b] = data
	s.pending.queue = append(s.pending.queue, nodeWrite{b, data})
	s.pending.Unlock()
	return nil
}

// takeQueue returns the node writes queued since the last call.
func (s *blockStore) takeQueue() []nodeWrite {
	s.pending.Lock()
	defer s.pending.Unlock()
	q := s.pending.queue
	s.pending.queue = nil
	return q
}

// written forgets queued writes that have reached the data file.
func (s *blockStore) written(ws []nodeWrite) {
	s.pending.Lock()
	defer s.pending.Unlock()
	for _, w := range ws {
		delete(s.pending.m, w.b)
	}
}

// NodeCount implements btree.BlockStore.
func (s *blockStore) NodeCount(b format.Block) (uint64, error) {
	return uint64(s.db.mu.alloc.Count(b)), nil
}

// IncNode implements btree.BlockStore.
func (s *blockStore) IncNode(b format.Block) error {
	return s.db.mu.alloc.Inc(extents.Extent{Start: b, Len: 1})
}

// DecNode implements btree.BlockStore. A count-1 block is not freed here:
// btree calls FreeNode once it has released what the node points to.
func (s *blockStore) DecNode(b format.Block) (uint64, error) {
	a := s.db.mu.alloc
	switch c := a.Count(b); c {
	case 0:
		return 0, fmt.Errorf("%w: decrementing node %d, which is not allocated", extents.ErrWrongState, b)
	case 1:
		return 0, nil
	default:
		return uint64(c - 1), a.Dec(extents.Extent{Start: b, Len: 1}, s.db.mu.opLSN)
	}
}

// FreeNode implements btree.BlockStore.
func (s *blockStore) FreeNode(b format.Block) error {
	e := extents.Extent{Start: b, Len: 1}
	if cp := s.db.mu.cp; cp != nil {
		return s.db.mu.alloc.FreeTo(cp, e)
	}
	return s.db.mu.alloc.Free(e, s.db.mu.opLSN)
}

// AdjustValue implements btree.BlockStore: an extent record of a namespace
// tree holds one reference on its data extent; nothing else names blocks.
func (s *blockStore) AdjustValue(tree btree.TreeKind, key, value []byte, delta int) error {
	if tree != kindNamespace {
		return nil
	}
	if _, _, ok := format.ParseExtentKey(key); !ok {
		return nil
	}
	r, err := cowio.DecodeExtentRecord(value)
	if err != nil {
		return err
	}
	e := extents.Extent{Start: r.Start, Len: r.Len}
	switch delta {
	case 1:
		return s.db.mu.alloc.Inc(e)
	case -1:
		return s.db.mu.alloc.Dec(e, s.db.mu.opLSN)
	}
	return fmt.Errorf("cowdb: assertion failed: AdjustValue delta %d", delta)
}

package btree

import (
	"fmt"
	"sync/atomic"

	"github.com/cowdb/cowdb/cache"
	"github.com/cowdb/cowdb/internal/format"
)

// BlockStore is everything the tree needs from storage and space
// accounting. The store implements it over its data file, allocator and
// refcount records; tests implement it over maps.
//
// Counts: a node block's count is the number of distinct referrers it has
// (see the package comment). AllocNode returns a block whose count is 1.
// DecNode returning 0 does not free the block: the tree still reads it (to
// release what it points to) and calls FreeNode when done, so a block whose
// count reached 0 stays intact until FreeNode, and after FreeNode the store
// decides when it may be reused (DESIGN §8).
type BlockStore interface {
	// ReadNode fills buf (one block) with block b's contents, including a
	// block passed to WriteNode whose write is still in flight, and a block
	// already passed to FreeNode that a reader of an older version may still
	// follow (the store keeps freed blocks intact until no reader's epoch
	// can see them, DESIGN §8). It must be safe for concurrent use.
	ReadNode(b format.Block, buf []byte) error
	// AllocNode returns a free block for a node, with count 1.
	AllocNode() (format.Block, error)
	// WriteNode writes data (one block, owned by the store from now on) to
	// b. Checkpoint calls it children first.
	WriteNode(b format.Block, data []byte) error
	// NodeCount returns b's count.
	NodeCount(b format.Block) (uint64, error)
	// IncNode adds one to b's count.
	IncNode(b format.Block) error
	// DecNode takes one from b's count and returns what remains.
	DecNode(b format.Block) (remaining uint64, err error)
	// FreeNode hands back a block whose count reached 0.
	FreeNode(b format.Block) error
	// AdjustValue adds delta (+1 or -1) to the count of everything the leaf
	// value named by key names — for the namespace tree, the data extent of
	// an extent record. A value naming nothing returns nil.
	AdjustValue(tree TreeKind, key, value []byte, delta int) error
}

// TreeKind tells trees apart on disk: it is stored in every node, and a node
// of another kind met while following a pointer is corruption. Its values
// are the store's to choose.
type TreeKind uint8

// BlockSizeDefault is the block size when Options.BlockSize is 0.
const BlockSizeDefault = 4096

// Options configure a Forest.
type Options struct {
	// Store is where nodes live and counts are kept. Required.
	Store BlockStore
	// Cache caches decoded nodes under cache.KindNode keys. nil caches
	// nothing (every load of a persisted node reads the store).
	Cache *cache.Cache
	// BlockSize is the node size in bytes, a power of two from 4096 to
	// 65536. Default BlockSizeDefault.
	BlockSize int
}

// Forest is every tree over one BlockStore: it holds the store, the cache
// and the writer's state (the open batch, dirty accounting). Its read paths
// are safe for concurrent use; its writer operations are not (see the
// package comment).
type Forest struct {
	store     BlockStore
	cache     *cache.Cache
	blockSize int
	valueMax  int
	capacity  int // entry bytes per node

	lastBatch uint64 // id of the last batch begun (writer only)
	open      *Batch // the open batch, or nil (writer only)
	failed    error  // sticky failure (writer only)

	dirtyNodes atomic.Int64 // dirty nodes with a count above 0
	diffNodes  atomic.Int64 // nodes expanded by Diff
	reads      atomic.Int64 // nodes read from the store (cache misses)
}

// New returns a Forest over o.Store.
func New(o Options) (*Forest, error) {
	if o.BlockSize == 0 {
		o.BlockSize = BlockSizeDefault
	}
	if o.Store == nil || !format.ValidNodeBlockSize(o.BlockSize) {
		return nil, fmt.Errorf("%w: store %v, block size %d", ErrInvalidOptions, o.Store != nil, o.BlockSize)
	}
	return &Forest{
		store:     o.Store,
		cache:     o.Cache,
		blockSize: o.BlockSize,
		valueMax:  format.NodeValueMax(o.BlockSize),
		capacity:  format.NodeCapacity(o.BlockSize),
	}, nil
}

// Stats are a Forest's figures.
type Stats struct {
	// DirtyNodes is the number of counted dirty nodes (count above 0):
	// what the next Checkpoint of every counted root will write, plus any
	// that only a Drop in progress still holds (those are released by the
	// drop, never written). DirtyBytes is that in bytes (one block each).
	DirtyNodes int64
	DirtyBytes int64
	// DiffNodes counts the nodes Diff calls have expanded (opened to look
	// inside), added when each Diff ends; NodeReads counts nodes read from
	// the store (cache misses) by every operation.
	DiffNodes int64
	NodeReads int64
}

// Stats returns the Forest's figures. It is safe for concurrent use.
func (f *Forest) Stats() Stats {
	d := f.dirtyNodes.Load()
	return Stats{
		DirtyNodes: d,
		DirtyBytes: d * int64(f.blockSize),
		DiffNodes:  f.diffNodes.Load(),
		NodeReads:  f.reads.Load(),
	}
}

// BlockSize returns the node size in bytes.
func (f *Forest) BlockSize() int { return f.blockSize }

// Empty returns an empty tree of the given kind. It holds no node, so it is
// counted trivially.
func (f *Forest) Empty(kind TreeKind) *Tree { return &Tree{f: f, kind: kind} }

// Open returns the persisted tree whose root is root (a zero Ref is the
// empty tree). Nothing is read until the tree is used.
func (f *Forest) Open(kind TreeKind, root format.Ref) *Tree {
	return &Tree{f: f, kind: kind, root: child{ref: root}}
}

// checkWriter returns the error that stops a writer operation: an earlier
// failure or an open batch.
func (f *Forest) checkWriter() error {
	if f.failed != nil {
		return f.failed
	}
	if f.open != nil {
		return ErrBatchOpen
	}
	return nil
}

// fail records a store failure in the middle of a writer operation.
func (f *Forest) fail(err error) error {
	if f.failed == nil {
		f.failed = fmt.Errorf("%w: %w", ErrFailed, err)
	}
	return err
}

// load returns the node c points at, from memory, the cache or the store.
// want is the level the node must have (-1: any).
func (f *Forest) load(kind TreeKind, c child, want int) (*node, error) {
	if c.mem != nil {
		return c.mem, nil
	}
	if c.ref.IsZero() {
		panic("cowdb: assertion failed: btree load of a zero ref")
	}
	key := cache.Key{Kind: cache.KindNode, Block: c.ref.Block, Sum: c.ref.Sum}
	if v, ok := f.cache.Get(key); ok {
		n := v.(*node)
		if n.kind == kind && (want < 0 || int(n.level) == want) {
			return n, nil
		}
	}
	f.reads.Add(1)
	where := fmt.Sprintf("btree node %d", c.ref.Block)
	buf := make([]byte, f.blockSize)
	if err := f.store.ReadNode(c.ref.Block, buf); err != nil {
		return nil, fmt.Errorf("cowdb/btree: reading node %d: %w", c.ref.Block, err)
	}
	fn, err := format.DecodeNode(buf)
	if err != nil {
		return nil, format.Locate(err, where)
	}
	switch {
	case fn.Sum != c.ref.Sum:
		return nil, format.Corruptf(where, format.ErrBadChecksum, "parent expects %#x, node has %#x", c.ref.Sum, fn.Sum)
	case TreeKind(fn.Tree) != kind:
		return nil, format.Corruptf(where, format.ErrMisplaced, "node of tree %d in tree %d", fn.Tree, kind)
	case want >= 0 && int(fn.Level) != want:
		return nil, format.Corruptf(where, format.ErrMisplaced, "level %d where %d belongs", fn.Level, want)
	}
	n := nodeFromFormat(kind, &fn)
	n.sum.Store(fn.Sum)
	n.addr.Store(uint64(c.ref.Block))
	f.cache.Set(key, n, f.nodeCost(n))
	return n, nil
}

// nodeCost is what a decoded node costs the cache in bytes: its block plus
// the slice headers of its entries.
func (f *Forest) nodeCost(n *node) int64 {
	const perEntry = 56 // key and value (or child) slice headers
	return int64(f.blockSize + perEntry*len(n.keys))
}

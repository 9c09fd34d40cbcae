package btree

import (
	"fmt"

	"github.com/cowdb/cowdb/cache"
	"github.com/cowdb/cowdb/internal/format"
)

// Checkpoint gives every dirty node reachable from trees a block and writes
// it through the store, children before parents (a parent stores its
// child's checksum), stamping epoch in each node. A node's count moves into
// the store with its block: AllocNode gives 1, IncNode the rest.
//
// trees must include every counted root that may lead to a dirty node — the
// live root and every snapshot taken since the last checkpoint; a persisted
// tree costs nothing. It returns, for each tree, the same version rooted at
// its block, holding no node in memory: publishing it in place of the old
// one lets memory go (clean copies of the written nodes are offered to the
// cache, which may keep them). A dirty node with count 0 is ErrUncounted: a
// tree given was not a counted root.
//
// Writer only; it refuses to run while a batch is open.
func (f *Forest) Checkpoint(epoch format.Epoch, trees ...*Tree) ([]*Tree, error) {
	if err := f.checkWriter(); err != nil {
		return nil, err
	}
	out := make([]*Tree, len(trees))
	for i, t := range trees {
		if t.f != f {
			return nil, ErrForeignTree
		}
		r, err := f.seal(t.root, epoch)
		if err != nil {
			return nil, err
		}
		out[i] = f.Open(t.kind, r)
	}
	return out, nil
}

// seal writes c's subtree's dirty nodes and returns c's block and checksum.
func (f *Forest) seal(c child, epoch format.Epoch) (format.Ref, error) {
	if c.empty() {
		return format.Ref{}, nil
	}
	if r := c.resolved(); !r.IsZero() {
		return r, nil
	}
	n := c.mem
	if n.count < 1 {
		return format.Ref{}, ErrUncounted
	}
	var refs []format.Ref
	if !n.leaf() {
		refs = make([]format.Ref, len(n.kids))
		for i, k := range n.kids {
			r, err := f.seal(k, epoch)
			if err != nil {
				return format.Ref{}, err
			}
			refs[i] = r
		}
	}
	buf, sum, err := n.encode(f.blockSize, epoch, refs)
	if err != nil {
		panic(fmt.Sprintf("cowdb: assertion failed: btree node does not encode: %v", err))
	}
	blk, err := f.store.AllocNode()
	if err != nil {
		return format.Ref{}, f.fail(err)
	}
	for range n.count - 1 {
		if err := f.store.IncNode(blk); err != nil {
			return format.Ref{}, f.fail(err)
		}
	}
	if err := f.store.WriteNode(blk, buf); err != nil {
		return format.Ref{}, f.fail(err)
	}
	n.sum.Store(sum)
	n.addr.Store(uint64(blk))
	f.dirtyNodes.Add(-1)
	// Cache a copy that points at its children by block, so the cache does
	// not pin the dirty tree in memory.
	clean := &node{kind: n.kind, level: n.level, keys: n.keys, vals: n.vals, size: n.size}
	if refs != nil {
		clean.kids = make([]child, len(refs))
		for i, r := range refs {
			clean.kids[i] = child{ref: r}
		}
	}
	clean.sum.Store(sum)
	clean.addr.Store(uint64(blk))
	f.cache.Set(cache.Key{Kind: cache.KindNode, Block: blk, Sum: sum}, clean, f.nodeCost(clean))
	return format.Ref{Block: blk, Sum: sum}, nil
}

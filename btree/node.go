package btree

import (
	"bytes"
	"slices"
	"sync/atomic"

	"github.com/cowdb/cowdb/internal/format"
)

// child is a pointer from a branch (or a Tree) to a node: mem for a node in
// memory (dirty, or dirty once and since sealed by a checkpoint), else ref
// for a persisted node. A zero child is the empty tree.
type child struct {
	ref format.Ref
	mem *node
}

// resolved returns the block and checksum c points at, or a zero Ref while
// the node is dirty. Safe for concurrent use (addr and sum are atomics).
func (c child) resolved() format.Ref {
	if c.mem == nil {
		return c.ref
	}
	if a := c.mem.addr.Load(); a != 0 {
		return format.Ref{Block: format.Block(a), Sum: c.mem.sum.Load()}
	}
	return format.Ref{}
}

// ident is a node's identity for counting and for Diff: its block once it
// has one, else its address in memory.
type ident struct {
	block format.Block
	mem   *node
}

func (c child) id() ident {
	if r := c.resolved(); r.Block != format.NoBlock {
		return ident{block: r.Block}
	}
	return ident{mem: c.mem}
}

func (c child) empty() bool { return c.mem == nil && c.ref.IsZero() }

// node is one B+tree node in memory. A node reachable from a published Tree
// is immutable, except for addr and sum, which Checkpoint sets once (sum
// first) when it gives the node a block, and count, which only the writer
// reads and writes. A node whose owner is the id of the open Batch is that
// batch's private copy and is changed in place.
//
// Branch invariant: keys[i] <= every key under kids[i] < keys[i+1].
type node struct {
	kind  TreeKind
	level uint16
	keys  [][]byte
	vals  [][]byte // leaf values
	kids  []child  // branch children
	size  int      // encoded bytes of the entries

	addr  atomic.Uint64 // block, once written; 0 while dirty
	sum   atomic.Uint64 // checksum, once written
	count int64         // reference count while dirty (writer only)
	owner uint64        // id of the batch that may change it in place
}

func (n *node) leaf() bool { return n.level == 0 }

func (n *node) entrySize(i int) int {
	if n.leaf() {
		return format.NodeLeafEntrySize(len(n.keys[i]), len(n.vals[i]))
	}
	return format.NodeBranchEntrySize(len(n.keys[i]))
}

// nodeFromFormat converts a decoded node; its slices alias the decoded block.
func nodeFromFormat(kind TreeKind, fn *format.Node) *node {
	n := &node{kind: kind, level: fn.Level, keys: fn.Keys, vals: fn.Values}
	if fn.Kind == format.NodeBranch {
		n.kids = make([]child, len(fn.Children))
		for i, r := range fn.Children {
			n.kids[i] = child{ref: r}
		}
	}
	for i := range n.keys {
		n.size += n.entrySize(i)
	}
	return n
}

// search returns the position of key in a leaf and whether it is there.
func (n *node) search(key []byte) (int, bool) {
	return slices.BinarySearchFunc(n.keys, key, bytes.Compare)
}

// childIndex returns the child of a branch whose range holds key: the last
// whose separator is <= key, or 0 when key is below them all.
func (n *node) childIndex(key []byte) int {
	i, found := n.search(key)
	if found {
		return i
	}
	return max(i-1, 0)
}

// clone returns a private copy of n for batch owner. Children that have
// been written by a checkpoint are pointed at by block in the copy, so the
// copy no longer pins them in memory.
func (n *node) clone(owner uint64) *node {
	c := &node{kind: n.kind, level: n.level, size: n.size, owner: owner}
	c.keys = slices.Clone(n.keys)
	if n.leaf() {
		c.vals = slices.Clone(n.vals)
		return c
	}
	c.kids = slices.Clone(n.kids)
	for i, k := range c.kids {
		if k.mem != nil {
			if r := k.resolved(); !r.IsZero() {
				c.kids[i] = child{ref: r}
			}
		}
	}
	return c
}

// insertLeaf puts key → val at position i.
func (n *node) insertLeaf(i int, key, val []byte) {
	n.keys = slices.Insert(n.keys, i, key)
	n.vals = slices.Insert(n.vals, i, val)
	n.size += n.entrySize(i)
}

// insertKid puts key → c at position i of a branch.
func (n *node) insertKid(i int, key []byte, c child) {
	n.keys = slices.Insert(n.keys, i, key)
	n.kids = slices.Insert(n.kids, i, c)
	n.size += n.entrySize(i)
}

// remove deletes entry i.
func (n *node) remove(i int) {
	n.size -= n.entrySize(i)
	n.keys = slices.Delete(n.keys, i, i+1)
	if n.leaf() {
		n.vals = slices.Delete(n.vals, i, i+1)
	} else {
		n.kids = slices.Delete(n.kids, i, i+1)
	}
}

// setKey replaces key i (a branch separator lowered to a new minimum).
func (n *node) setKey(i int, key []byte) {
	n.size += len(key) - len(n.keys[i])
	n.keys[i] = key
}

// splitAt moves entries [j:] of n into a new private node and returns it.
func (n *node) splitAt(j int) *node {
	r := &node{kind: n.kind, level: n.level, owner: n.owner}
	r.keys = slices.Clone(n.keys[j:])
	n.keys = n.keys[:j:j]
	if n.leaf() {
		r.vals = slices.Clone(n.vals[j:])
		n.vals = n.vals[:j:j]
	} else {
		r.kids = slices.Clone(n.kids[j:])
		n.kids = n.kids[:j:j]
	}
	for i := range r.keys {
		r.size += r.entrySize(i)
	}
	n.size -= r.size
	return r
}

// splitPoint returns where to split an overflowing node of capacity cap:
// as near the middle by bytes as possible, moved so both halves fit. Both
// halves always fit, because every entry is at most half a node
// (format.NodeValueMax) and the node overflows by at most one entry.
func (n *node) splitPoint(capacity int) int {
	total := n.size
	prefix := 0
	j := 0
	for j < len(n.keys)-1 && prefix+n.entrySize(j) <= total/2 {
		prefix += n.entrySize(j)
		j++
	}
	if j == 0 { // the first entry alone is more than half
		prefix += n.entrySize(0)
		j = 1
	}
	for total-prefix > capacity && j < len(n.keys)-1 {
		prefix += n.entrySize(j)
		j++
	}
	for prefix > capacity && j > 1 {
		j--
		prefix -= n.entrySize(j)
	}
	return j
}

// encode writes n to a new block-size buffer with the given child refs.
func (n *node) encode(blockSize int, epoch format.Epoch, refs []format.Ref) ([]byte, uint64, error) {
	fn := format.Node{Tree: uint8(n.kind), Level: n.level, Epoch: epoch, Keys: n.keys}
	if n.leaf() {
		fn.Kind, fn.Values = format.NodeLeaf, n.vals
	} else {
		fn.Kind, fn.Children = format.NodeBranch, refs
	}
	buf := make([]byte, blockSize)
	sum, err := format.EncodeNode(buf, &fn)
	return buf, sum, err
}

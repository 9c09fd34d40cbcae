package btree

import (
	"bytes"
	"fmt"

	"github.com/cowdb/cowdb/internal/format"
)

// Batch builds a new version of a tree from many mutations. It changes
// private copies of the nodes it touches (shadowing them) and collects the
// count changes that shadowing implies; Commit applies them and returns the
// new version, Abort forgets everything. A Batch is used by one goroutine.
//
// The tree a Batch starts from must be a counted root (the live root, a
// snapshot's root): Commit moves that reference to the new root. A Batch
// whose Put or Delete failed (a node could not be read) should be aborted.
type Batch struct {
	f    *Forest
	kind TreeKind
	id   uint64
	root child
	done bool

	deltas map[ident]int64 // net count change per node, applied by Commit
	order  []ident         // first-change order of deltas, for determinism
	values []valueDelta    // value reference changes, in order
}

type valueDelta struct {
	key, val []byte
	delta    int
}

// Begin opens a Batch on t. It returns ErrBatchOpen while another batch of
// the same Forest is open, and ErrUncounted for a stale version (one whose
// dirty root a later commit shadowed away), which is not a counted root.
func (t *Tree) Begin() (*Batch, error) {
	f := t.f
	if err := f.checkWriter(); err != nil {
		return nil, err
	}
	if uncounted(t.root) {
		return nil, ErrUncounted
	}
	f.lastBatch++
	b := &Batch{f: f, kind: t.kind, id: f.lastBatch, root: t.root, deltas: map[ident]int64{}}
	f.open = b
	return b, nil
}

func (b *Batch) check() error {
	if b.done {
		return ErrBatchDone
	}
	return nil
}

func (b *Batch) checkKey(key []byte) error {
	switch {
	case len(key) == 0:
		return ErrInvalidKey
	case len(key) > format.NodeKeyMax:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrKeyTooLarge, len(key), format.NodeKeyMax)
	}
	return b.check()
}

// Get returns the value under key as the batch has it (its own writes
// included).
func (b *Batch) Get(key []byte) ([]byte, bool, error) {
	if err := b.check(); err != nil {
		return nil, false, err
	}
	return b.f.get(b.kind, b.root, key)
}

// Put stores key → value, replacing (and releasing the references of) any
// value there. The tree takes over the caller's reference on whatever value
// names (see the package comment). key and value are copied.
func (b *Batch) Put(key, value []byte) error {
	if err := b.checkKey(key); err != nil {
		return err
	}
	if len(value) > b.f.valueMax {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrValueTooLarge, len(value), b.f.valueMax)
	}
	key, value = bytes.Clone(key), append([]byte{}, value...)
	if b.root.empty() {
		n := &node{kind: b.kind, owner: b.id}
		n.insertLeaf(0, key, value)
		b.root = child{mem: n}
		return nil
	}
	r, err := b.mutable(b.root, -1)
	if err != nil {
		return err
	}
	b.root = child{mem: r}
	right, err := b.put(r, key, value)
	if err != nil || right == nil {
		return err
	}
	top := &node{kind: b.kind, level: r.level + 1, owner: b.id}
	top.insertKid(0, r.keys[0], child{mem: r})
	top.insertKid(1, right.keys[0], child{mem: right})
	b.root = child{mem: top}
	return nil
}

// put inserts into the subtree of private node n and returns the new right
// sibling if n had to split.
func (b *Batch) put(n *node, key, value []byte) (*node, error) {
	if n.leaf() {
		i, found := n.search(key)
		if found {
			b.values = append(b.values, valueDelta{n.keys[i], n.vals[i], -1})
			n.size += len(value) - len(n.vals[i])
			n.vals[i] = value
		} else {
			n.insertLeaf(i, key, value)
		}
		return b.split(n), nil
	}
	i := n.childIndex(key)
	c, err := b.mutable(n.kids[i], int(n.level)-1)
	if err != nil {
		return nil, err
	}
	n.kids[i] = child{mem: c}
	if bytes.Compare(key, n.keys[i]) < 0 {
		n.setKey(i, key) // a new minimum: keep keys[0] a lower bound
	}
	right, err := b.put(c, key, value)
	if err != nil {
		return nil, err
	}
	if right != nil {
		n.insertKid(i+1, right.keys[0], child{mem: right})
	}
	return b.split(n), nil
}

// split splits n if it overflows a block and returns the right half.
func (b *Batch) split(n *node) *node {
	if n.size <= b.f.capacity {
		return nil
	}
	return n.splitAt(n.splitPoint(b.f.capacity))
}

// Delete removes key and releases its value's references. A missing key is
// not an error and changes nothing.
func (b *Batch) Delete(key []byte) error {
	if err := b.checkKey(key); err != nil {
		return err
	}
	if _, ok, err := b.f.get(b.kind, b.root, key); err != nil || !ok {
		return err
	}
	r, err := b.mutable(b.root, -1)
	if err != nil {
		return err
	}
	if err := b.del(r, key); err != nil {
		return err
	}
	// Collapse a root left with one child (or none).
	for !r.leaf() && len(r.keys) == 1 {
		c := r.kids[0]
		if c.mem == nil || c.mem.owner != b.id {
			b.root = c
			return nil
		}
		r = c.mem
	}
	b.root = child{mem: r}
	if len(r.keys) == 0 {
		b.root = child{}
	}
	return nil
}

// del removes key (known to be present) from the subtree of private node n.
func (b *Batch) del(n *node, key []byte) error {
	if n.leaf() {
		i, _ := n.search(key)
		b.values = append(b.values, valueDelta{n.keys[i], n.vals[i], -1})
		n.remove(i)
		return nil
	}
	i := n.childIndex(key)
	c, err := b.mutable(n.kids[i], int(n.level)-1)
	if err != nil {
		return err
	}
	n.kids[i] = child{mem: c}
	if err := b.del(c, key); err != nil {
		return err
	}
	switch {
	case len(c.keys) == 0:
		n.remove(i) // c is private and empty: nothing to release
	case c.size < b.f.capacity/4:
		return b.merge(n, i)
	}
	return nil
}

// merge joins child i of n (private, under a quarter full) with a
// neighbour when both fit one node. The neighbour is shadowed; the
// emptied right node was private, and its entries' references move to the
// left one unchanged.
func (b *Batch) merge(n *node, i int) error {
	j := i + 1
	if j == len(n.keys) {
		j = i - 1
	}
	if j < 0 {
		return nil
	}
	nb, err := b.f.load(b.kind, n.kids[j], int(n.level)-1)
	if err != nil {
		return err
	}
	if nb.size+n.kids[i].mem.size > b.f.capacity {
		return nil
	}
	nbm, err := b.mutableLoaded(n.kids[j], nb)
	if err != nil {
		return err
	}
	n.kids[j] = child{mem: nbm}
	lo, hi := min(i, j), max(i, j)
	left, right := n.kids[lo].mem, n.kids[hi].mem
	left.keys = append(left.keys, right.keys...)
	left.vals = append(left.vals, right.vals...)
	left.kids = append(left.kids, right.kids...)
	left.size += right.size
	n.remove(hi)
	return nil
}

// mutable returns a private copy of the node c points at, shadowing it
// unless it already is this batch's.
func (b *Batch) mutable(c child, want int) (*node, error) {
	if c.mem != nil && c.mem.owner == b.id {
		return c.mem, nil
	}
	n, err := b.f.load(b.kind, c, want)
	if err != nil {
		return nil, err
	}
	return b.mutableLoaded(c, n)
}

// mutableLoaded shadows n, which c points at (Rodeh's rule): the copy takes
// over the original's place; if the original's count is above 1, the copy
// is a new referrer of everything it points at, and the original loses the
// reference the copy's parent held.
func (b *Batch) mutableLoaded(c child, n *node) (*node, error) {
	if n.owner == b.id {
		return n, nil
	}
	id := c.id()
	count, err := b.count(id)
	if err != nil {
		return nil, err
	}
	if count < 1 {
		// Only a stale version (a freed root a reader held) leads here;
		// going on would take a count below zero at Commit.
		return nil, fmt.Errorf("%w: node %v has count %d", ErrUncounted, id.block, count)
	}
	cp := n.clone(b.id)
	if count > 1 {
		if cp.leaf() {
			for i := range cp.keys {
				b.values = append(b.values, valueDelta{cp.keys[i], cp.vals[i], +1})
			}
		} else {
			for _, k := range cp.kids {
				b.delta(k.id(), +1)
			}
		}
	}
	b.delta(id, -1)
	return cp, nil
}

// count returns a node's count as this batch sees it.
func (b *Batch) count(id ident) (int64, error) {
	base := int64(0)
	if id.mem != nil {
		base = id.mem.count
	} else {
		n, err := b.f.store.NodeCount(id.block)
		if err != nil {
			return 0, err
		}
		base = int64(n)
	}
	return base + b.deltas[id], nil
}

func (b *Batch) delta(id ident, d int64) {
	if _, ok := b.deltas[id]; !ok {
		b.order = append(b.order, id)
	}
	b.deltas[id] += d
}

// Abort forgets the batch: nothing it did is applied.
func (b *Batch) Abort() {
	if !b.done {
		b.done = true
		b.f.open = nil
	}
}

// Commit applies the batch's count changes and returns the new version,
// which holds the reference the starting tree held. If a BlockStore call
// fails, the Forest is failed (ErrFailed) because the counts are then only
// partly applied.
func (b *Batch) Commit() (*Tree, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	b.Abort()
	f := b.f
	for _, id := range b.order {
		if d := b.deltas[id]; d != 0 {
			if err := f.adjust(id, d); err != nil {
				return nil, f.fail(err)
			}
		}
	}
	for _, v := range b.values {
		if err := f.store.AdjustValue(b.kind, v.key, v.val, v.delta); err != nil {
			return nil, f.fail(err)
		}
	}
	b.publish(b.root)
	return &Tree{f: f, kind: b.kind, root: b.root}, nil
}

// publish gives every private node of the new version its count (each has
// exactly one referrer) and accounts it as dirty.
func (b *Batch) publish(c child) {
	n := c.mem
	if n == nil || n.owner != b.id {
		return
	}
	n.count = 1
	b.f.dirtyNodes.Add(1)
	for _, k := range n.kids {
		b.publish(k)
	}
}

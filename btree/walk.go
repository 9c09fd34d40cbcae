package btree

import (
	"bytes"

	"github.com/cowdb/cowdb/internal/format"
)

// NodeID identifies a node for callers that walk trees (fsck, space
// accounting): its block once it has one, else its identity in memory.
// NodeIDs are comparable; two trees sharing a node give the same NodeID.
type NodeID struct{ id ident }

// Block returns the node's block, or format.NoBlock while it is dirty.
func (n NodeID) Block() format.Block { return n.id.block }

// NodeInfo describes one node met by Walk. Its slices alias tree memory and
// are valid only during the visit.
type NodeInfo struct {
	ID NodeID
	// Ref is the node's block and checksum; zero while it is dirty.
	Ref   format.Ref
	Level int
	// Children are a branch's children, in key order.
	Children []NodeID
	// Keys and Values are a leaf's entries (Keys also a branch's
	// separators).
	Keys, Values [][]byte
}

// Walk visits the tree's nodes depth first, parents before children, in key
// order. visit says whether to descend into a branch's children; a caller
// counting referrers across several roots descends only into nodes it has
// not seen, as the refcount check of DB.Check does. Safe for concurrent use;
// but a Checkpoint running meanwhile may give a dirty node its block in the
// middle of the walk, so that the node shows up under two NodeIDs. Count
// referrers over persisted versions, or with the writer held off.
func (t *Tree) Walk(visit func(NodeInfo) (descend bool, err error)) error {
	if t.root.empty() {
		return nil
	}
	return t.walk(t.root, -1, visit)
}

func (t *Tree) walk(c child, want int, visit func(NodeInfo) (bool, error)) error {
	n, err := t.f.load(t.kind, c, want)
	if err != nil {
		return err
	}
	info := NodeInfo{ID: NodeID{c.id()}, Ref: c.resolved(), Level: int(n.level), Keys: n.keys, Values: n.vals}
	for _, k := range n.kids {
		info.Children = append(info.Children, NodeID{k.id()})
	}
	descend, err := visit(info)
	if err != nil || !descend {
		return err
	}
	for _, k := range n.kids {
		if err := t.walk(k, int(n.level)-1, visit); err != nil {
			return err
		}
	}
	return nil
}

// Verify checks the tree's structure: every node non-empty and within a
// block, keys strictly ascending across the whole tree, each separator a
// lower bound of its child's keys and below the next separator, children
// one level below their parent. A failure wraps format.ErrCorrupt. It reads
// the whole tree; safe for concurrent use.
func (t *Tree) Verify() error {
	if t.root.empty() {
		return nil
	}
	var last []byte
	return t.verify(t.root, -1, nil, nil, &last)
}

// verify checks c's subtree, whose keys must lie in [lo, hi) (nil:
// unbounded); last is the previous leaf key met.
func (t *Tree) verify(c child, want int, lo, hi []byte, last *[]byte) error {
	n, err := t.f.load(t.kind, c, want)
	if err != nil {
		return err
	}
	bad := func(what string) error {
		return format.Corruptf("btree node", format.ErrMalformed, "%s (level %d, block %d)", what, n.level, c.resolved().Block)
	}
	switch {
	case len(n.keys) == 0:
		return bad("empty node")
	case n.size > t.f.capacity:
		return bad("node overflows its block")
	case want >= 0 && int(n.level) != want:
		return bad("level out of place")
	}
	for i, k := range n.keys {
		if (lo != nil && bytes.Compare(k, lo) < 0) || (hi != nil && bytes.Compare(k, hi) >= 0) {
			return bad("key outside its parent's range")
		}
		if n.leaf() {
			if *last != nil && bytes.Compare(*last, k) >= 0 {
				return bad("keys out of order")
			}
			*last = k
			continue
		}
		next := hi
		if i+1 < len(n.keys) {
			next = n.keys[i+1]
		}
		if err := t.verify(n.kids[i], int(n.level)-1, k, next, last); err != nil {
			return err
		}
	}
	return nil
}

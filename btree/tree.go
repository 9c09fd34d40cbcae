package btree

import (
	"bytes"
	"iter"

	"github.com/cowdb/cowdb/internal/format"
)

// Tree is one immutable version of a tree. Its read methods are safe for
// concurrent use, also while the writer commits new versions. Whether a
// Tree is a counted root (the live root, a snapshot's) or a transient
// version only a reader holds is the caller's knowledge, not the Tree's.
type Tree struct {
	f    *Forest
	kind TreeKind
	root child
}

// Entry is one key and its value. Both alias immutable tree memory: keep
// them, but do not modify them.
type Entry struct {
	Key, Value []byte
}

// Kind returns the tree's kind.
func (t *Tree) Kind() TreeKind { return t.kind }

// IsEmpty reports whether the tree holds no entries.
func (t *Tree) IsEmpty() bool { return t.root.empty() }

// Root returns the block and checksum of the tree's root, and false when the
// root is dirty (it gets a block at the next Checkpoint). The empty tree's
// root is the zero Ref, and persisted.
func (t *Tree) Root() (format.Ref, bool) {
	if t.root.empty() {
		return format.Ref{}, true
	}
	r := t.root.resolved()
	return r, !r.IsZero()
}

// Get returns the value stored under key.
func (t *Tree) Get(key []byte) ([]byte, bool, error) {
	return t.f.get(t.kind, t.root, key)
}

func (f *Forest) get(kind TreeKind, c child, key []byte) ([]byte, bool, error) {
	if c.empty() {
		return nil, false, nil
	}
	want := -1
	for {
		n, err := f.load(kind, c, want)
		if err != nil {
			return nil, false, err
		}
		if n.leaf() {
			i, ok := n.search(key)
			if !ok {
				return nil, false, nil
			}
			return n.vals[i], true, nil
		}
		i := n.childIndex(key)
		c, want = n.kids[i], int(n.level)-1
	}
}

// Range yields the entries with start <= key < end in key order; a nil
// start or end is unbounded. An error (a node that cannot be read) is
// yielded once, last. The iteration reads this version only.
func (t *Tree) Range(start, end []byte) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		if t.root.empty() || (start != nil && end != nil && bytes.Compare(start, end) >= 0) {
			return
		}
		t.f.scan(t.kind, t.root, -1, start, end, yield)
	}
}

// Prefix yields the entries whose key starts with prefix, in key order.
func (t *Tree) Prefix(prefix []byte) iter.Seq2[Entry, error] {
	return t.Range(prefix, prefixEnd(prefix))
}

// SeekGE returns the first entry whose key is >= key.
func (t *Tree) SeekGE(key []byte) (Entry, bool, error) {
	for e, err := range t.Range(key, nil) {
		return e, err == nil, err
	}
	return Entry{}, false, nil
}

// prefixEnd returns the smallest key above every key starting with p, or
// nil if there is none (p is empty or all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// scan yields the entries of c's subtree in [start, end); it returns false
// once the iteration must stop (the consumer stopped, end was reached, or
// an error was yielded).
func (f *Forest) scan(kind TreeKind, c child, want int, start, end []byte, yield func(Entry, error) bool) bool {
	n, err := f.load(kind, c, want)
	if err != nil {
		yield(Entry{}, err)
		return false
	}
	i := 0
	if start != nil {
		if n.leaf() {
			i, _ = n.search(start)
		} else {
			i = n.childIndex(start)
		}
	}
	for ; i < len(n.keys); i++ {
		if end != nil && bytes.Compare(n.keys[i], end) >= 0 {
			return false
		}
		if n.leaf() {
			if !yield(Entry{Key: n.keys[i], Value: n.vals[i]}, nil) {
				return false
			}
		} else if !f.scan(kind, n.kids[i], int(n.level)-1, start, end, yield) {
			return false
		}
	}
	return true
}

// Share adds one reference to the tree's root: the caller now holds one more
// counted root (a snapshot's catalog entry). It is the whole cost of a
// snapshot. Writer only.
func (t *Tree) Share() error {
	f := t.f
	if err := f.checkWriter(); err != nil {
		return err
	}
	if t.root.empty() {
		return nil
	}
	if uncounted(t.root) {
		return ErrUncounted
	}
	if err := f.adjust(t.root.id(), +1); err != nil {
		return f.fail(err)
	}
	return nil
}

// uncounted reports whether c is a dirty node with count 0: the root of a
// stale version that a reader held after its root was shadowed away (or
// dropped), which no counted root leads to. Sharing, changing or dropping
// it would drive counts below zero. Writer only (it reads the count).
func uncounted(c child) bool {
	id := c.id()
	return id.mem != nil && id.mem.count == 0
}

// adjust applies a count change to a node: in memory while it is dirty, in
// the store once it has a block. It returns whether the count reached 0; a
// persisted block that reaches 0 is not freed here (see BlockStore).
func (f *Forest) adjustZero(id ident, delta int64) (bool, error) {
	if id.mem != nil {
		n := id.mem
		n.count += delta
		if n.count < 0 {
			panic("cowdb: assertion failed: btree dirty node count below zero")
		}
		if n.count == 0 {
			f.dirtyNodes.Add(-1)
			return true, nil
		}
		return false, nil
	}
	for ; delta > 0; delta-- {
		if err := f.store.IncNode(id.block); err != nil {
			return false, err
		}
	}
	zero := false
	for ; delta < 0; delta++ {
		left, err := f.store.DecNode(id.block)
		if err != nil {
			return false, err
		}
		zero = left == 0
	}
	return zero, nil
}

// adjust is adjustZero for changes that never descend: a persisted block
// reaching 0 is freed at once.
func (f *Forest) adjust(id ident, delta int64) error {
	zero, err := f.adjustZero(id, delta)
	if err != nil || !zero || id.mem != nil {
		return err
	}
	return f.store.FreeNode(id.block)
}

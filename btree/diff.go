package btree

import (
	"bytes"
	"iter"
)

// ChangeKind says how an entry differs between two versions.
type ChangeKind uint8

const (
	// Added: the key is only in the newer version.
	Added ChangeKind = iota + 1
	// Removed: the key is only in the older version.
	Removed
	// Modified: the key is in both, with different values.
	Modified
)

// Change is one entry that differs. Old is nil for Added, New for Removed.
// The slices alias immutable tree memory.
type Change struct {
	Kind          ChangeKind
	Key, Old, New []byte
}

// Diff yields the changes from a to b in key order. It walks both trees
// together and skips every subtree that is the same node on both sides
// (same block, or same dirty node in memory), so its cost follows the
// number of changes times the height, not the size. An error is yielded
// once, last. a and b must be of the same Forest and kind.
func Diff(a, b *Tree) iter.Seq2[Change, error] {
	return func(yield func(Change, error) bool) {
		if a.f != b.f || a.kind != b.kind {
			yield(Change{}, ErrForeignTree)
			return
		}
		wa, wb := newWalker(a), newWalker(b)
		defer func() { a.f.diffNodes.Add(wa.expanded + wb.expanded) }()
		for {
			ha, hb := wa.head(), wb.head()
			if ha.end && hb.end {
				return
			}
			c, emit, err := diffStep(wa, wb, ha, hb)
			if err != nil {
				yield(Change{}, err)
				return
			}
			if emit && !yield(c, nil) {
				return
			}
		}
	}
}

// diffStep consumes or expands one head and returns the change it found,
// if any.
func diffStep(wa, wb *walker, ha, hb head) (Change, bool, error) {
	switch {
	case ha.end, !hb.end && !hb.subtree && !ha.subtree && bytes.Compare(hb.key, ha.key) < 0:
		if hb.subtree {
			return Change{}, false, wb.expand()
		}
		wb.next()
		return Change{Kind: Added, Key: hb.key, New: hb.val}, true, nil
	case hb.end, !ha.subtree && !hb.subtree && bytes.Compare(ha.key, hb.key) < 0:
		if ha.subtree {
			return Change{}, false, wa.expand()
		}
		wa.next()
		return Change{Kind: Removed, Key: ha.key, Old: ha.val}, true, nil
	case !ha.subtree && !hb.subtree: // same key
		wa.next()
		wb.next()
		if bytes.Equal(ha.val, hb.val) {
			return Change{}, false, nil
		}
		return Change{Kind: Modified, Key: ha.key, Old: ha.val, New: hb.val}, true, nil
	case ha.subtree && hb.subtree && ha.c.id() == hb.c.id():
		wa.next() // the same node: the same entries on both sides
		wb.next()
		return Change{}, false, nil
	}
	// At least one head is a subtree. An entry strictly below the other
	// side's lower bound is absent there; otherwise expand the subtree that
	// starts first, or at a tie the taller one (both if equally tall).
	cmp := compareBound(ha.key, hb.key)
	switch {
	case !ha.subtree && cmp < 0:
		wa.next()
		return Change{Kind: Removed, Key: ha.key, Old: ha.val}, true, nil
	case !hb.subtree && cmp > 0:
		wb.next()
		return Change{Kind: Added, Key: hb.key, New: hb.val}, true, nil
	case !hb.subtree || (ha.subtree && (cmp < 0 || (cmp == 0 && ha.level > hb.level))):
		return Change{}, false, wa.expand()
	case !ha.subtree || cmp > 0 || hb.level > ha.level:
		return Change{}, false, wb.expand()
	}
	if err := wa.expand(); err != nil {
		return Change{}, false, err
	}
	return Change{}, false, wb.expand()
}

// compareBound compares lower bounds, nil being below every key.
func compareBound(a, b []byte) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return bytes.Compare(a, b)
}

// head is what a walker offers next: an entry, a whole subtree (with a
// lower bound of its keys; nil for the root), or the end.
type head struct {
	end, subtree bool
	key, val     []byte
	c            child
	level        int
}

// walker walks one tree in key order, handing out subtrees before their
// entries so that shared subtrees can be skipped whole.
type walker struct {
	t        *Tree
	root     bool // the root has not been taken yet
	frames   []walkFrame
	expanded int64
}

type walkFrame struct {
	n *node
	i int
}

func newWalker(t *Tree) *walker {
	return &walker{t: t, root: !t.root.empty()}
}

func (w *walker) head() head {
	if w.root {
		return head{subtree: true, c: w.t.root, level: 1 << 16}
	}
	for len(w.frames) > 0 {
		fr := &w.frames[len(w.frames)-1]
		if fr.i < len(fr.n.keys) {
			n := fr.n
			if n.leaf() {
				return head{key: n.keys[fr.i], val: n.vals[fr.i]}
			}
			return head{subtree: true, key: n.keys[fr.i], c: n.kids[fr.i], level: int(n.level) - 1}
		}
		w.frames = w.frames[:len(w.frames)-1]
	}
	return head{end: true}
}

// next skips the current head.
func (w *walker) next() {
	if w.root {
		w.root = false
		return
	}
	w.frames[len(w.frames)-1].i++
}

// expand replaces the current head, a subtree, by its entries.
func (w *walker) expand() error {
	h := w.head()
	want := h.level
	if w.root {
		want = -1
	}
	n, err := w.t.f.load(w.t.kind, h.c, want)
	if err != nil {
		return err
	}
	w.expanded++
	w.next()
	w.frames = append(w.frames, walkFrame{n: n})
	return nil
}

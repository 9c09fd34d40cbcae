package btree

import (
	"maps"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// refWalk computes, from scratch, the true number of distinct referrers of
// every node and extent: one per counted root, one per branch entry of a
// node reachable from a counted root or still held by a drop in progress,
// and for extents one per leaf value naming them.
type refWalk struct {
	w       *world
	nodes   map[ident]int64
	exts    map[uint64]int64
	visited map[ident]bool
	dying   map[ident]bool
}

func (w *world) checkRefs(t *rapid.T) {
	r := &refWalk{w: w, nodes: map[ident]int64{}, exts: map[uint64]int64{}, visited: map[ident]bool{}, dying: map[ident]bool{}}
	for _, v := range append([]version{w.live}, w.snaps...) {
		r.root(v.t.root)
	}
	for _, d := range w.drops {
		if !d.started {
			r.root(d.root)
			continue
		}
		for _, fr := range d.frames {
			r.dying[fr.c.id()] = true
			n, err := w.f.load(d.kind, fr.c, -1)
			w.must(err)
			r.entries(n, fr.next)
		}
	}
	r.compare(t)
}

func (r *refWalk) root(c child) {
	if !c.empty() {
		r.nodes[c.id()]++
		r.visit(c)
	}
}

func (r *refWalk) visit(c child) {
	id := c.id()
	if r.visited[id] {
		return
	}
	r.visited[id] = true
	n, err := r.w.f.load(1, c, -1)
	r.w.must(err)
	r.entries(n, 0)
}

// entries counts the references n holds from entry from on.
func (r *refWalk) entries(n *node, from int) {
	for i := from; i < len(n.keys); i++ {
		if n.leaf() {
			if id, ok := extentOf(n.vals[i]); ok {
				r.exts[id]++
			}
			continue
		}
		r.nodes[n.kids[i].id()]++
		r.visit(n.kids[i])
	}
}

func (r *refWalk) compare(t *rapid.T) {
	s := r.w.s
	dirty := int64(0)
	for id, want := range r.nodes {
		if id.mem != nil {
			dirty++
			if id.mem.count != want {
				t.Fatalf("dirty node %p: count %d, referrers %d", id.mem, id.mem.count, want)
			}
			continue
		}
		if got := s.counts[id.block]; int64(got) != want {
			t.Fatalf("block %d: count %d, referrers %d", id.block, got, want)
		}
	}
	// Every block the store holds is referenced or held by a drop: blocks
	// freed are exactly the blocks no longer reachable.
	for _, b := range slices.Sorted(maps.Keys(s.counts)) {
		id := ident{block: b}
		if _, ok := r.nodes[id]; !ok && !r.dying[id] {
			t.Fatalf("block %d (count %d) is unreachable but not freed", b, s.counts[b])
		}
		if r.dying[id] && s.counts[b] != 0 {
			t.Fatalf("block %d is being dropped with count %d", b, s.counts[b])
		}
	}
	if got := r.w.f.Stats().DirtyNodes; got != dirty {
		t.Fatalf("forest counts %d dirty nodes, %d are referenced", got, dirty)
	}
	for id, c := range s.extents {
		if c != r.exts[id] {
			t.Fatalf("extent %d: count %d, referrers %d", id, c, r.exts[id])
		}
	}
}

// TestModel drives random batches, snapshots, restores, snapshot deletions,
// bounded drop steps, checkpoints (with cursor round trips) and diffs over
// many live versions, and after every step checks each version against its
// map model, and every node's and extent's count against a from-scratch
// count of its referrers (which also shows that the blocks freed are
// exactly those no longer reachable).
func TestModel(t *testing.T) {
	for _, withCache := range []bool{false, true} {
		t.Run(map[bool]string{false: "nocache", true: "cache"}[withCache], func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				w := newWorld(t, withCache)
				steps := rapid.IntRange(1, 40).Draw(t, "steps")
				for range steps {
					switch rapid.IntRange(0, 9).Draw(t, "op") {
					case 0, 1, 2:
						w.batch(t)
					case 3:
						w.snapshot()
					case 4:
						w.restore(t)
					case 5:
						w.deleteSnapshot(t)
					case 6:
						w.dropStep(t)
					case 7:
						w.checkpoint(t)
					case 8, 9:
						w.diff(t)
					}
					w.checkContents(t)
					w.checkRefs(t)
				}
				// Drop everything: every block and extent comes back.
				for _, v := range w.snaps {
					w.drops = append(w.drops, w.f.Drop(v.t))
				}
				w.drops = append(w.drops, w.f.Drop(w.live.t))
				w.snaps, w.live = nil, version{t: w.f.Empty(1), model: map[string]string{}}
				for _, d := range w.drops {
					for done := false; !done; {
						var err error
						done, err = d.Step(50)
						w.must(err)
					}
				}
				w.drops = nil
				w.checkRefs(t)
				if len(w.s.counts) != 0 {
					t.Fatalf("%d blocks left after dropping everything", len(w.s.counts))
				}
			})
		})
	}
}

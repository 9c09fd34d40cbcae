package btree_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/internal/format"
)

// store is a minimal BlockStore for the black-box tests: blocks and counts
// in maps, no value references.
type store struct {
	mu     sync.Mutex
	blocks map[format.Block][]byte
	counts map[format.Block]uint64
	next   format.Block
	calls  int // count changes and frees, for bounding Drop steps
}

func newStore() *store {
	return &store{blocks: map[format.Block][]byte{}, counts: map[format.Block]uint64{}, next: 2}
}

func (s *store) ReadNode(b format.Block, buf []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.blocks[b]
	if !ok {
		return fmt.Errorf("no block %d", b)
	}
	copy(buf, d)
	return nil
}
func (s *store) AllocNode() (format.Block, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	s.counts[s.next] = 1
	return s.next, nil
}
func (s *store) WriteNode(b format.Block, d []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocks[b] = d
	return nil
}
func (s *store) NodeCount(b format.Block) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[b], nil
}
func (s *store) IncNode(b format.Block) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.counts[b]++
	return nil
}
func (s *store) DecNode(b format.Block) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.counts[b]--
	return s.counts[b], nil
}
func (s *store) FreeNode(b format.Block) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	delete(s.counts, b)
	return nil
}
func (s *store) AdjustValue(btree.TreeKind, []byte, []byte, int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return nil
}

func newForest(t testing.TB) (*btree.Forest, *store) {
	s := newStore()
	f, err := btree.New(btree.Options{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	return f, s
}

func key(i int) []byte { return fmt.Appendf(nil, "key%08d", i) }

// fill commits n keys key(0..n) with 16-byte values, in batches of 1000.
func fill(t testing.TB, tr *btree.Tree, n int) *btree.Tree {
	t.Helper()
	for lo := 0; lo < n; lo += 1000 {
		b, err := tr.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for i := lo; i < min(lo+1000, n); i++ {
			if err := b.Put(key(i), binary.BigEndian.AppendUint64(key(i)[:8], uint64(i))); err != nil {
				t.Fatal(err)
			}
		}
		if tr, err = b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// TestDiffVisitsChangesOnly checks that Diff's cost follows the changes,
// not the size: between two versions of a 100k-key tree that differ in 10
// keys it visits a few nodes per change and depth level (persisted and
// dirty alike), far fewer than the tree has.
func TestDiffVisitsChangesOnly(t *testing.T) {
	for _, persisted := range []bool{false, true} {
		f, _ := newForest(t)
		base := fill(t, f.Empty(1), 100_000)
		old := base
		if persisted {
			out, err := f.Checkpoint(1, base)
			if err != nil {
				t.Fatal(err)
			}
			old = out[0]
		}
		if err := old.Share(); err != nil { // a snapshot of old
			t.Fatal(err)
		}
		b, _ := old.Begin()
		for i := range 10 {
			k := key(i * 9973)
			if err := b.Put(k, []byte("changed")); err != nil {
				t.Fatal(err)
			}
		}
		_ = b.Delete(key(5))
		_ = b.Put([]byte("new-key"), []byte("x"))
		cur, _ := b.Commit()

		before := f.Stats().DiffNodes
		n := 0
		for c, err := range btree.Diff(old, cur) {
			if err != nil {
				t.Fatal(err)
			}
			n++
			_ = c
		}
		visits := f.Stats().DiffNodes - before
		if n != 12 {
			t.Fatalf("persisted=%v: %d changes, want 12", persisted, n)
		}
		// 12 changes × 2 sides × (depth 4) × slack 2.
		if visits > 12*2*4*2 {
			t.Fatalf("persisted=%v: Diff visited %d nodes for 12 changes", persisted, visits)
		}
		t.Logf("persisted=%v: %d nodes visited for %d changes", persisted, visits, n)
		// The counter is real: a diff against the empty tree opens every node.
		before = f.Stats().DiffNodes
		for _, err := range btree.Diff(f.Empty(1), cur) {
			if err != nil {
				t.Fatal(err)
			}
		}
		if all := f.Stats().DiffNodes - before; all < 100_000/150 {
			t.Fatalf("a full diff opened only %d nodes", all)
		}
	}
}

// TestLimits checks the key and value limits and their sentinels, and that
// the largest key and value are stored.
func TestLimits(t *testing.T) {
	f, _ := newForest(t)
	b, _ := f.Empty(1).Begin()
	if err := b.Put(nil, nil); !errors.Is(err, btree.ErrInvalidKey) {
		t.Fatalf("empty key: %v", err)
	}
	if err := b.Put(make([]byte, format.NodeKeyMax+1), nil); !errors.Is(err, btree.ErrKeyTooLarge) {
		t.Fatalf("long key: %v", err)
	}
	if err := b.Delete(make([]byte, format.NodeKeyMax+1)); !errors.Is(err, btree.ErrKeyTooLarge) {
		t.Fatalf("long key delete: %v", err)
	}
	if err := b.Put([]byte("k"), make([]byte, format.NodeValueMax(4096)+1)); !errors.Is(err, btree.ErrValueTooLarge) {
		t.Fatalf("long value: %v", err)
	}
	for i := range 20 {
		k := bytes.Repeat([]byte{byte('a' + i)}, format.NodeKeyMax)
		if err := b.Put(k, bytes.Repeat([]byte{1}, format.NodeValueMax(4096))); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := b.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Checkpoint(1, tr); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range tr.Range(nil, nil) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 20 {
		t.Fatalf("%d entries, want 20", n)
	}
}

// TestWriterRules checks that one batch at a time is open, that a batch is
// dead after Commit or Abort, and that Checkpoint and Drop refuse to run
// beside an open batch.
func TestWriterRules(t *testing.T) {
	f, _ := newForest(t)
	tr := fill(t, f.Empty(1), 10)
	b, err := tr.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Begin(); !errors.Is(err, btree.ErrBatchOpen) {
		t.Fatalf("second batch: %v", err)
	}
	if _, err := f.Checkpoint(1, tr); !errors.Is(err, btree.ErrBatchOpen) {
		t.Fatalf("checkpoint beside a batch: %v", err)
	}
	if _, err := f.Drop(tr).Step(10); !errors.Is(err, btree.ErrBatchOpen) {
		t.Fatalf("drop beside a batch: %v", err)
	}
	if err := tr.Share(); !errors.Is(err, btree.ErrBatchOpen) {
		t.Fatalf("share beside a batch: %v", err)
	}
	b.Abort()
	if err := b.Put([]byte("a"), nil); !errors.Is(err, btree.ErrBatchDone) {
		t.Fatalf("put after abort: %v", err)
	}
	if _, err := b.Commit(); !errors.Is(err, btree.ErrBatchDone) {
		t.Fatalf("commit after abort: %v", err)
	}
	if _, err := btree.New(btree.Options{Store: newStore(), BlockSize: 1024}); !errors.Is(err, btree.ErrInvalidOptions) {
		t.Fatalf("block size 1024: %v", err)
	}
}

// TestUncountedCheckpoint checks that Checkpoint and Share refuse a stale
// version (one whose dirty root was shadowed away) instead of leaking or
// resurrecting its nodes.
func TestUncountedCheckpoint(t *testing.T) {
	f, _ := newForest(t)
	old := fill(t, f.Empty(1), 10)
	_ = fill(t, old, 20) // shadows old's dirty root: its count drops to 0
	if _, err := f.Checkpoint(1, old); !errors.Is(err, btree.ErrUncounted) {
		t.Fatalf("stale version: %v", err)
	}
	if err := old.Share(); !errors.Is(err, btree.ErrUncounted) {
		t.Fatalf("sharing a stale version: %v", err)
	}
}

// TestCorruptionDetected checks that a damaged node, a node written to the
// wrong place (its parent's checksum differs) and a node of another tree
// are all reported as ErrCorrupt by reads.
func TestCorruptionDetected(t *testing.T) {
	f, s := newForest(t)
	tr := fill(t, f.Empty(1), 2000)
	out, err := f.Checkpoint(1, tr)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := out[0].Root()
	readAll := func(tr *btree.Tree) error {
		for _, err := range tr.Range(nil, nil) {
			if err != nil {
				return err
			}
		}
		return nil
	}
	// A leaf with one flipped bit.
	var leaf format.Block
	for b, d := range s.blocks {
		if d[6] == 0 && b != root.Block { // level 0
			leaf = b
			break
		}
	}
	good := bytes.Clone(s.blocks[leaf])
	s.blocks[leaf][100] ^= 1
	if err := readAll(f.Open(1, root)); !errors.Is(err, format.ErrCorrupt) {
		t.Fatalf("flipped bit: %v", err)
	}
	// A valid node of the same tree in the leaf's place: a misdirected write.
	for b, d := range s.blocks {
		if d[6] == 0 && b != leaf && !bytes.Equal(d, good) {
			s.blocks[leaf] = bytes.Clone(d)
			break
		}
	}
	if err := readAll(f.Open(1, root)); !errors.Is(err, format.ErrBadChecksum) {
		t.Fatalf("misdirected write: %v", err)
	}
	s.blocks[leaf] = good
	if err := readAll(f.Open(1, root)); err != nil {
		t.Fatalf("repaired: %v", err)
	}
	if err := readAll(f.Open(2, root)); !errors.Is(err, format.ErrMisplaced) {
		t.Fatalf("other tree kind: %v", err)
	}
}

// TestDropBoundedSteps checks that a Drop step makes at most its budget of
// count changes, and that dropping the only root of a persisted tree frees
// every block, in resumable steps through a marshalled cursor.
func TestDropBoundedSteps(t *testing.T) {
	f, s := newForest(t)
	tr := fill(t, f.Empty(1), 5000)
	out, err := f.Checkpoint(1, tr)
	if err != nil {
		t.Fatal(err)
	}
	d := f.Drop(out[0])
	steps := 0
	for done := false; !done; steps++ {
		cur, err := d.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if d, err = f.ResumeDrop(cur); err != nil {
			t.Fatal(err)
		}
		before := s.calls
		if done, err = d.Step(7); err != nil {
			t.Fatal(err)
		}
		if s.calls-before > 7 {
			t.Fatalf("step made %d count changes, budget 7", s.calls-before)
		}
	}
	if len(s.counts) != 0 {
		t.Fatalf("%d blocks left", len(s.counts))
	}
	t.Logf("%d steps", steps)
}

// TestSnapshotOfDirtyTree checks DESIGN §4's case: a snapshot taken before
// a checkpoint shares dirty nodes; changing the live tree then shadows them
// like persisted ones, both versions stay intact across a checkpoint, and
// the counts the store ends with are the number of referrers (the shared
// nodes have count 2, the root of each version 1).
func TestSnapshotOfDirtyTree(t *testing.T) {
	f, s := newForest(t)
	live := fill(t, f.Empty(1), 30000) // three levels
	if err := live.Share(); err != nil {
		t.Fatal(err)
	}
	snap := live
	b, _ := live.Begin()
	_ = b.Put(key(1), []byte("changed"))
	live, _ = b.Commit()
	if d := f.Stats().DirtyNodes; d == 0 {
		t.Fatal("no dirty nodes before the checkpoint")
	}
	out, err := f.Checkpoint(1, live, snap)
	if err != nil {
		t.Fatal(err)
	}
	if f.Stats().DirtyNodes != 0 {
		t.Fatalf("%d dirty nodes after the checkpoint", f.Stats().DirtyNodes)
	}
	lr, _ := out[0].Root()
	sr, _ := out[1].Root()
	if lr == sr || s.counts[lr.Block] != 1 || s.counts[sr.Block] != 1 {
		t.Fatalf("roots %v %v counts %d %d", lr, sr, s.counts[lr.Block], s.counts[sr.Block])
	}
	shared := 0
	for _, c := range s.counts {
		if c == 2 {
			shared++
		}
	}
	if shared == 0 {
		t.Fatal("no node shared by both versions")
	}
	// Walk both roots as DB.Check would, counting referrers.
	refs := map[btree.NodeID]uint64{}
	seen := map[btree.NodeID]bool{}
	for _, tr := range []*btree.Tree{live, snap} {
		root, _ := tr.Root()
		err := tr.Walk(func(n btree.NodeInfo) (bool, error) {
			if n.Ref == root {
				refs[n.ID]++ // the caller's counted root
			}
			if seen[n.ID] {
				return false, nil // its children are counted once
			}
			seen[n.ID] = true
			for _, c := range n.Children {
				refs[c]++
			}
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range refs {
		if got := s.counts[id.Block()]; got != want {
			t.Fatalf("block %d: count %d, referrers %d", id.Block(), got, want)
		}
	}
	if len(refs) != len(s.counts) {
		t.Fatalf("%d blocks counted, %d reachable", len(s.counts), len(refs))
	}
	v, _, _ := out[1].Get(key(1))
	w, _, _ := out[0].Get(key(1))
	if string(w) != "changed" || string(v) == "changed" {
		t.Fatalf("snapshot %q, live %q", v, w)
	}
}

// FuzzResumeDrop checks that decoding a drop cursor never panics, that
// anything but a valid cursor is ErrCorrupt, that a cursor it accepts
// round-trips, and that running an accepted cursor to its end over a copy
// of the store never panics and fails only with an error: a cursor is read
// back from the log after a crash, so its frames may name any block.
func FuzzResumeDrop(f *testing.F) {
	fo, s := newForest(f)
	tr := fill(f, fo.Empty(1), 3000)
	out, _ := fo.Checkpoint(1, tr)
	blocks, counts := maps.Clone(s.blocks), maps.Clone(s.counts)
	d := fo.Drop(out[0])
	c0, _ := d.MarshalBinary()
	f.Add(c0)
	_, _ = d.Step(3)
	c1, _ := d.MarshalBinary()
	f.Add(c1)
	_, _ = d.Step(200)
	c2, _ := d.MarshalBinary()
	f.Add(c2)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := fo.ResumeDrop(b)
		if err != nil {
			if !errors.Is(err, format.ErrCorrupt) {
				t.Fatalf("not ErrCorrupt: %v", err)
			}
			return
		}
		again, err := d.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("cursor does not round-trip: %v", err)
		}
		// Run it on a fresh forest over the store as it was before the
		// drop began. Every step makes progress, so the bound is loose.
		s2 := newStore()
		s2.blocks, s2.counts = maps.Clone(blocks), maps.Clone(counts)
		f2, err := btree.New(btree.Options{Store: s2})
		if err != nil {
			t.Fatal(err)
		}
		d2, err := f2.ResumeDrop(b)
		if err != nil {
			t.Fatal(err)
		}
		for range 1000 {
			if done, err := d2.Step(100); done || err != nil {
				return
			}
		}
		t.Fatal("a drop of a 3000-key tree did not end in 100000 units")
	})
}

// TestRangeBounds checks Range's half-open bounds, an empty range, Prefix
// at the 0xff edge and SeekGE.
func TestRangeBounds(t *testing.T) {
	f, _ := newForest(t)
	b, _ := f.Empty(1).Begin()
	for _, k := range []string{"a", "ab", "b", "\xff", "\xff\xff", "\xff\xffa"} {
		if err := b.Put([]byte(k), []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	tr, _ := b.Commit()
	collect := func(s func(func(btree.Entry, error) bool)) string {
		var out []string
		for e, err := range s {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(e.Key))
		}
		return fmt.Sprintf("%q", out)
	}
	cases := []struct {
		got, want string
	}{
		{collect(tr.Range([]byte("a"), []byte("b"))), `["a" "ab"]`},
		{collect(tr.Range([]byte("b"), []byte("a"))), `[]`},
		{collect(tr.Range(nil, []byte("ab"))), `["a"]`},
		{collect(tr.Prefix([]byte("a"))), `["a" "ab"]`},
		{collect(tr.Prefix([]byte("\xff\xff"))), `["\xff\xff" "\xff\xffa"]`},
		{collect(tr.Prefix(nil)), `["a" "ab" "b" "\xff" "\xff\xff" "\xff\xffa"]`},
	}
	for i, c := range cases {
		if c.got != c.want {
			t.Errorf("case %d: %s, want %s", i, c.got, c.want)
		}
	}
	if e, ok, err := tr.SeekGE([]byte("aa")); err != nil || !ok || string(e.Key) != "ab" {
		t.Fatalf("SeekGE(aa) = %q %v %v", e.Key, ok, err)
	}
	if _, ok, _ := tr.SeekGE([]byte("\xff\xffb")); ok {
		t.Fatal("SeekGE past the end found something")
	}
}

// TestDropCursorDamage checks that a cursor whose position lies beyond its
// node's entries is reported as ErrCorrupt when the step reaches it.
func TestDropCursorDamage(t *testing.T) {
	f, _ := newForest(t)
	out, _ := f.Checkpoint(1, fill(t, f.Empty(1), 3000))
	d := f.Drop(out[0])
	if _, err := d.Step(2); err != nil {
		t.Fatal(err)
	}
	c, _ := d.MarshalBinary()
	c[len(c)-4] = 250 // next entry of the innermost frame
	d2, err := f.ResumeDrop(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d2.Step(10); !errors.Is(err, format.ErrCorrupt) {
		t.Fatalf("position past the node: %v", err)
	}
}

// TestDeleteMerges checks that deleting most keys merges nodes back
// together: after deleting 95% of 20k keys at random, the tree has a few
// dozen leaves, not the ~150 sparse ones it would keep without merging,
// and its structure verifies.
func TestDeleteMerges(t *testing.T) {
	f, _ := newForest(t)
	tr := fill(t, f.Empty(1), 20_000)
	r := rand.New(rand.NewPCG(7, 7))
	b, _ := tr.Begin()
	for _, i := range r.Perm(20_000)[:19_000] {
		if err := b.Delete(key(i)); err != nil {
			t.Fatal(err)
		}
	}
	tr, _ = b.Commit()
	if err := tr.Verify(); err != nil {
		t.Fatal(err)
	}
	leaves, n := 0, 0
	err := tr.Walk(func(info btree.NodeInfo) (bool, error) {
		if info.Level == 0 {
			leaves++
			n += len(info.Keys)
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// 1000 entries of 31 bytes fill 8 blocks; a quarter-full floor allows 32.
	if n != 1000 || leaves > 40 {
		t.Fatalf("%d keys in %d leaves", n, leaves)
	}
	t.Logf("%d keys in %d leaves", n, leaves)
}

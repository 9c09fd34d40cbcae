package btree_test

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/cache"
	"github.com/cowdb/cowdb/internal/format"
)

// TestStaleVersionRefused checks that a stale version — one whose dirty
// root a later commit shadowed away, so that no count holds it — is refused
// with ErrUncounted by every writer operation (Begin, Share, a Drop's first
// step, Checkpoint) instead of panicking or driving a count below zero, and
// that the Forest stays usable afterwards.
func TestStaleVersionRefused(t *testing.T) {
	f, s := newForest(t)
	old := fill(t, f.Empty(1), 10)
	live := fill(t, old, 20) // shadows old's dirty root: its count drops to 0
	if _, err := old.Begin(); !errors.Is(err, btree.ErrUncounted) {
		t.Fatalf("Begin on a stale version: %v", err)
	}
	if err := old.Share(); !errors.Is(err, btree.ErrUncounted) {
		t.Fatalf("Share of a stale version: %v", err)
	}
	if _, err := f.Drop(old).Step(10); !errors.Is(err, btree.ErrUncounted) {
		t.Fatalf("Drop of a stale version: %v", err)
	}
	if _, err := f.Checkpoint(1, old); !errors.Is(err, btree.ErrUncounted) {
		t.Fatalf("Checkpoint of a stale version: %v", err)
	}
	// A stale persisted version: its root block was freed by the commit
	// that shadowed it (count 1), so a batch on it must not decrement it.
	out, err := f.Checkpoint(2, live)
	if err != nil {
		t.Fatal(err)
	}
	persisted := out[0]
	live = fill(t, persisted, 20)
	b, err := persisted.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(key(1), []byte("x")); err == nil {
		t.Fatal("Put on a freed root succeeded")
	}
	b.Abort()
	// The forest is not failed: the live tree still takes writes.
	live = fill(t, live, 30)
	if _, err := f.Checkpoint(3, live); err != nil {
		t.Fatal(err)
	}
	d := f.Drop(live)
	for done := false; !done; {
		if done, err = d.Step(100); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.counts) != 0 {
		t.Fatalf("%d blocks left after dropping the only root", len(s.counts))
	}
}

// countingStore is a store that counts every call that changes something
// (allocations, writes, count changes, frees, value references) and fails
// the failAt-th of them (1-based; 0 never) with errInjected.
type countingStore struct {
	*store
	mu      sync.Mutex
	changes int
	failAt  int
}

var errInjected = errors.New("injected store failure")

func (c *countingStore) change() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes++
	if c.changes == c.failAt {
		return errInjected
	}
	return nil
}

func (c *countingStore) AllocNode() (format.Block, error) {
	if err := c.change(); err != nil {
		return 0, err
	}
	return c.store.AllocNode()
}
func (c *countingStore) WriteNode(b format.Block, d []byte) error {
	if err := c.change(); err != nil {
		return err
	}
	return c.store.WriteNode(b, d)
}
func (c *countingStore) IncNode(b format.Block) error {
	if err := c.change(); err != nil {
		return err
	}
	return c.store.IncNode(b)
}
func (c *countingStore) DecNode(b format.Block) (uint64, error) {
	if err := c.change(); err != nil {
		return 0, err
	}
	return c.store.DecNode(b)
}
func (c *countingStore) FreeNode(b format.Block) error {
	if err := c.change(); err != nil {
		return err
	}
	return c.store.FreeNode(b)
}
func (c *countingStore) AdjustValue(k btree.TreeKind, key, v []byte, d int) error {
	if err := c.change(); err != nil {
		return err
	}
	return c.store.AdjustValue(k, key, v, d)
}

// TestAbortLeavesStoreUntouched checks that a batch that shadows shared
// persisted nodes (count 2, so shadowing adds references to everything they
// point at) and is then aborted makes no store call that changes anything,
// and leaves every count as it was.
func TestAbortLeavesStoreUntouched(t *testing.T) {
	cs := &countingStore{store: newStore()}
	f, err := btree.New(btree.Options{Store: cs})
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.Checkpoint(1, fill(t, f.Empty(1), 5000))
	if err != nil {
		t.Fatal(err)
	}
	tr := out[0]
	if err := tr.Share(); err != nil { // a snapshot: every node is shared
		t.Fatal(err)
	}
	counts := maps.Clone(cs.counts)
	before := cs.changes
	b, err := tr.Begin()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(4, 4))
	for range 500 {
		if err := b.Put(key(r.IntN(10_000)), []byte("new")); err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(key(r.IntN(5000))); err != nil {
			t.Fatal(err)
		}
	}
	b.Abort()
	if cs.changes != before {
		t.Fatalf("an aborted batch made %d changing store calls", cs.changes-before)
	}
	if !maps.Equal(counts, cs.counts) {
		t.Fatal("an aborted batch changed counts")
	}
	if d := f.Stats().DirtyNodes; d != 0 {
		t.Fatalf("an aborted batch left %d dirty nodes", d)
	}
}

// failureScenario is a writer's life — checkpoint, snapshot, a batch that
// shadows shared nodes, a checkpoint of both roots, dropping the snapshot —
// over cs. It returns the first error and the versions last published
// before it, with the number of entries each holds.
func failureScenario(t *testing.T, f *btree.Forest) (error, map[*btree.Tree]int) {
	good := map[*btree.Tree]int{}
	live := fill(t, f.Empty(1), 600)
	good[live] = 600
	out, err := f.Checkpoint(1, live)
	if err != nil {
		return err, good
	}
	live = out[0]
	good = map[*btree.Tree]int{live: 600}
	if err := live.Share(); err != nil {
		return err, good
	}
	snap := live
	b, err := live.Begin()
	if err != nil {
		return err, good
	}
	for i := range 20 {
		_ = b.Put(key(i*29), []byte("changed"))
		_ = b.Delete(key(i*29 + 1))
	}
	if live, err = b.Commit(); err != nil {
		return err, good
	}
	good[live] = 580
	if out, err = f.Checkpoint(2, live, snap); err != nil {
		return err, good
	}
	live, snap = out[0], out[1]
	good = map[*btree.Tree]int{live: 580, snap: 600}
	d := f.Drop(snap)
	for done := false; !done; {
		if done, err = d.Step(5); err != nil {
			return err, good
		}
	}
	delete(good, snap)
	return nil, good
}

// TestStoreFailureIsSticky fails each changing store call of a writer's
// life in turn and checks that the failing operation returns the store's
// error, that every later writer operation returns ErrFailed (the counts
// are only partly applied, so the caller must rebuild from its checkpoint
// and log), and that the versions published before the failure still read
// back whole.
func TestStoreFailureIsSticky(t *testing.T) {
	cs := &countingStore{store: newStore()}
	f, err := btree.New(btree.Options{Store: cs})
	if err != nil {
		t.Fatal(err)
	}
	if err, _ := failureScenario(t, f); err != nil {
		t.Fatal(err)
	}
	total := cs.changes
	if total < 100 {
		t.Fatalf("the scenario makes only %d changing calls", total)
	}
	for k := 1; k <= total; k++ {
		cs := &countingStore{store: newStore(), failAt: k}
		f, err := btree.New(btree.Options{Store: cs})
		if err != nil {
			t.Fatal(err)
		}
		err, good := failureScenario(t, f)
		if !errors.Is(err, errInjected) {
			t.Fatalf("call %d failed: scenario returned %v", k, err)
		}
		for tr, want := range good {
			n := 0
			for _, err := range tr.Range(nil, nil) {
				if err != nil {
					t.Fatalf("call %d failed: reading a published version: %v", k, err)
				}
				n++
			}
			if n != want {
				t.Fatalf("call %d failed: a published version holds %d entries, want %d", k, n, want)
			}
			if _, err := tr.Begin(); !errors.Is(err, btree.ErrFailed) {
				t.Fatalf("call %d failed: Begin afterwards: %v", k, err)
			}
			if err := tr.Share(); !errors.Is(err, btree.ErrFailed) {
				t.Fatalf("call %d failed: Share afterwards: %v", k, err)
			}
			if _, err := f.Checkpoint(9, tr); !errors.Is(err, btree.ErrFailed) {
				t.Fatalf("call %d failed: Checkpoint afterwards: %v", k, err)
			}
			if _, err := f.Drop(tr).Step(1); !errors.Is(err, btree.ErrFailed) {
				t.Fatalf("call %d failed: Drop afterwards: %v", k, err)
			}
		}
	}
}

// published is a version the writer of TestReadersSeeWholeVersions made
// visible, with the model it must equal.
type published struct {
	t     *btree.Tree
	gen   int
	model map[string]string
}

// TestReadersSeeWholeVersions checks, under -race as well, that readers
// scanning, reading and diffing published versions without locks always
// see whole versions — equal to the model of the generation they picked up
// — while the writer commits, snapshots, checkpoints (sealing the very
// nodes the readers walk, and republishing the persisted versions) and
// drops snapshots in small steps, with a shared node cache.
func TestReadersSeeWholeVersions(t *testing.T) {
	c, err := cache.New(&cache.Options{MaxBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := newStore()
	f, err := btree.New(btree.Options{Store: s, Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	model := map[string]string{}
	for i := range 1500 {
		model[string(key(i))] = string(key(i))
	}
	live := fill(t, f.Empty(1), 0)
	{
		b, _ := live.Begin()
		for k, v := range model {
			_ = b.Put([]byte(k), []byte(v))
		}
		live, _ = b.Commit()
	}
	var cur atomic.Pointer[published]
	cur.Store(&published{t: live, model: maps.Clone(model)})

	var wg sync.WaitGroup
	var stop atomic.Bool
	var checked atomic.Int64
	for g := range 2 {
		wg.Go(func() {
			var prev *published
			for !stop.Load() {
				p := cur.Load()
				if err := checkVersion(p); err != nil {
					t.Errorf("reader %d, generation %d: %v", g, p.gen, err)
					return
				}
				if prev != nil {
					if err := checkDiff(prev, p); err != nil {
						t.Errorf("reader %d, diff %d -> %d: %v", g, prev.gen, p.gen, err)
						return
					}
				}
				prev = p
				checked.Add(1)
			}
		})
	}

	r := rand.New(rand.NewPCG(5, 5))
	var snaps []*btree.Tree
	var drops []*btree.Drop
	for gen := 1; gen <= 60; gen++ {
		b, err := live.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for range 40 {
			k := key(r.IntN(3000))
			if r.IntN(3) == 0 {
				_ = b.Delete(k)
				delete(model, string(k))
				continue
			}
			v := fmt.Sprintf("gen%d-%s", gen, k)
			_ = b.Put(k, []byte(v))
			model[string(k)] = v
		}
		if live, err = b.Commit(); err != nil {
			t.Fatal(err)
		}
		switch {
		case gen%5 == 0:
			if err := live.Share(); err != nil {
				t.Fatal(err)
			}
			snaps = append(snaps, live)
		case gen%7 == 0:
			out, err := f.Checkpoint(format.Epoch(gen), append([]*btree.Tree{live}, snaps...)...)
			if err != nil {
				t.Fatal(err)
			}
			live, snaps = out[0], out[1:]
		case gen%9 == 0 && len(snaps) > 0:
			drops = append(drops, f.Drop(snaps[0]))
			snaps = snaps[1:]
		}
		for _, d := range drops {
			if _, err := d.Step(5); err != nil {
				t.Fatal(err)
			}
		}
		cur.Store(&published{t: live, gen: gen, model: maps.Clone(model)})
		for want := checked.Load() + 1; checked.Load() < want && !t.Failed(); {
			runtime.Gosched() // let the readers see this generation
		}
	}
	stop.Store(true)
	wg.Wait()
}

// checkVersion compares a published version with its model: a full scan,
// a prefix scan and point reads.
func checkVersion(p *published) error {
	h, want := fnv.New64a(), fnv.New64a()
	n := 0
	for e, err := range p.t.Range(nil, nil) {
		if err != nil {
			return err
		}
		h.Write(e.Key)
		h.Write(e.Value)
		n++
	}
	for _, k := range slices.Sorted(maps.Keys(p.model)) {
		want.Write([]byte(k))
		want.Write([]byte(p.model[k]))
	}
	if n != len(p.model) || h.Sum64() != want.Sum64() {
		return fmt.Errorf("scan: %d entries (model %d) or different contents", n, len(p.model))
	}
	for _, i := range []int{0, 777, 1499, 2999} {
		v, ok, err := p.t.Get(key(i))
		if err != nil {
			return err
		}
		if mv, mok := p.model[string(key(i))]; ok != mok || string(v) != mv {
			return fmt.Errorf("Get(%s) = %q, %v; model %q, %v", key(i), v, ok, mv, mok)
		}
	}
	return nil
}

// checkDiff compares Diff(a, b) with the difference of the models.
func checkDiff(a, b *published) error {
	var got []string
	for c, err := range btree.Diff(a.t, b.t) {
		if err != nil {
			return err
		}
		got = append(got, fmt.Sprintf("%d %s %s %s", c.Kind, c.Key, c.Old, c.New))
	}
	var want []string
	keys := slices.Sorted(maps.Keys(a.model))
	for k := range b.model {
		if _, ok := a.model[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(x, y string) int { return bytes.Compare([]byte(x), []byte(y)) })
	for _, k := range keys {
		va, ina := a.model[k]
		vb, inb := b.model[k]
		switch {
		case !ina:
			want = append(want, fmt.Sprintf("%d %s %s %s", btree.Added, k, "", vb))
		case !inb:
			want = append(want, fmt.Sprintf("%d %s %s %s", btree.Removed, k, va, ""))
		case va != vb:
			want = append(want, fmt.Sprintf("%d %s %s %s", btree.Modified, k, va, vb))
		}
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("%d changes, model %d", len(got), len(want))
	}
	return nil
}

// TestDropCostsWhatIsExclusive checks Rodeh's promise for Drop: dropping a
// snapshot that differs from the live tree in one key touches only the
// snapshot's exclusive path — a few hundred count changes and node reads,
// not one per entry of the 50k-key tree — and frees exactly the shadowed
// path, leaving the live tree whole.
func TestDropCostsWhatIsExclusive(t *testing.T) {
	f, s := newForest(t)
	out, err := f.Checkpoint(1, fill(t, f.Empty(1), 50_000))
	if err != nil {
		t.Fatal(err)
	}
	snap := out[0]
	if err := snap.Share(); err != nil {
		t.Fatal(err)
	}
	b, _ := snap.Begin()
	_ = b.Put(key(25_000), []byte("changed"))
	live, err := b.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if out, err = f.Checkpoint(2, live); err != nil {
		t.Fatal(err)
	}
	live = out[0]
	blocks := len(s.counts)
	calls, reads := s.calls, f.Stats().NodeReads
	d := f.Drop(snap)
	for done := false; !done; {
		if done, err = d.Step(1000); err != nil {
			t.Fatal(err)
		}
	}
	calls, reads = s.calls-calls, f.Stats().NodeReads-reads
	height := 0
	_ = live.Walk(func(n btree.NodeInfo) (bool, error) {
		height = max(height, n.Level+1)
		return false, nil
	})
	if freed := blocks - len(s.counts); freed != height {
		t.Fatalf("dropping the snapshot freed %d nodes, its exclusive path is %d", freed, height)
	}
	if calls > 1000 || reads > int64(height) {
		t.Fatalf("dropping a one-key snapshot made %d store calls and %d node reads", calls, reads)
	}
	t.Logf("%d store calls, %d node reads, %d nodes freed", calls, reads, height)
	n := 0
	for _, err := range live.Range(nil, nil) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 50_000 {
		t.Fatalf("live tree holds %d keys after the drop", n)
	}
}

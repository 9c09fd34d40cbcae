package btree_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/cache"
	"github.com/cowdb/cowdb/internal/format"
)

// benchTree is a persisted tree of n keys over a store with a cache large
// enough to hold it, built once per size.
type benchTree struct {
	f  *btree.Forest
	s  *store
	tr *btree.Tree
	n  int
}

var (
	benchMu    sync.Mutex
	benchTrees = map[int]*benchTree{}
)

func getBenchTree(b *testing.B, n int) *benchTree {
	benchMu.Lock()
	defer benchMu.Unlock()
	if bt, ok := benchTrees[n]; ok {
		return bt
	}
	c, err := cache.New(&cache.Options{MaxBytes: 512 << 20})
	if err != nil {
		b.Fatal(err)
	}
	s := newStore()
	f, err := btree.New(btree.Options{Store: s, Cache: c})
	if err != nil {
		b.Fatal(err)
	}
	tr := fill(b, f.Empty(1), n)
	out, err := f.Checkpoint(1, tr)
	if err != nil {
		b.Fatal(err)
	}
	bt := &benchTree{f: f, s: s, tr: out[0], n: n}
	// Warm the cache: ristretto admits on frequency, so read twice.
	for range 2 {
		for _, err := range bt.tr.Range(nil, nil) {
			if err != nil {
				b.Fatal(err)
			}
		}
		c.Wait()
	}
	benchTrees[n] = bt
	return bt
}

var sizes = []int{10_000, 1_000_000}

// BenchmarkGet measures a point read of a random key of a persisted tree
// whose nodes are cached, against a Go map lookup of the same keys.
func BenchmarkGet(b *testing.B) {
	for _, n := range sizes {
		bt := getBenchTree(b, n)
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			reads := bt.f.Stats().NodeReads
			for b.Loop() {
				if _, ok, err := bt.tr.Get(key(r.IntN(n))); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
			b.ReportMetric(float64(bt.f.Stats().NodeReads-reads)/float64(b.N), "misses/op")
		})
	}
	b.Run("baseline=map/keys=1000000", func(b *testing.B) {
		m := make(map[string][]byte, 1_000_000)
		for i := range 1_000_000 {
			m[string(key(i))] = key(i)
		}
		r := rand.New(rand.NewPCG(1, 1))
		for b.Loop() {
			if _, ok := m[string(key(r.IntN(1_000_000)))]; !ok {
				b.Fatal()
			}
		}
	})
}

// BenchmarkPutBatch measures Put of random keys in batches of 1000 on a
// persisted 1M-key tree, Commit included (ns/key). unshared: the batches
// follow one another on the live tree, as between checkpoints. shared: each
// batch is the first after a snapshot of the persisted tree, so every node
// it touches has count 2 and shadowing it adds a reference to everything
// the node points at (the lazy refcount's one-time cost).
func BenchmarkPutBatch(b *testing.B) {
	bt := getBenchTree(b, 1_000_000)
	val := make([]byte, 16)
	b.Run("unshared", func(b *testing.B) {
		r := rand.New(rand.NewPCG(2, 2))
		if err := bt.tr.Share(); err != nil { // bt.tr keeps its reference
			b.Fatal(err)
		}
		live := bt.tr
		for b.Loop() {
			live = putBatch(b, live, r, val)
		}
		b.StopTimer()
		dropAll(b, bt.f, live)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/key")
	})
	b.Run("shared", func(b *testing.B) {
		r := rand.New(rand.NewPCG(2, 2))
		for b.Loop() {
			if err := bt.tr.Share(); err != nil {
				b.Fatal(err)
			}
			nt := putBatch(b, bt.tr, r, val)
			b.StopTimer()
			dropAll(b, bt.f, nt) // bt.tr is exactly as before
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/key")
	})
}

func putBatch(b *testing.B, tr *btree.Tree, r *rand.Rand, val []byte) *btree.Tree {
	batch, err := tr.Begin()
	if err != nil {
		b.Fatal(err)
	}
	for range 1000 {
		if err := batch.Put(key(r.IntN(2_000_000)), val); err != nil {
			b.Fatal(err)
		}
	}
	nt, err := batch.Commit()
	if err != nil {
		b.Fatal(err)
	}
	return nt
}

func dropAll(b *testing.B, f *btree.Forest, t *btree.Tree) {
	d := f.Drop(t)
	for done := false; !done; {
		var err error
		if done, err = d.Step(1 << 20); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScan measures a full scan of a persisted 1M-key tree, per key.
func BenchmarkScan(b *testing.B) {
	bt := getBenchTree(b, 1_000_000)
	keys := 0
	for b.Loop() {
		for _, err := range bt.tr.Range(nil, nil) {
			if err != nil {
				b.Fatal(err)
			}
			keys++
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(keys), "ns/key")
}

// BenchmarkShare measures taking a snapshot (one increment of the root)
// and the first write after it (shadowing one path, incrementing the
// children of each shadowed node), at 10k and 1M keys: both should be about
// the same at either size.
func BenchmarkShare(b *testing.B) {
	for _, n := range sizes {
		bt := getBenchTree(b, n)
		b.Run(fmt.Sprintf("op=share/keys=%d", n), func(b *testing.B) {
			for b.Loop() {
				if err := bt.tr.Share(); err != nil {
					b.Fatal(err)
				}
			}
			// Give the references back so the tree stays as it was.
			for range b.N {
				if _, err := bt.f.Drop(bt.tr).Step(1); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("op=share+write/keys=%d", n), func(b *testing.B) {
			for b.Loop() {
				if err := bt.tr.Share(); err != nil {
					b.Fatal(err)
				}
				batch, _ := bt.tr.Begin()
				_ = batch.Put(key(n/2), []byte("x"))
				nt, err := batch.Commit()
				if err != nil {
					b.Fatal(err)
				}
				// Drop the new version again: the snapshot's reference
				// stays with bt.tr, as before the iteration.
				d := bt.f.Drop(nt)
				for done := false; !done; {
					if done, err = d.Step(1 << 20); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkBaselineChecksum is the baseline for BenchmarkCheckpoint:
// xxhash64 of one 4 KiB block, the least a node write costs.
func BenchmarkBaselineChecksum(b *testing.B) {
	buf := make([]byte, 4096)
	for b.Loop() {
		_ = format.Checksum(buf)
	}
}

// BenchmarkCheckpoint measures writing dirty nodes: each iteration commits
// 1000 random puts on a 1M-key tree and checkpoints, reported per node
// written (encode, checksum, allocate, write to the map store).
func BenchmarkCheckpoint(b *testing.B) {
	bt := getBenchTree(b, 1_000_000)
	r := rand.New(rand.NewPCG(3, 3))
	if err := bt.tr.Share(); err != nil { // keep bt.tr alive for the others
		b.Fatal(err)
	}
	live := bt.tr
	nodes := int64(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		batch, _ := live.Begin()
		for range 1000 {
			_ = batch.Put(key(r.IntN(1_000_000)), []byte("y"))
		}
		live, _ = batch.Commit()
		nodes += bt.f.Stats().DirtyNodes
		b.StartTimer()
		out, err := bt.f.Checkpoint(format.Epoch(2+i), live)
		if err != nil {
			b.Fatal(err)
		}
		live = out[0]
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(nodes), "ns/node")
	b.ReportMetric(float64(nodes)/float64(b.N), "nodes/checkpoint")
	d := bt.f.Drop(live)
	for done := false; !done; {
		var err error
		if done, err = d.Step(1 << 20); err != nil {
			b.Fatal(err)
		}
	}
}

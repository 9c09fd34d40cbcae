package snapshot_test

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/snapshot"
	"pgregory.net/rapid"
)

// model is one root at the user's level, kept as the records the store
// writes for it: each key's inode record, and for a blob its index entry
// and its extent records, cut and rewritten the way the store's remap and
// truncate do (records of at most cowio.ExtentRecordMaxBlocks blocks; a
// record across the edge of an overwritten range keeps its surviving part,
// same physical blocks, under its first file block).
type model struct {
	bs     int64
	fill   int // keys "f0000"... the first phase starts with
	keys   map[string]*value
	nextID format.InodeID
	phys   uint64 // next free physical block; copy-on-write never reuses one
}

// value is what one key holds.
type value struct {
	id     format.InodeID
	inline bool
	data   []byte   // inline only
	size   int64    // blob only
	recs   []extRec // blob only: sorted by fb, apart
}

// extRec is one extent record: file blocks [fb, fb+n) at physical [start, start+n).
type extRec struct{ fb, start, n uint64 }

func newModel(bs int64) *model {
	return &model{bs: bs, keys: map[string]*value{}, nextID: 1, phys: 100}
}

// sumOf is the data checksum the model gives physical block b.
func sumOf(b uint64) uint64 { return b*0x9e3779b97f4a7c15 ^ 0x5bd1e995 }

// entries returns the namespace entries key's value v is stored as.
func entries(key string, v *value) map[string]string {
	e := map[string]string{}
	if v == nil {
		return e
	}
	ino := format.Inode{ID: v.id, Size: v.size}
	if v.inline {
		ino = format.Inode{ID: v.id, Flags: format.InodeInline, Size: int64(len(v.data)), Value: v.data}
	}
	e[string(format.InodeKey(nil, []byte(key)))] = string(format.AppendInode(nil, ino))
	if v.inline {
		return e
	}
	e[string(format.BlobKeyKey(nil, v.id))] = key
	for _, r := range v.recs {
		sums := make([]uint64, r.n)
		for i := range sums {
			sums[i] = sumOf(r.start + uint64(i))
		}
		rec := cowio.EncodeExtentRecord(nil, cowio.ExtentRecord{Start: format.Block(r.start), Len: r.n, Sums: sums})
		e[string(format.ExtentKey(nil, v.id, r.fb))] = string(rec)
	}
	return e
}

// set makes key hold v (nil: nothing) in the model and in batch b.
func (m *model) set(t fataler, b *btree.Batch, key string, v *value) {
	before, after := entries(key, m.keys[key]), entries(key, v)
	for k := range before {
		if _, ok := after[k]; !ok {
			if err := b.Delete([]byte(k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for k, val := range after {
		if old, ok := before[k]; !ok || old != val {
			if err := b.Put([]byte(k), []byte(val)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if v == nil {
		delete(m.keys, key)
	} else {
		m.keys[key] = v
	}
}

func (m *model) newID() format.InodeID {
	m.nextID++
	return m.nextID - 1
}

// unmap removes file blocks [a, b) from recs, keeping the parts of records
// across the edges.
func unmap(recs []extRec, a, b uint64) []extRec {
	var out []extRec
	for _, r := range recs {
		end := r.fb + r.n
		if end <= a || r.fb >= b {
			out = append(out, r)
			continue
		}
		if r.fb < a {
			out = append(out, extRec{r.fb, r.start, a - r.fb})
		}
		if end > b {
			out = append(out, extRec{b, r.start + (b - r.fb), end - b})
		}
	}
	return out
}

// write maps file blocks [a, b) of recs to new physical blocks.
func (m *model) write(recs []extRec, a, b uint64) []extRec {
	recs = unmap(recs, a, b)
	for fb := a; fb < b; fb += cowio.ExtentRecordMaxBlocks {
		n := min(b-fb, cowio.ExtentRecordMaxBlocks)
		recs = append(recs, extRec{fb, m.phys + (fb - a), n})
	}
	m.phys += b - a
	slices.SortFunc(recs, func(x, y extRec) int { return int(x.fb) - int(y.fb) })
	return recs
}

const (
	modelKeys      = 24  // key pool: small, so keys are hit again
	modelMaxBlocks = 200 // largest blob, in blocks
)

// keyName returns the i-th key: the hot ones first, then the filler.
func (m *model) keyName(i int) string {
	if i < modelKeys {
		return fmt.Sprintf("key%02d", i)
	}
	return fmt.Sprintf("f%04d", i-modelKeys)
}

// drawKey draws a key, a hot one more often than not.
func (m *model) drawKey(t *rapid.T, label string) string {
	if m.fill > 0 && rapid.Bool().Draw(t, label+" filler") {
		return m.keyName(modelKeys + rapid.IntRange(0, m.fill-1).Draw(t, label))
	}
	return m.keyName(rapid.IntRange(0, modelKeys-1).Draw(t, label))
}

// populate fills the model and batch b with m.fill keys, inline values and
// blobs, from a seeded generator: a tree of several levels, most of which
// the later operations leave alone, for Diff to skip.
func (m *model) populate(t *rapid.T, b *btree.Batch, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range m.fill {
		key := m.keyName(modelKeys + i)
		if rng.IntN(4) != 0 {
			data := make([]byte, rng.IntN(60))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			m.set(t, b, key, &value{id: m.newID(), inline: true, data: data})
			continue
		}
		v := &value{id: m.newID(), size: rng.Int64N(modelMaxBlocks * m.bs)}
		if blocks := uint64((v.size + m.bs - 1) / m.bs); blocks > 0 {
			v.recs = m.write(nil, 0, blocks)
		}
		m.set(t, b, key, v)
	}
}

// step applies one random operation to the model and batch b.
func (m *model) step(t *rapid.T, b *btree.Batch) {
	key := m.drawKey(t, "key")
	cur := m.keys[key]
	blob := cur != nil && !cur.inline
	switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
	case op == 0:
		m.set(t, b, key, nil)
	case op == 1:
		data := rapid.SliceOfN(rapid.Byte(), 0, 40).Draw(t, "data")
		m.set(t, b, key, &value{id: m.newID(), inline: true, data: data})
	case op == 2:
		v := &value{id: m.newID(), size: rapid.Int64Range(0, modelMaxBlocks*m.bs).Draw(t, "size")}
		blocks := uint64((v.size + m.bs - 1) / m.bs)
		for range rapid.IntRange(0, 3).Draw(t, "writes") {
			if blocks == 0 {
				break
			}
			a := rapid.Uint64Range(0, blocks-1).Draw(t, "a")
			v.recs = m.write(v.recs, a, rapid.Uint64Range(a+1, blocks).Draw(t, "b"))
		}
		m.set(t, b, key, v)
	case op == 3 && blob:
		src := m.keys[m.drawKey(t, "src")]
		if src != nil && !src.inline && src != cur {
			// A clone: a new inode mapping the same physical blocks.
			m.set(t, b, key, &value{id: m.newID(), size: src.size, recs: slices.Clone(src.recs)})
		}
	case op <= 7 && blob:
		// An in-place overwrite of blocks [a, b), which may grow the blob.
		v := *cur
		blocks := uint64((v.size + m.bs - 1) / m.bs)
		a := rapid.Uint64Range(0, blocks+4).Draw(t, "a")
		end := rapid.Uint64Range(a+1, a+130).Draw(t, "b")
		v.recs = m.write(slices.Clone(v.recs), a, end)
		if grown := int64(end-1)*m.bs + rapid.Int64Range(1, m.bs).Draw(t, "tail"); grown > v.size {
			v.size = grown
		}
		m.set(t, b, key, &v)
	case op <= 9 && blob:
		// A truncate: shrinking unmaps every block wholly past the size.
		v := *cur
		v.size = rapid.Int64Range(0, modelMaxBlocks*m.bs).Draw(t, "size")
		if v.size < cur.size {
			v.recs = unmap(slices.Clone(v.recs), uint64((v.size+m.bs-1)/m.bs), 1<<62)
		}
		m.set(t, b, key, &v)
	}
}

// phase commits a random number of batches of random operations on live,
// checkpointing between some of them (counted are live and keep).
func (m *model) phase(t *rapid.T, f *btree.Forest, live, keep *btree.Tree, label string, epoch *format.Epoch) (*btree.Tree, *btree.Tree) {
	for range rapid.IntRange(1, 6).Draw(t, label+" batches") {
		b, err := live.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for range rapid.IntRange(1, 40).Draw(t, label+" ops") {
			m.step(t, b)
		}
		if live, err = b.Commit(); err != nil {
			t.Fatal(err)
		}
		if rapid.Bool().Draw(t, label+" checkpoint") {
			*epoch++
			roots := []*btree.Tree{live}
			if keep != nil {
				roots = append(roots, keep)
			}
			out, err := f.Checkpoint(*epoch, roots...)
			if err != nil {
				t.Fatal(err)
			}
			live = out[0]
			if keep != nil {
				keep = out[1]
			}
		}
	}
	return live, keep
}

// checkTree checks that tr holds exactly the model's entries: the model's
// own consistency, not Translate's.
func (m *model) checkTree(t *rapid.T, tr *btree.Tree) {
	want := map[string]string{}
	for k, v := range m.keys {
		maps.Copy(want, entries(k, v))
	}
	got := map[string]string{}
	for e, err := range tr.Range(nil, nil) {
		if err != nil {
			t.Fatal(err)
		}
		got[string(e.Key)] = string(e.Value)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("tree holds %d entries, model %d, and they differ", len(got), len(want))
	}
}

// TestTranslateModel checks Translate against brute force: it builds a
// root A from up to 1500 filler keys and random operations (inline values, blobs with their index and
// extent records, in-place overwrites that cut records, truncates, clones,
// deletes), takes a snapshot of it (sharing, so B shares A's untouched
// nodes and Diff skips them), turns the live root into B by more
// operations, with checkpoints between batches, and requires that
// Translate(btree.Diff) from A to B, and from B to A, equals the
// comparison of the two trees' full contents per user key, down to the
// set of file blocks whose physical block differs. A failure prints the
// rapid command that reproduces it.
func TestTranslateModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int64{512, 4096}).Draw(t, "block size")
		f := newForest(t)
		m := newModel(bs)
		m.fill = rapid.IntRange(0, 1500).Draw(t, "fill")
		b, err := f.Empty(namespaceKind).Begin()
		if err != nil {
			t.Fatal(err)
		}
		m.populate(t, b, rapid.Uint64().Draw(t, "fill seed"))
		live, err := b.Commit()
		if err != nil {
			t.Fatal(err)
		}
		var epoch format.Epoch
		live, _ = m.phase(t, f, live, nil, "A", &epoch)
		m.checkTree(t, live)
		if err := live.Share(); err != nil {
			t.Fatal(err)
		}
		live, a := m.phase(t, f, live, live, "B", &epoch)
		m.checkTree(t, live)
		checkTranslate(t, a, live, bs)
		checkTranslate(t, live, a, bs)
	})
}

// checkTranslate compares Translate's changes from a to b with bruteDiff's.
func checkTranslate(t *rapid.T, a, b *btree.Tree, bs int64) {
	var got []snapshot.Change
	for c, err := range snapshot.Translate(btree.Diff(a, b), int(bs), a.Get, b.Get) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	want := bruteDiff(t, a, b, bs)
	for i := range max(len(got), len(want)) {
		var g, w snapshot.Change
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if !bytes.Equal(g.Key, w.Key) || g.Kind != w.Kind || !slices.Equal(g.Ranges, w.Ranges) || (g.Ranges == nil) != (w.Ranges == nil) {
			t.Fatalf("change %d: got %q %v %v, want %q %v %v", i, g.Key, g.Kind, g.Ranges, w.Key, w.Kind, w.Ranges)
		}
	}
}

// userView is a tree's content per user key: its inode, and per inode the
// physical block (and checksum) of each mapped file block.
type userView struct {
	inodes map[string]format.Inode
	blocks map[format.InodeID]map[uint64][2]uint64
}

func viewOf(t *rapid.T, tr *btree.Tree) userView {
	v := userView{inodes: map[string]format.Inode{}, blocks: map[format.InodeID]map[uint64][2]uint64{}}
	for e, err := range tr.Range(nil, nil) {
		if err != nil {
			t.Fatal(err)
		}
		switch e.Key[0] {
		case format.KeyPrefixInode:
			n, err := format.DecodeInode(e.Value)
			if err != nil {
				t.Fatal(err)
			}
			v.inodes[string(e.Key[1:])] = n
		case format.KeyPrefixExtent:
			id, fb, _ := format.ParseExtentKey(e.Key)
			r, err := cowio.DecodeExtentRecord(e.Value)
			if err != nil {
				t.Fatal(err)
			}
			if v.blocks[id] == nil {
				v.blocks[id] = map[uint64][2]uint64{}
			}
			for i := range r.Len {
				v.blocks[id][fb+i] = [2]uint64{uint64(r.Start) + i, r.Sums[i]}
			}
		}
	}
	return v
}

// bruteDiff compares every user key of a and b.
func bruteDiff(t *rapid.T, a, b *btree.Tree, bs int64) []snapshot.Change {
	va, vb := viewOf(t, a), viewOf(t, b)
	keys := slices.Sorted(maps.Keys(va.inodes))
	for k := range vb.inodes {
		if _, ok := va.inodes[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []snapshot.Change
	for _, k := range keys {
		ia, inA := va.inodes[k]
		ib, inB := vb.inodes[k]
		switch {
		case !inA:
			out = append(out, snapshot.Change{Key: []byte(k), Kind: snapshot.Added})
		case !inB:
			out = append(out, snapshot.Change{Key: []byte(k), Kind: snapshot.Removed})
		case ia.ID == ib.ID && !ia.Inline() && !ib.Inline():
			if r := changedRanges(va.blocks[ia.ID], vb.blocks[ib.ID], ia.Size, ib.Size, bs); r != nil {
				out = append(out, snapshot.Change{Key: []byte(k), Kind: snapshot.Modified, Ranges: r})
			}
		case !bytes.Equal(format.AppendInode(nil, ia), format.AppendInode(nil, ib)):
			out = append(out, snapshot.Change{Key: []byte(k), Kind: snapshot.Modified})
		}
	}
	return out
}

// changedRanges is Change.Ranges by definition: the blocks mapped
// differently, and those from the smaller size's last block to the larger
// size, as byte ranges cut at the larger size.
func changedRanges(ma, mb map[uint64][2]uint64, sa, sb, bs int64) []snapshot.Range {
	size := max(sa, sb)
	limit := uint64((size + bs - 1) / bs)
	var out []snapshot.Range
	for fb := range limit {
		xa, okA := ma[fb]
		xb, okB := mb[fb]
		if okA == okB && xa == xb && (sa == sb || fb < uint64(min(sa, sb)/bs)) {
			continue
		}
		off := int64(fb) * bs
		n := min(off+bs, size) - off
		if l := len(out) - 1; l >= 0 && out[l].Off+out[l].Len == off {
			out[l].Len += n
		} else {
			out = append(out, snapshot.Range{Off: off, Len: n})
		}
	}
	return out
}

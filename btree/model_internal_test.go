package btree

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/cowdb/cowdb/cache"
	"github.com/cowdb/cowdb/internal/format"
	"pgregory.net/rapid"
)

// version is a counted root with the map it must equal.
type version struct {
	t     *Tree
	model map[string]string
}

// world is the state of a property test: a forest over a memStore, the
// live root, snapshots, and drops in progress.
type world struct {
	t      *rapid.T
	s      *memStore
	f      *Forest
	live   version
	snaps  []version
	drops  []*Drop
	epoch  format.Epoch
	keyMax int
}

func newWorld(t *rapid.T, withCache bool) *world {
	s := newMemStore()
	var c *cache.Cache
	if withCache {
		var err error
		c, err = cache.New(&cache.Options{MaxBytes: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
	}
	f, err := New(Options{Store: s, Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, s: s, f: f, live: version{t: f.Empty(1), model: map[string]string{}}}
}

func (w *world) must(err error) {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
}

var keyGen = rapid.Custom(func(t *rapid.T) string {
	n := rapid.IntRange(0, 150).Draw(t, "keyn")
	pad := rapid.SampledFrom([]int{0, 0, 0, 8, 40, 300, format.NodeKeyMax - 4}).Draw(t, "keypad")
	return fmt.Sprintf("%04d", n) + string(bytes.Repeat([]byte{'k'}, pad))
})

// batch applies random puts and deletes to the live root (or a snapshot),
// and commits or aborts.
func (w *world) batch(t *rapid.T) {
	target := &w.live
	if len(w.snaps) > 0 && rapid.IntRange(0, 4).Draw(t, "onsnap") == 0 {
		target = &w.snaps[rapid.IntRange(0, len(w.snaps)-1).Draw(t, "snap")]
	}
	b, err := target.t.Begin()
	w.must(err)
	model := maps.Clone(target.model)
	var newExts []uint64 // references the caller holds if it aborts
	n := rapid.IntRange(1, 40).Draw(t, "ops")
	for range n {
		k := keyGen.Draw(t, "key")
		if rapid.IntRange(0, 3).Draw(t, "del") == 0 {
			w.must(b.Delete([]byte(k)))
			delete(model, k)
			continue
		}
		var v []byte
		switch rapid.IntRange(0, 3).Draw(t, "vkind") {
		case 0:
			id := w.s.newExtent()
			newExts = append(newExts, id)
			v = extentValue(id, rapid.IntRange(0, 100).Draw(t, "epad"))
		case 1:
			if id, ok := anyExtent(model); ok {
				w.s.incExtent(id)
				newExts = append(newExts, id)
				v = extentValue(id, 0)
				break
			}
			fallthrough
		default:
			v = bytes.Repeat([]byte{byte('a' + len(model)%26)}, rapid.IntRange(0, w.f.valueMax).Draw(t, "vlen"))
		}
		w.must(b.Put([]byte(k), v))
		model[k] = string(v)
	}
	if rapid.IntRange(0, 5).Draw(t, "abort") == 0 {
		b.Abort()
		for _, id := range newExts { // the caller drops what it meant to give
			w.must(w.s.AdjustValue(0, nil, extentValue(id, 0), -1))
		}
		return
	}
	nt, err := b.Commit()
	w.must(err)
	*target = version{t: nt, model: model}
}

func anyExtent(m map[string]string) (uint64, bool) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if id, ok := extentOf([]byte(m[k])); ok {
			return id, true
		}
	}
	return 0, false
}

func (w *world) snapshot() {
	w.must(w.live.t.Share())
	w.snaps = append(w.snaps, version{t: w.live.t, model: maps.Clone(w.live.model)})
}

// restore makes the live root a snapshot's and drops the old live root.
func (w *world) restore(t *rapid.T) {
	if len(w.snaps) == 0 {
		return
	}
	s := w.snaps[rapid.IntRange(0, len(w.snaps)-1).Draw(t, "snap")]
	w.must(s.t.Share())
	w.drops = append(w.drops, w.f.Drop(w.live.t))
	w.live = version{t: s.t, model: maps.Clone(s.model)}
}

func (w *world) deleteSnapshot(t *rapid.T) {
	if len(w.snaps) == 0 {
		return
	}
	i := rapid.IntRange(0, len(w.snaps)-1).Draw(t, "snap")
	w.drops = append(w.drops, w.f.Drop(w.snaps[i].t))
	w.snaps = slices.Delete(w.snaps, i, i+1)
}

func (w *world) dropStep(t *rapid.T) {
	if len(w.drops) == 0 {
		return
	}
	i := rapid.IntRange(0, len(w.drops)-1).Draw(t, "drop")
	done, err := w.drops[i].Step(rapid.IntRange(1, 30).Draw(t, "budget"))
	w.must(err)
	if done {
		w.drops = slices.Delete(w.drops, i, i+1)
	}
}

// checkpoint writes every counted root, sometimes republishes the persisted
// versions, and round-trips the drop cursors that can be encoded.
func (w *world) checkpoint(t *rapid.T) {
	w.epoch++
	trees := []*Tree{w.live.t}
	for _, s := range w.snaps {
		trees = append(trees, s.t)
	}
	// Unstarted drops still hold their root's reference.
	for _, d := range w.drops {
		if !d.started {
			trees = append(trees, &Tree{f: w.f, kind: d.kind, root: d.root})
		}
	}
	out, err := w.f.Checkpoint(w.epoch, trees...)
	w.must(err)
	if w.f.Stats().DirtyNodes != 0 && !w.dropsHoldDirty() {
		t.Fatalf("%d dirty nodes after a checkpoint", w.f.Stats().DirtyNodes)
	}
	if rapid.Bool().Draw(t, "republish") {
		w.live.t = out[0]
		for i := range w.snaps {
			w.snaps[i].t = out[1+i]
		}
	}
	for i, d := range w.drops {
		b, err := d.MarshalBinary()
		if errors.Is(err, ErrNotPersisted) {
			continue
		}
		w.must(err)
		d2, err := w.f.ResumeDrop(b)
		w.must(err)
		w.drops[i] = d2
	}
}

func (w *world) dropsHoldDirty() bool {
	for _, d := range w.drops {
		for _, fr := range d.frames {
			if fr.c.resolved().IsZero() {
				return true
			}
		}
	}
	return false
}

func (w *world) diff(t *rapid.T) {
	all := append([]version{w.live}, w.snaps...)
	a := all[rapid.IntRange(0, len(all)-1).Draw(t, "a")]
	b := all[rapid.IntRange(0, len(all)-1).Draw(t, "b")]
	var got []string
	for c, err := range Diff(a.t, b.t) {
		w.must(err)
		got = append(got, fmt.Sprintf("%d %q %q %q", c.Kind, c.Key, c.Old, c.New))
	}
	if want := modelDiff(a.model, b.model); !slices.Equal(got, want) {
		t.Fatalf("diff:\n got %q\nwant %q", got, want)
	}
}

func modelDiff(a, b map[string]string) []string {
	keys := slices.Sorted(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys {
		va, ina := a[k]
		vb, inb := b[k]
		switch {
		case !ina:
			out = append(out, fmt.Sprintf("%d %q %q %q", Added, k, "", vb))
		case !inb:
			out = append(out, fmt.Sprintf("%d %q %q %q", Removed, k, va, ""))
		case va != vb:
			out = append(out, fmt.Sprintf("%d %q %q %q", Modified, k, va, vb))
		}
	}
	return out
}

// checkRange checks Range with random bounds (either may be nil, start may
// be at or past end) against the model's keys in [start, end).
func (w *world) checkRange(t *rapid.T, v version) {
	bound := func(label string) []byte {
		if rapid.IntRange(0, 3).Draw(t, label+"nil") == 0 {
			return nil
		}
		return []byte(keyGen.Draw(t, label))
	}
	start, end := bound("start"), bound("end")
	var got, want []string
	for e, err := range v.t.Range(start, end) {
		w.must(err)
		got = append(got, string(e.Key)+"="+string(e.Value))
	}
	for _, k := range slices.Sorted(maps.Keys(v.model)) {
		if (start == nil || k >= string(start)) && (end == nil || k < string(end)) {
			want = append(want, k+"="+v.model[k])
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Range(%q, %q): %d entries, model %d", start, end, len(got), len(want))
	}
}

// checkContents checks that every counted root reads back equal to its
// model, by a full scan, a prefix scan and point reads.
func (w *world) checkContents(t *rapid.T) {
	for _, v := range append([]version{w.live}, w.snaps...) {
		w.must(v.t.Verify())
		got := map[string]string{}
		var last []byte
		for e, err := range v.t.Range(nil, nil) {
			w.must(err)
			if last != nil && bytes.Compare(last, e.Key) >= 0 {
				t.Fatalf("keys out of order: %q then %q", last, e.Key)
			}
			last = e.Key
			got[string(e.Key)] = string(e.Value)
		}
		if !maps.Equal(got, v.model) {
			t.Fatalf("version holds %d keys, model %d", len(got), len(v.model))
		}
		for k, want := range v.model {
			val, ok, err := v.t.Get([]byte(k))
			w.must(err)
			if !ok || string(val) != want {
				t.Fatalf("Get(%q) = %v", k, ok)
			}
			break
		}
		w.checkRange(t, v)
		n := 0
		for _, err := range v.t.Prefix([]byte("001")) {
			w.must(err)
			n++
		}
		want := 0
		for k := range v.model {
			if len(k) >= 3 && k[:3] == "001" {
				want++
			}
		}
		if n != want {
			t.Fatalf("Prefix(001) yields %d, model %d", n, want)
		}
	}
}

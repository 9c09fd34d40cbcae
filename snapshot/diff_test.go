package snapshot_test

import (
	"errors"
	"iter"
	"math"
	"slices"
	"testing"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/snapshot"
)

// collect runs Translate to its end.
func collect(changes iter.Seq2[btree.Change, error], bs int, from, to snapshot.Lookup) ([]snapshot.Change, error) {
	var out []snapshot.Change
	for c, err := range snapshot.Translate(changes, bs, from, to) {
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, nil
}

// commit applies fn to a batch on tr and commits it.
func commit(t *testing.T, tr *btree.Tree, fn func(b *btree.Batch)) *btree.Tree {
	t.Helper()
	b, err := tr.Begin()
	if err != nil {
		t.Fatal(err)
	}
	fn(b)
	out, err := b.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTranslateBlocksOnly checks the case no inode record shows: a blob
// whose size stays the same and one of whose blocks is rewritten changes
// only extent records, and Translate finds its key through the blob index
// and reports that block alone. Without an index entry in the newer tree
// the change cannot be attributed and is not reported; with one naming a
// key that does not hold the blob, it is corruption.
func TestTranslateBlocksOnly(t *testing.T) {
	const bs = 4096
	f := newForest(t)
	m := newModel(bs)
	a := commit(t, f.Empty(namespaceKind), func(b *btree.Batch) {
		m.set(t, b, "inline", &value{id: m.newID(), inline: true, data: []byte("x")})
		m.set(t, b, "blob", &value{id: m.newID(), size: 3 * bs, recs: m.write(nil, 0, 3)})
	})
	if err := a.Share(); err != nil {
		t.Fatal(err)
	}
	v := *m.keys["blob"]
	b := commit(t, a, func(b *btree.Batch) {
		v.recs = m.write(slices.Clone(v.recs), 1, 2)
		m.set(t, b, "blob", &v)
	})
	for c, err := range btree.Diff(a, b) {
		if err != nil || c.Key[0] != format.KeyPrefixExtent {
			t.Fatalf("diff has %q (%v), want extent records only", c.Key, err)
		}
	}
	got, err := collect(btree.Diff(a, b), bs, a.Get, b.Get)
	want := []snapshot.Change{{Key: []byte("blob"), Kind: snapshot.Modified, Ranges: []snapshot.Range{{bs, bs}}}}
	if err != nil || !changesEqual(got, want) {
		t.Fatalf("got %v, %v; want %v", got, err, want)
	}

	ik := format.BlobKeyKey(nil, v.id)
	noIndex := func(k []byte) ([]byte, bool, error) {
		if string(k) == string(ik) {
			return nil, false, nil
		}
		return b.Get(k)
	}
	if got, err := collect(btree.Diff(a, b), bs, a.Get, noIndex); err != nil || len(got) != 0 {
		t.Fatalf("without an index entry: got %v, %v; want nothing", got, err)
	}
	wrongIndex := func(k []byte) ([]byte, bool, error) {
		if string(k) == string(ik) {
			return []byte("inline"), true, nil
		}
		return b.Get(k)
	}
	if _, err := collect(btree.Diff(a, b), bs, a.Get, wrongIndex); !errors.Is(err, format.ErrCorrupt) {
		t.Fatalf("with an index entry naming another key: got %v, want ErrCorrupt", err)
	}
}

func changesEqual(a, b []snapshot.Change) bool {
	return slices.EqualFunc(a, b, func(x, y snapshot.Change) bool {
		return string(x.Key) == string(y.Key) && x.Kind == y.Kind && slices.Equal(x.Ranges, y.Ranges) && (x.Ranges == nil) == (y.Ranges == nil)
	})
}

// stream yields the given changes in order, then err if it is not nil.
func stream(err error, cs ...btree.Change) iter.Seq2[btree.Change, error] {
	return func(yield func(btree.Change, error) bool) {
		for _, c := range cs {
			if !yield(c, nil) {
				return
			}
		}
		if err != nil {
			yield(btree.Change{}, err)
		}
	}
}

// lookupOf is a Lookup over a map.
func lookupOf(m map[string]string) snapshot.Lookup {
	return func(k []byte) ([]byte, bool, error) {
		v, ok := m[string(k)]
		return []byte(v), ok, nil
	}
}

func inodeKey(k string) []byte { return format.InodeKey(nil, []byte(k)) }
func blobRec(id format.InodeID, size int64) []byte {
	return format.AppendInode(nil, format.Inode{ID: id, Size: size})
}
func extRecord(start format.Block, n uint64) []byte {
	return cowio.EncodeExtentRecord(nil, cowio.ExtentRecord{Start: start, Len: n, Sums: make([]uint64, n)})
}

// TestTranslateSizes checks the ranges of a blob modified in place by
// hand: a shrink reports the blocks from the one holding the new size's
// last byte to the old size, cut at the old size; extent changes past
// both sizes are clipped away; and the blocks of a rewritten record merge
// with the size's range.
func TestTranslateSizes(t *testing.T) {
	const bs = 4096
	none := lookupOf(nil)
	k := inodeKey("b")
	cases := []struct {
		name    string
		changes []btree.Change
		want    []snapshot.Range
	}{
		{"shrink", []btree.Change{
			{Kind: btree.Modified, Key: k, Old: blobRec(5, 10000), New: blobRec(5, 5000)},
		}, []snapshot.Range{{4096, 10000 - 4096}}},
		{"grow from empty", []btree.Change{
			{Kind: btree.Modified, Key: k, Old: blobRec(5, 0), New: blobRec(5, 1)},
		}, []snapshot.Range{{0, 1}}},
		{"shrink with records", []btree.Change{
			{Kind: btree.Modified, Key: k, Old: blobRec(5, 10000), New: blobRec(5, 5000)},
			{Kind: btree.Removed, Key: format.ExtentKey(nil, 5, 0), Old: extRecord(100, 3)},
			{Kind: btree.Added, Key: format.ExtentKey(nil, 5, 0), New: extRecord(100, 1)},
			{Kind: btree.Added, Key: format.ExtentKey(nil, 5, 10), New: extRecord(200, 2)},
		}, []snapshot.Range{{4096, 10000 - 4096}}},
		{"grow over a gap", []btree.Change{
			{Kind: btree.Modified, Key: k, Old: blobRec(5, 3*bs), New: blobRec(5, 8*bs)},
			{Kind: btree.Added, Key: format.ExtentKey(nil, 5, 0), New: extRecord(300, 1)},
		}, []snapshot.Range{{0, bs}, {3 * bs, 5 * bs}}},
	}
	for _, c := range cases {
		got, err := collect(stream(nil, c.changes...), bs, none, none)
		want := []snapshot.Change{{Key: []byte("b"), Kind: snapshot.Modified, Ranges: c.want}}
		if err != nil || !changesEqual(got, want) {
			t.Errorf("%s: got %v, %v; want %v", c.name, got, err, want)
		}
	}
}

// TestTranslateRejects checks that every malformed key or record in the
// change stream, and records of one side that overlap, are reported as
// corruption, not a panic.
func TestTranslateRejects(t *testing.T) {
	inPlace := btree.Change{Kind: btree.Modified, Key: inodeKey("b"), Old: blobRec(5, 100<<12), New: blobRec(5, 101<<12)}
	bad := map[string][]btree.Change{
		"empty key":      {{Kind: btree.Added, Key: nil, New: []byte("v")}},
		"unknown prefix": {{Kind: btree.Added, Key: []byte("zz"), New: []byte("v")}},
		"bare k":         {{Kind: btree.Added, Key: []byte("k"), New: blobRec(1, 0)}},
		"bad inode":      {{Kind: btree.Added, Key: inodeKey("a"), New: []byte("short")}},
		"bad old inode":  {{Kind: btree.Removed, Key: inodeKey("a"), Old: blobRec(0, 1)}},
		"index key":      {{Kind: btree.Added, Key: []byte("i123"), New: []byte("a")}},
		"extent key":     {{Kind: btree.Added, Key: []byte("x123"), New: extRecord(9, 1)}},
		"extent of 0":    {{Kind: btree.Added, Key: format.ExtentKey(nil, 0, 0), New: extRecord(9, 1)}},
		"bad extent":     {{Kind: btree.Added, Key: format.ExtentKey(nil, 3, 0), New: []byte("short")}},
		"extent wraps":   {{Kind: btree.Added, Key: format.ExtentKey(nil, 3, math.MaxUint64-1), New: extRecord(9, 2)}},
		"overlap": {inPlace,
			{Kind: btree.Added, Key: format.ExtentKey(nil, 5, 0), New: extRecord(9, 4)},
			{Kind: btree.Added, Key: format.ExtentKey(nil, 5, 2), New: extRecord(20, 4)},
		},
	}
	none := lookupOf(nil)
	for name, cs := range bad {
		if got, err := collect(stream(nil, cs...), 4096, none, none); !errors.Is(err, format.ErrCorrupt) || len(got) != 0 {
			t.Errorf("%s: got %v, %v; want ErrCorrupt alone", name, got, err)
		}
	}
	// A bad blob index entry: empty, or naming a key without the blob.
	x := btree.Change{Kind: btree.Added, Key: format.ExtentKey(nil, 5, 0), New: extRecord(9, 1)}
	for name, to := range map[string]map[string]string{
		"empty index":   {string(format.BlobKeyKey(nil, 5)): ""},
		"missing key":   {string(format.BlobKeyKey(nil, 5)): "b"},
		"another inode": {string(format.BlobKeyKey(nil, 5)): "b", string(inodeKey("b")): string(blobRec(6, 1))},
		"bad inode":     {string(format.BlobKeyKey(nil, 5)): "b", string(inodeKey("b")): "bad"},
	} {
		if _, err := collect(stream(nil, x), 4096, none, lookupOf(to)); !errors.Is(err, format.ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
}

// TestTranslateErrors checks that an error of the stream or of a lookup is
// yielded, testable with errors.Is, and ends the iteration.
func TestTranslateErrors(t *testing.T) {
	boom := errors.New("boom")
	added := btree.Change{Kind: btree.Added, Key: inodeKey("a"), New: blobRec(1, 0)}
	n := 0
	for _, err := range snapshot.Translate(stream(boom, added), 4096, lookupOf(nil), lookupOf(nil)) {
		n++
		if !errors.Is(err, boom) {
			t.Fatalf("got %v, want the stream's error", err)
		}
	}
	if n != 1 {
		t.Fatalf("%d results, want the error alone", n)
	}
	failing := func([]byte) ([]byte, bool, error) { return nil, false, boom }
	x := btree.Change{Kind: btree.Added, Key: format.ExtentKey(nil, 5, 0), New: extRecord(9, 1)}
	if _, err := collect(stream(nil, x), 4096, lookupOf(nil), failing); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the lookup's error", err)
	}
	to := lookupOf(map[string]string{string(format.BlobKeyKey(nil, 5)): "b", string(inodeKey("b")): string(blobRec(5, 1))})
	if _, err := collect(stream(nil, x), 4096, failing, to); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the older tree's lookup error", err)
	}
}

// TestTranslateOrderAndStop checks that changes come in key order, also
// those only the blob index finds, and that a consumer may stop early.
func TestTranslateOrderAndStop(t *testing.T) {
	from := lookupOf(map[string]string{string(inodeKey("m")): string(blobRec(5, 4096))})
	to := lookupOf(map[string]string{
		string(format.BlobKeyKey(nil, 5)): "m",
		string(inodeKey("m")):             string(blobRec(5, 4096)),
	})
	cs := stream(nil,
		btree.Change{Kind: btree.Added, Key: format.BlobKeyKey(nil, 9), New: []byte("z")},
		btree.Change{Kind: btree.Added, Key: inodeKey("a"), New: blobRec(8, 0)},
		btree.Change{Kind: btree.Removed, Key: inodeKey("z"), Old: blobRec(9, 0)},
		btree.Change{Kind: btree.Added, Key: format.ExtentKey(nil, 5, 0), New: extRecord(9, 1)},
	)
	got, err := collect(cs, 4096, from, to)
	want := []snapshot.Change{
		{Key: []byte("a"), Kind: snapshot.Added},
		{Key: []byte("m"), Kind: snapshot.Modified, Ranges: []snapshot.Range{{0, 4096}}},
		{Key: []byte("z"), Kind: snapshot.Removed},
	}
	if err != nil || !changesEqual(got, want) {
		t.Fatalf("got %v, %v; want %v", got, err, want)
	}
	n := 0
	for range snapshot.Translate(cs, 4096, from, to) {
		n++
		break
	}
	if n != 1 {
		t.Fatalf("%d changes after a break", n)
	}
}

// TestChangeKindString checks the kinds' names.
func TestChangeKindString(t *testing.T) {
	for k, want := range map[snapshot.ChangeKind]string{
		snapshot.Added: "added", snapshot.Removed: "removed", snapshot.Modified: "modified", 9: "ChangeKind(9)",
	} {
		if got := k.String(); got != want {
			t.Errorf("%d: got %q, want %q", k, got, want)
		}
	}
}

// FuzzTranslate checks that Translate never panics on whatever a damaged
// tree could hold: the input is a stream of changes (kind, key, old and
// new value, each length-prefixed), and every Added entry is also what
// the lookups of the newer tree find (so blob index entries lead
// somewhere). With lookups that cannot fail, every error must be
// corruption.
func FuzzTranslate(f *testing.F) {
	enc := func(cs ...btree.Change) []byte {
		var b []byte
		for _, c := range cs {
			b = append(b, byte(c.Kind))
			for _, p := range [][]byte{c.Key, c.Old, c.New} {
				b = append(b, byte(len(p)))
				b = append(b, p...)
			}
		}
		return b
	}
	f.Add(enc(
		btree.Change{Kind: btree.Added, Key: format.BlobKeyKey(nil, 5), New: []byte("b")},
		btree.Change{Kind: btree.Modified, Key: inodeKey("a"), Old: blobRec(4, 5000), New: blobRec(4, 9000)},
		btree.Change{Kind: btree.Added, Key: inodeKey("b"), New: blobRec(5, 4096)},
		btree.Change{Kind: btree.Removed, Key: format.ExtentKey(nil, 4, 0), Old: extRecord(9, 2)},
		btree.Change{Kind: btree.Added, Key: format.ExtentKey(nil, 4, 1), New: extRecord(20, 2)},
		btree.Change{Kind: btree.Added, Key: format.ExtentKey(nil, 5, 0), New: extRecord(30, 1)},
	))
	f.Add(enc(btree.Change{Kind: btree.Modified, Key: format.ExtentKey(nil, 5, 3), Old: extRecord(9, 64), New: extRecord(9, 3)}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var cs []btree.Change
		to := map[string]string{}
		for len(b) > 0 {
			c := btree.Change{Kind: btree.ChangeKind(b[0]%3 + 1)}
			b = b[1:]
			for _, p := range []*[]byte{&c.Key, &c.Old, &c.New} {
				if len(b) == 0 {
					break
				}
				n := min(int(b[0]), len(b)-1)
				*p, b = b[1:1+n], b[1+n:]
			}
			if c.Kind == btree.Added {
				to[string(c.Key)] = string(c.New)
			}
			cs = append(cs, c)
		}
		for _, err := range snapshot.Translate(stream(nil, cs...), 4096, lookupOf(to), lookupOf(to)) {
			if err != nil && !errors.Is(err, format.ErrCorrupt) {
				t.Fatalf("error %v is not corruption", err)
			}
		}
	})
}

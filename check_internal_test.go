package cowdb

import (
	"errors"
	"fmt"
	"path"
	"slices"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/snapshot"
	"github.com/cowdb/cowdb/vfs"
)

// checkPersisted verifies the DESIGN §6 invariant on the store in dir as
// its files hold it now: the allocation persisted by the newest valid
// checkpoint (its AG bitmap copies) is exactly the set of blocks reachable
// from that checkpoint's roots (catalog, every namespace root it names,
// their extent records' data, the refcount tree), header blocks aside.
// It also checks every tree's structure. It is the seed of DB.Check.
func checkPersisted(fs vfs.FS, dir string) error {
	f, err := fs.OpenFile(path.Join(dir, dataName), 0)
	if err != nil {
		return err
	}
	defer f.Close()
	read := func(b format.Block, p []byte, bs int) error {
		_, err := f.ReadAt(p, int64(b)*int64(bs))
		return err
	}
	buf := make([]byte, 2*format.BlockSizeMax)
	if n, _ := f.ReadAt(buf, 0); n < 2*4096 {
		return fmt.Errorf("short data file")
	}
	sb, _, err := format.PickSuperblock([2][]byte{buf[:4096], buf[4096:8192]})
	if err != nil {
		return err
	}
	bs := int(sb.BlockSize)
	geo := extents.Geometry{BlockSize: bs, BlocksPerAG: sb.BlocksPerAG, AGCount: sb.AGCount, AGStart: sb.AGStart,
		BitmapBlocks: uint32(format.AGBitmapBlocks(sb.BlocksPerAG, bs))}
	allocated := map[format.Block]bool{}
	for ag := range sb.AGCount {
		var copies [2][]byte
		for slot := range 2 {
			copies[slot] = make([]byte, int(geo.BitmapBlocks)*bs)
			if err := read(geo.BitmapCopy(ag, slot), copies[slot], bs); err != nil {
				return err
			}
		}
		bm, _, err := format.PickAGBitmap(copies, sb.Epoch, sb.StoreID, ag)
		if err != nil {
			return err
		}
		for i := range bm.NBits {
			b := geo.AGFirst(ag) + format.Block(i)
			if i < geo.HeaderBlocks() {
				if !bm.Allocated(i) {
					return fmt.Errorf("header block %d free in its bitmap", b)
				}
				continue
			}
			if bm.Allocated(i) {
				allocated[b] = true
			}
		}
	}
	reach, err := reachable(sb, func(b format.Block, p []byte) error { return read(b, p, bs) })
	if err != nil {
		return err
	}
	var leaked, lost []format.Block
	for b := range allocated {
		if !reach[b] {
			leaked = append(leaked, b)
		}
	}
	for b := range reach {
		if !allocated[b] {
			lost = append(lost, b)
		}
	}
	if len(leaked)+len(lost) > 0 {
		slices.Sort(leaked)
		slices.Sort(lost)
		return fmt.Errorf("epoch %d: allocated but unreachable %v; reachable but free %v", sb.Epoch, leaked, lost)
	}
	return nil
}

// reachable returns every block reachable from sb's roots, after checking
// that the refcount tree holds exactly the count of every block reached by
// more than one referrer: the number of distinct nodes and catalog entries
// pointing at it (a node at a child, a leaf at an extent, a catalog entry
// at a root), DESIGN §4. Nodes a drop in progress has taken to count 0 are
// still allocated but have no count to check.
func reachable(sb format.Superblock, read func(format.Block, []byte) error) (map[format.Block]bool, error) {
	st := &readOnlyStore{read: read}
	forest, err := btree.New(btree.Options{Store: st, BlockSize: int(sb.BlockSize)})
	if err != nil {
		return nil, err
	}
	reach := map[format.Block]bool{}
	refs := map[format.Block]int{}    // referrers met
	unrefd := map[format.Block]bool{} // drop frames: allocated, count 0
	seen := map[format.Block]bool{}   // nodes whose pointers were counted
	visitor := func(leaf func(k, v []byte) error) func(btree.NodeInfo) (bool, error) {
		return func(n btree.NodeInfo) (bool, error) {
			reach[n.Ref.Block] = true
			if seen[n.Ref.Block] {
				return false, nil
			}
			seen[n.Ref.Block] = true
			for _, c := range n.Children {
				refs[c.Block()]++
			}
			if len(n.Children) == 0 && leaf != nil {
				for i := range n.Values {
					if err := leaf(n.Keys[i], n.Values[i]); err != nil {
						return false, err
					}
				}
			}
			return true, nil
		}
	}
	walk := func(t *btree.Tree, leaf func(k, v []byte) error) error {
		if err := t.Verify(); err != nil {
			return err
		}
		if r, ok := t.Root(); ok && r.Block != format.NoBlock {
			refs[r.Block]++
		}
		return t.Walk(visitor(leaf))
	}
	nsLeaf := func(k, v []byte) error {
		if _, _, ok := format.ParseExtentKey(k); !ok {
			return nil
		}
		r, err := cowio.DecodeExtentRecord(v)
		if err != nil {
			return err
		}
		for i := range r.Len {
			reach[r.Start+format.Block(i)] = true
			refs[r.Start+format.Block(i)]++
		}
		return nil
	}
	var roots []format.Ref
	var drops [][]byte
	catalog := forest.Open(kindCatalog, sb.CatalogRoot)
	if err := walk(catalog, func(k, v []byte) error {
		rec, err := snapshot.DecodeRecord(v)
		if rec.Kind == snapshot.RootDropping {
			drops = append(drops, rec.Cursor)
		} else {
			roots = append(roots, rec.Root)
		}
		return err
	}); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	for _, r := range roots {
		if err := walk(forest.Open(kindNamespace, r), nsLeaf); err != nil {
			return nil, fmt.Errorf("namespace root %d: %w", r.Block, err)
		}
	}
	for _, cur := range drops {
		d, err := forest.ResumeDrop(cur)
		if err != nil {
			return nil, err
		}
		for _, fr := range d.Frames() {
			unrefd[fr.Block] = true
		}
		first := !d.Started()
		v := visitor(nsLeaf)
		if err := d.Walk(func(n btree.NodeInfo) (bool, error) {
			if first {
				first = false
				refs[n.Ref.Block]++ // the catalog entry's, until the first step
			}
			return v(n)
		}); err != nil {
			return nil, fmt.Errorf("drop: %w", err)
		}
	}
	if err := walk(forest.Open(kindRefcount, sb.RefcountRoot), nil); err != nil {
		return nil, fmt.Errorf("refcount tree: %w", err)
	}
	// The refcount tree against the referrers counted.
	stored := map[format.Block]int{}
	for e, err := range forest.Open(kindRefcount, sb.RefcountRoot).Range(nil, nil) {
		if err != nil {
			return nil, err
		}
		r, err := decodeRefcount(e.Key, e.Value)
		if err != nil {
			return nil, err
		}
		for i := range r.Len {
			stored[r.Start+format.Block(i)] = int(r.Count)
		}
	}
	var wrong []string
	for b, n := range refs {
		if unrefd[b] {
			continue
		}
		want := 0
		if n >= 2 {
			want = n
		}
		if stored[b] != want && !(want > 0 && stored[b] == int(extents.RefcountMaxDefault)) {
			wrong = append(wrong, fmt.Sprintf("block %d: %d referrers, refcount record %d", b, n, stored[b]))
		}
	}
	for b, c := range stored {
		if refs[b] == 0 && !unrefd[b] {
			wrong = append(wrong, fmt.Sprintf("block %d: refcount record %d, no referrer", b, c))
		}
	}
	if len(wrong) > 0 {
		slices.Sort(wrong)
		return nil, fmt.Errorf("refcounts disagree with the trees (%d blocks): %v", len(wrong), wrong[:min(len(wrong), 10)])
	}
	return reach, nil
}

// readOnlyStore is a btree.BlockStore that only reads.
type readOnlyStore struct {
	read func(format.Block, []byte) error
}

var errReadOnlyStore = errors.New("read-only store")

func (s *readOnlyStore) ReadNode(b format.Block, buf []byte) error { return s.read(b, buf) }
func (s *readOnlyStore) AllocNode() (format.Block, error)          { return 0, errReadOnlyStore }
func (s *readOnlyStore) WriteNode(format.Block, []byte) error      { return errReadOnlyStore }
func (s *readOnlyStore) NodeCount(format.Block) (uint64, error)    { return 1, nil }
func (s *readOnlyStore) IncNode(format.Block) error                { return errReadOnlyStore }
func (s *readOnlyStore) DecNode(format.Block) (uint64, error)      { return 0, errReadOnlyStore }
func (s *readOnlyStore) FreeNode(format.Block) error               { return errReadOnlyStore }
func (s *readOnlyStore) AdjustValue(btree.TreeKind, []byte, []byte, int) error {
	return errReadOnlyStore
}

package cowdb_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/snapshot"
	"github.com/cowdb/cowdb/vfs"
)

// fillRich writes a store's worth of everything Check walks: inline and
// extent values, a blob written at unaligned offsets, snapshots, clones
// (shared extents, so refcount records), deletes, a deleted snapshot (a
// drop) and a restore (the old live root dropped).
func fillRich(t testing.TB, db *cowdb.DB) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	val := func(n int) []byte {
		v := make([]byte, n)
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		return v
	}
	for i := range 300 {
		must(db.Put([]byte(fmt.Sprintf("k%03d", i)), val(10+i%200)))
	}
	for i := range 6 {
		must(db.Put([]byte(fmt.Sprintf("big%d", i)), val(20000+i*4096)))
	}
	b, err := db.CreateBlob([]byte("blob"))
	must(err)
	_, err = b.WriteAt(val(5*4096), 0)
	must(err)
	_, err = b.WriteAt(val(100), 4095)
	must(err)
	must(b.Close())
	_, err = db.Snapshot("s1")
	must(err)
	for i := range 100 {
		must(db.Put([]byte(fmt.Sprintf("k%03d", i*3)), val(50)))
	}
	must(db.Delete([]byte("big1")))
	b, err = db.OpenBlob([]byte("blob"))
	must(err)
	_, err = b.WriteAt(val(4096), 8192)
	must(err)
	must(b.Close())
	must(db.Clone([]byte("big0"), []byte("clone0")))
	must(db.CloneFrom("s1", []byte("big1"), []byte("old1")))
	_, err = db.Snapshot("s2")
	must(err)
	must(db.Put([]byte("big3"), val(9000)))
	must(db.DeleteSnapshot("s1"))
	_, err = db.Snapshot("s3")
	must(err)
	must(db.Put([]byte("after"), val(30000)))
	must(db.Restore("s2"))
	must(db.Put([]byte("restored"), val(12000)))
}

// TestCheckClean checks that a store holding every kind of root and value
// passes Check while a writer keeps writing (run it under -race), and
// passes the offline CheckDir once closed.
func TestCheckClean(t *testing.T) {
	fs := vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	fillRich(t, db)
	if err := db.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k := []byte(fmt.Sprintf("w%03d", i%50))
			var err error
			switch i % 4 {
			case 0:
				err = db.Put(k, bytes.Repeat([]byte{byte(i)}, 9000))
			case 1:
				err = db.Put(k, []byte("small"))
			case 2:
				err = db.Delete(k)
			case 3:
				err = db.Clone([]byte("big0"), k)
			}
			if err != nil {
				werr = err
				return
			}
		}
	}()
	for range 3 {
		if err := db.Check(); err != nil {
			t.Errorf("Check while writing: %v", err)
			break
		}
	}
	close(stop)
	wg.Wait()
	if werr != nil {
		t.Fatalf("writer: %v", werr)
	}
	if err := cowdb.CheckDir("/db", memOpts(fs)); !errors.Is(err, cowdb.ErrLocked) {
		t.Fatalf("CheckDir of an open store: %v, want ErrLocked", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Check(); !errors.Is(err, cowdb.ErrClosed) {
		t.Fatalf("Check after Close: %v, want ErrClosed", err)
	}
	if err := cowdb.CheckDir("/db", memOpts(fs)); err != nil {
		t.Fatalf("CheckDir: %v", err)
	}
	o := memOpts(fs)
	o.ReadOnly = true
	ro, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.Check(); err != nil {
		t.Fatalf("Check of a ReadOnly DB: %v", err)
	}
}

// TestCheckProgress checks the progress hook: done only grows, never
// passes total, and ends at total.
func TestCheckProgress(t *testing.T) {
	fs := vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	fillRich(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var calls [][2]int64
	err := cowdb.CheckDirWith("/db", memOpts(fs), cowdb.CheckOptions{Progress: func(done, total int64) {
		calls = append(calls, [2]int64{done, total})
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) == 0 {
		t.Fatal("Progress never called")
	}
	last := calls[len(calls)-1]
	if last[0] != last[1] || last[1] == 0 {
		t.Fatalf("last call %v, want done == total > 0", last)
	}
	for i, c := range calls {
		if c[0] > c[1] || c[1] != last[1] || i > 0 && c[0] < calls[i-1][0] {
			t.Fatalf("calls %v", calls)
		}
	}
}

// image is the durable data file of a closed store on a MemFS, opened for
// surgery: the tests damage it in ways checksums alone cannot catch (a
// valid node holding a wrong value, a bitmap with a bit flipped and its
// checksum recomputed), rewriting the path from the changed node up to the
// superblock in place, so that each kind of violation can be seeded alone.
type image struct {
	t  *testing.T
	f  vfs.File
	sb format.Superblock
	bs int
}

func openImage(t *testing.T, fs vfs.FS) *image {
	t.Helper()
	f, err := fs.OpenFile("/db/data", vfs.ReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	buf := make([]byte, 2*format.NodeBlockSizeMax)
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	for bs := format.NodeBlockSizeMin; bs <= format.NodeBlockSizeMax; bs *= 2 {
		sb, _, err := format.PickSuperblock([2][]byte{buf[:bs], buf[bs : 2*bs]})
		if err == nil && int(sb.BlockSize) == bs {
			return &image{t: t, f: f, sb: sb, bs: bs}
		}
	}
	t.Fatal("no superblock")
	return nil
}

func (im *image) read(b format.Block, n int) []byte {
	im.t.Helper()
	p := make([]byte, n*im.bs)
	if _, err := im.f.ReadAt(p, int64(b)*int64(im.bs)); err != nil {
		im.t.Fatal(err)
	}
	return p
}

func (im *image) write(b format.Block, p []byte) {
	im.t.Helper()
	if _, err := im.f.WriteAt(p, int64(b)*int64(im.bs)); err != nil {
		im.t.Fatal(err)
	}
	if err := im.f.Sync(); err != nil {
		im.t.Fatal(err)
	}
}

// flip inverts one byte of block b.
func (im *image) flip(b format.Block, off int) {
	p := im.read(b, 1)
	p[off] ^= 0xff
	im.write(b, p)
}

func (im *image) node(b format.Block) format.Node {
	im.t.Helper()
	n, err := format.DecodeNode(im.read(b, 1))
	if err != nil {
		im.t.Fatalf("node %d: %v", b, err)
	}
	return n
}

// step is one node of a path down a tree: its block, its decoded form,
// and the entry followed (in a leaf: the last key <= the one looked for,
// -1 if none).
type step struct {
	b format.Block
	n format.Node
	i int
}

// path returns the nodes from root down to the leaf where key is or
// would be.
func (im *image) path(root format.Ref, key []byte) []step {
	var p []step
	for ref := root; ; {
		n := im.node(ref.Block)
		i := sort.Search(len(n.Keys), func(j int) bool { return bytes.Compare(n.Keys[j], key) > 0 }) - 1
		if n.Kind == format.NodeLeaf {
			return append(p, step{ref.Block, n, i})
		}
		i = max(i, 0)
		p = append(p, step{ref.Block, n, i})
		ref = n.Children[i]
	}
}

// get returns key's value in the tree rooted at root.
func (im *image) get(root format.Ref, key []byte) []byte {
	im.t.Helper()
	p := im.path(root, key)
	l := p[len(p)-1]
	if l.i < 0 || !bytes.Equal(l.n.Keys[l.i], key) {
		im.t.Fatalf("key %q not found", key)
	}
	return l.n.Values[l.i]
}

// rewrite re-encodes a path's nodes in place, leaf first, each parent
// taking its child's new checksum, and returns the root's new Ref.
func (im *image) rewrite(p []step) format.Ref {
	im.t.Helper()
	var sum uint64
	for j := len(p) - 1; j >= 0; j-- {
		s := p[j]
		if j < len(p)-1 {
			s.n.Children[s.i].Sum = sum
		}
		buf := make([]byte, im.bs)
		var err error
		if sum, err = format.EncodeNode(buf, &s.n); err != nil {
			im.t.Fatal(err)
		}
		im.write(s.b, buf)
	}
	return format.Ref{Block: p[0].b, Sum: sum}
}

// edit changes, with fn, the leaf where key is or would be (i as in step)
// and returns the tree's new root.
func (im *image) edit(root format.Ref, key []byte, fn func(n *format.Node, i int)) format.Ref {
	p := im.path(root, key)
	l := &p[len(p)-1]
	fn(&l.n, l.i)
	return im.rewrite(p)
}

func (im *image) writeSuperblock() {
	im.write(format.Block(format.SuperblockCopyIndex(im.sb.Epoch)), im.sb.Encode(im.bs))
}

// liveRoot returns the live namespace tree's root.
func (im *image) liveRoot() format.Ref {
	im.t.Helper()
	rec, err := snapshot.DecodeRecord(im.get(im.sb.CatalogRoot, snapshot.LiveKey))
	if err != nil {
		im.t.Fatal(err)
	}
	return rec.Root
}

// editLive edits the live namespace tree (see edit), then the catalog
// entry holding its root, then the superblock.
func (im *image) editLive(key []byte, fn func(n *format.Node, i int)) {
	im.editRoot(snapshot.LiveKey, key, fn)
}

// editRoot edits the namespace tree whose root the catalog entry catKey
// holds (see edit), then that entry, then the superblock.
func (im *image) editRoot(catKey, key []byte, fn func(n *format.Node, i int)) {
	rec, err := snapshot.DecodeRecord(im.get(im.sb.CatalogRoot, catKey))
	if err != nil {
		im.t.Fatal(err)
	}
	root := im.edit(rec.Root, key, fn)
	im.sb.CatalogRoot = im.edit(im.sb.CatalogRoot, catKey, func(n *format.Node, i int) {
		rec, _ := snapshot.DecodeRecord(n.Values[i])
		rec.Root = root
		n.Values[i] = snapshot.AppendRecord(nil, rec)
	})
	im.writeSuperblock()
}

// blob returns the inode of key's blob and its first extent record.
func (im *image) blob(key string) (format.InodeID, cowio.ExtentRecord) {
	im.t.Helper()
	root := im.liveRoot()
	ino, err := format.DecodeInode(im.get(root, format.InodeKey(nil, []byte(key))))
	if err != nil {
		im.t.Fatal(err)
	}
	rec, err := cowio.DecodeExtentRecord(im.get(root, format.ExtentKey(nil, ino.ID, 0)))
	if err != nil {
		im.t.Fatal(err)
	}
	return ino.ID, rec
}

// setBit sets block b allocated or free in the bitmap copy in use.
func (im *image) setBit(b format.Block, allocated bool) {
	bpa := format.Block(im.sb.BlocksPerAG)
	ag := uint32((b - im.sb.AGStart) / bpa)
	first := im.sb.AGStart + format.Block(ag)*bpa
	n := format.AGBitmapBlocks(im.sb.BlocksPerAG, im.bs)
	buf := im.read(first, 2*n)
	bm, slot, err := format.PickAGBitmap([2][]byte{buf[:n*im.bs], buf[n*im.bs:]}, im.sb.Epoch, im.sb.StoreID, ag)
	if err != nil {
		im.t.Fatal(err)
	}
	bm.SetAllocated(uint32(b-first), allocated)
	im.write(first+format.Block(slot*n), bm.Encode(im.bs))
}

// freeBlock returns a block free in AG 0's bitmap, past its header.
func (im *image) freeBlock() format.Block {
	n := format.AGBitmapBlocks(im.sb.BlocksPerAG, im.bs)
	buf := im.read(im.sb.AGStart, 2*n)
	bm, _, err := format.PickAGBitmap([2][]byte{buf[:n*im.bs], buf[n*im.bs:]}, im.sb.Epoch, im.sb.StoreID, 0)
	if err != nil {
		im.t.Fatal(err)
	}
	for i := uint32(2 * n); i < bm.NBits; i++ {
		if !bm.Allocated(i) {
			return im.sb.AGStart + format.Block(i)
		}
	}
	im.t.Fatal("no free block")
	return 0
}

// damageBase is a closed store for the damage tests: small values over
// several leaves, a blob of five blocks and a clone sharing its extents
// (so the refcount tree has records), no snapshot (so editing a node in
// place changes one root).
func damageBase(t *testing.T) *vfs.MemFS {
	t.Helper()
	fs := vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	for i := range 300 {
		if err := db.Put([]byte(fmt.Sprintf("k%03d", i)), bytes.Repeat([]byte{byte(i)}, 60)); err != nil {
			t.Fatal(err)
		}
	}
	v := make([]byte, 5*4096)
	for i := range v {
		v[i] = byte(i * 7)
	}
	if err := db.Put([]byte("blob"), v); err != nil {
		t.Fatal(err)
	}
	if err := db.Clone([]byte("blob"), []byte("clone")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cowdb.CheckDir("/db", memOpts(fs)); err != nil {
		t.Fatalf("undamaged: %v", err)
	}
	return fs
}

// violations returns the violations err lists, failing unless it is a
// *CheckError wrapping ErrCorrupt.
func violations(t *testing.T, err error) *cowdb.CheckError {
	t.Helper()
	var ce *cowdb.CheckError
	if !errors.As(err, &ce) || !errors.Is(err, cowdb.ErrCorrupt) {
		t.Fatalf("got %v, want a *CheckError wrapping ErrCorrupt", err)
	}
	return ce
}

// findViolation reports whether ce holds a violation of want's kind and,
// where want sets them, its block and key.
func findViolation(ce *cowdb.CheckError, want cowdb.Violation) bool {
	return slices.ContainsFunc(ce.Violations, func(v cowdb.Violation) bool {
		return v.Kind == want.Kind && (want.Block == 0 || v.Block == want.Block) && (want.Key == nil || bytes.Equal(v.Key, want.Key))
	})
}

// TestCheckFindsDamage seeds one kind of damage at a time into a copy of
// a clean image and requires the offline check to report it with its
// kind, block and key.
func TestCheckFindsDamage(t *testing.T) {
	base := damageBase(t)
	for _, tc := range []struct {
		name    string
		damage  func(im *image) cowdb.Violation
		partial bool
	}{
		{name: "data checksum", damage: func(im *image) cowdb.Violation {
			_, rec := im.blob("blob")
			im.flip(rec.Start+1, 100)
			return cowdb.Violation{Kind: cowdb.ViolationChecksum, Block: uint64(rec.Start) + 1, Key: []byte("blob")}
		}},
		{name: "lost", damage: func(im *image) cowdb.Violation {
			_, rec := im.blob("blob")
			im.setBit(rec.Start+2, false)
			return cowdb.Violation{Kind: cowdb.ViolationLost, Block: uint64(rec.Start) + 2}
		}},
		{name: "leak", damage: func(im *image) cowdb.Violation {
			b := im.freeBlock()
			im.setBit(b, true)
			return cowdb.Violation{Kind: cowdb.ViolationLeak, Block: uint64(b)}
		}},
		{name: "node", partial: true, damage: func(im *image) cowdb.Violation {
			p := im.path(im.liveRoot(), format.InodeKey(nil, []byte("k150")))
			leaf := p[len(p)-1].b
			im.flip(leaf, 200)
			return cowdb.Violation{Kind: cowdb.ViolationTree, Block: uint64(leaf)}
		}},
		{name: "refcount", damage: func(im *image) cowdb.Violation {
			var start uint64
			im.sb.RefcountRoot = im.edit(im.sb.RefcountRoot, make([]byte, 8), func(n *format.Node, i int) {
				v := bytes.Clone(n.Values[0])
				binary.LittleEndian.PutUint32(v[8:], binary.LittleEndian.Uint32(v[8:])+1)
				n.Values[0] = v
				start = binary.BigEndian.Uint64(n.Keys[0])
			})
			im.writeSuperblock()
			return cowdb.Violation{Kind: cowdb.ViolationRefcount, Block: start}
		}},
		{name: "overlap", damage: func(im *image) cowdb.Violation {
			id, rec := im.blob("blob")
			im.editLive(format.ExtentKey(nil, id, 1), func(n *format.Node, i int) {
				n.Keys = slices.Insert(n.Keys, i+1, format.ExtentKey(nil, id, 1))
				n.Values = slices.Insert(n.Values, i+1, cowio.EncodeExtentRecord(nil, rec))
			})
			return cowdb.Violation{Kind: cowdb.ViolationOverlap, Key: []byte("blob")}
		}},
		{name: "orphan", damage: func(im *image) cowdb.Violation {
			id, _ := im.blob("blob")
			im.editLive(format.BlobKeyKey(nil, id), func(n *format.Node, i int) {
				n.Keys = slices.Delete(n.Keys, i, i+1)
				n.Values = slices.Delete(n.Values, i, i+1)
			})
			return cowdb.Violation{Kind: cowdb.ViolationOrphan}
		}},
		{name: "size", damage: func(im *image) cowdb.Violation {
			id, _ := im.blob("blob")
			im.editLive(format.InodeKey(nil, []byte("blob")), func(n *format.Node, i int) {
				n.Values[i] = format.AppendInode(nil, format.Inode{ID: id, Size: 4097})
			})
			return cowdb.Violation{Kind: cowdb.ViolationSize, Key: []byte("blob")}
		}},
		{name: "index", damage: func(im *image) cowdb.Violation {
			id, _ := im.blob("blob")
			im.editLive(format.BlobKeyKey(nil, id), func(n *format.Node, i int) {
				n.Values[i] = []byte("k007")
			})
			return cowdb.Violation{Kind: cowdb.ViolationIndex, Key: []byte("blob")}
		}},
		{name: "inode", damage: func(im *image) cowdb.Violation {
			im.editLive(format.InodeKey(nil, []byte("k005")), func(n *format.Node, i int) {
				n.Values[i] = []byte{0x80, 1}
			})
			return cowdb.Violation{Kind: cowdb.ViolationInode, Key: []byte("k005")}
		}},
		{name: "extent record", damage: func(im *image) cowdb.Violation {
			id, _ := im.blob("blob")
			var leaf format.Block
			im.editLive(format.ExtentKey(nil, id, 0), func(n *format.Node, i int) {
				n.Values[i] = []byte("not an extent record")
			})
			p := im.path(im.liveRoot(), format.ExtentKey(nil, id, 0))
			leaf = p[len(p)-1].b
			return cowdb.Violation{Kind: cowdb.ViolationExtent, Block: uint64(leaf)}
		}},
		{name: "catalog", partial: true, damage: func(im *image) cowdb.Violation {
			im.sb.CatalogRoot = im.edit(im.sb.CatalogRoot, snapshot.LiveKey, func(n *format.Node, i int) {
				v := bytes.Clone(n.Values[i])
				v[0] = byte(snapshot.RootSnapshot)
				n.Values[i] = v
			})
			im.writeSuperblock()
			return cowdb.Violation{Kind: cowdb.ViolationCatalog}
		}},
		{name: "bitmap", damage: func(im *image) cowdb.Violation {
			n := format.AGBitmapBlocks(im.sb.BlocksPerAG, im.bs)
			im.write(im.sb.AGStart, bytes.Repeat([]byte{0xa5}, 2*n*im.bs))
			return cowdb.Violation{Kind: cowdb.ViolationBitmap, Block: uint64(im.sb.AGStart)}
		}},
		{name: "superblock", damage: func(im *image) cowdb.Violation {
			im.write(0, make([]byte, 2*im.bs))
			return cowdb.Violation{Kind: cowdb.ViolationSuperblock}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := base.CloneDurable()
			want := tc.damage(openImage(t, fs))
			ce := violations(t, cowdb.CheckDir("/db", memOpts(fs)))
			if !findViolation(ce, want) {
				t.Fatalf("want %v among %v", want, ce.Violations)
			}
			if ce.Partial != tc.partial {
				t.Fatalf("Partial %v, want %v: %v", ce.Partial, tc.partial, ce)
			}
			for _, v := range ce.Violations {
				t.Log(v)
			}
		})
	}
}

// TestCheckReportsEveryViolation seeds three kinds of damage at once and
// requires all three reported, and then the bound on what is collected.
func TestCheckReportsEveryViolation(t *testing.T) {
	damagesOnPurpose(t)
	fs := damageBase(t)
	im := openImage(t, fs)
	_, rec := im.blob("blob")
	im.flip(rec.Start, 0)
	im.setBit(rec.Start+3, false)
	free := im.freeBlock()
	im.setBit(free, true)
	err := cowdb.CheckDir("/db", memOpts(fs))
	ce := violations(t, err)
	for _, want := range []cowdb.Violation{
		{Kind: cowdb.ViolationChecksum, Block: uint64(rec.Start), Key: []byte("blob")},
		{Kind: cowdb.ViolationLost, Block: uint64(rec.Start) + 3},
		{Kind: cowdb.ViolationLeak, Block: uint64(free)},
	} {
		if !findViolation(ce, want) {
			t.Errorf("want %v among %v", want, ce.Violations)
		}
	}
	// The damaged data block is shared by blob and clone: both records
	// report it.
	if len(ce.Violations) != 4 || ce.Truncated || ce.Partial {
		t.Errorf("violations %v, truncated %v, partial %v: want exactly 4", ce.Violations, ce.Truncated, ce.Partial)
	}
	if msg := err.Error(); !strings.Contains(msg, "4 violation") || !strings.Contains(msg, "checksum") {
		t.Errorf("Error() = %q", msg)
	}
	ce = violations(t, cowdb.CheckDirWith("/db", memOpts(fs), cowdb.CheckOptions{MaxViolations: 2}))
	if len(ce.Violations) != 2 || !ce.Truncated || !strings.Contains(ce.Error(), "more than 2") {
		t.Errorf("MaxViolations 2: %v, truncated %v", ce.Violations, ce.Truncated)
	}
}

// TestCheckOnlineFindsDamage damages a data block under an open DB and
// requires Check to report it: it reads the image, not the caches.
func TestCheckOnlineFindsDamage(t *testing.T) {
	damagesOnPurpose(t)
	fs := damageBase(t)
	im := openImage(t, fs)
	_, rec := im.blob("blob")
	db := mustOpen(t, fs, "/db")
	defer db.Close()
	if _, err := db.Get([]byte("blob")); err != nil { // cached now
		t.Fatal(err)
	}
	im.flip(rec.Start+4, 4095)
	ce := violations(t, db.Check())
	// The block is shared by blob and clone: both records report it.
	for _, key := range []string{"blob", "clone"} {
		want := cowdb.Violation{Kind: cowdb.ViolationChecksum, Block: uint64(rec.Start) + 4, Key: []byte(key)}
		if !findViolation(ce, want) || len(ce.Violations) != 2 {
			t.Fatalf("want %v among 2, got %v", want, ce.Violations)
		}
	}
}

// BenchmarkCheck measures Check on the operating system's file system: a
// store of about 100 MiB of blob data (100 values of 1 MiB) and 100,000
// small keys, checked online (DB.Check, after its checkpoint has nothing
// left to write) and offline (CheckDir of the closed store). Bytes per
// op are the blob data verified.
func BenchmarkCheck(b *testing.B) {
	const (
		blobs    = 100
		blobSize = 1 << 20
		keys     = 100_000
		batch    = 1000
	)
	dir := b.TempDir()
	o := &cowdb.Options{Sync: cowdb.SyncNever, Logger: slog.New(slog.DiscardHandler)}
	db, err := cowdb.Open(dir, o)
	if err != nil {
		b.Fatal(err)
	}
	v := make([]byte, blobSize)
	for i := range blobs {
		for j := range v {
			v[j] = byte(i + j*31)
		}
		if err := db.Put([]byte(fmt.Sprintf("blob%03d", i)), v); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < keys; i += batch {
		err := db.Update(func(tx *cowdb.Tx) error {
			for j := i; j < i+batch; j++ {
				if err := tx.Put([]byte(fmt.Sprintf("key%07d", j)), bytes.Repeat([]byte{byte(j)}, 100)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Checkpoint(); err != nil {
		b.Fatal(err)
	}
	b.Run("online", func(b *testing.B) {
		b.SetBytes(blobs * blobSize)
		for b.Loop() {
			if err := db.Check(); err != nil {
				b.Fatal(err)
			}
		}
	})
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	b.Run("offline", func(b *testing.B) {
		b.SetBytes(blobs * blobSize)
		for b.Loop() {
			if err := cowdb.CheckDir(dir, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestCheckBlockSizes checks stores of larger blocks: clean, then with a
// data block damaged.
func TestCheckBlockSizes(t *testing.T) {
	for _, bs := range []int{8192, 65536} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			fs := vfs.NewMem()
			o := memOpts(fs)
			o.BlockSize, o.GroupSize, o.InitialSize = bs, int64(bs)*256, int64(bs)*256
			db, err := cowdb.Open("/db", o)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 200 {
				if err := db.Put([]byte(fmt.Sprintf("k%03d", i)), bytes.Repeat([]byte{byte(i)}, 10+i*5)); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.Put([]byte("blob"), bytes.Repeat([]byte("data"), 3*bs)); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Snapshot("s"); err != nil {
				t.Fatal(err)
			}
			if err := db.Delete([]byte("k100")); err != nil {
				t.Fatal(err)
			}
			if err := db.Check(); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if err := cowdb.CheckDir("/db", o); err != nil {
				t.Fatal(err)
			}
			im := openImage(t, fs)
			_, rec := im.blob("blob")
			im.flip(rec.Start+2, bs-1)
			ce := violations(t, cowdb.CheckDir("/db", o))
			// The blob is in the live root and the snapshot: once if
			// they share its leaf, else once for each leaf's record.
			for _, v := range ce.Violations {
				if v.Kind != cowdb.ViolationChecksum || v.Block != uint64(rec.Start)+2 || string(v.Key) != "blob" {
					t.Fatalf("want only checksum violations of blob at block %d, got %v", rec.Start+2, ce.Violations)
				}
			}
		})
	}
}

// TestCheckRandomDamage overwrites random bytes of random blocks of a
// store's data file and requires the check never to panic and to report
// damage only as a *CheckError. Run with -long for more rounds.
func TestCheckRandomDamage(t *testing.T) {
	base := damageBase(t)
	n := 100
	if *long {
		n = 2000
	}
	fi, err := base.Stat("/db/data")
	if err != nil {
		t.Fatal(err)
	}
	blocks := fi.Size / 4096
	for i := range n {
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		fs := base.CloneDurable()
		f, err := fs.OpenFile("/db/data", vfs.ReadWrite)
		if err != nil {
			t.Fatal(err)
		}
		for range 1 + rng.IntN(3) {
			// Mostly the blocks in use, at the start of the file.
			b := rng.Int64N(min(blocks, 64))
			junk := make([]byte, 1+rng.IntN(64))
			for j := range junk {
				junk[j] = byte(rng.Uint32())
			}
			if _, err := f.WriteAt(junk, b*4096+rng.Int64N(4096-int64(len(junk)))); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		err = cowdb.CheckDir("/db", memOpts(fs))
		var ce *cowdb.CheckError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("seed %d: %v, want nil or a *CheckError", i, err)
		}
	}
}

// TestCheckSnapshotDamage damages a snapshot's own nodes (the live root
// has shadowed them since) and requires the violations named in the
// snapshot: the check diffs it against the live root and looks up what
// differs.
func TestCheckSnapshotDamage(t *testing.T) {
	damagesOnPurpose(t)
	fs := vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	for i := range 300 {
		if err := db.Put([]byte(fmt.Sprintf("k%03d", i)), bytes.Repeat([]byte{byte(i)}, 60)); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"blob", "blob2"} {
		if err := db.Put([]byte(k), bytes.Repeat([]byte(k), 3*4096)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Snapshot("s"); err != nil {
		t.Fatal(err)
	}
	// New inodes for both blobs, and every key rewritten: the live root
	// shares no node with the snapshot.
	for _, k := range []string{"blob", "blob2"} {
		if err := db.Put([]byte(k), bytes.Repeat([]byte("new"), 3*4096)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 300 {
		if err := db.Put([]byte(fmt.Sprintf("k%03d", i)), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cowdb.CheckDir("/db", memOpts(fs)); err != nil {
		t.Fatalf("undamaged: %v", err)
	}
	im := openImage(t, fs)
	sk := snapshot.SnapshotKey("s")
	rec, err := snapshot.DecodeRecord(im.get(im.sb.CatalogRoot, sk))
	if err != nil {
		t.Fatal(err)
	}
	ino, err := format.DecodeInode(im.get(rec.Root, format.InodeKey(nil, []byte("blob"))))
	if err != nil {
		t.Fatal(err)
	}
	im.editRoot(sk, format.InodeKey(nil, []byte("blob")), func(n *format.Node, i int) {
		n.Values[i] = format.AppendInode(nil, format.Inode{ID: ino.ID, Size: 1})
	})
	ino2, err := format.DecodeInode(im.get(rec.Root, format.InodeKey(nil, []byte("blob2"))))
	if err != nil {
		t.Fatal(err)
	}
	im.editRoot(sk, format.BlobKeyKey(nil, ino2.ID), func(n *format.Node, i int) {
		n.Keys = slices.Delete(n.Keys, i, i+1)
		n.Values = slices.Delete(n.Values, i, i+1)
	})
	ce := violations(t, cowdb.CheckDir("/db", memOpts(fs)))
	for _, want := range []cowdb.Violation{
		{Kind: cowdb.ViolationSize, Root: "snapshot s", Key: []byte("blob")},
		{Kind: cowdb.ViolationIndex, Root: "snapshot s", Key: []byte("blob2")},
		{Kind: cowdb.ViolationOrphan, Root: "snapshot s"},
	} {
		if !slices.ContainsFunc(ce.Violations, func(v cowdb.Violation) bool {
			return v.Kind == want.Kind && v.Root == want.Root && (want.Key == nil || bytes.Equal(v.Key, want.Key))
		}) {
			t.Errorf("want %v among %v", want, ce.Violations)
		}
	}
	for _, v := range ce.Violations {
		if v.Root != "snapshot s" {
			t.Errorf("violation outside the snapshot: %v", v)
		}
	}
}

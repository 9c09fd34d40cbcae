package cowdb

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/snapshot"
	"github.com/cowdb/cowdb/vfs"
)

// Kinds of Violation, one per invariant Check verifies (DESIGN §6, §12).
const (
	// ViolationSuperblock: neither superblock copy is usable, or the data
	// file is smaller than the superblock says. Nothing else is checked.
	ViolationSuperblock = "superblock"
	// ViolationBitmap: both bitmap copies of an allocation group are
	// unusable (its blocks are left out of the leak and lost checks), or a
	// bitmap block of an AG is free in its own bitmap.
	ViolationBitmap = "bitmap"
	// ViolationTree: a B-tree node that is not what its parent says
	// (unreadable, checksum, tree kind or level differs, a pointer outside
	// the data area) or that breaks the tree's order (a key outside its
	// parent's range). What lies below an unreadable node is not checked.
	ViolationTree = "tree"
	// ViolationCatalog: a catalog entry that is not a valid root record of
	// the kind its key names, a drop cursor that does not decode, or no
	// live root.
	ViolationCatalog = "catalog"
	// ViolationLeak: blocks allocated in the checkpoint's bitmaps that no
	// root reaches: space lost until repaired. Block is the first of a run.
	ViolationLeak = "leak"
	// ViolationLost: blocks a root reaches that are free in the bitmaps, so
	// the allocator could hand them out while they hold data or nodes.
	ViolationLost = "lost"
	// ViolationRefcount: a block whose refcount record (none meaning 1)
	// differs from the number of distinct referrers it has (DESIGN §4), or
	// a refcount record that is malformed.
	ViolationRefcount = "refcount"
	// ViolationChecksum: a data block that does not hash to the checksum
	// its extent record holds.
	ViolationChecksum = "checksum"
	// ViolationExtent: an extent record that does not decode, or names
	// blocks that are not in one AG's data area.
	ViolationExtent = "extent"
	// ViolationOverlap: two extent records of one inode map the same file
	// block.
	ViolationOverlap = "overlap"
	// ViolationOrphan: extent records of an inode no key holds: it has no
	// blob index entry, or the key the entry names does not hold it.
	ViolationOrphan = "orphan"
	// ViolationSize: a blob with blocks mapped past its size, that is at
	// or past file block ⌈size/BlockSize⌉.
	ViolationSize = "size"
	// ViolationIndex: a blob index entry whose key does not hold its inode,
	// or a blob's inode record without the index entry naming its key.
	ViolationIndex = "index"
	// ViolationInode: an inode record that does not decode or holds an
	// inode ID not below the superblock's next inode ID, or a namespace
	// key of no known kind.
	ViolationInode = "inode"
)

// checkViolationsMax is how many violations a check collects by default
// before it stops collecting (it still runs to the end).
const checkViolationsMax = 1000

// Violation is one broken invariant found by Check.
type Violation struct {
	// Kind is one of the Violation* constants.
	Kind string
	// Block is the block concerned (the first of a run), or 0 when the
	// violation is not about one block.
	Block uint64
	// Root names the root where it was found, when it is in one: "live",
	// "snapshot NAME", "drop ID"; a node shared by several roots is named
	// by the first one walked (the live root first).
	Root string
	// Key is the user key concerned, when known.
	Key []byte
	// Detail says what is wrong, in words.
	Detail string
}

// String returns the violation on one line.
func (v Violation) String() string {
	var b strings.Builder
	b.WriteString(v.Kind)
	if v.Block != 0 {
		fmt.Fprintf(&b, " at block %d", v.Block)
	}
	if v.Root != "" {
		fmt.Fprintf(&b, " in %s", v.Root)
	}
	if v.Key != nil {
		fmt.Fprintf(&b, " key %q", v.Key)
	}
	b.WriteString(": ")
	b.WriteString(v.Detail)
	return b.String()
}

// CheckError is what Check returns when it finds broken invariants. It
// wraps ErrCorrupt, so errors.Is(err, ErrCorrupt) holds; errors.As gives
// the list.
type CheckError struct {
	// Epoch is the checkpoint whose image was checked (0 if no superblock
	// was usable).
	Epoch uint64
	// Violations are the broken invariants found, in the order found.
	Violations []Violation
	// Truncated is set when there were more violations than the check
	// collects (CheckOptions.MaxViolations); the rest were not kept.
	Truncated bool
	// Partial is set when some tree could not be read whole (a
	// ViolationTree or ViolationCatalog says where): the blocks below the
	// damage are unknown, so leaks and reference counts were not checked.
	Partial bool
}

// checkErrorShown is how many violations Error spells out.
const checkErrorShown = 5

// Error summarizes the violations: their count and the first few.
func (e *CheckError) Error() string {
	var b strings.Builder
	more := ""
	if e.Truncated {
		more = "more than "
	}
	fmt.Fprintf(&b, "cowdb: check of checkpoint %d found %s%d violation(s)", e.Epoch, more, len(e.Violations))
	for i, v := range e.Violations[:min(len(e.Violations), checkErrorShown)] {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		b.WriteString(sep + v.String())
	}
	if n := len(e.Violations) - checkErrorShown; n > 0 {
		fmt.Fprintf(&b, "; and %d more", n)
	}
	if e.Partial {
		b.WriteString(" (some trees could not be read whole: leaks and reference counts not checked)")
	}
	return b.String()
}

// Unwrap returns ErrCorrupt.
func (e *CheckError) Unwrap() error { return ErrCorrupt }

// CheckOptions tune a check. The zero value is the default.
type CheckOptions struct {
	// Progress, if set, is called from the checking goroutine now and
	// then with the blocks checked so far (nodes read, data blocks
	// verified) and the blocks the checkpoint's bitmaps hold allocated.
	// done never passes total; the last call has done == total.
	Progress func(done, total int64)
	// MaxViolations bounds the violations collected; 0 means 1000.
	MaxViolations int
}

// Check verifies every invariant of one consistent version of the store
// (DESIGN §6, §12): it writes a checkpoint (unless the DB is ReadOnly) and
// checks that checkpoint's image on disk. The superblock and the
// allocation group bitmaps must be usable; every tree (catalog, refcount,
// every namespace root: the live one, each snapshot, each drop in
// progress) must be well formed; the blocks allocated must be exactly the
// blocks reachable; every refcount must equal the number of distinct
// referrers; every data block must match the checksum its extent record
// holds; and every namespace tree must tie its extent records to keys
// (blob index entries, no overlaps, nothing mapped past a blob's size).
//
// Writers keep running meanwhile: they only write blocks outside the
// image. No other checkpoint can run until Check returns, though, so the
// log grows, and a write that needs a checkpoint (a full log, no space)
// waits for it. Check reads the whole store: its cost is that of reading
// every node and data block once.
//
// It returns nil when every invariant holds, a *CheckError (wrapping
// ErrCorrupt) listing every violation found, or another error when the
// check itself could not run (I/O error, closed DB); a failed checkpoint's
// error is joined to the result, the check then being of the previous
// checkpoint.
func (db *DB) Check() error { return db.CheckWith(CheckOptions{}) }

// CheckWith is Check with options.
func (db *DB) CheckWith(o CheckOptions) error {
	if db.closed.Load() {
		return ErrClosed
	}
	var cpErr error
	if !db.opts.ReadOnly {
		cpErr = db.checkpoint()
	}
	// Holding cpMu keeps the image still: only a checkpoint writes its
	// superblock, bitmaps or nodes, or releases the blocks it reaches
	// for reuse (DESIGN §8).
	db.cpMu.Lock()
	defer db.cpMu.Unlock()
	if db.closed.Load() {
		// Close may have closed the data file after its own checkpoint.
		return ErrClosed
	}
	c := newChecker(path.Join(db.dir, dataName), db.data, o)
	return errors.Join(cpErr, c.run())
}

// CheckDir checks the store in dir, which must not be open for writing:
// like a ReadOnly Open it takes the directory's lock shared (ErrLocked if a
// writer holds it). It checks what Check checks on the image of the last
// durable checkpoint, without replaying the log: writes logged after that
// checkpoint are not looked at (Open replays them and checkpoints).
// opts supplies FS and DirectIO; nil means the defaults.
func CheckDir(dir string, opts *Options) error {
	return CheckDirWith(dir, opts, CheckOptions{})
}

// CheckDirWith is CheckDir with check options.
func CheckDirWith(dir string, opts *Options, o CheckOptions) error {
	op, err := opts.withDefaults()
	if err != nil {
		return err
	}
	// Taking the lock creates its file: look for a store first.
	if _, err := op.FS.Stat(path.Join(dir, dataName)); err != nil {
		return fmt.Errorf("cowdb: no store in %s to check: %w", dir, err)
	}
	lock, err := op.FS.Lock(path.Join(dir, lockName), true)
	if err != nil {
		if errors.Is(err, vfs.ErrLocked) {
			return fmt.Errorf("%w: %s: %w", ErrLocked, dir, err)
		}
		return fmt.Errorf("cowdb: locking %s: %w", dir, err)
	}
	defer lock.Close()
	return checkStore(op.FS, dir, op.DirectIO, o)
}

// checkStore checks the data file in dir as it is now, without the lock.
func checkStore(fs vfs.FS, dir string, mode vfs.DirectIO, o CheckOptions) error {
	name := path.Join(dir, dataName)
	f, _, err := vfs.OpenDirect(fs, name, 0, mode)
	if err != nil {
		return fmt.Errorf("cowdb: opening %s: %w", name, err)
	}
	defer f.Close()
	return newChecker(name, f, o).run()
}

// Limits of a check.
const (
	// checkReadMax is the largest data read, in bytes: runs of data
	// blocks are read and verified in windows of this size.
	checkReadMax = 4 << 20
	// checkReadGap is the most unwanted blocks a window reads to join two
	// runs rather than issue two reads.
	checkReadGap = 16
	// checkProgressEvery is how many blocks pass between Progress calls.
	checkProgressEvery = 4096
)

// checkSumsMax bounds the data checksums held in memory (8 bytes each,
// 32 MiB) before the data collected so far is verified; a block shared by
// records verified in different batches is read once per batch. A
// variable so that tests can make batches small.
var checkSumsMax = 4 << 20

// checker is one run of the check over one data file. It is used by one
// goroutine.
type checker struct {
	name string // the data file, for messages
	f    vfs.File
	o    CheckOptions
	max  int

	sb     format.Superblock
	bs     int
	geo    extents.Geometry
	blocks format.Block // the file's blocks as the superblock says
	forest *btree.Forest
	bounce []byte // aligned buffer for reads into unaligned memory

	err CheckError

	// Space: allocated per the bitmaps; reached by some root; counted
	// once as referred to, and the referrers of blocks with two or more.
	allocated, reach, counted blockSet
	multi                     map[format.Block]uint32
	unrefd                    map[format.Block]bool // drop frames: count 0
	agBad                     []bool                // AGs whose bitmap is unusable
	records                   []extents.Record      // the refcount tree's

	nodes  map[format.Block]*nodeMemo
	depths []*depthBufs // read storage per tree depth
	roots  []*checkRoot
	base   *checkRoot // the first root whose keys were checked whole
	data   []dataRef
	sums   int // checksums held in data

	done, total, shown int64
}

// blockSet is a set of blocks as a bitmap.
type blockSet []uint64

func newBlockSet(n format.Block) blockSet  { return make(blockSet, (n+63)/64) }
func (s blockSet) has(b format.Block) bool { return s[b/64]&(1<<(b%64)) != 0 }
func (s blockSet) add(b format.Block)      { s[b/64] |= 1 << (b % 64) }

func newChecker(name string, f vfs.File, o CheckOptions) *checker {
	c := &checker{name: name, f: f, o: o, max: o.MaxViolations,
		multi: map[format.Block]uint32{}, unrefd: map[format.Block]bool{}, nodes: map[format.Block]*nodeMemo{}}
	if c.max <= 0 {
		c.max = checkViolationsMax
	}
	return c
}

// violate records v, up to the bound.
func (c *checker) violate(v Violation) {
	if len(c.err.Violations) >= c.max {
		c.err.Truncated = true
		return
	}
	c.err.Violations = append(c.err.Violations, v)
}

// progress reports n more blocks checked.
func (c *checker) progress(n int64) {
	c.done = min(c.done+n, c.total)
	if c.o.Progress != nil && (c.done-c.shown >= checkProgressEvery || c.done == c.total) && c.done != c.shown {
		c.shown = c.done
		c.o.Progress(c.done, c.total)
	}
}

// run checks the image and returns nil, a *CheckError, or the I/O error
// that stopped it.
func (c *checker) run() error {
	if err := c.check(); err != nil {
		return err
	}
	if c.o.Progress != nil && c.shown != c.total {
		c.o.Progress(c.total, c.total)
	}
	if len(c.err.Violations) == 0 {
		return nil
	}
	e := c.err
	return &e
}

// check runs every check in turn.
func (c *checker) check() error {
	ok, err := c.superblock()
	if err != nil || !ok {
		return err
	}
	if err := c.bitmaps(); err != nil {
		return err
	}
	if err := c.trees(); err != nil {
		return err
	}
	if err := c.verifyData(); err != nil {
		return err
	}
	if err := c.namespaces(); err != nil {
		return err
	}
	c.space()
	c.refcounts()
	return nil
}

// readAt reads whole blocks at block b into p, through an aligned copy
// when the file uses direct I/O and p is not aligned. An I/O error stops
// the check: it is not a property of the image.
func (c *checker) readAt(b format.Block, p []byte) error {
	off := int64(b) * int64(c.bs)
	if !c.f.Direct() || vfs.IsAligned(p) {
		if _, err := c.f.ReadAt(p, off); err != nil {
			return fmt.Errorf("cowdb: check: %s: reading block %d: %w", c.name, b, err)
		}
		return nil
	}
	if len(c.bounce) < len(p) {
		c.bounce = vfs.AlignedBuf(len(p))
	}
	if err := c.readAt(b, c.bounce[:len(p)]); err != nil {
		return err
	}
	copy(p, c.bounce)
	return nil
}

// superblock picks the superblock and sets the geometry; false means
// there is none to check against (a ViolationSuperblock).
func (c *checker) superblock() (bool, error) {
	bad := func(err error) (bool, error) {
		c.violate(Violation{Kind: ViolationSuperblock, Detail: err.Error()})
		return false, nil
	}
	buf := vfs.AlignedBuf(2 * format.BlockSizeMax)
	n, err := c.f.ReadAt(buf, 0)
	if n < 2*format.NodeBlockSizeMin {
		return bad(fmt.Errorf("data file of %d bytes: %v", n, err))
	}
	// Copy 1 sits one block in: try each block size a store may have,
	// and report the failure at the smallest (the default).
	var sb format.Superblock
	err = nil
	for bs := format.NodeBlockSizeMin; 2*bs <= n; bs *= 2 {
		s, _, e := format.PickSuperblock([2][]byte{buf[:bs], buf[bs : 2*bs]})
		if e == nil && int(s.BlockSize) != bs {
			e = fmt.Errorf("superblock of block size %d read at %d", s.BlockSize, bs)
		}
		if e == nil {
			sb, err = s, nil
			break
		}
		if err == nil {
			err = e
		}
	}
	if err != nil {
		return bad(err)
	}
	c.sb, c.bs, c.err.Epoch = sb, int(sb.BlockSize), uint64(sb.Epoch)
	if sb.AGStart != format.SuperblockCopies {
		return bad(fmt.Errorf("AG 0 starts at block %d, want %d", sb.AGStart, format.SuperblockCopies))
	}
	c.geo = extents.Geometry{BlockSize: c.bs, BlocksPerAG: sb.BlocksPerAG, AGCount: sb.AGCount, AGStart: sb.AGStart,
		MaxAGCount: sb.MaxAGCount, BitmapBlocks: uint32(format.AGBitmapBlocks(sb.BlocksPerAG, c.bs))}
	c.blocks = format.Block(c.geo.TotalBlocks())
	fi, err := c.f.Stat()
	if err != nil {
		return false, fmt.Errorf("cowdb: check: %s: %w", c.name, err)
	}
	if want := int64(c.blocks) * int64(c.bs); fi.Size < want {
		return bad(fmt.Errorf("data file of %d bytes, the superblock needs %d", fi.Size, want))
	}
	c.forest, err = btree.New(btree.Options{Store: &readOnlyStore{read: c.readAt}, BlockSize: c.bs})
	if err != nil {
		return bad(err)
	}
	c.allocated, c.reach, c.counted = newBlockSet(c.blocks), newBlockSet(c.blocks), newBlockSet(c.blocks)
	c.agBad = make([]bool, sb.AGCount)
	return true, nil
}

// bitmaps loads every AG's bitmap as the checkpoint persisted it.
func (c *checker) bitmaps() error {
	hdr := c.geo.HeaderBlocks()
	half := int(c.geo.BitmapBlocks) * c.bs
	buf := vfs.AlignedBuf(2 * half)
	for ag := range c.sb.AGCount {
		if err := c.readAt(c.geo.AGFirst(ag), buf); err != nil {
			return err
		}
		bm, _, err := format.PickAGBitmap([2][]byte{buf[:half], buf[half:]}, c.sb.Epoch, c.sb.StoreID, ag)
		if err == nil && bm.NBits != c.sb.BlocksPerAG {
			err = fmt.Errorf("%d bits for %d blocks", bm.NBits, c.sb.BlocksPerAG)
		}
		if err != nil {
			c.agBad[ag] = true
			c.violate(Violation{Kind: ViolationBitmap, Block: uint64(c.geo.AGFirst(ag)), Detail: fmt.Sprintf("AG %d: %v", ag, err)})
			continue
		}
		first := c.geo.AGFirst(ag)
		for i := range bm.NBits {
			switch {
			case i < hdr && !bm.Allocated(i):
				c.violate(Violation{Kind: ViolationBitmap, Block: uint64(first) + uint64(i), Detail: fmt.Sprintf("AG %d: bitmap block free in its bitmap", ag)})
			case i >= hdr && bm.Allocated(i):
				c.allocated.add(first + format.Block(i))
				c.total++
			}
		}
	}
	return nil
}

// inData reports whether b is a block of some AG's free space: not a
// superblock, not a bitmap block, not past the end of the file.
func (c *checker) inData(b format.Block) bool {
	_, off, ok := c.geo.AGOf(b)
	return ok && b < c.blocks && off >= c.geo.HeaderBlocks()
}

// ref counts one referrer of b. A pointer outside the data area is
// reported by whoever follows it, and has no count.
func (c *checker) ref(b format.Block) {
	switch {
	case !c.inData(b):
	case !c.counted.has(b):
		c.counted.add(b)
	case c.multi[b] == 0:
		c.multi[b] = 2
	default:
		c.multi[b]++
	}
}

// referrers returns how many referrers of b were counted.
func (c *checker) referrers(b format.Block) uint32 {
	if n := c.multi[b]; n > 0 {
		return n
	}
	if c.counted.has(b) {
		return 1
	}
	return 0
}

// readOnlyStore is a btree.BlockStore that only reads: the checker's trees
// for lookups, range scans and diffs.
type readOnlyStore struct {
	read func(format.Block, []byte) error
}

var errReadOnlyStore = errors.New("cowdb: read-only block store")

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

// keyOrNil returns a copy of k, or nil for an empty k.
func keyOrNil(k []byte) []byte {
	if len(k) == 0 {
		return nil
	}
	return bytes.Clone(k)
}

// sortedBlocks returns the keys of m in order.
func sortedBlocks[V any](m map[format.Block]V) []format.Block {
	bs := make([]format.Block, 0, len(m))
	for b := range m {
		bs = append(bs, b)
	}
	slices.Sort(bs)
	return bs
}

// checkRoot is one namespace root the catalog names.
type checkRoot struct {
	name string      // "live", "snapshot NAME", "drop ID"
	tree *btree.Tree // nil for a drop that has started: only parts are left
	// whole is set when the walk read every node of the tree.
	whole bool
}

// treeWalk is one tree being walked: its kind, the root it belongs to, and
// what to do with each leaf entry (whose slices are valid during the call
// only).
type treeWalk struct {
	kind  btree.TreeKind
	name  string     // for violations: the root's name, or the tree's
	root  *checkRoot // the namespace root, or nil
	whole bool       // no unreadable node met so far
	leaf  func(leaf format.Block, k, v []byte) error
	// met is set when the walk met a node walked before (so did not see
	// its entries); scan, if set, is fed every leaf entry.
	met  bool
	scan *nsCheck
}

// nodeMemo is what the check keeps of a node it has walked, so that a node
// shared by several roots is read and counted once (its pointers count
// once: it is one referrer), and checked against each parent.
type nodeMemo struct {
	kind  btree.TreeKind
	level int // -1 until known
	sum   uint64
	bad   bool     // not readable as its first parent said (reported)
	keys  keyRange // its subtree's keys
}

// keyRange is the smallest and largest key of a subtree; ok is false when
// they are unknown (a damaged node below).
type keyRange struct {
	lo, hi []byte
	ok     bool
}

// catalogEntry is one valid catalog entry.
type catalogEntry struct {
	kind snapshot.KeyKind
	name string
	id   uint64
	rec  snapshot.Record
}

// trees walks every tree of the image: the refcount tree, the catalog and
// every namespace root the catalog names, counting the referrers of every
// block they reach.
func (c *checker) trees() error {
	rw := &treeWalk{kind: kindRefcount, name: "refcount tree", whole: true, leaf: c.refcountLeaf}
	if err := c.walkTree(rw, c.sb.RefcountRoot); err != nil {
		return err
	}
	var entries []catalogEntry
	cw := &treeWalk{kind: kindCatalog, name: "catalog", whole: true, leaf: func(leaf format.Block, k, v []byte) error {
		if e, ok := c.catalogLeaf(leaf, k, v); ok {
			entries = append(entries, e)
		}
		return nil
	}}
	if err := c.walkTree(cw, c.sb.CatalogRoot); err != nil {
		return err
	}
	live := false
	for _, e := range entries {
		var err error
		switch e.kind {
		case snapshot.KeyLive:
			live = true
			err = c.walkRoot(&checkRoot{name: "live"}, e.rec.Root)
		case snapshot.KeySnapshot:
			err = c.walkRoot(&checkRoot{name: "snapshot " + e.name}, e.rec.Root)
		case snapshot.KeyDrop:
			err = c.walkDrop(&checkRoot{name: fmt.Sprintf("drop %d", e.id)}, e.rec.Cursor)
		}
		if err != nil {
			return err
		}
	}
	if !live && cw.whole {
		c.violate(Violation{Kind: ViolationCatalog, Root: "catalog", Detail: "no live root"})
	}
	return nil
}

// walkTree walks the tree whose root the superblock (or a catalog entry)
// holds: one referrer of the root.
func (c *checker) walkTree(w *treeWalk, root format.Ref) error {
	if root.IsZero() {
		return nil
	}
	c.ref(root.Block)
	_, err := c.node(w, root, -1, nil, nil, 0)
	return err
}

// walkRoot walks a live or snapshot namespace root.
func (c *checker) walkRoot(r *checkRoot, root format.Ref) error {
	r.tree = c.forest.Open(kindNamespace, root)
	c.roots = append(c.roots, r)
	w := &treeWalk{kind: kindNamespace, name: r.name, root: r, whole: true}
	w.leaf = c.namespaceLeaf(w)
	if c.base == nil {
		// The first root's walk meets its leaves in key order: its
		// entries are checked as they come, saving a second read.
		w.scan = newNSCheck(c, r, true)
	}
	err := c.walkTree(w, root)
	r.whole = w.whole
	if err == nil && w.scan != nil && w.whole && !w.met {
		w.scan.finish()
		w.scan.flush()
		c.base = r
	}
	return err
}

// walkDrop walks what a drop in progress still holds: the whole tree
// before its first step (the catalog entry still holds the root), else
// the nodes it has taken to count 0 but not freed yet, from the entry
// each has reached on (btree.Drop.Walk).
func (c *checker) walkDrop(r *checkRoot, cursor []byte) error {
	d, err := c.forest.ResumeDrop(cursor)
	if err != nil {
		c.err.Partial = true
		c.violate(Violation{Kind: ViolationCatalog, Root: r.name, Detail: err.Error()})
		return nil
	}
	c.roots = append(c.roots, r)
	w := &treeWalk{kind: kindNamespace, name: r.name, root: r, whole: true}
	w.leaf = c.namespaceLeaf(w)
	// Walk with descend false visits the root (not started) or each
	// frame, reading only those nodes: what the check needs of the
	// cursor, the root's checksum and each frame's position.
	var refs []format.Ref
	var left []int
	err = d.Walk(func(n btree.NodeInfo) (bool, error) {
		refs, left = append(refs, n.Ref), append(left, len(n.Keys))
		return false, nil
	})
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			return err
		}
		c.err.Partial = true
		w.whole = false
		c.violate(Violation{Kind: ViolationTree, Root: r.name, Detail: err.Error()})
	}
	if !d.Started() {
		if len(refs) == 1 {
			r.tree = c.forest.Open(kindNamespace, refs[0])
			err = c.walkTree(w, refs[0])
		}
		r.whole = w.whole && r.tree != nil
		return err
	}
	frames := d.Frames()
	for _, fr := range frames[len(refs):] {
		// Frames the drop's walk could not reach: allocated, unchecked.
		c.unrefd[fr.Block] = true
		if c.inData(fr.Block) {
			c.reach.add(fr.Block)
		}
	}
	for i, fr := range frames[:len(refs)] {
		if err := c.frame(w, fr, left[i]); err != nil {
			return err
		}
	}
	return nil
}

// frame walks a drop frame: a node whose count is 0 (so it has no
// referrer to count) whose last left entries still hold their references.
func (c *checker) frame(w *treeWalk, ref format.Ref, left int) error {
	c.unrefd[ref.Block] = true
	if !c.inData(ref.Block) {
		c.badNode(w, ref.Block, "drop frame outside the data area")
		return nil
	}
	c.reach.add(ref.Block)
	n, why, err := c.loadNode(ref, w.kind, -1, 0)
	if err != nil || why != "" {
		if why != "" {
			c.badNode(w, ref.Block, "drop frame: "+why)
		}
		return err
	}
	next := len(n.Keys) - left
	if next < 0 {
		c.badNode(w, ref.Block, fmt.Sprintf("drop frame: %d entries left in a node of %d", left, len(n.Keys)))
		return nil
	}
	if n.Kind != format.NodeLeaf {
		_, err := c.children(w, &n, next, nil, 0)
		return err
	}
	for i := next; i < len(n.Keys); i++ {
		if err := w.leaf(ref.Block, n.Keys[i], n.Values[i]); err != nil {
			return err
		}
	}
	return nil
}

// sepAfter returns the upper bound of entry i's subtree: the next
// separator, or hi for the last entry.
func sepAfter(n *format.Node, i int, hi []byte) []byte {
	if i+1 < len(n.Keys) {
		return n.Keys[i+1]
	}
	return hi
}

// badNode records a node that cannot be walked: what lies below it is
// unknown, so the check is partial.
func (c *checker) badNode(w *treeWalk, b format.Block, detail string) {
	w.whole = false
	c.err.Partial = true
	c.violate(Violation{Kind: ViolationTree, Block: uint64(b), Root: w.name, Detail: detail})
}

// depthBufs is the read storage of one tree depth: the nodes of a branch's
// children are read ahead into it, in few large reads, while the nodes of
// that branch stay valid in the depth above. Decoded nodes alias it.
type depthBufs struct {
	one   []byte               // one block, for a node not read ahead
	ahead []byte               // up to checkReadMax bytes of nodes
	at    map[format.Block]int // offset in ahead of each node read ahead
}

// depth returns the storage of a tree depth.
func (c *checker) depth(d int) *depthBufs {
	for len(c.depths) <= d {
		c.depths = append(c.depths, &depthBufs{one: vfs.AlignedBuf(c.bs), at: map[format.Block]int{}})
	}
	return c.depths[d]
}

// readAhead reads, into depth d's storage, the nodes of kids still to be
// read, in key order up to checkReadMax bytes: sorted by block and read in
// runs (a checkpoint writes a tree's new nodes next to each other), so that
// a level costs a few large reads rather than one per node.
func (c *checker) readAhead(kids []format.Ref, d int) error {
	db := c.depth(d)
	clear(db.at)
	capBlocks := format.Block(checkReadMax / c.bs)
	var want []format.Block
	for _, k := range kids {
		if format.Block(len(want)) == capBlocks {
			break
		}
		if c.nodes[k.Block] == nil && c.inData(k.Block) {
			want = append(want, k.Block)
		}
	}
	slices.Sort(want)
	want = slices.Compact(want)
	var used format.Block // blocks of ahead filled
	for i := 0; i < len(want); {
		j := i + 1
		for j < len(want) && want[j]-want[j-1] <= checkReadGap && used+want[j]-want[i] < capBlocks {
			j++
		}
		n := want[j-1] - want[i] + 1
		if used+n > capBlocks {
			break
		}
		if need := int(used+n) * c.bs; need > len(db.ahead) {
			grown := vfs.AlignedBuf(min(max(need, 2*len(db.ahead)), int(capBlocks)*c.bs))
			copy(grown, db.ahead[:int(used)*c.bs])
			db.ahead = grown
		}
		off := int(used) * c.bs
		if err := c.readAt(want[i], db.ahead[off:off+int(n)*c.bs]); err != nil {
			return err
		}
		for _, b := range want[i:j] {
			db.at[b] = off + int(b-want[i])*c.bs
		}
		used += n
		i = j
	}
	return nil
}

// loadNode reads (or takes from what was read ahead at its depth) and
// decodes the node ref points at, and checks it is what its parent says:
// checksum, tree kind, level (want, -1 for any). why says what is wrong
// with it; err is an I/O error.
func (c *checker) loadNode(ref format.Ref, kind btree.TreeKind, want, depth int) (n format.Node, why string, err error) {
	db := c.depth(depth)
	buf := db.one
	if off, ok := db.at[ref.Block]; ok {
		buf = db.ahead[off : off+c.bs]
	} else if err := c.readAt(ref.Block, buf); err != nil {
		return n, "", err
	}
	c.progress(1)
	n, err = format.DecodeNode(buf)
	switch {
	case err != nil:
		return n, err.Error(), nil
	case n.Sum != ref.Sum:
		return n, fmt.Sprintf("checksum %#x, its parent expects %#x", n.Sum, ref.Sum), nil
	case btree.TreeKind(n.Tree) != kind:
		return n, fmt.Sprintf("node of tree kind %d in a tree of kind %d", n.Tree, kind), nil
	case want >= 0 && int(n.Level) != want:
		return n, fmt.Sprintf("level %d where %d belongs", n.Level, want), nil
	}
	return n, "", nil
}

// node checks the node ref points at, whose parent expects level want (-1
// for any) and keys in [lo, hi) (nil: unbounded), and returns its
// subtree's key range. The caller has counted the reference; the first
// visit also counts and walks what the node points at. Only I/O errors
// are returned.
func (c *checker) node(w *treeWalk, ref format.Ref, want int, lo, hi []byte, depth int) (keyRange, error) {
	if m := c.nodes[ref.Block]; m != nil {
		w.met = true
		c.nodeAgain(w, m, ref, want, lo, hi)
		return m.keys, nil
	}
	m := &nodeMemo{kind: w.kind, level: -1, sum: ref.Sum}
	c.nodes[ref.Block] = m
	if !c.inData(ref.Block) {
		m.bad = true
		c.badNode(w, ref.Block, "pointer outside the data area")
		return keyRange{}, nil
	}
	c.reach.add(ref.Block)
	n, why, err := c.loadNode(ref, w.kind, want, depth)
	if err != nil || why != "" {
		m.bad = true
		if why != "" {
			c.badNode(w, ref.Block, why)
		}
		return keyRange{}, err
	}
	m.level = int(n.Level)
	last := len(n.Keys) - 1
	if lo != nil && bytes.Compare(n.Keys[0], lo) < 0 || hi != nil && bytes.Compare(n.Keys[last], hi) >= 0 {
		c.violate(Violation{Kind: ViolationTree, Block: uint64(ref.Block), Root: w.name,
			Detail: fmt.Sprintf("keys [%x, %x] outside the range [%x, %x) its parent gives", n.Keys[0], n.Keys[last], lo, hi)})
	}
	if n.Kind == format.NodeLeaf {
		for i := range n.Keys {
			if err := w.leaf(ref.Block, n.Keys[i], n.Values[i]); err != nil {
				return keyRange{}, err
			}
		}
		m.keys = keyRange{lo: bytes.Clone(n.Keys[0]), hi: bytes.Clone(n.Keys[last]), ok: true}
		return m.keys, nil
	}
	kr, err := c.children(w, &n, 0, hi, depth)
	if err == nil && kr.ok {
		m.keys = kr
	}
	return m.keys, err
}

// children counts and walks the children of branch n from entry from on,
// at depth+1, and returns their keys' range.
func (c *checker) children(w *treeWalk, n *format.Node, from int, hi []byte, depth int) (keyRange, error) {
	kr := keyRange{ok: true}
	ahead := c.depth(depth + 1)
	for i := from; i < len(n.Children); i++ {
		ch := n.Children[i]
		c.ref(ch.Block)
		if _, ok := ahead.at[ch.Block]; !ok && c.nodes[ch.Block] == nil && c.inData(ch.Block) {
			if err := c.readAhead(n.Children[i:], depth+1); err != nil {
				return keyRange{}, err
			}
		}
		r, err := c.node(w, ch, int(n.Level)-1, n.Keys[i], sepAfter(n, i, hi), depth+1)
		if err != nil {
			return keyRange{}, err
		}
		kr.ok = kr.ok && r.ok
		if i == from {
			kr.lo = r.lo
		}
		kr.hi = r.hi
	}
	return kr, nil
}

// nodeAgain checks a node met before against another parent's pointer.
func (c *checker) nodeAgain(w *treeWalk, m *nodeMemo, ref format.Ref, want int, lo, hi []byte) {
	b := ref.Block
	why := ""
	switch {
	case m.bad:
		w.whole = false
		return
	case m.sum != ref.Sum:
		why = fmt.Sprintf("checksum %#x, this parent expects %#x", m.sum, ref.Sum)
	case m.kind != w.kind:
		why = fmt.Sprintf("node of tree kind %d also in a tree of kind %d", m.kind, w.kind)
	case want >= 0 && m.level != want:
		why = fmt.Sprintf("level %d where %d belongs", m.level, want)
	case m.keys.ok && (lo != nil && bytes.Compare(m.keys.lo, lo) < 0 || hi != nil && bytes.Compare(m.keys.hi, hi) >= 0):
		why = fmt.Sprintf("keys [%x, %x] outside the range [%x, %x) this parent gives", m.keys.lo, m.keys.hi, lo, hi)
	default:
		return
	}
	c.violate(Violation{Kind: ViolationTree, Block: uint64(b), Root: w.name, Detail: why})
}

// refcountLeaf collects one refcount record.
func (c *checker) refcountLeaf(leaf format.Block, k, v []byte) error {
	r, err := decodeRefcount(k, v)
	if err != nil {
		c.violate(Violation{Kind: ViolationRefcount, Block: uint64(leaf), Root: "refcount tree", Detail: err.Error()})
		return nil
	}
	c.records = append(c.records, r)
	return nil
}

// catalogLeaf checks one catalog entry and returns it if it is valid.
func (c *checker) catalogLeaf(leaf format.Block, k, v []byte) (catalogEntry, bool) {
	bad := func(detail string) (catalogEntry, bool) {
		c.err.Partial = true // the root it names is not walked
		c.violate(Violation{Kind: ViolationCatalog, Block: uint64(leaf), Root: "catalog", Detail: fmt.Sprintf("entry %x: %s", k, detail)})
		return catalogEntry{}, false
	}
	kind, name, id, err := snapshot.ParseKey(k)
	if err != nil {
		return bad(err.Error())
	}
	rec, err := snapshot.DecodeRecord(v)
	if err != nil {
		return bad(err.Error())
	}
	want := map[snapshot.KeyKind]snapshot.RootKind{snapshot.KeyLive: snapshot.RootLive,
		snapshot.KeySnapshot: snapshot.RootSnapshot, snapshot.KeyDrop: snapshot.RootDropping}[kind]
	if rec.Kind != want {
		return bad(fmt.Sprintf("a %s key holds a %s record", kind, rec.Kind))
	}
	return catalogEntry{kind: kind, name: name, id: id, rec: rec}, true
}

// dataRef is one extent record met in a distinct leaf, kept until its data
// is verified.
type dataRef struct {
	start format.Block
	sums  []uint64
	root  *checkRoot // the first root it was met in, to name its key
	id    format.InodeID
	fb    uint64
}

// namespaceLeaf returns w's leaf function: each extent record must decode
// and name blocks of the data area, each of which gains a referrer (the
// leaf) and is queued for its checksum.
func (c *checker) namespaceLeaf(w *treeWalk) func(format.Block, []byte, []byte) error {
	return func(leaf format.Block, k, v []byte) error {
		if w.scan != nil {
			w.scan.entry(k, v)
		}
		id, fb, ok := format.ParseExtentKey(k)
		if !ok {
			return nil
		}
		rec, err := cowio.DecodeExtentRecord(v)
		if err == nil && (!c.inData(rec.Start) || !c.inData(rec.Start+format.Block(rec.Len)-1) ||
			c.agOf(rec.Start) != c.agOf(rec.Start+format.Block(rec.Len)-1)) {
			err = fmt.Errorf("blocks [%d, %d) outside one AG's data area", rec.Start, rec.Start+format.Block(rec.Len))
		}
		if err != nil {
			c.violate(Violation{Kind: ViolationExtent, Block: uint64(leaf), Root: w.name,
				Detail: fmt.Sprintf("inode %d file block %d: %v", id, fb, err)})
			return nil
		}
		for i := range format.Block(rec.Len) {
			c.reach.add(rec.Start + i)
			c.ref(rec.Start + i)
		}
		c.data = append(c.data, dataRef{start: rec.Start, sums: rec.Sums, root: w.root, id: id, fb: fb})
		c.sums += len(rec.Sums)
		if c.sums >= checkSumsMax {
			return c.verifyData()
		}
		return nil
	}
}

// agOf returns the AG of a block of the data area.
func (c *checker) agOf(b format.Block) uint32 {
	ag, _, _ := c.geo.AGOf(b)
	return ag
}

// verifyData reads the data blocks of the extent records collected so far
// in block order, in windows of up to checkReadMax bytes, hashes each
// block once and compares it with every record naming it.
func (c *checker) verifyData() error {
	refs := c.data
	c.data, c.sums = nil, 0
	slices.SortFunc(refs, func(a, b dataRef) int { return cmp.Compare(a.start, b.start) })
	win := format.Block(checkReadMax / c.bs)
	var buf []byte
	var sums []uint64
	var have []bool
	for i := 0; i < len(refs); {
		ws := refs[i].start
		we := refs[i].end()
		j := i + 1
		for ; j < len(refs) && refs[j].start <= we+checkReadGap && refs[j].end() <= ws+win; j++ {
			we = max(we, refs[j].end())
		}
		if n := int(we - ws); n > len(sums) {
			// Grown to what the windows need, up to checkReadMax.
			n = max(n, min(2*len(sums), int(win)))
			buf, sums, have = vfs.AlignedBuf(n*c.bs), make([]uint64, n), make([]bool, n)
		}
		if err := c.readAt(ws, buf[:int(we-ws)*c.bs]); err != nil {
			return err
		}
		clear(have[:we-ws])
		for _, r := range refs[i:j] {
			bad, first := 0, -1
			for k, want := range r.sums {
				off := int(r.start-ws) + k
				if !have[off] {
					sums[off], have[off] = format.Checksum(buf[off*c.bs:(off+1)*c.bs]), true
					c.progress(1)
				}
				if sums[off] != want {
					bad++
					if first < 0 {
						first = k
					}
				}
			}
			if bad > 0 {
				off := int(r.start-ws) + first
				c.violate(Violation{Kind: ViolationChecksum, Block: uint64(r.start) + uint64(first), Root: r.root.name, Key: c.userKey(r.root, r.id),
					Detail: fmt.Sprintf("inode %d file block %d: checksum %#x, its extent record holds %#x (%d of the record's %d blocks differ)",
						r.id, r.fb+uint64(first), sums[off], r.sums[first], bad, len(r.sums))})
			}
		}
		i = j
	}
	return nil
}

func (r *dataRef) end() format.Block { return r.start + format.Block(len(r.sums)) }

// userKey returns the key holding inode id in root r, or nil if unknown.
func (c *checker) userKey(r *checkRoot, id format.InodeID) []byte {
	if r == nil || r.tree == nil {
		return nil
	}
	k, ok, err := r.tree.Get(format.BlobKeyKey(nil, id))
	if err != nil || !ok {
		return nil
	}
	return keyOrNil(k)
}

// space compares the blocks allocated in the bitmaps with the blocks
// reached, AG by AG: a run allocated but not reached is a leak (not
// reported when the walk was partial: the blocks below a damaged node are
// unknown), a run reached but free is lost.
func (c *checker) space() {
	hdr := format.Block(c.geo.HeaderBlocks())
	for ag := range c.sb.AGCount {
		if c.agBad[ag] {
			continue
		}
		from := c.geo.AGFirst(ag) + hdr
		to := c.geo.AGFirst(ag) + format.Block(c.geo.BlocksPerAG)
		if !c.err.Partial {
			blockRuns(c.allocated, c.reach, from, to, func(b format.Block, n uint64) {
				c.violate(Violation{Kind: ViolationLeak, Block: uint64(b), Detail: fmt.Sprintf("%d block(s) allocated but reached by no root", n)})
			})
		}
		blockRuns(c.reach, c.allocated, from, to, func(b format.Block, n uint64) {
			c.violate(Violation{Kind: ViolationLost, Block: uint64(b), Detail: fmt.Sprintf("%d block(s) reached but free in the bitmap", n)})
		})
	}
}

// blockRuns calls yield for each run of blocks in [from, to) that are in
// a but not in b, skipping 64 blocks at a time where the sets agree.
func blockRuns(a, b blockSet, from, to format.Block, yield func(start format.Block, n uint64)) {
	var start format.Block
	var n uint64
	flush := func() {
		if n > 0 {
			yield(start, n)
			n = 0
		}
	}
	for x := from; x < to; {
		if x%64 == 0 && x+64 <= to && a[x/64]&^b[x/64] == 0 {
			flush()
			x += 64
			continue
		}
		if a.has(x) && !b.has(x) {
			if n == 0 {
				start = x
			}
			n++
		} else {
			flush()
		}
		x++
	}
	flush()
}

// refcounts checks the refcount tree's records (count 2 or more, inside
// one AG's data area, not overlapping) and, unless the walk was partial,
// that every block's count is the number of referrers counted: a record's
// count, 1 for a reached block without one. Blocks of drop frames (count
// 0, still allocated) have none to compare.
func (c *checker) refcounts() {
	stored := map[format.Block]uint32{}
	var end format.Block
	for _, r := range c.records {
		why := ""
		switch {
		case r.Count < 2:
			why = fmt.Sprintf("count %d", r.Count)
		case r.Len == 0 || r.Len > uint64(c.geo.BlocksPerAG) || !c.inData(r.Start) || !c.inData(r.End()-1) || c.agOf(r.Start) != c.agOf(r.End()-1):
			why = fmt.Sprintf("blocks [%d, +%d) outside one AG's data area", r.Start, r.Len)
		case r.Start < end:
			why = fmt.Sprintf("starts before the end (%d) of the record before", end)
		}
		if why != "" {
			c.violate(Violation{Kind: ViolationRefcount, Block: uint64(r.Start), Root: "refcount tree", Detail: "record " + why})
			continue
		}
		end = r.End()
		for b := r.Start; b < r.End(); b++ {
			stored[b] = r.Count
		}
	}
	if c.err.Partial {
		return
	}
	type wrong struct{ stored, refs uint32 }
	bad := map[format.Block]wrong{}
	for b, n := range stored {
		if refs := c.referrers(b); !c.unrefd[b] && refs != n && !(refs >= 2 && n == extents.RefcountMaxDefault) {
			bad[b] = wrong{n, refs}
		}
	}
	for b, refs := range c.multi {
		if _, ok := stored[b]; !ok && !c.unrefd[b] {
			bad[b] = wrong{1, refs}
		}
	}
	// One violation per run of blocks that are wrong the same way.
	blocks := sortedBlocks(bad)
	for i := 0; i < len(blocks); {
		j := i + 1
		for j < len(blocks) && blocks[j] == blocks[j-1]+1 && bad[blocks[j]] == bad[blocks[i]] {
			j++
		}
		w := bad[blocks[i]]
		count := fmt.Sprintf("a refcount record of %d", w.stored)
		if _, ok := stored[blocks[i]]; !ok {
			count = "no refcount record (count 1)"
		}
		c.violate(Violation{Kind: ViolationRefcount, Block: uint64(blocks[i]),
			Detail: fmt.Sprintf("%d block(s) with %d referrer(s) but %s", j-i, w.refs, count)})
		i = j
	}
}

// namespaces checks, in every namespace tree read whole, that extent
// records, inode records and blob index entries agree (docs/FORMAT.md
// "Namespace tree"). The first tree read whole is checked entry by entry
// (as its walk met them, or in a scan); each other is diffed against it,
// and only the inodes whose entries differ are looked up again, so the
// cost follows what the roots do not share.
func (c *checker) namespaces() error {
	base := c.base
	for _, r := range c.roots {
		if r.tree == nil || !r.whole || r == base {
			continue
		}
		ok := false
		var err error
		if base != nil {
			ok, err = c.diffNamespace(base, r)
		}
		if !ok && err == nil {
			ok, err = c.scanNamespace(r)
			if ok && base == nil {
				base = r
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// blobCheck is what a namespace check knows of one blob inode.
type blobCheck struct {
	key  []byte // the key its index entry names; nil if none
	held bool   // that key's inode record holds the inode, as a blob
	size int64  // the blob's size, when held
	end  uint64 // the file block after the last extent record met
	// reported already: orphan, mapped past the size
	orphan, past bool
}

// nsCheck checks the keys of one namespace tree against each other.
type nsCheck struct {
	c       *checker
	r       *checkRoot
	blobs   map[format.InodeID]*blobCheck
	extents bool // a scan has reached the extent records
	// hold keeps violations back (in held) until the scan is known to
	// have seen every entry: a scan fed by the walk of a damaged tree
	// misses some, and would report what they hold as missing.
	hold bool
	held []Violation
}

func newNSCheck(c *checker, r *checkRoot, hold bool) *nsCheck {
	return &nsCheck{c: c, r: r, blobs: map[format.InodeID]*blobCheck{}, hold: hold}
}

func (n *nsCheck) violate(kind string, b format.Block, key []byte, detail string, args ...any) {
	v := Violation{Kind: kind, Block: uint64(b), Root: n.r.name, Key: key, Detail: fmt.Sprintf(detail, args...)}
	if n.hold {
		if len(n.held) < n.c.max {
			n.held = append(n.held, v)
		}
		return
	}
	n.c.violate(v)
}

// treeErr sorts an error of a tree read: corruption stops the check of
// this tree (the walk has reported the damage), anything else the check.
func treeErr(err error) (bool, error) {
	if errors.Is(err, ErrCorrupt) {
		return false, nil
	}
	return false, err
}

// scanNamespace checks r's keys in one pass over the tree.
func (c *checker) scanNamespace(r *checkRoot) (bool, error) {
	n := newNSCheck(c, r, false)
	for e, err := range r.tree.Range(nil, nil) {
		if err != nil {
			return treeErr(err)
		}
		n.entry(e.Key, e.Value)
	}
	n.finish()
	return true, nil
}

// entry checks one entry of a scan in key order: blob index entries
// ('i'), then inode records ('k'), then extent records ('x'), as they
// sort.
func (n *nsCheck) entry(k, v []byte) {
	switch k[0] {
	case format.KeyPrefixBlobKey:
		id, ok := format.ParseBlobKeyKey(k)
		if !ok {
			n.violate(ViolationIndex, 0, nil, "malformed blob index key %x", k)
			return
		}
		n.blobs[id] = &blobCheck{key: bytes.Clone(v)}
	case format.KeyPrefixInode:
		ino, err := format.DecodeInode(v)
		if err != nil {
			n.violate(ViolationInode, 0, keyOrNil(k[1:]), "%v", err)
			return
		}
		n.inodeID(k[1:], ino.ID)
		if ino.Inline() {
			return
		}
		b := n.blobs[ino.ID]
		var idx []byte
		if b != nil {
			idx = b.key
		}
		if n.claim(k[1:], ino.ID, idx, b != nil) {
			b.held, b.size = true, ino.Size
		}
	case format.KeyPrefixExtent:
		if !n.extents {
			n.extents = true
			n.unheld()
		}
		id, fb, ok := format.ParseExtentKey(k)
		if !ok {
			n.violate(ViolationInode, 0, nil, "malformed extent key %x", k)
			return
		}
		n.extent(id, fb, v)
	default:
		n.violate(ViolationInode, 0, nil, "namespace key %x of no known kind", k[:min(len(k), 32)])
	}
}

// inodeID checks that key's inode ID was handed out before the
// checkpoint: below the superblock's next inode ID.
func (n *nsCheck) inodeID(key []byte, id format.InodeID) {
	if next := n.c.sb.NextInode; id >= next {
		n.violate(ViolationInode, 0, keyOrNil(key), "inode %d, but the superblock's next inode ID is %d", id, next)
	}
}

// finish ends a scan: the index entries are all known once it ends.
func (n *nsCheck) finish() {
	if !n.extents {
		n.unheld()
	}
}

// flush reports what a check held back, once its scan proved whole.
func (n *nsCheck) flush() {
	for _, v := range n.held {
		n.c.violate(v)
	}
	n.held = nil
}

// claim checks that the index entry of blob inode id, which key holds,
// names key (idx is what it names; found whether there is one).
func (n *nsCheck) claim(key []byte, id format.InodeID, idx []byte, found bool) bool {
	switch {
	case !found:
		n.violate(ViolationIndex, 0, keyOrNil(key), "blob inode %d has no index entry", id)
	case !bytes.Equal(idx, key):
		n.violate(ViolationIndex, 0, keyOrNil(key), "blob inode %d: its index entry names key %q", id, idx)
	default:
		return true
	}
	return false
}

// unheld reports the index entries whose key does not hold their inode.
func (n *nsCheck) unheld() {
	ids := make([]format.InodeID, 0, len(n.blobs))
	for id, b := range n.blobs {
		if !b.held {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		n.violate(ViolationIndex, 0, n.blobs[id].key, "the index entry of inode %d names a key that does not hold it", id)
	}
}

// extent checks one extent record against its inode and the records of
// the inode before it (they come in file block order).
func (n *nsCheck) extent(id format.InodeID, fb uint64, v []byte) {
	rec, err := cowio.DecodeExtentRecord(v)
	if err != nil {
		return // the walk reported it
	}
	b := n.blobs[id]
	if b == nil {
		b = &blobCheck{}
		n.blobs[id] = b
	}
	if !b.held && !b.orphan {
		b.orphan = true
		n.violate(ViolationOrphan, rec.Start, nil, "extent records of inode %d, which no key holds", id)
	}
	end := fb + rec.Len
	if end < fb {
		end = ^uint64(0)
	}
	if fb < b.end {
		n.violate(ViolationOverlap, rec.Start, b.key, "inode %d: file blocks [%d, %d) overlap a record mapping up to %d", id, fb, end, b.end)
	}
	b.end = max(b.end, end)
	bs := uint64(n.c.bs)
	if limit := (uint64(b.size) + bs - 1) / bs; b.held && !b.past && end > limit {
		b.past = true
		n.violate(ViolationSize, rec.Start, b.key, "inode %d: file block %d mapped past its size of %d bytes (%d block(s))", id, end-1, b.size, limit)
	}
}

// diffNamespace checks r against base, whose keys were checked: it
// looks up again the inodes whose index entry, inode record or extent
// records differ, and the keys whose blob inode record differs. False
// with no error means the diff could not be read.
func (c *checker) diffNamespace(base, r *checkRoot) (bool, error) {
	n := newNSCheck(c, r, false)
	ids := map[format.InodeID]bool{}
	type claim struct {
		key []byte
		id  format.InodeID
	}
	var claims []claim
	for ch, err := range btree.Diff(base.tree, r.tree) {
		if err != nil {
			return treeErr(err)
		}
		k := ch.Key
		switch k[0] {
		case format.KeyPrefixBlobKey:
			if id, ok := format.ParseBlobKeyKey(k); ok {
				ids[id] = true
			} else if ch.New != nil {
				n.violate(ViolationIndex, 0, nil, "malformed blob index key %x", k)
			}
		case format.KeyPrefixExtent:
			if id, _, ok := format.ParseExtentKey(k); ok {
				ids[id] = true
			} else if ch.New != nil {
				n.violate(ViolationInode, 0, nil, "malformed extent key %x", k)
			}
		case format.KeyPrefixInode:
			if ino, err := format.DecodeInode(ch.Old); ch.Old != nil && err == nil && !ino.Inline() {
				ids[ino.ID] = true
			}
			if ch.New == nil {
				continue
			}
			ino, err := format.DecodeInode(ch.New)
			if err != nil {
				n.violate(ViolationInode, 0, keyOrNil(k[1:]), "%v", err)
				continue
			}
			n.inodeID(k[1:], ino.ID)
			if !ino.Inline() {
				ids[ino.ID] = true
				claims = append(claims, claim{bytes.Clone(k[1:]), ino.ID})
			}
		default:
			if ch.New != nil {
				n.violate(ViolationInode, 0, nil, "namespace key %x of no known kind", k[:min(len(k), 32)])
			}
		}
	}
	for _, cl := range claims {
		idx, found, err := r.tree.Get(format.BlobKeyKey(nil, cl.id))
		if err != nil {
			return treeErr(err)
		}
		n.claim(cl.key, cl.id, idx, found)
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		if ok, err := n.lookup(id); !ok {
			return ok, err
		}
	}
	return true, nil
}

// lookup checks inode id by point lookups: its index entry, the key it
// names, its extent records.
func (n *nsCheck) lookup(id format.InodeID) (bool, error) {
	t := n.r.tree
	b := &blobCheck{}
	n.blobs[id] = b
	idx, found, err := t.Get(format.BlobKeyKey(nil, id))
	if err != nil {
		return treeErr(err)
	}
	if found {
		b.key = bytes.Clone(idx)
		rec, ok, err := t.Get(format.InodeKey(nil, idx))
		if err != nil {
			return treeErr(err)
		}
		if ino, err := format.DecodeInode(rec); ok && err == nil && !ino.Inline() && ino.ID == id {
			b.held, b.size = true, ino.Size
		} else {
			n.violate(ViolationIndex, 0, b.key, "the index entry of inode %d names a key that does not hold it", id)
		}
	}
	prefix := format.ExtentKey(nil, id, 0)[:1+8]
	for e, err := range t.Prefix(prefix) {
		if err != nil {
			return treeErr(err)
		}
		if _, fb, ok := format.ParseExtentKey(e.Key); ok {
			n.extent(id, fb, e.Value)
		}
	}
	return true, nil
}

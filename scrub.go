package cowdb

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
)

// ScrubOptions tune a scrub. The zero value is the default.
type ScrubOptions struct {
	// Progress, if set, is called from the scrubbing goroutine now and
	// then with the bytes of data verified so far and the bytes there are
	// to verify (each physical block once). done never decreases and never
	// passes total; the last call has done == total.
	Progress func(done, total int64)
	// MaxDamage bounds the damaged ranges reported; 0 means 1000.
	MaxDamage int
}

// ScrubDamage is one damaged byte range of one value: data blocks that do
// not hash to the checksums the value's extent record holds, or that
// could not be read.
type ScrubDamage struct {
	// Root is "" for the live store, else the snapshot's name.
	Root string
	// Key holds the value, or is nil when no key of Root holds the inode
	// whose extent record names the blocks (Check reports such orphans).
	Key []byte
	// Off and Len are the damaged byte range of the value: whole blocks,
	// cut at the value's size.
	Off, Len int64
	// Block is the first physical block of the range.
	Block uint64
}

// String returns the damage on one line.
func (d ScrubDamage) String() string {
	root := "live"
	if d.Root != "" {
		root = "snapshot " + d.Root
	}
	return fmt.Sprintf("%s key %q bytes [%d, %d) at block %d", root, d.Key, d.Off, d.Off+d.Len, d.Block)
}

// ScrubReport is what a scrub verified and found.
type ScrubReport struct {
	// Damage lists every damaged range found, ordered by root (the live
	// store first, then snapshots by name), key and offset; a block shared
	// by several values or roots is listed for each.
	Damage []ScrubDamage
	// Truncated is set when there was more damage than
	// ScrubOptions.MaxDamage; what is kept is then the damage of the
	// lowest physical blocks (the order the scrub reads in).
	Truncated bool
	// TreeErrors holds, per root whose tree could not be read whole (a
	// damaged node, which Check locates), the error that stopped its walk.
	// The data of the part read is still verified.
	TreeErrors []error
	// Values counts the values of every root scrubbed (a value present in
	// several roots counts once per root), inline ones included: their
	// bytes sit in tree nodes, which are verified as they are read.
	Values int64
	// Bytes and Blocks are the data verified: every physical block once,
	// however many values, clones and snapshots share it.
	Bytes, Blocks int64
	// Elapsed is the scrub's wall-clock time.
	Elapsed time.Duration
}

// Limits of a scrub.
const (
	// scrubDamageMax is the default bound on the damage reported.
	scrubDamageMax = 1000
	// scrubReadMax is the largest data read, in bytes: blocks are read
	// and verified in sequential windows of up to this size.
	scrubReadMax = 8 << 20
	// scrubReadGap is the most unwanted blocks a window reads to join two
	// runs of wanted blocks rather than issue two reads.
	scrubReadGap = 16
	// scrubReadAhead is how many windows are read or held at once.
	scrubReadAhead = 3
	// scrubProgressEvery is how many bytes pass between Progress calls.
	scrubProgressEvery = 16 << 20
)

// Scrub reads every data block of every value of the live store and of
// every snapshot and verifies it against the checksum its extent record
// holds, to find data that has rotted on the device since it was written
// (DESIGN §1.4). Each physical block is read once, however many values,
// clones and snapshots share it, straight from the data file in large
// sequential reads in block order, never from the block cache: a cached
// block was verified when it was first read, but the copy on disk may
// have rotted since.
//
// What it verifies is the version of the live store current when Scrub
// starts, and the snapshots existing then. Writers go on meanwhile: Scrub
// registers as a reader of that version, which keeps every block it may
// read from being reused until it returns. Dirty pages (unaligned writes
// not yet written back) are in memory and need no verification; the
// blocks they will replace are verified as the tree maps them. Tree nodes
// (and so inline values) are read the usual way and verified by their
// checksums as they are; Check verifies the metadata image as a whole.
//
// Scrub holds every extent record's checksums in memory while it runs
// (8 bytes per data block, about 2 MiB per GiB of data) to read the data
// in block order.
//
// Damage is reported in the ScrubReport, not as an error: the error is
// for a scrub that could not run (ErrClosed, an I/O error of the data
// file as a whole). A block the device fails to read is damage.
func (db *DB) Scrub(o ScrubOptions) (ScrubReport, error) {
	start := time.Now()
	if db.closed.Load() {
		return ScrubReport{}, ErrClosed
	}
	s := &scrubber{db: db, o: o, max: o.MaxDamage, nodes: map[btree.NodeID]*scrubNode{}}
	if s.max <= 0 {
		s.max = scrubDamageMax
	}
	// Register as a reader before taking the snapshots' trees, as
	// OpenSnapshot does: every block the trees reach now is then held
	// back from reuse until release.
	r := db.acquire()
	defer db.release(r)
	s.roots = []scrubRoot{{tree: r.v.ns}}
	db.mu.Lock()
	for _, name := range slices.Sorted(maps.Keys(db.mu.snaps)) {
		s.roots = append(s.roots, scrubRoot{name: name, tree: db.mu.snaps[name].tree})
	}
	db.mu.Unlock()
	for i := range s.roots {
		if err := s.walk(i); err != nil {
			return ScrubReport{}, err
		}
	}
	if err := s.verify(); err != nil {
		if db.closed.Load() {
			return ScrubReport{}, ErrClosed
		}
		return ScrubReport{}, err
	}
	if err := s.resolve(); err != nil {
		return ScrubReport{}, err
	}
	s.rep.Values = s.values()
	s.rep.Elapsed = time.Since(start)
	return s.rep, nil
}

// scrubRoot is one root scrubbed: its name ("" live) and tree, and the
// ID of its root node once walked (the zero NodeID for an empty tree).
type scrubRoot struct {
	name string
	tree *btree.Tree
	id   btree.NodeID
}

// scrubNode is what a scrub keeps of a node, each distinct node once.
type scrubNode struct {
	kids   []btree.NodeID
	values int64 // inode records in the node (a leaf's)
}

// scrubRef is one extent record met in a distinct leaf.
type scrubRef struct {
	leaf  btree.NodeID
	id    format.InodeID
	fb    uint64
	start format.Block
	sums  []uint64
}

func (r *scrubRef) end() format.Block { return r.start + format.Block(len(r.sums)) }

// scrubBad is a run of damaged blocks of one extent record: n blocks
// from its k-th.
type scrubBad struct {
	ref  *scrubRef
	k, n int
}

// scrubber is one run of Scrub, used by one goroutine.
type scrubber struct {
	db    *DB
	o     ScrubOptions
	max   int
	roots []scrubRoot
	nodes map[btree.NodeID]*scrubNode
	refs  []*scrubRef
	bad   []scrubBad
	rep   ScrubReport

	done, total, shown int64
	called             bool
}

// walk reads root i's tree, descending only into nodes not met before,
// and collects the extent records of the leaves. A damaged node stops
// the walk of that root, recorded in the report.
func (s *scrubber) walk(i int) error {
	root := &s.roots[i]
	first := true
	err := root.tree.Walk(func(info btree.NodeInfo) (bool, error) {
		if first {
			first = false
			root.id = info.ID
		}
		if s.nodes[info.ID] != nil {
			return false, nil
		}
		n := &scrubNode{kids: slices.Clone(info.Children)}
		s.nodes[info.ID] = n
		if len(info.Children) > 0 {
			return true, nil
		}
		for j, k := range info.Keys {
			if len(k) > 0 && k[0] == format.KeyPrefixInode {
				n.values++
			}
			id, fb, ok := format.ParseExtentKey(k)
			if !ok {
				continue
			}
			rec, err := cowio.DecodeExtentRecord(info.Values[j])
			if err != nil {
				return false, fmt.Errorf("cowdb: scrub: inode %d, extent at file block %d: %w", id, fb, err)
			}
			s.refs = append(s.refs, &scrubRef{leaf: info.ID, id: id, fb: fb, start: rec.Start, sums: rec.Sums})
		}
		return true, nil
	})
	if err != nil {
		if s.db.closed.Load() {
			return ErrClosed
		}
		if !errors.Is(err, ErrCorrupt) {
			return err
		}
		name := "live"
		if root.name != "" {
			name = "snapshot " + root.name
		}
		s.rep.TreeErrors = append(s.rep.TreeErrors, fmt.Errorf("cowdb: scrub of %s: %w", name, err))
	}
	return nil
}

// values counts the inode records each root reaches.
func (s *scrubber) values() int64 {
	memo := map[btree.NodeID]int64{}
	var count func(id btree.NodeID) int64
	count = func(id btree.NodeID) int64 {
		if v, ok := memo[id]; ok {
			return v
		}
		n := s.nodes[id]
		if n == nil {
			return 0 // below a damaged node, or an empty tree
		}
		v := n.values
		for _, k := range n.kids {
			v += count(k)
		}
		memo[id] = v
		return v
	}
	var total int64
	for _, r := range s.roots {
		total += count(r.id)
	}
	return total
}

// scrubWindow is one sequential read: blocks [start, end), holding the
// records refs[i:j].
type scrubWindow struct {
	start, end format.Block
	i, j       int
}

// scrubRead is a window read: its bytes, and which blocks the device
// failed to read. err stops the scrub.
type scrubRead struct {
	w          scrubWindow
	buf        []byte
	unreadable []bool
	err        error
}

// verify reads the blocks the records name in block order, in windows of
// up to scrubReadMax bytes, hashes each block once and compares it with
// every record naming it. One goroutine reads up to scrubReadAhead
// windows ahead, so that the device is busy while blocks are hashed.
func (s *scrubber) verify() error {
	refs := s.refs
	slices.SortFunc(refs, func(a, b *scrubRef) int { return cmp.Compare(a.start, b.start) })
	// The distinct blocks: a union of the records' runs.
	var end format.Block
	for _, r := range refs {
		from := max(r.start, end)
		if r.end() > from {
			s.total += int64(r.end() - from)
			end = r.end()
		}
	}
	bs := s.db.bs
	s.total *= int64(bs)
	wins, most := s.windows()
	if len(wins) == 0 {
		s.progress(0, true)
		return nil
	}
	free := make(chan scrubRead, scrubReadAhead)
	for range min(scrubReadAhead, len(wins)) {
		free <- scrubRead{buf: vfs.AlignedBuf(most * bs), unreadable: make([]bool, most)}
	}
	full := make(chan scrubRead, scrubReadAhead)
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		for _, w := range wins {
			var rd scrubRead
			select {
			case rd = <-free:
			case <-quit:
				return
			}
			rd.w = w
			n := int(w.end - w.start)
			clear(rd.unreadable[:n])
			rd.err = s.read(w.start, rd.buf[:n*bs], rd.unreadable)
			full <- rd // never blocks: at most scrubReadAhead buffers exist
		}
	}()
	seen := newBlockSet(end)
	sums, have := make([]uint64, most), make([]bool, most)
	for range wins {
		rd := <-full
		if rd.err != nil {
			return rd.err
		}
		clear(have[:rd.w.end-rd.w.start])
		for _, r := range refs[rd.w.i:rd.w.j] {
			s.compare(r, rd.w.start, rd.buf, sums, have, rd.unreadable, seen)
		}
		free <- rd
	}
	s.progress(0, true)
	return nil
}

// windows plans the reads of the sorted records: each window starts at a
// record and takes the records after it while they start at most
// scrubReadGap blocks past its end and end within scrubReadMax bytes of
// its start. It returns the windows and the most blocks one spans.
func (s *scrubber) windows() ([]scrubWindow, int) {
	refs := s.refs
	win := format.Block(scrubReadMax / s.db.bs)
	var wins []scrubWindow
	most := 0
	for i := 0; i < len(refs); {
		ws, we := refs[i].start, refs[i].end()
		j := i + 1
		for ; j < len(refs) && refs[j].start <= we+scrubReadGap && refs[j].end() <= ws+win; j++ {
			we = max(we, refs[j].end())
		}
		wins = append(wins, scrubWindow{start: ws, end: we, i: i, j: j})
		most = max(most, int(we-ws))
		i = j
	}
	return wins, most
}

// read reads the window at block ws into p. When the device fails the
// read, it reads block by block and marks the blocks that fail unreadable
// (damage), unless the data file itself is gone (the DB closed).
func (s *scrubber) read(ws format.Block, p []byte, unreadable []bool) error {
	db := s.db
	if db.closed.Load() {
		return ErrClosed
	}
	bs := db.bs
	db.stats.blockReads.Add(int64(len(p) / bs))
	if _, err := db.data.ReadAt(p, int64(ws)*int64(bs)); err == nil {
		return nil
	} else if db.closed.Load() || errors.Is(err, vfs.ErrClosed) {
		return ErrClosed
	}
	for k := range len(p) / bs {
		if _, err := db.data.ReadAt(p[k*bs:(k+1)*bs], (int64(ws)+int64(k))*int64(bs)); err != nil {
			if db.closed.Load() || errors.Is(err, vfs.ErrClosed) {
				return ErrClosed
			}
			unreadable[k] = true
		}
	}
	return nil
}

// compare checks record r's blocks, read in the window from block ws,
// hashing each block of the window once, and keeps its runs of damaged
// blocks.
func (s *scrubber) compare(r *scrubRef, ws format.Block, buf []byte, sums []uint64, have, unreadable []bool, seen blockSet) {
	bs := s.db.bs
	run := -1 // first block of the run of damage under way
	for k, want := range r.sums {
		off := int(r.start-ws) + k
		if !have[off] {
			have[off] = true
			sums[off] = format.Checksum(buf[off*bs : (off+1)*bs])
			if b := r.start + format.Block(k); !seen.has(b) {
				seen.add(b)
				s.rep.Blocks++
				s.progress(int64(bs), false)
			}
		}
		bad := unreadable[off] || sums[off] != want
		switch {
		case bad && run < 0:
			run = k
		case !bad && run >= 0:
			s.damaged(r, run, k-run)
			run = -1
		}
	}
	if run >= 0 {
		s.damaged(r, run, len(r.sums)-run)
	}
}

// damaged keeps a run of damaged blocks, up to the bound: each run is
// reported at least once.
func (s *scrubber) damaged(r *scrubRef, k, n int) {
	if len(s.bad) >= s.max {
		s.rep.Truncated = true
		return
	}
	s.bad = append(s.bad, scrubBad{ref: r, k: k, n: n})
}

// progress reports n more bytes verified; last forces the final call.
func (s *scrubber) progress(n int64, last bool) {
	s.done = min(s.done+n, s.total)
	s.rep.Bytes = s.done
	if s.o.Progress == nil {
		return
	}
	if (last && (!s.called || s.shown != s.done)) || s.done-s.shown >= scrubProgressEvery {
		s.called, s.shown = true, s.done
		s.o.Progress(s.done, s.total)
	}
}

// resolve turns the damaged runs into the report's damage: for each, the
// roots that reach its leaf, and in each the key holding its inode.
func (s *scrubber) resolve() error {
	if len(s.bad) == 0 {
		return nil
	}
	parents := map[btree.NodeID][]btree.NodeID{}
	for id, n := range s.nodes {
		for _, k := range n.kids {
			parents[k] = append(parents[k], id)
		}
	}
	rootsAt := map[btree.NodeID][]int{}
	for i, r := range s.roots {
		if r.id != (btree.NodeID{}) { // an empty tree, or an unreadable root
			rootsAt[r.id] = append(rootsAt[r.id], i)
		}
	}
	reach := map[btree.NodeID][]int{} // per leaf: the roots reaching it
	type keyOf struct {
		root int
		id   format.InodeID
	}
	owners := map[keyOf]*scrubOwner{}
	var out []ScrubDamage
	rootIdx := map[string]int{}
	for i, r := range s.roots {
		rootIdx[r.name] = i
	}
	bs := int64(s.db.bs)
	for _, b := range s.bad {
		roots, ok := reach[b.ref.leaf]
		if !ok {
			roots = s.ancestors(b.ref.leaf, parents, rootsAt)
			reach[b.ref.leaf] = roots
		}
		for _, ri := range roots {
			ko := keyOf{ri, b.ref.id}
			own, ok := owners[ko]
			if !ok {
				var err error
				if own, err = s.owner(s.roots[ri].tree, b.ref.id); err != nil {
					return err
				}
				owners[ko] = own
			}
			d := ScrubDamage{Root: s.roots[ri].name, Off: (int64(b.ref.fb) + int64(b.k)) * bs, Len: int64(b.n) * bs,
				Block: uint64(b.ref.start) + uint64(b.k)}
			if own != nil {
				d.Key = own.key
				if end := d.Off + d.Len; own.size > d.Off && end > own.size {
					d.Len = own.size - d.Off
				}
			}
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b ScrubDamage) int {
		return cmp.Or(cmp.Compare(rootIdx[a.Root], rootIdx[b.Root]), bytes.Compare(a.Key, b.Key),
			cmp.Compare(a.Off, b.Off), cmp.Compare(a.Block, b.Block))
	})
	// A leaf met under two NodeIDs (a checkpoint gave it its block
	// mid-walk) gives its records twice.
	out = slices.CompactFunc(out, func(a, b ScrubDamage) bool {
		return a.Root == b.Root && bytes.Equal(a.Key, b.Key) && a.Off == b.Off && a.Len == b.Len && a.Block == b.Block
	})
	if len(out) > s.max {
		out, s.rep.Truncated = out[:s.max], true
	}
	s.rep.Damage = out
	return nil
}

// ancestors returns, in order, the roots whose root node is leaf or one
// of its ancestors.
func (s *scrubber) ancestors(leaf btree.NodeID, parents map[btree.NodeID][]btree.NodeID, rootsAt map[btree.NodeID][]int) []int {
	seen := map[btree.NodeID]bool{leaf: true}
	queue := []btree.NodeID{leaf}
	var roots []int
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		roots = append(roots, rootsAt[id]...)
		for _, p := range parents[id] {
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	slices.Sort(roots)
	return slices.Compact(roots)
}

// scrubOwner is the key holding a blob inode in one root, and its size.
type scrubOwner struct {
	key  []byte
	size int64
}

// owner returns the key holding blob inode id in t, or nil when no key
// holds it. A tree that cannot be read there gives nil too (the walk
// reported it).
func (s *scrubber) owner(t *btree.Tree, id format.InodeID) (*scrubOwner, error) {
	key, ok, err := t.Get(format.BlobKeyKey(nil, id))
	if err == nil && ok {
		var rec []byte
		rec, ok, err = t.Get(format.InodeKey(nil, key))
		if err == nil && ok {
			if ino, derr := format.DecodeInode(rec); derr == nil && !ino.Inline() && ino.ID == id {
				return &scrubOwner{key: bytes.Clone(key), size: ino.Size}, nil
			}
		}
	}
	if err != nil && !errors.Is(err, ErrCorrupt) {
		if s.db.closed.Load() {
			return nil, ErrClosed
		}
		return nil, err
	}
	return nil, nil
}

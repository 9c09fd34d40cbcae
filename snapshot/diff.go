package snapshot

import (
	"bytes"
	"fmt"
	"iter"
	"math"
	"slices"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/internal/format"
)

// ChangeKind says how a key differs between two roots.
type ChangeKind uint8

const (
	// Added: the key holds a value only in the newer root.
	Added ChangeKind = iota + 1
	// Removed: the key holds a value only in the older root.
	Removed
	// Modified: the key holds a value in both, and they differ (or may:
	// a value replaced by another of the same bytes is Modified too).
	Modified
)

// String returns the kind's name ("added", "removed", "modified").
func (k ChangeKind) String() string {
	switch k {
	case Added:
		return "added"
	case Removed:
		return "removed"
	case Modified:
		return "modified"
	}
	return fmt.Sprintf("ChangeKind(%d)", uint8(k))
}

// Range is a byte range of a value: Len bytes from offset Off.
type Range struct{ Off, Len int64 }

// Change is how one user key differs between two roots.
//
// Ranges is set only for a blob modified in place, that is a key holding
// the same blob (inode) in both roots whose size or blocks changed. It
// lists, sorted and merged, the byte ranges whose content may differ, at
// block granularity: every file block that maps to a different physical
// block (or checksum) in the two trees, or is mapped in one only, plus, if
// the size changed, the blocks from the one holding byte offset "smaller
// size" (the first byte past it) up to the larger size. Each range starts
// at a multiple of the block size and ends at one, or at the larger of the
// two sizes if that comes first: nothing past both sizes is reported. A
// range may cover bytes that read the same (a block rewritten with the
// bytes it held); it never misses bytes that differ in what the trees map
// (bytes still in dirty pages, not yet written back, are not in a tree).
// Ranges is nil for every other change: an added or removed key, a value
// replaced by another (a new inode), an inline value changed.
type Change struct {
	Key    []byte // the user key; a fresh slice the caller may keep
	Kind   ChangeKind
	Ranges []Range
}

// Lookup is a namespace tree's Get: the value under a namespace key
// ('k' + user key, 'i' + inode ID), and whether there is one.
type Lookup func(key []byte) (value []byte, ok bool, err error)

// Translate turns the entry changes between two namespace trees
// (btree.Diff(from, to), in key order) into one Change per user key, in
// key order. from and to look keys up in the same two trees. blockSize is
// the store's block size; it panics unless it is positive (an assertion).
//
// A blob modified in place whose inode record did not change (its size is
// the same, only blocks were rewritten) shows no 'k' change, only extent
// changes; Translate finds its key through to's blob index ('i' + inode
// ID), checks that the key holds that same inode in both trees, and
// reports it as Modified with its Ranges. Extent changes of an inode that
// no key holds in both trees are not reported: the key's own change
// (added, removed, replaced) already says everything. Nor are changes of
// the blob index itself.
//
// Translate holds what it needs of every change before it yields the first
// Change (the key changes, the changed extent records), so its memory is
// O(number of changes) and nothing is yielded until the change stream
// ends. An error of the stream is yielded as it is, one of a lookup
// wrapped with what was looked up, and either ends the iteration; a malformed key or record is an error wrapping
// format.ErrCorrupt, never a panic. An index entry of to that names a key
// not holding its blob is corruption too.
func Translate(changes iter.Seq2[btree.Change, error], blockSize int, from, to Lookup) iter.Seq2[Change, error] {
	if blockSize <= 0 {
		panic(fmt.Sprintf("cowdb: assertion failed: diff with block size %d", blockSize))
	}
	return func(yield func(Change, error) bool) {
		t := &translator{
			bs:      int64(blockSize),
			from:    from,
			to:      to,
			keyed:   map[format.InodeID]bool{},
			inPlace: map[format.InodeID]inPlace{},
			blobs:   map[format.InodeID]*blobChange{},
		}
		for c, err := range changes {
			if err == nil {
				err = t.add(c)
			}
			if err != nil {
				yield(Change{}, err)
				return
			}
		}
		if err := t.finish(); err != nil {
			yield(Change{}, err)
			return
		}
		for _, c := range t.out {
			if !yield(c, nil) {
				return
			}
		}
	}
}

// translator buffers the changes of one Translate.
type translator struct {
	bs       int64
	from, to Lookup

	out     []Change                   // the key changes, in key order
	keyed   map[format.InodeID]bool    // inodes named by a key change's records
	inPlace map[format.InodeID]inPlace // blobs whose key change keeps the inode
	blobs   map[format.InodeID]*blobChange
	ids     []format.InodeID // the keys of blobs, in the order first met
}

// inPlace is a blob modified in place found among the key changes: its
// change's index in out, and its sizes in the two trees.
type inPlace struct {
	i                int
	oldSize, newSize int64
}

// blobChange is the changed extent records of one inode: the old side's
// (removed or replaced) and the new side's (added or replacing), each in
// file-block order.
type blobChange struct {
	old, new []segment
}

// segment is one extent record: file blocks [fb, fb+rec.Len).
type segment struct {
	fb  uint64
	rec cowio.ExtentRecord
}

func (s *segment) end() uint64 { return s.fb + s.rec.Len }

// add takes one entry change.
func (t *translator) add(c btree.Change) error {
	if len(c.Key) == 0 {
		return format.Corruptf("namespace tree", format.ErrMalformed, "empty key")
	}
	switch c.Key[0] {
	case format.KeyPrefixBlobKey:
		if _, ok := format.ParseBlobKeyKey(c.Key); !ok {
			return format.Corruptf("namespace tree", format.ErrMalformed, "blob index key %x", c.Key)
		}
		return nil
	case format.KeyPrefixInode:
		return t.addKey(c)
	case format.KeyPrefixExtent:
		return t.addExtent(c)
	}
	return format.Corruptf("namespace tree", format.ErrMalformed, "key %x of no known kind", c.Key[:min(len(c.Key), 32)])
}

// addKey takes the change of a user key's inode record.
func (t *translator) addKey(c btree.Change) error {
	user := c.Key[1:]
	if len(user) == 0 {
		return format.Corruptf("namespace tree", format.ErrMalformed, "inode key without a user key")
	}
	var oldIno, newIno format.Inode
	var err error
	if c.Kind != btree.Added {
		if oldIno, err = decodeInode(c.Old, user); err != nil {
			return err
		}
		t.keyed[oldIno.ID] = true
	}
	if c.Kind != btree.Removed {
		if newIno, err = decodeInode(c.New, user); err != nil {
			return err
		}
		t.keyed[newIno.ID] = true
	}
	out := Change{Key: bytes.Clone(user)}
	switch c.Kind {
	case btree.Added:
		out.Kind = Added
	case btree.Removed:
		out.Kind = Removed
	case btree.Modified:
		out.Kind = Modified
		if oldIno.ID == newIno.ID && !oldIno.Inline() && !newIno.Inline() {
			t.inPlace[oldIno.ID] = inPlace{len(t.out), oldIno.Size, newIno.Size}
		}
	default:
		return fmt.Errorf("cowdb/snapshot: change of key %q of unknown kind %d", user, c.Kind)
	}
	t.out = append(t.out, out)
	return nil
}

// addExtent takes the change of an extent record, keeping it if its inode
// may be a blob modified in place.
func (t *translator) addExtent(c btree.Change) error {
	id, fb, ok := format.ParseExtentKey(c.Key)
	if !ok || id == 0 {
		return format.Corruptf("namespace tree", format.ErrMalformed, "extent key %x", c.Key)
	}
	if t.keyed[id] {
		if _, ok := t.inPlace[id]; !ok {
			return nil // the key's own change reports it
		}
	}
	b := t.blobs[id]
	if b == nil {
		b = &blobChange{}
		t.blobs[id] = b
		t.ids = append(t.ids, id)
	}
	if c.Kind != btree.Added {
		s, err := decodeExtent(c.Old, id, fb)
		if err != nil {
			return err
		}
		b.old = append(b.old, s)
	}
	if c.Kind != btree.Removed {
		s, err := decodeExtent(c.New, id, fb)
		if err != nil {
			return err
		}
		b.new = append(b.new, s)
	}
	return nil
}

// finish works out the ranges of every blob modified in place, adds the
// ones only the blob index finds, and sorts the result by key.
func (t *translator) finish() error {
	for id, p := range t.inPlace {
		b := t.blobs[id]
		if b == nil {
			b = &blobChange{} // only the size changed
		}
		r, err := blockRanges(b, p.oldSize, p.newSize, t.bs)
		if err != nil {
			return fmt.Errorf("cowdb/snapshot: key %q, inode %d: %w", t.out[p.i].Key, id, err)
		}
		t.out[p.i].Ranges = r
	}
	keyChanges := len(t.out)
	for _, id := range t.ids {
		if _, ok := t.inPlace[id]; ok {
			continue
		}
		if err := t.unkeyed(id, t.blobs[id]); err != nil {
			return err
		}
	}
	if len(t.out) > keyChanges {
		slices.SortFunc(t.out, func(a, b Change) int { return bytes.Compare(a.Key, b.Key) })
	}
	return nil
}

// unkeyed handles the extent changes of inode id, which no key change
// names: if to's blob index leads to a key that holds id in both trees,
// the blob was modified in place without a change of its inode record, and
// its change is added to out (unless its blocks map the same after all).
// Otherwise no key holds id in both trees, and its changes are dropped.
func (t *translator) unkeyed(id format.InodeID, b *blobChange) error {
	ik := format.BlobKeyKey(nil, id)
	user, ok, err := t.to(ik)
	if err != nil {
		return fmt.Errorf("cowdb/snapshot: looking up the key of inode %d: %w", id, err)
	}
	if !ok {
		return nil // no key holds id in to
	}
	if len(user) == 0 {
		return format.Corruptf("blob index of inode "+fmt.Sprint(id), format.ErrMalformed, "empty user key")
	}
	k := format.InodeKey(nil, user)
	newIno, ok, err := lookupInode(t.to, k)
	if err != nil {
		return err
	}
	if !ok || newIno.ID != id || newIno.Inline() {
		return format.Corruptf("blob index of inode "+fmt.Sprint(id), format.ErrMalformed,
			"names key %q, which does not hold it (present %v, inode %d, inline %v)", user, ok, newIno.ID, newIno.Inline())
	}
	oldIno, ok, err := lookupInode(t.from, k)
	if err != nil {
		return err
	}
	if !ok || oldIno.ID != id || oldIno.Inline() {
		return nil // the key's own change reports it
	}
	r, err := blockRanges(b, oldIno.Size, newIno.Size, t.bs)
	if err != nil {
		return fmt.Errorf("cowdb/snapshot: key %q, inode %d: %w", user, id, err)
	}
	if len(r) > 0 {
		t.out = append(t.out, Change{Key: bytes.Clone(user), Kind: Modified, Ranges: r})
	}
	return nil
}

// lookupInode looks up and decodes the inode record under namespace key k.
func lookupInode(get Lookup, k []byte) (format.Inode, bool, error) {
	v, ok, err := get(k)
	if err != nil {
		return format.Inode{}, false, fmt.Errorf("cowdb/snapshot: looking up key %q: %w", k[1:], err)
	}
	if !ok {
		return format.Inode{}, false, nil
	}
	n, err := decodeInode(v, k[1:])
	return n, err == nil, err
}

// decodeInode decodes the inode record of user key user.
func decodeInode(v, user []byte) (format.Inode, error) {
	n, err := format.DecodeInode(v)
	if err != nil {
		return format.Inode{}, format.Locate(err, fmt.Sprintf("inode record of key %q", user))
	}
	return n, nil
}

// decodeExtent decodes the extent record of inode id at file block fb.
func decodeExtent(v []byte, id format.InodeID, fb uint64) (segment, error) {
	r, err := cowio.DecodeExtentRecord(v)
	if err == nil && fb > math.MaxUint64-r.Len {
		err = format.Corruptf("", format.ErrMalformed, "%d blocks past the last file block", r.Len)
	}
	if err != nil {
		return segment{}, format.Locate(err, fmt.Sprintf("extent record of inode %d at file block %d", id, fb))
	}
	return segment{fb: fb, rec: r}, nil
}

// blockRanges returns the byte ranges of a blob modified in place (see
// Change): the file blocks whose mapping differs between b's old and new
// records, and the blocks between the two sizes, clipped to the larger
// size. Records of one side that overlap are corruption.
func blockRanges(b *blobChange, oldSize, newSize, bs int64) ([]Range, error) {
	maxSize := max(oldSize, newSize)
	// The blocks holding any byte of the larger size; no overflow, as
	// sizes are below 2^63.
	limit := uint64(maxSize/bs) + boolInt(maxSize%bs != 0)
	olds, err := clip(b.old, limit)
	if err != nil {
		return nil, err
	}
	news, err := clip(b.new, limit)
	if err != nil {
		return nil, err
	}
	runs := changedBlocks(olds, news)
	if oldSize != newSize {
		runs = addRun(runs, blockRun{uint64(min(oldSize, newSize) / bs), limit})
	}
	var out []Range
	for _, r := range runs {
		end := maxSize
		if r.end < limit {
			end = int64(r.end) * bs
		}
		out = append(out, Range{Off: int64(r.start) * bs, Len: end - int64(r.start)*bs})
	}
	return out, nil
}

func boolInt(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// clip checks that segs (in file-block order) do not overlap, and returns
// them cut to the file blocks below limit, in a new slice.
func clip(segs []segment, limit uint64) ([]segment, error) {
	out := make([]segment, 0, len(segs))
	for i, s := range segs {
		if i > 0 && s.fb < segs[i-1].end() {
			return nil, format.Corruptf("extent records", format.ErrMalformed,
				"record at file block %d overlaps the one at %d", s.fb, segs[i-1].fb)
		}
		if s.fb >= limit {
			continue
		}
		if n := limit - s.fb; s.rec.Len > n {
			s.rec.Len, s.rec.Sums = n, s.rec.Sums[:n]
		}
		out = append(out, s)
	}
	return out, nil
}

// blockRun is the file blocks [start, end).
type blockRun struct{ start, end uint64 }

// changedBlocks sweeps the old and new records (each sorted and not
// overlapping) together and returns, as sorted runs, the file blocks that
// one side maps and the other does not, or that the two map to different
// physical blocks or checksums. It costs the number of blocks the records
// name, and its memory is the number of runs.
func changedBlocks(olds, news []segment) []blockRun {
	var runs []blockRun
	var i, j int
	var p uint64 // every block below p is done
	for {
		for i < len(olds) && olds[i].end() <= p {
			i++
		}
		for j < len(news) && news[j].end() <= p {
			j++
		}
		if i == len(olds) && j == len(news) {
			return runs
		}
		// Start at the first block either side maps, then find the end of
		// the stretch over which neither side's coverage changes.
		next := uint64(math.MaxUint64)
		if i < len(olds) {
			next = min(next, olds[i].fb)
		}
		if j < len(news) {
			next = min(next, news[j].fb)
		}
		p = max(p, next)
		q := uint64(math.MaxUint64)
		var o, n *segment
		if i < len(olds) {
			if o = &olds[i]; o.fb <= p {
				q = min(q, o.end())
			} else {
				q, o = min(q, o.fb), nil
			}
		}
		if j < len(news) {
			if n = &news[j]; n.fb <= p {
				q = min(q, n.end())
			} else {
				q, n = min(q, n.fb), nil
			}
		}
		for fb := p; fb < q; fb++ {
			if o == nil || n == nil || !sameBlock(o, n, fb) {
				if k := len(runs) - 1; k >= 0 && runs[k].end == fb {
					runs[k].end++
				} else {
					runs = append(runs, blockRun{fb, fb + 1})
				}
			}
		}
		p = q
	}
}

// sameBlock reports whether o and n, which both cover file block fb, map
// it to the same physical block with the same checksum.
func sameBlock(o, n *segment, fb uint64) bool {
	do, dn := fb-o.fb, fb-n.fb
	return o.rec.Start+format.Block(do) == n.rec.Start+format.Block(dn) && o.rec.Sums[do] == n.rec.Sums[dn]
}

// addRun adds r to runs, which are sorted and apart (neither overlapping
// nor adjacent), and keeps them so.
func addRun(runs []blockRun, r blockRun) []blockRun {
	if r.start >= r.end {
		return runs
	}
	i, _ := slices.BinarySearchFunc(runs, r.start, func(x blockRun, s uint64) int {
		switch {
		case x.end < s:
			return -1
		case x.start > s:
			return 1
		}
		return 0
	})
	// runs[i:] are the runs ending at or after r.start; merge those that
	// start at or before r.end.
	j := i
	for j < len(runs) && runs[j].start <= r.end {
		r.start, r.end = min(r.start, runs[j].start), max(r.end, runs[j].end)
		j++
	}
	return slices.Replace(runs, i, j, r)
}

package cowdb

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/internal/record"
	"github.com/cowdb/cowdb/snapshot"
)

// SnapshotInfo describes a snapshot. ReferencedBytes counts every block
// its state reaches (tree nodes and data, once per pointer); ExclusiveBytes
// those no other root reaches, which deleting it would free.
type SnapshotInfo struct {
	Name            string
	Created         time.Time
	ReferencedBytes int64
	ExclusiveBytes  int64
}

// Change is one key that differs between two states (Diff).
type Change = snapshot.Change

// ChangeKind says how a key differs.
type ChangeKind = snapshot.ChangeKind

// Range is a byte range of a value.
type Range = snapshot.Range

// The kinds of Change.
const (
	Added    = snapshot.Added
	Removed  = snapshot.Removed
	Modified = snapshot.Modified
)

// Snapshot is an open snapshot: a read-only view of the store as it was
// when the snapshot was taken. It stays readable until Close, even if the
// snapshot is deleted or the live store restored meanwhile: the blocks it
// may read are held back from reuse (as for any reader) until then, so a
// long-open Snapshot delays space reclamation. Safe for concurrent use.
type Snapshot struct {
	db   *DB
	name string
	tree *btree.Tree
	r    reader // the registration that holds the blocks back

	mu     sync.Mutex
	closed bool
}

// OpenSnapshot opens the snapshot name for reading, or returns
// ErrSnapshotNotFound.
func (db *DB) OpenSnapshot(name string) (*Snapshot, error) {
	if err := snapshot.ValidName(name); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSnapshotName, err)
	}
	if db.closed.Load() {
		return nil, ErrClosed
	}
	// Register as a reader of the current version before looking the tree
	// up: every block the tree reaches now is then held back until Close,
	// whatever happens to the snapshot.
	r := db.acquire()
	var tree *btree.Tree
	db.mu.Lock()
	if s := db.mu.snaps[name]; s != nil {
		tree = s.tree
	}
	db.mu.Unlock()
	if tree == nil {
		db.release(r)
		return nil, fmt.Errorf("%w: %q", ErrSnapshotNotFound, name)
	}
	return &Snapshot{db: db, name: name, tree: tree, r: r}, nil
}

// Name returns the snapshot's name.
func (s *Snapshot) Name() string { return s.name }

// view returns the snapshot's state, or why it cannot be read.
func (s *Snapshot) view() (view, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || s.db.closed.Load() {
		return view{}, ErrClosed
	}
	// LSN 0: no dirty page belongs to a snapshot (Snapshot writes them
	// back before it takes the root).
	v := treeView(s.tree, 0)
	v.snap = s
	return v, nil
}

// Get returns a copy of the value key held in the snapshot, or
// ErrNotFound.
func (s *Snapshot) Get(key []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	v, err := s.view()
	if err != nil {
		return nil, err
	}
	return s.db.getIn(v, key)
}

// OpenBlob opens the value key held in the snapshot as a read-only Blob
// (writes give ErrReadOnly), or returns ErrNotFound.
func (s *Snapshot) OpenBlob(key []byte) (*Blob, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	v, err := s.view()
	if err != nil {
		return nil, err
	}
	ino, err := lookupInode(v, key)
	if err != nil {
		return nil, err
	}
	b := s.db.newBlob(key, ino.ID, true)
	b.snap = s
	return b, nil
}

// Scan yields the snapshot's items with start <= key < end, as DB.Scan.
func (s *Snapshot) Scan(start, end []byte) iter.Seq2[*Item, error] {
	return func(yield func(*Item, error) bool) {
		if start != nil && end != nil && bytes.Compare(start, end) >= 0 {
			return
		}
		v, err := s.view()
		if err != nil {
			yield(nil, err)
			return
		}
		lo, hi := scanBounds(start, end)
		yieldItems(s.db, v, s.tree.Range(lo, hi), nil, yield)
	}
}

// Prefix yields the snapshot's items whose key starts with prefix.
func (s *Snapshot) Prefix(prefix []byte) iter.Seq2[*Item, error] {
	return func(yield func(*Item, error) bool) {
		v, err := s.view()
		if err != nil {
			yield(nil, err)
			return
		}
		yieldItems(s.db, v, s.tree.Prefix(format.InodeKey(nil, prefix)), nil, yield)
	}
}

// Close releases the snapshot's blocks for reuse. Later calls return
// ErrClosed; Close again returns nil.
func (s *Snapshot) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.db.release(s.r)
	return nil
}

// Snapshots lists the snapshots in name order, with their sizes. It walks
// every root's tree once, never a subtree shared by several roots more
// than once, so it reads each node of the store once.
func (db *DB) Snapshots() ([]SnapshotInfo, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	r := db.acquire()
	defer db.release(r)
	db.mu.Lock()
	names := slices.Sorted(maps.Keys(db.mu.snaps))
	snaps := make([]snapState, len(names))
	for i, n := range names {
		snaps[i] = *db.mu.snaps[n]
	}
	roots := []*btree.Tree{db.mu.live}
	var drops []*btree.Tree
	for _, d := range db.mu.drops {
		if d.d == nil {
			drops = append(drops, d.tree)
		}
	}
	db.mu.Unlock()
	for _, s := range snaps {
		roots = append(roots, s.tree)
	}
	// No checkpoint may give dirty nodes their blocks mid-walk (a node
	// would show up under two NodeIDs).
	db.cpMu.Lock()
	g, err := db.spaceGraph(append(roots, drops...))
	db.cpMu.Unlock()
	if err != nil {
		return nil, err
	}
	infos := make([]SnapshotInfo, len(snaps))
	for i, s := range snaps {
		ref, excl := g.sizes(1 + i)
		infos[i] = SnapshotInfo{Name: names[i], Created: time.Unix(0, s.created), ReferencedBytes: ref, ExclusiveBytes: excl}
	}
	return infos, nil
}

// spaceNode is one node of the store's trees, as Snapshots counts it.
type spaceNode struct {
	kids     []btree.NodeID
	refs     int   // referrers among the roots walked: nodes and roots
	own      int64 // the node's block, and the data its extent records name
	ownExcl  int64 // the node's block, and the data only its records reach
	ownBlock int64
}

// spaceGraph is the node graph of several roots, each node read once.
type spaceGraph struct {
	bs    int64
	nodes map[btree.NodeID]*spaceNode
	roots []btree.NodeID // per root walked, in order; the zero NodeID for an empty tree
}

// spaceGraph walks roots, descending only into nodes not seen before, and
// records each node's children, referrer count and own bytes. Data extents
// count as exclusive to a leaf when no other pointer holds them (their
// allocator count is 1).
func (db *DB) spaceGraph(roots []*btree.Tree) (*spaceGraph, error) {
	g := &spaceGraph{bs: int64(db.bs), nodes: map[btree.NodeID]*spaceNode{}, roots: make([]btree.NodeID, len(roots))}
	type pending struct {
		n   *spaceNode
		ext cowio.ExtentRecord
	}
	var exts []pending
	for i, t := range roots {
		first := true
		err := t.Walk(func(info btree.NodeInfo) (bool, error) {
			if first {
				first = false
				g.roots[i] = info.ID
			}
			if n := g.nodes[info.ID]; n != nil {
				return false, nil
			}
			n := &spaceNode{kids: slices.Clone(info.Children), own: g.bs, ownExcl: g.bs}
			g.nodes[info.ID] = n
			for i, k := range info.Keys {
				if len(info.Children) > 0 {
					break
				}
				if _, _, ok := format.ParseExtentKey(k); !ok {
					continue
				}
				r, err := cowio.DecodeExtentRecord(info.Values[i])
				if err != nil {
					return false, err
				}
				n.own += int64(r.Len) * g.bs
				exts = append(exts, pending{n, r})
			}
			return true, nil
		})
		if err != nil {
			return nil, err
		}
	}
	// Referrer counts: each node's children, once per distinct node, and
	// each root once.
	for _, n := range g.nodes {
		for _, k := range n.kids {
			if c := g.nodes[k]; c != nil {
				c.refs++
			}
		}
	}
	for _, id := range g.roots {
		if n := g.nodes[id]; n != nil {
			n.refs++
		}
	}
	// Block by block: part of an extent may be shared (a cut record's
	// other part is mapped elsewhere) while the rest is not.
	db.mu.Lock()
	for _, p := range exts {
		for b := p.ext.Start; b < p.ext.Start+format.Block(p.ext.Len); b++ {
			if db.mu.alloc.Count(b) == 1 {
				p.n.ownExcl += g.bs
			}
		}
	}
	db.mu.Unlock()
	return g, nil
}

// sizes returns the bytes root t references and those only it reaches: a
// node is exclusive when its one referrer is an exclusive node (or t).
func (g *spaceGraph) sizes(i int) (ref, excl int64) {
	id := g.roots[i]
	if g.nodes[id] == nil {
		return 0, 0 // an empty tree
	}
	memo := map[btree.NodeID]int64{}
	var total func(btree.NodeID) int64
	total = func(id btree.NodeID) int64 {
		if v, ok := memo[id]; ok {
			return v
		}
		n := g.nodes[id]
		v := n.own
		for _, k := range n.kids {
			v += total(k)
		}
		memo[id] = v
		return v
	}
	var exclusive func(btree.NodeID) int64
	exclusive = func(id btree.NodeID) int64 {
		n := g.nodes[id]
		if n.refs != 1 {
			return 0
		}
		v := n.ownExcl
		for _, k := range n.kids {
			v += exclusive(k)
		}
		return v
	}
	return total(id), exclusive(id)
}

// Clone makes dst hold a copy of src's value that shares src's extents
// (XFS reflink): O(extents), no data copied; later writes to either never
// affect the other. dst is replaced; a missing src is ErrNotFound; src ==
// dst does nothing. Durable on return under SyncAlways.
func (db *DB) Clone(src, dst []byte) error {
	if err := checkKey(src); err != nil {
		return err
	}
	if err := checkKey(dst); err != nil {
		return err
	}
	if bytes.Equal(src, dst) {
		if _, err := db.Get(src); err != nil {
			return err
		}
		return nil
	}
	return db.clone("", src, dst)
}

// CloneFrom makes dst in the live store hold the value src held in the
// snapshot, sharing its extents as Clone does (a cheap restore of one
// value).
func (db *DB) CloneFrom(snap string, src, dst []byte) error {
	if err := snapshot.ValidName(snap); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSnapshotName, err)
	}
	if err := checkKey(src); err != nil {
		return err
	}
	if err := checkKey(dst); err != nil {
		return err
	}
	return db.clone(snap, src, dst)
}

// clone logs and applies a Clone. A live src's dirty pages are written
// back first, with its writers held off until the clone is committed, so
// dst gets every byte src was acknowledged to hold.
func (db *DB) clone(snap string, src, dst []byte) error {
	if db.closed.Load() {
		return ErrClosed
	}
	for range cloneRetries {
		err := db.cloneOnce(snap, src, dst)
		if !errors.Is(err, errCloneRaced) {
			return err
		}
	}
	return fmt.Errorf("cowdb: clone of %q: its value kept changing: %w", src, errCloneRaced)
}

// cloneRetries bounds how often a Clone starts again because src's value
// was replaced between its writeback and its commit.
const cloneRetries = 10

// errCloneRaced stops a clone attempt whose src became another value, with
// dirty pages, after src's pages were written back.
var errCloneRaced = errors.New("cowdb: clone source changed during the clone")

// cloneOnce is one attempt of clone. The locks are taken inside the
// commit attempt: commitRetrying checkpoints between attempts, and a
// checkpoint writes back src's pages itself.
func (db *DB) cloneOnce(snap string, src, dst []byte) error {
	return db.commitRetrying(func() (format.LSN, error) {
		if snap == "" {
			r := db.acquire()
			ino, err := lookupInode(treeView(r.v.ns, r.v.lsn), src)
			db.release(r)
			if err != nil {
				return 0, err
			}
			if !ino.Inline() {
				st := db.pages.use(ino.ID)
				defer db.pages.unuse(st)
				st.wmu.Lock()
				defer st.wmu.Unlock()
				if err := db.writebackLocked(st); err != nil {
					return 0, err
				}
			}
		}
		return db.writeOnce(func(w *writer) error {
			if snap == "" {
				// src may have become another value since the lookup
				// (an inline value made a blob, a CreateBlob), whose
				// pages were not written back: start again.
				ino, err := lookupInode(w.view(), src)
				if err != nil {
					return err
				}
				if !ino.Inline() && w.db.pages.hasDirty(ino.ID) {
					return errCloneRaced
				}
			}
			w.db.mu.nextInode++
			id := w.db.mu.nextInode - 1
			return w.do(record.Op{Kind: record.Clone, Key: bytes.Clone(src), Dst: bytes.Clone(dst), Name: snap, Inode: id})
		})
	})
}

// applyClone makes op.Dst a new inode op.Inode holding op.Key's value in
// the snapshot op.Name (the live batch when empty), each extent record
// copied with one more reference on its blocks.
func (w *writer) applyClone(op record.Op) error {
	if len(op.Key) == 0 || len(op.Key) > MaxKeySize || len(op.Dst) == 0 || len(op.Dst) > MaxKeySize || op.Inode == 0 {
		return fmt.Errorf("%w: clone of %q to %q as inode %d", record.ErrBadBatch, op.Key, op.Dst, op.Inode)
	}
	src := w.view()
	if op.Name != "" {
		s := w.db.mu.snaps[op.Name]
		if s == nil {
			return fmt.Errorf("%w: %q", ErrSnapshotNotFound, op.Name)
		}
		src = treeView(s.tree, 0)
	}
	ino, err := lookupInode(src, op.Key)
	if err != nil {
		return err
	}
	var m cowio.Mapping
	if !ino.Inline() {
		if m, err = src.mapping(ino.ID, 0, maxFileBlock); err != nil {
			return err
		}
		ino.Value = nil
	}
	// The extent records are read before the Put, which releases what dst
	// held: with src == dst (CloneFrom restoring a key) they are the
	// snapshot's anyway, and on the live path src != dst.
	ino.ID = op.Inode
	if err := w.applyPut(record.Op{Kind: record.Put, Key: op.Dst, Inode: op.Inode, Size: ino.Size, Flags: ino.Flags, Value: ino.Value}, nil); err != nil {
		return err
	}
	if ino.Inline() {
		return nil
	}
	w.db.mu.hasBlobs = true
	for _, e := range m.Entries {
		w.incs = append(w.incs, e.Extent())
		rec := cowio.EncodeExtentRecord(nil, cowio.ExtentRecord{Start: e.Start, Len: e.Len, Sums: e.Sums})
		if err := w.set(format.ExtentKey(nil, op.Inode, uint64(e.FileBlock)), rec); err != nil {
			return err
		}
	}
	return nil
}

// Diff yields the keys that differ from the state from to the state to,
// one Change per key in key order; "" names the live store. It walks the
// two trees together, skipping every subtree they share, so its cost
// follows the changes, not the store's size. A blob modified in place
// lists its changed byte ranges (block granularity).
func (db *DB) Diff(from, to string) iter.Seq2[Change, error] {
	return func(yield func(Change, error) bool) {
		for _, n := range []string{from, to} {
			if n == "" {
				continue
			}
			if err := snapshot.ValidName(n); err != nil {
				yield(Change{}, fmt.Errorf("%w: %w", ErrInvalidSnapshotName, err))
				return
			}
		}
		if db.closed.Load() {
			yield(Change{}, ErrClosed)
			return
		}
		if from == "" || to == "" {
			// The live tree must hold every acknowledged byte.
			release, err := db.quiesceBlobs()
			if err != nil {
				yield(Change{}, err)
				return
			}
			release()
		}
		r := db.acquire()
		defer db.release(r)
		pick := func(n string) (*btree.Tree, error) {
			if n == "" {
				return r.v.ns, nil
			}
			db.mu.Lock()
			defer db.mu.Unlock()
			s := db.mu.snaps[n]
			if s == nil {
				return nil, fmt.Errorf("%w: %q", ErrSnapshotNotFound, n)
			}
			return s.tree, nil
		}
		a, err := pick(from)
		if err == nil {
			var b *btree.Tree
			if b, err = pick(to); err == nil {
				for c, err := range snapshot.Translate(btree.Diff(a, b), db.bs, a.Get, b.Get) {
					if !yield(c, err) || err != nil {
						return
					}
				}
				return
			}
		}
		yield(Change{}, err)
	}
}

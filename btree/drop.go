package btree

import (
	"encoding/binary"

	"github.com/cowdb/cowdb/internal/format"
)

// Drop releases one counted root in bounded, resumable steps (Rodeh;
// dm_btree_del): the root loses its reference, and only a node whose count
// reaches 0 is read, to release what it points at (children, or its values'
// references through BlockStore.AdjustValue), and then freed. So dropping a
// snapshot costs what was exclusive to it.
//
// Its state between steps is a cursor (MarshalBinary) the store logs, so a
// drop resumes after a crash (Forest.ResumeDrop). Counts stay exact between
// steps: a node being dropped still holds the references it has not
// released yet, so the live tree may keep shadowing nodes it shares with
// the dropped one. A Drop is used by the writer only.
type Drop struct {
	f       *Forest
	kind    TreeKind
	root    child // the root to release, before the first step
	started bool
	frames  []dropFrame
}

// dropFrame is a node whose count reached 0 and whose entries from next on
// are still to be released.
type dropFrame struct {
	c     child
	level int
	n     *node // loaded lazily; not part of the cursor
	next  int
}

// Drop returns a Drop of t, which must be a counted root the caller gives
// up. Nothing changes until the first Step.
func (f *Forest) Drop(t *Tree) *Drop {
	return &Drop{f: f, kind: t.kind, root: t.root}
}

// Done reports whether the drop has released everything.
func (d *Drop) Done() bool { return d.started && len(d.frames) == 0 }

// Step does at most budget units of work (one count change or one freed
// node each) and reports whether the drop is done. Writer only; it refuses
// to run while a batch is open.
func (d *Drop) Step(budget int) (bool, error) {
	f := d.f
	if err := f.checkWriter(); err != nil {
		return false, err
	}
	units := 0
	if !d.started {
		// A dirty root with count 0 is a stale version a reader held, not
		// a counted root: releasing it would drive counts below zero.
		if uncounted(d.root) {
			return false, ErrUncounted
		}
		d.started = true
		units++
		if !d.root.empty() {
			if err := d.release(d.root, -1); err != nil {
				return false, f.fail(err)
			}
		}
	}
	for ; units < budget && len(d.frames) > 0; units++ {
		if err := d.stepFrame(); err != nil {
			return false, err
		}
	}
	return d.Done(), nil
}

// release takes one reference from c and, if that was the last, pushes c to
// be descended into.
func (d *Drop) release(c child, level int) error {
	zero, err := d.f.adjustZero(c.id(), -1)
	if err == nil && zero {
		d.frames = append(d.frames, dropFrame{c: c, level: level})
	}
	return err
}

// stepFrame does one unit of work on the innermost frame.
func (d *Drop) stepFrame() error {
	f := d.f
	top := &d.frames[len(d.frames)-1]
	if top.n == nil {
		n, err := f.load(d.kind, top.c, top.level)
		if err != nil {
			return err
		}
		if top.next > len(n.keys) {
			return format.Corruptf("btree drop cursor", format.ErrMalformed, "position %d in a node of %d entries", top.next, len(n.keys))
		}
		top.n = n
	}
	n := top.n
	if top.next == len(n.keys) {
		id := top.c.id()
		d.frames = d.frames[:len(d.frames)-1]
		if id.mem == nil {
			if err := f.store.FreeNode(id.block); err != nil {
				return f.fail(err)
			}
		}
		return nil
	}
	i := top.next
	if n.leaf() {
		if err := f.store.AdjustValue(d.kind, n.keys[i], n.vals[i], -1); err != nil {
			return f.fail(err)
		}
		top.next++
		return nil
	}
	top.next++ // before release, which may append and move top
	if err := d.release(n.kids[i], int(n.level)-1); err != nil {
		return f.fail(err)
	}
	return nil
}

// The drop cursor, as MarshalBinary writes it (little-endian). It is logged
// in the WAL, whose records carry their own checksum.
//
//	offset size field
//	     0    4 magic     dropMagic ("CBTD")
//	     4    1 version   1
//	     5    1 tree kind
//	     6    1 started   0 or 1
//	     7    1 frames    number of frames, at most format.NodeLevelMax+1
//	     8   16 root      block(8) checksum(8): the root before the first step
//	    24   20 per frame block(8) checksum(8) next entry(4), outermost first
const (
	dropMagic     uint32 = 0x44544243
	dropVersion          = 1
	dropHeader           = 24
	dropFrameSize        = 20
)

// MarshalBinary encodes the drop's cursor. It returns ErrNotPersisted while
// the cursor holds a dirty node (a tree dropped before a checkpoint wrote
// it): checkpoint the tree before dropping it when the drop must survive a
// crash.
func (d *Drop) MarshalBinary() ([]byte, error) {
	le := binary.LittleEndian
	b := make([]byte, dropHeader, dropHeader+dropFrameSize*len(d.frames))
	le.PutUint32(b, dropMagic)
	b[4], b[5], b[7] = dropVersion, byte(d.kind), byte(len(d.frames))
	if d.started {
		b[6] = 1
	} else {
		r := d.root.resolved()
		if r.IsZero() && !d.root.empty() {
			return nil, ErrNotPersisted
		}
		le.PutUint64(b[8:], uint64(r.Block))
		le.PutUint64(b[16:], r.Sum)
	}
	for _, fr := range d.frames {
		r := fr.c.resolved()
		if r.IsZero() {
			return nil, ErrNotPersisted
		}
		b = le.AppendUint64(b, uint64(r.Block))
		b = le.AppendUint64(b, r.Sum)
		b = le.AppendUint32(b, uint32(fr.next))
	}
	return b, nil
}

// ResumeDrop decodes a cursor written by MarshalBinary. A malformed cursor
// is an error wrapping format.ErrCorrupt; a position beyond its node's
// entries is found (and reported the same way) when the step reaches it.
func (f *Forest) ResumeDrop(b []byte) (*Drop, error) {
	const where = "btree drop cursor"
	le := binary.LittleEndian
	if len(b) < dropHeader {
		return nil, format.Corruptf(where, format.ErrTruncated, "%d bytes", len(b))
	}
	if le.Uint32(b) != dropMagic {
		return nil, format.Corruptf(where, format.ErrBadMagic, "magic %#x", le.Uint32(b))
	}
	if b[4] != dropVersion {
		return nil, format.Corruptf(where, format.ErrBadVersion, "version %d", b[4])
	}
	nf := int(b[7])
	started := b[6] == 1
	root := format.Ref{Block: format.Block(le.Uint64(b[8:])), Sum: le.Uint64(b[16:])}
	switch {
	case b[6] > 1, nf > format.NodeLevelMax+1, started && root != (format.Ref{}),
		root.IsZero() && root.Sum != 0, !started && nf != 0:
		return nil, format.Corruptf(where, format.ErrMalformed, "started %d, %d frames", b[6], nf)
	case len(b) != dropHeader+nf*dropFrameSize:
		return nil, format.Corruptf(where, format.ErrTruncated, "%d bytes for %d frames", len(b), nf)
	}
	d := &Drop{f: f, kind: TreeKind(b[5]), started: started, root: child{ref: root}}
	for i := range nf {
		p := b[dropHeader+i*dropFrameSize:]
		r := format.Ref{Block: format.Block(le.Uint64(p)), Sum: le.Uint64(p[8:])}
		next := le.Uint32(p[16:])
		if r.IsZero() || next > uint32(f.capacity) {
			return nil, format.Corruptf(where, format.ErrMalformed, "frame %d: block %d, next %d", i, r.Block, next)
		}
		// A frame's level is not in the cursor: the node's own is taken
		// when it is read, and the children it pushes are checked
		// against it.
		d.frames = append(d.frames, dropFrame{c: child{ref: r}, level: -1, next: int(next)})
	}
	return d, nil
}

// Walk visits what the drop still holds, as Tree.Walk does (fsck counts it
// as reachable): before the first step, the whole tree; after, each node
// whose count reached 0 but which is not freed yet, outermost first, with
// only the entries it has not released (Keys, Values and Children from its
// cursor position on), descending into those children when visit says so.
func (d *Drop) Walk(visit func(NodeInfo) (descend bool, err error)) error {
	t := &Tree{f: d.f, kind: d.kind, root: d.root}
	if !d.started {
		if d.root.empty() {
			return nil
		}
		return t.walk(d.root, -1, visit)
	}
	for _, fr := range d.frames {
		n, err := d.f.load(d.kind, fr.c, fr.level)
		if err != nil {
			return err
		}
		if fr.next > len(n.keys) {
			return format.Corruptf("btree drop cursor", format.ErrMalformed, "position %d in a node of %d entries", fr.next, len(n.keys))
		}
		info := NodeInfo{ID: NodeID{fr.c.id()}, Ref: fr.c.resolved(), Level: int(n.level), Keys: n.keys[fr.next:]}
		if n.leaf() {
			info.Values = n.vals[fr.next:]
		}
		kids := n.kids[min(fr.next, len(n.kids)):]
		for _, k := range kids {
			info.Children = append(info.Children, NodeID{k.id()})
		}
		descend, err := visit(info)
		if err != nil {
			return err
		}
		if !descend {
			continue
		}
		for _, k := range kids {
			if err := t.walk(k, int(n.level)-1, visit); err != nil {
				return err
			}
		}
	}
	return nil
}

// Started reports whether the drop has taken its first step (its root's
// reference is then released).
func (d *Drop) Started() bool { return d.started }

// Frames returns the nodes the drop has taken to count 0 but not freed yet
// (each still holds its entries from its cursor position on), outermost
// first.
func (d *Drop) Frames() []format.Ref {
	refs := make([]format.Ref, len(d.frames))
	for i, fr := range d.frames {
		refs[i] = fr.c.resolved()
	}
	return refs
}

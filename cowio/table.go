package cowio

import (
	"container/list"
	"fmt"
	"sync"

	"github.com/cowdb/cowdb/internal/format"
)

// TableSizeDefault is the default number of idle inodes a Table keeps.
const TableSizeDefault = 1024

// Table keeps the Inodes of one store, keyed by inode ID, so that every
// user of a value shares one Inode (one mapping lock, one staging map, one
// sequence counter): two Inodes for one value would each trust a mapping
// the other changes. Acquire pins an Inode and Release unpins it; the
// Table keeps at most Size unpinned Inodes, dropping the least recently
// used (and releasing their reserved blocks). A pinned Inode, or one with
// writes in flight, is never dropped, so the Table holds at most Size
// Inodes plus those in use.
//
// Table is safe for concurrent use by multiple goroutines. It calls load
// and the Space (through ReleaseReserved) with its own lock not held.
type Table struct {
	w    *Writer
	opts InodeOptions
	size int

	mu struct {
		sync.Mutex
		inodes map[format.InodeID]*tableEntry
		idle   list.List // of *tableEntry with pins == 0, most recent at the front
		// loading holds the IDs being loaded, each with a channel closed
		// when the load ends, so that one value is loaded once.
		loading map[format.InodeID]chan struct{}
	}
}

type tableEntry struct {
	ino  *Inode
	pins int
	elem *list.Element // in idle while pins == 0
}

// NewTable returns a Table of Inodes over w, each made with opts, keeping
// at most size idle ones (0 means TableSizeDefault).
func NewTable(w *Writer, size int, opts *InodeOptions) (*Table, error) {
	if w == nil || size < 0 {
		return nil, fmt.Errorf("%w: nil writer or table size %d", ErrInvalidOptions, size)
	}
	if size == 0 {
		size = TableSizeDefault
	}
	t := &Table{w: w, size: size}
	if opts != nil {
		t.opts = *opts
	}
	if _, err := NewInode(w, 0, Mapping{}, &t.opts); err != nil {
		return nil, err
	}
	t.mu.inodes = map[format.InodeID]*tableEntry{}
	t.mu.loading = map[format.InodeID]chan struct{}{}
	return t, nil
}

// Acquire returns the Inode id, pinned until the matching Release. If the
// Table does not hold it, Acquire calls load for its committed mapping (the
// store reads the inode's extent records) and makes it; concurrent
// Acquires of one id wait for a single load. An error from load or
// NewInode is returned and nothing is kept.
func (t *Table) Acquire(id format.InodeID, load func() (Mapping, error)) (*Inode, error) {
	for {
		t.mu.Lock()
		if e, ok := t.mu.inodes[id]; ok {
			t.pinLocked(e)
			t.mu.Unlock()
			return e.ino, nil
		}
		wait, busy := t.mu.loading[id]
		if !busy {
			done := make(chan struct{})
			t.mu.loading[id] = done
			t.mu.Unlock()
			ino, err := t.load(id, load)
			t.mu.Lock()
			delete(t.mu.loading, id)
			close(done)
			if err == nil {
				t.mu.inodes[id] = &tableEntry{ino: ino, pins: 1}
			}
			t.mu.Unlock()
			return ino, err
		}
		t.mu.Unlock()
		<-wait
	}
}

func (t *Table) load(id format.InodeID, load func() (Mapping, error)) (*Inode, error) {
	m, err := load()
	if err != nil {
		return nil, err
	}
	return NewInode(t.w, id, m, &t.opts)
}

func (t *Table) pinLocked(e *tableEntry) {
	if e.pins == 0 {
		t.mu.idle.Remove(e.elem)
		e.elem = nil
	}
	e.pins++
}

// Release unpins an Inode Acquire returned. When more than Size Inodes are
// idle, it drops the least recently used ones without writes in flight and
// releases their reserved blocks. Releasing an Inode more times than it was
// acquired is a bug, and panics.
func (t *Table) Release(ino *Inode) {
	t.mu.Lock()
	e, ok := t.mu.inodes[ino.id]
	if !ok || e.ino != ino || e.pins == 0 {
		t.mu.Unlock()
		panic(fmt.Sprintf("cowdb: assertion failed: release of inode %d not acquired", ino.id))
	}
	e.pins--
	if e.pins == 0 {
		e.elem = t.mu.idle.PushFront(e)
	}
	var dropped []*Inode
	for el := t.mu.idle.Back(); el != nil && t.mu.idle.Len() > t.size; {
		prev := el.Prev()
		victim := el.Value.(*tableEntry)
		if victim.ino.Stats().InFlight == 0 {
			t.mu.idle.Remove(el)
			delete(t.mu.inodes, victim.ino.id)
			dropped = append(dropped, victim.ino)
		}
		el = prev
	}
	t.mu.Unlock()
	for _, d := range dropped {
		d.ReleaseReserved()
	}
}

// Drop forgets the Inode id if no one holds it (the value was deleted, or
// the store reloads it), releasing its reserved blocks, and reports whether
// it did. A pinned Inode, or one with writes in flight, stays.
func (t *Table) Drop(id format.InodeID) bool {
	t.mu.Lock()
	e, ok := t.mu.inodes[id]
	if !ok || e.pins != 0 || e.ino.Stats().InFlight != 0 {
		t.mu.Unlock()
		return false
	}
	t.mu.idle.Remove(e.elem)
	delete(t.mu.inodes, id)
	t.mu.Unlock()
	e.ino.ReleaseReserved()
	return true
}

// DropAll forgets every Inode no one holds, as Drop does for each (the
// store's roots changed under them: a Restore), and reports how many it
// kept because they were in use.
func (t *Table) DropAll() int {
	t.mu.Lock()
	var ids []format.InodeID
	for id := range t.mu.inodes {
		ids = append(ids, id)
	}
	t.mu.Unlock()
	kept := 0
	for _, id := range ids {
		if !t.Drop(id) {
			kept++
		}
	}
	return kept
}

// Len returns the number of Inodes the Table holds, pinned or idle.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.mu.inodes)
}

// ReleaseReserved releases the reserved staging blocks of every Inode the
// Table holds (Inode.ReleaseReserved, safe while they are in use) and
// returns how many there were: what the store does under space pressure,
// before it reports no space, and may do at checkpoints.
func (t *Table) ReleaseReserved() uint64 {
	t.mu.Lock()
	inodes := make([]*Inode, 0, len(t.mu.inodes))
	for _, e := range t.mu.inodes {
		inodes = append(inodes, e.ino)
	}
	t.mu.Unlock()
	var n uint64
	for _, ino := range inodes {
		n += ino.ReleaseReserved()
	}
	return n
}

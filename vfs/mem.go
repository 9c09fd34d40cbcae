package vfs

import (
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
)

// SectorSize is the unit of atomicity of MemFS.Crash: a torn write keeps or
// loses each 512-byte sector it touches (sectors start at file offsets that
// are multiples of SectorSize) as a whole, like a disk's atomic sector.
const SectorSize = 512

// MemFS is a crashable file system in memory (DESIGN §12). It behaves like
// a careful reading of POSIX in which nothing is durable unless a sync said
// so:
//
//   - Each file has durable content and a list of the writes, truncations
//     and fallocations made since its last Datasync or Sync. The sync makes
//     all of them, and the file size, durable.
//   - Directory entries (files created, removed or renamed, directories
//     made) are durable only after SyncDir of the directory holding them. A
//     file fsynced in a directory whose entry for it was never SyncDir'd is
//     lost by a crash, and so is everything in a directory whose own entry
//     was never made durable. (SetEntryJournal lets a crash keep some
//     unsynced changes, as journaling file systems may.)
//   - Crash simulates power loss: each unsynced change is independently
//     lost or kept, and a write may be torn (some of its sectors kept, some
//     lost), all decided from a seed, so the same history and seed give the
//     same result. Unsynced fallocated ranges therefore read as zeros or are
//     absent after a crash, never anything else.
//
// The Direct flag is accepted and its alignment contract enforced exactly
// as the OS implementation does, so tests on MemFS catch unaligned direct
// I/O; SetDirectSupported(false) makes it refuse Direct as tmpfs did before Linux 6.6.
//
// Paths are slash-separated; relative and absolute names denote the same
// tree ("a/b" is "/a/b"). Parents must exist, as on a real file system.
//
// Between syncs a file keeps a private copy of every byte written, so its
// memory grows with what is written and unsynced; a file is limited to
// 2^48 bytes.
//
// MemFS is safe for concurrent use by multiple goroutines; one mutex guards
// everything, which is simple and fast enough for tests.
type MemFS struct {
	mu struct {
		sync.Mutex
		root     *memNode
		nextID   uint64 // identity of the next node; seeds its crash fate
		boot     uint64 // handles from an earlier boot are dead
		ops      int64  // mutating operations that succeeded
		crashIn  int64  // mutating operations left before dying; <0 disarmed
		dead     bool   // the machine has crashed: mutating ops fail
		noDirect bool
		locks    map[*memNode]*memLockState

		// journalOn is SetEntryJournal's setting; journal holds, in order,
		// the directory changes not yet made durable by a SyncDir.
		journalOn bool
		journal   [][]memEntryChange
	}
}

// memEntryChange is one change to a directory's entries: name now names
// node, or nothing if node is nil. A rename is two changes in one record.
type memEntryChange struct {
	dir  *memNode
	name string
	node *memNode
}

// memNode is a file or directory ("inode"). Handles and directory entries
// point at it, so it survives renames and, while open, removal.
type memNode struct {
	id  uint64
	dir bool

	// A directory's entries as seen now, and as they would be after a
	// crash (the state of the last SyncDir).
	live, durable map[string]*memNode

	// A file's content as seen now (cur), as of its last sync (dur), and
	// the changes between the two, in order.
	cur, dur memImage
	pending  []memOp
}

type memLockState struct {
	exclusive bool
	shared    int
}

// NewMem returns an empty MemFS holding only its root directory.
func NewMem() *MemFS {
	m := &MemFS{}
	m.mu.root = m.newNodeLocked(true)
	m.mu.crashIn = -1
	m.mu.locks = make(map[*memNode]*memLockState)
	return m
}

func (m *MemFS) newNodeLocked(dir bool) *memNode {
	m.mu.nextID++
	n := &memNode{id: m.mu.nextID, dir: dir}
	if dir {
		n.live = make(map[string]*memNode)
		n.durable = make(map[string]*memNode)
	}
	return n
}

// Ops returns the number of mutating operations that have succeeded so far:
// WriteAt, Datasync, Sync, Fallocate, Truncate, Remove, Rename, SyncDir,
// and OpenFile, MkdirAll and Lock when they create something. A test runs
// a workload once to learn its count, then replays it with CrashAfter(k)
// for each k to enumerate every crash point.
func (m *MemFS) Ops() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.ops
}

// CrashAfter arms a crash point: after n more mutating operations (as
// counted by Ops) succeed, the machine is dead, and every later mutating
// operation fails with an error wrapping ErrCrashed (and so ErrIO) and
// changes nothing, until Crash. Reads keep working on what is in memory.
// CrashAfter(0) kills the machine at once; a negative n disarms a pending
// crash point, but does not revive a machine that is already dead.
func (m *MemFS) CrashAfter(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.crashIn = n
	if n == 0 {
		m.mu.dead = true
	}
}

// Crashed reports whether a crash point armed by CrashAfter has been
// reached (and Crash has not yet been called).
func (m *MemFS) Crashed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.dead
}

// SetDirectSupported sets whether OpenFile accepts the Direct flag. With
// false, MemFS refuses it with ErrDirectUnsupported, as tmpfs did before
// Linux 6.6, so tests can exercise DirectIOAuto's fallback. The default is
// true.
func (m *MemFS) SetDirectSupported(ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.noDirect = !ok
}

// SetEntryJournal sets what Crash does with directory changes (creations,
// removals, renames, new directories) that no SyncDir has made durable. Off,
// the default, Crash loses them all: the strictest reading, which reliably
// catches a missing SyncDir. On, Crash keeps a prefix of them, in the order
// they were made, of a length drawn from the crash seed, as a journaling
// file system may commit its metadata on its own: this catches code that
// relies on an unsynced rename or removal NOT having happened. Only changes
// made while the journal is on can survive; turning it off forgets them.
func (m *MemFS) SetEntryJournal(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.journalOn = on
	if !on {
		m.mu.journal = nil
	}
}

// changeEntriesLocked applies one directory operation's changes to the
// live entries and journals them as one record.
func (m *MemFS) changeEntriesLocked(changes ...memEntryChange) {
	for _, c := range changes {
		if c.node == nil {
			delete(c.dir.live, c.name)
		} else {
			c.dir.live[c.name] = c.node
		}
	}
	if m.mu.journalOn {
		m.mu.journal = append(m.mu.journal, changes)
	}
}

// checkLiveLocked fails a mutating operation on a dead machine.
func (m *MemFS) checkLiveLocked(op, name string) error {
	if m.mu.dead {
		return pathError(op, name, ErrCrashed)
	}
	return nil
}

// mutatedLocked counts a mutating operation that succeeded and kills the
// machine when an armed crash point is reached.
func (m *MemFS) mutatedLocked() {
	m.mu.ops++
	if m.mu.crashIn > 0 {
		m.mu.crashIn--
		if m.mu.crashIn == 0 {
			m.mu.dead = true
		}
	}
}

// splitPath returns the components of name below the root.
func splitPath(name string) []string {
	clean := path.Clean("/" + name)
	if clean == "/" {
		return nil
	}
	return strings.Split(clean[1:], "/")
}

// dirLocked walks the live tree to the directory named by parts.
func (m *MemFS) dirLocked(op, name string, parts []string) (*memNode, error) {
	d := m.mu.root
	for _, p := range parts {
		next := d.live[p]
		if next == nil {
			return nil, pathError(op, name, ErrNotExist)
		}
		if !next.dir {
			return nil, pathError(op, name, errNotDir)
		}
		d = next
	}
	return d, nil
}

// parentLocked returns the directory holding name and name's base.
func (m *MemFS) parentLocked(op, name string) (*memNode, string, error) {
	parts := splitPath(name)
	if len(parts) == 0 {
		return nil, "", pathError(op, name, errInvalid) // the root has no entry
	}
	d, err := m.dirLocked(op, name, parts[:len(parts)-1])
	return d, parts[len(parts)-1], err
}

// OpenFile opens the named file; see FS.
func (m *MemFS) OpenFile(name string, flag OpenFlag) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if flag&Direct != 0 && m.mu.noDirect {
		return nil, pathError("open", name, ErrDirectUnsupported)
	}
	n, err := m.lookupOrCreateLocked("open", name, flag&Create != 0)
	if err != nil {
		return nil, err
	}
	if n.dir {
		return nil, pathError("open", name, errIsDir)
	}
	return &memFile{
		fs: m, node: n, name: name, boot: m.mu.boot,
		writable: flag&(ReadWrite|Create) != 0,
		direct:   flag&Direct != 0,
	}, nil
}

// lookupOrCreateLocked finds the named entry or, with create, makes it a
// new empty file (a counted mutating operation).
func (m *MemFS) lookupOrCreateLocked(op, name string, create bool) (*memNode, error) {
	d, base, err := m.parentLocked(op, name)
	if err != nil {
		return nil, err
	}
	if n := d.live[base]; n != nil {
		return n, nil
	}
	if !create {
		return nil, pathError(op, name, ErrNotExist)
	}
	if err := m.checkLiveLocked(op, name); err != nil {
		return nil, err
	}
	n := m.newNodeLocked(false)
	m.changeEntriesLocked(memEntryChange{d, base, n})
	m.mutatedLocked()
	return n, nil
}

// Remove removes a file or empty directory; see FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.parentLocked("remove", name)
	if err != nil {
		return err
	}
	n := d.live[base]
	switch {
	case n == nil:
		return pathError("remove", name, ErrNotExist)
	case n.dir && len(n.live) > 0:
		return pathError("remove", name, errNotEmpty)
	}
	if err := m.checkLiveLocked("remove", name); err != nil {
		return err
	}
	m.changeEntriesLocked(memEntryChange{d, base, nil})
	m.mutatedLocked()
	return nil
}

// Rename renames oldname to newname, replacing a file or empty directory
// there; see FS. Renaming a directory into itself fails.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	desc := oldname + " -> " + newname
	od, obase, err := m.parentLocked("rename", oldname)
	if err != nil {
		return err
	}
	nd, nbase, err := m.parentLocked("rename", newname)
	if err != nil {
		return err
	}
	src, dst := od.live[obase], nd.live[nbase]
	if src == nil {
		return pathError("rename", desc, ErrNotExist)
	}
	if err := renameCheck(src, dst, splitPath(oldname), splitPath(newname)); err != nil {
		return pathError("rename", desc, err)
	}
	if err := m.checkLiveLocked("rename", desc); err != nil {
		return err
	}
	if src != dst {
		m.changeEntriesLocked(memEntryChange{od, obase, nil}, memEntryChange{nd, nbase, src})
	}
	m.mutatedLocked()
	return nil
}

// renameCheck applies rename(2)'s rules on what may replace what.
func renameCheck(src, dst *memNode, oldParts, newParts []string) error {
	switch {
	case src == dst:
		return nil
	case src.dir && len(newParts) > len(oldParts) && slices.Equal(newParts[:len(oldParts)], oldParts):
		return errInvalid // into its own subtree
	case dst == nil:
		return nil
	case src.dir && !dst.dir:
		return errNotDir
	case !src.dir && dst.dir:
		return errIsDir
	case dst.dir && len(dst.live) > 0:
		return errNotEmpty
	}
	return nil
}

// MkdirAll creates dir and its missing parents; see FS. It counts as one
// mutating operation if it creates anything.
func (m *MemFS) MkdirAll(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, created := m.mu.root, false
	for _, p := range splitPath(dir) {
		next := d.live[p]
		if next == nil {
			if err := m.checkLiveLocked("mkdir", dir); err != nil {
				return err
			}
			next = m.newNodeLocked(true)
			m.changeEntriesLocked(memEntryChange{d, p, next})
			created = true
		} else if !next.dir {
			return pathError("mkdir", dir, errNotDir)
		}
		d = next
	}
	if created {
		m.mutatedLocked()
	}
	return nil
}

// ReadDir returns the sorted names in dir; see FS.
func (m *MemFS) ReadDir(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, err := m.dirLocked("readdir", dir, splitPath(dir))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(d.live))
	for name := range d.live {
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// SyncDir makes dir's entries durable as they are now; see FS.
func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, err := m.dirLocked("syncdir", dir, splitPath(dir))
	if err != nil {
		return err
	}
	if err := m.checkLiveLocked("syncdir", dir); err != nil {
		return err
	}
	d.durable = maps.Clone(d.live)
	m.unjournalLocked(d)
	m.mutatedLocked()
	return nil
}

// unjournalLocked drops d's changes from the journal once SyncDir has made
// them durable, so that a crash never replays them over newer ones.
func (m *MemFS) unjournalLocked(d *memNode) {
	kept := m.mu.journal[:0]
	for _, rec := range m.mu.journal {
		rec = slices.DeleteFunc(rec, func(c memEntryChange) bool { return c.dir == d })
		if len(rec) > 0 {
			kept = append(kept, rec)
		}
	}
	clear(m.mu.journal[len(kept):]) // let dropped records be collected
	m.mu.journal = kept
}

// Stat returns the size of the named file (0 for a directory); see FS.
func (m *MemFS) Stat(name string) (FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	parts := splitPath(name)
	if len(parts) == 0 {
		return FileInfo{Name: "/"}, nil
	}
	d, err := m.dirLocked("stat", name, parts[:len(parts)-1])
	if err != nil {
		return FileInfo{}, err
	}
	n := d.live[parts[len(parts)-1]]
	if n == nil {
		return FileInfo{}, pathError("stat", name, ErrNotExist)
	}
	return FileInfo{Name: parts[len(parts)-1], Size: n.cur.size}, nil
}

// Lock takes an in-memory advisory lock on the named file, creating it if
// needed; see FS. Locks conflict between any two Lock calls, as flock does
// between two open file descriptions, and Crash releases them all.
func (m *MemFS) Lock(name string, shared bool) (io.Closer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookupOrCreateLocked("flock", name, true)
	if err != nil {
		return nil, err
	}
	if n.dir {
		return nil, pathError("flock", name, errIsDir)
	}
	st := m.mu.locks[n]
	if st == nil {
		st = &memLockState{}
		m.mu.locks[n] = st
	}
	if st.exclusive || (!shared && st.shared > 0) {
		return nil, pathError("flock", name, ErrLocked)
	}
	if shared {
		st.shared++
	} else {
		st.exclusive = true
	}
	return &memLock{fs: m, node: n, name: name, boot: m.mu.boot, shared: shared}, nil
}

// memLock is a held MemFS lock.
type memLock struct {
	fs       *MemFS
	node     *memNode
	name     string
	boot     uint64
	shared   bool
	released bool // guarded by fs.mu
}

// Close releases the lock. It fails with ErrClosed if the lock was already
// released, by an earlier Close or by a crash.
func (l *memLock) Close() error {
	m := l.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	if l.released || l.boot != m.mu.boot {
		return pathError("unlock", l.name, ErrClosed)
	}
	l.released = true
	st := m.mu.locks[l.node]
	if l.shared {
		st.shared--
	} else {
		st.exclusive = false
	}
	if !st.exclusive && st.shared == 0 {
		delete(m.mu.locks, l.node)
	}
	return nil
}

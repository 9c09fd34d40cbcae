package vfs

import (
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// StorageFaultKind names a way a device can get a write wrong while
// reporting success, the faults TigerBeetle's storage simulator injects.
// A torn write is not among them: MemFS.Crash tears unsynced writes already.
type StorageFaultKind uint8

const (
	// LostWrite reports the write successful and applies none of it: the
	// file keeps what it held before, as when a drive's firmware drops a
	// write from its cache.
	LostWrite StorageFaultKind = iota + 1
	// MisdirectedWrite reports the write successful and applies it whole
	// at another aligned offset of the same file instead, inside the file's
	// current size, as when a drive writes to the wrong sector: the
	// intended range keeps its old content and an unrelated range is
	// overwritten.
	MisdirectedWrite
)

// String returns the kind's name, such as "lost".
func (k StorageFaultKind) String() string {
	switch k {
	case LostWrite:
		return "lost"
	case MisdirectedWrite:
		return "misdirected"
	}
	return "StorageFaultKind(" + strconv.Itoa(int(k)) + ")"
}

// storageFaultHeadMax is how many leading bytes of a faulted write a
// StorageFault keeps.
const storageFaultHeadMax = 16

// StorageFaults configures a StorageFaultFS: which writes go wrong and how.
//
// A write matches when its file's path contains Path (or Path is empty)
// and Match, if set, accepts it.
// The fault triggers on the Index-th matching write, counting from 1, if
// Index > 0; otherwise on each matching write with probability Prob, drawn
// from Seed (Prob 0 triggers nothing: a StorageFaultFS with a zero config
// only counts). Misdirected targets are drawn from Seed too, so a run is
// reproducible.
type StorageFaults struct {
	Kind  StorageFaultKind // what a triggered write suffers; 0 means LostWrite
	Path  string           // substring of the path; "" matches every file
	Index int64            // fault the Index-th matching write (1-based); 0: use Prob
	Prob  float64          // chance each matching write faults when Index is 0
	Seed  int64            // seeds the Prob draws and the misdirected targets
	Align int64            // alignment of misdirected targets in bytes; 0 means Alignment

	// Match, if set, narrows the matching writes to those it accepts,
	// given the write's offset and bytes (which it must not modify or
	// keep), so a test can aim at one kind of block by its content.
	Match func(off int64, p []byte) bool
}

// StorageFault records one write a StorageFaultFS got wrong.
type StorageFault struct {
	Kind   StorageFaultKind // LostWrite, or MisdirectedWrite
	Path   string           // the file
	Index  int64            // which matching write it was (1-based)
	Off    int64            // where the write was meant to go
	Len    int64            // its length in bytes
	Target int64            // where a misdirected write went; -1 if lost
	Head   []byte           // its first bytes (up to 16), so a test can tell what it hit
}

// StorageFaultFS wraps an FS and silently gets chosen writes wrong: lost
// or misdirected, each reported successful. Everything else passes through
// unchanged. A misdirected write whose file has no other aligned place for
// it (the file is not larger than twice the write) is lost instead, and
// recorded as such. A faulted write is reported successful without being
// checked, so one the file would have refused (unaligned direct I/O, a bad
// offset) succeeds: aim faults at writes the caller gets right.
//
// It counts the matching writes it sees, so a test can run a workload once,
// read Writes, then fault write k for a k of its choice. It is safe for
// concurrent use; with concurrent writers, which write is the Index-th
// depends on their interleaving.
type StorageFaultFS struct {
	fs  FS
	cfg StorageFaults

	mu struct {
		sync.Mutex
		matched int64          // matching writes seen
		faults  []StorageFault // writes got wrong, in order
		cleared bool           // disarmed by Clear
		rng     *rand.Rand
	}
}

// WithStorageFaults returns a StorageFaultFS over fs faulting the writes cfg
// chooses.
func WithStorageFaults(fs FS, cfg StorageFaults) *StorageFaultFS {
	if cfg.Kind == 0 {
		cfg.Kind = LostWrite
	}
	if cfg.Align <= 0 {
		cfg.Align = Alignment
	}
	s := &StorageFaultFS{fs: fs, cfg: cfg}
	s.mu.rng = rand.New(rand.NewPCG(uint64(cfg.Seed), 0x73746f72)) // "stor"
	return s
}

// Writes returns how many matching writes the StorageFaultFS has seen,
// faulted or not.
func (s *StorageFaultFS) Writes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.matched
}

// Faults returns the writes it has got wrong so far, in order.
func (s *StorageFaultFS) Faults() []StorageFault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mu.faults)
}

// Clear disarms the faults for good: every later write is applied as asked,
// as if the device had been replaced. Writes are still counted.
func (s *StorageFaultFS) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.cleared = true
}

// OpenFile implements FS.OpenFile; the File returned faults writes.
func (s *StorageFaultFS) OpenFile(name string, flag OpenFlag) (File, error) {
	f, err := s.fs.OpenFile(name, flag)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(name, s.cfg.Path) {
		return f, nil
	}
	return &storageFaultFile{File: f, fs: s, name: name}, nil
}

// Remove implements FS.Remove.
func (s *StorageFaultFS) Remove(name string) error { return s.fs.Remove(name) }

// Rename implements FS.Rename.
func (s *StorageFaultFS) Rename(oldname, newname string) error {
	return s.fs.Rename(oldname, newname)
}

// MkdirAll implements FS.MkdirAll.
func (s *StorageFaultFS) MkdirAll(dir string) error { return s.fs.MkdirAll(dir) }

// ReadDir implements FS.ReadDir.
func (s *StorageFaultFS) ReadDir(dir string) ([]string, error) { return s.fs.ReadDir(dir) }

// SyncDir implements FS.SyncDir.
func (s *StorageFaultFS) SyncDir(dir string) error { return s.fs.SyncDir(dir) }

// Stat implements FS.Stat.
func (s *StorageFaultFS) Stat(name string) (FileInfo, error) { return s.fs.Stat(name) }

// Lock implements FS.Lock.
func (s *StorageFaultFS) Lock(name string, shared bool) (io.Closer, error) {
	return s.fs.Lock(name, shared)
}

// decide counts one matching write of n bytes at off to name, whose file
// is size bytes long, and says where it goes: off when it is applied as
// asked, another offset when misdirected, -1 when lost.
func (s *StorageFaultFS) decide(name string, p []byte, off, size int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.matched++
	if s.mu.cleared || !s.triggerLocked() {
		return off
	}
	n := int64(len(p))
	fault := StorageFault{Kind: LostWrite, Path: name, Index: s.mu.matched, Off: off, Len: n, Target: -1,
		Head: slices.Clone(p[:min(len(p), storageFaultHeadMax)])}
	if s.cfg.Kind == MisdirectedWrite {
		if t, ok := s.targetLocked(off, n, size); ok {
			fault.Kind, fault.Target = MisdirectedWrite, t
		}
	}
	s.mu.faults = append(s.mu.faults, fault)
	return fault.Target
}

// triggerLocked reports whether the current matching write faults.
func (s *StorageFaultFS) triggerLocked() bool {
	if s.cfg.Index > 0 {
		return s.mu.matched == s.cfg.Index
	}
	return s.cfg.Prob > 0 && s.mu.rng.Float64() < s.cfg.Prob
}

// targetLocked draws an aligned offset other than off at which n bytes fit
// inside size, or reports that there is none.
func (s *StorageFaultFS) targetLocked(off, n, size int64) (int64, bool) {
	slots := (size - n) / s.cfg.Align // the last slot index that fits
	if slots < 1 {
		return 0, false
	}
	for range 8 { // a bounded number of draws: slots >= 1 gives two choices
		t := s.mu.rng.Int64N(slots+1) * s.cfg.Align
		if t != off {
			return t, true
		}
	}
	if off != 0 {
		return 0, true
	}
	return s.cfg.Align, true
}

// storageFaultFile is a File of a StorageFaultFS whose path matches.
type storageFaultFile struct {
	File
	fs   *StorageFaultFS
	name string
}

// WriteAt implements File.WriteAt, getting the write wrong if it is chosen.
func (f *storageFaultFile) WriteAt(p []byte, off int64) (int, error) {
	var size int64
	if f.fs.cfg.Kind == MisdirectedWrite {
		fi, err := f.File.Stat()
		if err != nil {
			return 0, err
		}
		size = fi.Size
	}
	if m := f.fs.cfg.Match; m != nil && !m(off, p) {
		return f.File.WriteAt(p, off)
	}
	switch t := f.fs.decide(f.name, p, off, size); {
	case t == off:
		return f.File.WriteAt(p, off)
	case t < 0:
		return len(p), nil
	default:
		if _, err := f.File.WriteAt(p, t); err != nil {
			return 0, err
		}
		return len(p), nil
	}
}

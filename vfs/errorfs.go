package vfs

import (
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// OpKind names a kind of file system operation, for fault injection.
type OpKind uint8

const (
	OpAny       OpKind = iota // matches every kind in a Fault; Count(OpAny) is the total
	OpRead                    // File.ReadAt
	OpWrite                   // File.WriteAt
	OpSync                    // File.Datasync and File.Sync
	OpFallocate               // File.Fallocate
	OpTruncate                // File.Truncate
	OpOpen                    // FS.OpenFile, with or without Create
	OpRemove                  // FS.Remove
	OpRename                  // FS.Rename
	OpMkdir                   // FS.MkdirAll
	OpReadDir                 // FS.ReadDir
	OpSyncDir                 // FS.SyncDir
	OpLock                    // FS.Lock
	OpStat                    // FS.Stat and File.Stat

	opKindCount // number of kinds, OpAny included
)

var opKindNames = [opKindCount]string{
	"any", "read", "write", "sync", "fallocate", "truncate", "open",
	"remove", "rename", "mkdir", "readdir", "syncdir", "lock", "stat",
}

// String returns the kind's name, such as "write".
func (k OpKind) String() string {
	if k < opKindCount {
		return opKindNames[k]
	}
	return "OpKind(" + strconv.Itoa(int(k)) + ")"
}

// Op describes one operation an ErrorFS is about to perform.
type Op struct {
	Kind OpKind
	Path string // the file's name; "old -> new" for a rename
	Off  int64  // read, write, fallocate: offset; truncate: new size
	Len  int64  // read, write, fallocate: length in bytes
}

// Injector decides, for each operation an ErrorFS is about to perform,
// whether it fails: nil lets it proceed; an error (typically ErrIO or
// ErrNoSpace) makes it fail without doing anything. An Injector must be safe
// for concurrent use.
type Injector interface {
	Inject(op Op) error
}

// InjectorFunc adapts a function to Injector.
type InjectorFunc func(op Op) error

// Inject calls f(op).
func (f InjectorFunc) Inject(op Op) error { return f(op) }

// AnyOf combines injectors: it asks each in order and injects the first
// error one returns. Injectors after that one do not see the operation, so
// a Fault among them does not count it as a match.
func AnyOf(injs ...Injector) Injector {
	return InjectorFunc(func(op Op) error {
		for _, inj := range injs {
			if err := inj.Inject(op); err != nil {
				return err
			}
		}
		return nil
	})
}

// ErrorFS wraps an FS and fails the operations its Injector picks. An
// operation that fails this way does nothing at all: an injected WriteAt
// transfers no byte, an injected Datasync syncs nothing. The error returned
// is a *PathError wrapping both the injector's error and ErrInjected.
// Close is never injected, so a test can always release what it opened.
//
// ErrorFS counts every operation it sees, failed or not, by kind: a test
// can run a workload once, read Count, then fail operation k for each k in
// turn (the SQLite approach), stopping when Injected stays 0. It is safe for
// concurrent use.
type ErrorFS struct {
	fs       FS
	inj      atomic.Pointer[Injector]
	counts   [opKindCount]atomic.Int64
	injected atomic.Int64
}

// WithErrors returns an ErrorFS over fs, with inj deciding the faults (nil:
// none until SetInjector).
func WithErrors(fs FS, inj Injector) *ErrorFS {
	e := &ErrorFS{fs: fs}
	e.SetInjector(inj)
	return e
}

// SetInjector replaces the injector at run time; nil injects nothing, so a
// test can say "the device is healthy again".
func (e *ErrorFS) SetInjector(inj Injector) {
	if inj == nil {
		e.inj.Store(nil)
		return
	}
	e.inj.Store(&inj)
}

// Count returns how many operations of kind k the ErrorFS has seen, failed
// or not; Count(OpAny) is the total over all kinds.
func (e *ErrorFS) Count(k OpKind) int64 {
	if k >= opKindCount {
		return 0
	}
	return e.counts[k].Load()
}

// Injected returns how many operations have failed by injection.
func (e *ErrorFS) Injected() int64 { return e.injected.Load() }

// check counts op and asks the injector about it.
func (e *ErrorFS) check(op Op) error {
	e.counts[OpAny].Add(1)
	e.counts[op.Kind].Add(1)
	p := e.inj.Load()
	if p == nil {
		return nil
	}
	err := (*p).Inject(op)
	if err == nil {
		return nil
	}
	e.injected.Add(1)
	return &PathError{Op: op.Kind.String(), Path: op.Path, Err: err, Sys: ErrInjected}
}

// OpenFile implements FS.OpenFile; the injector sees it as OpOpen, and
// the File returned injects faults too.
func (e *ErrorFS) OpenFile(name string, flag OpenFlag) (File, error) {
	if err := e.check(Op{Kind: OpOpen, Path: name}); err != nil {
		return nil, err
	}
	f, err := e.fs.OpenFile(name, flag)
	if err != nil {
		return nil, err
	}
	return &errorFile{fs: e, f: f, name: name}, nil
}

// Remove implements FS.Remove (OpRemove).
func (e *ErrorFS) Remove(name string) error {
	if err := e.check(Op{Kind: OpRemove, Path: name}); err != nil {
		return err
	}
	return e.fs.Remove(name)
}

// Rename implements FS.Rename (OpRename, Path "old -> new").
func (e *ErrorFS) Rename(oldname, newname string) error {
	if err := e.check(Op{Kind: OpRename, Path: oldname + " -> " + newname}); err != nil {
		return err
	}
	return e.fs.Rename(oldname, newname)
}

// MkdirAll implements FS.MkdirAll (OpMkdir).
func (e *ErrorFS) MkdirAll(dir string) error {
	if err := e.check(Op{Kind: OpMkdir, Path: dir}); err != nil {
		return err
	}
	return e.fs.MkdirAll(dir)
}

// ReadDir implements FS.ReadDir (OpReadDir).
func (e *ErrorFS) ReadDir(dir string) ([]string, error) {
	if err := e.check(Op{Kind: OpReadDir, Path: dir}); err != nil {
		return nil, err
	}
	return e.fs.ReadDir(dir)
}

// SyncDir implements FS.SyncDir (OpSyncDir).
func (e *ErrorFS) SyncDir(dir string) error {
	if err := e.check(Op{Kind: OpSyncDir, Path: dir}); err != nil {
		return err
	}
	return e.fs.SyncDir(dir)
}

// Stat implements FS.Stat (OpStat).
func (e *ErrorFS) Stat(name string) (FileInfo, error) {
	if err := e.check(Op{Kind: OpStat, Path: name}); err != nil {
		return FileInfo{}, err
	}
	return e.fs.Stat(name)
}

// Lock implements FS.Lock (OpLock).
func (e *ErrorFS) Lock(name string, shared bool) (io.Closer, error) {
	if err := e.check(Op{Kind: OpLock, Path: name}); err != nil {
		return nil, err
	}
	return e.fs.Lock(name, shared)
}

// errorFile is a File of an ErrorFS.
type errorFile struct {
	fs   *ErrorFS
	f    File
	name string
}

func (f *errorFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.fs.check(Op{Kind: OpRead, Path: f.name, Off: off, Len: int64(len(p))}); err != nil {
		return 0, err
	}
	return f.f.ReadAt(p, off)
}

func (f *errorFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.check(Op{Kind: OpWrite, Path: f.name, Off: off, Len: int64(len(p))}); err != nil {
		return 0, err
	}
	return f.f.WriteAt(p, off)
}

func (f *errorFile) Datasync() error {
	if err := f.fs.check(Op{Kind: OpSync, Path: f.name}); err != nil {
		return err
	}
	return f.f.Datasync()
}

func (f *errorFile) Sync() error {
	if err := f.fs.check(Op{Kind: OpSync, Path: f.name}); err != nil {
		return err
	}
	return f.f.Sync()
}

func (f *errorFile) Fallocate(off, length int64) error {
	if err := f.fs.check(Op{Kind: OpFallocate, Path: f.name, Off: off, Len: length}); err != nil {
		return err
	}
	return f.f.Fallocate(off, length)
}

func (f *errorFile) Truncate(size int64) error {
	if err := f.fs.check(Op{Kind: OpTruncate, Path: f.name, Off: size}); err != nil {
		return err
	}
	return f.f.Truncate(size)
}

func (f *errorFile) Stat() (FileInfo, error) {
	if err := f.fs.check(Op{Kind: OpStat, Path: f.name}); err != nil {
		return FileInfo{}, err
	}
	return f.f.Stat()
}

func (f *errorFile) Direct() bool { return f.f.Direct() }

func (f *errorFile) Close() error { return f.f.Close() }

// Fault is a ready-made Injector: one rule saying which operations fail and
// how. Set its fields before first use and do not change them afterwards;
// use Clear to disarm it. A *Fault is safe for concurrent use.
//
// An operation matches when its kind is Kind (or Kind is OpAny) and its
// path contains Path (or Path is empty). The fault triggers on the
// Index-th matching operation, counting from 1, if Index > 0; otherwise on
// each matching operation with probability Prob, drawn from Seed (Prob 0
// means 1: every match). A transient fault fails only the operations that
// trigger it: with Index, exactly one; with Prob, each independently. A
// persistent fault, once triggered, fails every later matching operation
// too, like a device that has died, until Clear.
type Fault struct {
	Kind       OpKind
	Path       string  // substring of the path; "" matches every path
	Index      int64   // fail the Index-th match (1-based); 0: use Prob
	Prob       float64 // chance each match triggers when Index is 0; 0 means 1
	Seed       int64   // seeds the Prob draws, so a run is reproducible
	Err        error   // the error to inject; nil means ErrIO
	Persistent bool    // keep failing every match after the first failure

	mu struct {
		sync.Mutex
		matched int64      // matching operations seen
		fired   int64      // failures injected
		cleared bool       // disarmed by Clear
		rng     *rand.Rand // nil until the first Prob draw
	}
}

// Inject implements Injector.
func (f *Fault) Inject(op Op) error {
	if (f.Kind != OpAny && op.Kind != f.Kind) || !strings.Contains(op.Path, f.Path) {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.cleared {
		return nil
	}
	f.mu.matched++
	if !(f.Persistent && f.mu.fired > 0) && !f.triggerLocked() {
		return nil
	}
	f.mu.fired++
	if f.Err == nil {
		return ErrIO
	}
	return f.Err
}

// triggerLocked reports whether the current match triggers the fault.
func (f *Fault) triggerLocked() bool {
	if f.Index > 0 {
		return f.mu.matched == f.Index
	}
	if f.Prob <= 0 || f.Prob >= 1 {
		return true
	}
	if f.mu.rng == nil {
		f.mu.rng = rand.New(rand.NewPCG(uint64(f.Seed), 0x636f776462)) // "cowdb"
	}
	return f.mu.rng.Float64() < f.Prob
}

// Clear disarms the fault for good: every later operation proceeds, as if
// the device had recovered.
func (f *Fault) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.cleared = true
}

// Fired returns how many operations the fault has failed.
func (f *Fault) Fired() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mu.fired
}

package vfs_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cowdb/cowdb/vfs"
)

// newErrorFS returns an ErrorFS over a MemFS holding an empty file /f, and
// the file opened through the ErrorFS.
func newErrorFS(t *testing.T, inj vfs.Injector) (*vfs.ErrorFS, vfs.File) {
	t.Helper()
	efs := vfs.WithErrors(vfs.NewMem(), nil)
	f, err := efs.OpenFile("/f", vfs.Create)
	must(t, err)
	efs.SetInjector(inj)
	return efs, f
}

// writes issues n one-byte writes at offsets 0..n-1 and returns which
// failed, checking each failure wraps ErrInjected.
func writes(t *testing.T, f vfs.File, n int) []bool {
	t.Helper()
	failed := make([]bool, n)
	for i := range n {
		_, err := f.WriteAt([]byte{'x'}, int64(i))
		if err != nil && !errors.Is(err, vfs.ErrInjected) {
			t.Fatalf("write %d: uninjected error %v", i, err)
		}
		failed[i] = err != nil
	}
	return failed
}

// TestFaultByIndex checks that a transient fault fails exactly the
// Index-th matching operation, that the failed write transferred nothing,
// and that the error wraps the chosen sentinel and ErrInjected and names
// the path.
func TestFaultByIndex(t *testing.T) {
	efs, f := newErrorFS(t, &vfs.Fault{Kind: vfs.OpWrite, Index: 3, Err: vfs.ErrNoSpace})
	_, err := f.WriteAt([]byte("a"), 0)
	must(t, err)
	must(t, f.Datasync()) // another kind does not count towards Index
	_, err = f.WriteAt([]byte("b"), 1)
	must(t, err)
	n, err := f.WriteAt([]byte("c"), 2)
	if n != 0 || !errors.Is(err, vfs.ErrNoSpace) || !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("third write = %d, %v; want 0, ErrNoSpace, ErrInjected", n, err)
	}
	var pe *vfs.PathError
	if !errors.As(err, &pe) || pe.Path != "/f" || pe.Op != "write" {
		t.Fatalf("error %v does not name the operation and path", err)
	}
	if fi, _ := f.Stat(); fi.Size != 2 {
		t.Fatalf("the failed write changed the size to %d", fi.Size)
	}
	if _, err := f.WriteAt([]byte("d"), 3); err != nil {
		t.Fatalf("a transient fault failed again: %v", err)
	}
	if efs.Injected() != 1 || efs.Count(vfs.OpWrite) != 4 || efs.Count(vfs.OpSync) != 1 || efs.Count(vfs.OpAny) != 7 { // open, 4 writes, datasync, stat
		t.Fatalf("injected %d, writes %d, syncs %d, total %d", efs.Injected(),
			efs.Count(vfs.OpWrite), efs.Count(vfs.OpSync), efs.Count(vfs.OpAny))
	}
}

// TestFaultPersistentAndClear checks that a persistent fault fails every
// matching operation from its trigger on, that Clear ends it, and that
// SetInjector(nil) ends any injection.
func TestFaultPersistentAndClear(t *testing.T) {
	fault := &vfs.Fault{Kind: vfs.OpWrite, Index: 2, Persistent: true}
	efs, f := newErrorFS(t, fault)
	got := writes(t, f, 5)
	if fmt.Sprint(got) != "[false true true true true]" {
		t.Fatalf("persistent from the 2nd write: %v", got)
	}
	if _, err := f.WriteAt([]byte("x"), 0); !errors.Is(err, vfs.ErrIO) {
		t.Fatalf("default injected error is %v, want ErrIO", err)
	}
	fault.Clear()
	if got := writes(t, f, 3); fmt.Sprint(got) != "[false false false]" {
		t.Fatalf("after Clear: %v", got)
	}
	if fault.Fired() != 5 {
		t.Fatalf("Fired = %d, want 5", fault.Fired())
	}
	efs.SetInjector(&vfs.Fault{})
	if _, err := efs.Stat("/f"); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("a zero Fault does not fail everything: %v", err)
	}
	efs.SetInjector(nil)
	if _, err := efs.Stat("/f"); err != nil {
		t.Fatalf("after SetInjector(nil): %v", err)
	}
}

// TestFaultByKindAndPath checks that a fault matches only its kind and only
// paths containing its Path, covering FS-level and File-level operations.
func TestFaultByKindAndPath(t *testing.T) {
	efs := vfs.WithErrors(vfs.NewMem(), &vfs.Fault{Path: "wal/"})
	must(t, efs.MkdirAll("/db"))
	if err := efs.MkdirAll("/db/wal/"); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("mkdir of a wal path: %v", err)
	}
	f, err := efs.OpenFile("/db/data", vfs.Create)
	must(t, err)
	_, err = f.WriteAt([]byte("x"), 0)
	must(t, err)
	must(t, f.Sync())

	efs.SetInjector(&vfs.Fault{Kind: vfs.OpSync})
	_, err = f.WriteAt([]byte("x"), 0)
	must(t, err)
	if err := f.Datasync(); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("Datasync under an OpSync fault: %v", err)
	}
	if err := f.Sync(); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("Sync under an OpSync fault: %v", err)
	}
	must(t, efs.SyncDir("/db"))
	for _, k := range []vfs.OpKind{vfs.OpRead, vfs.OpFallocate, vfs.OpTruncate, vfs.OpOpen, vfs.OpRemove,
		vfs.OpRename, vfs.OpMkdir, vfs.OpReadDir, vfs.OpSyncDir, vfs.OpLock, vfs.OpStat} {
		efs.SetInjector(&vfs.Fault{Kind: k})
		errs := []error{
			func() error { _, err := f.ReadAt(make([]byte, 1), 0); return err }(),
			f.Fallocate(0, 10), f.Truncate(1),
			func() error { _, err := efs.OpenFile("/db/data", 0); return err }(),
			efs.Remove("/db/nothing"), efs.Rename("/db/nothing", "/db/x"), efs.MkdirAll("/db/m"),
			func() error { _, err := efs.ReadDir("/db"); return err }(),
			efs.SyncDir("/db"),
			func() error { _, err := efs.Lock("/db/LOCK", true); return err }(),
			func() error { _, err := efs.Stat("/db/data"); return err }(),
		}
		injected := 0
		for _, err := range errs {
			if errors.Is(err, vfs.ErrInjected) {
				injected++
			}
		}
		if injected != 1 {
			t.Errorf("a %v fault injected %d of one operation of each kind: %v", k, injected, errs)
		}
	}
}

// TestFaultProbability checks that a probabilistic transient fault fails
// about Prob of the matching operations, independently, and reproducibly
// from its seed; and that a persistent one keeps failing once triggered.
func TestFaultProbability(t *testing.T) {
	const n = 2000
	run := func(seed int64, persistent bool) []bool {
		_, f := newErrorFS(t, &vfs.Fault{Kind: vfs.OpWrite, Prob: 0.25, Seed: seed, Persistent: persistent})
		return writes(t, f, n)
	}
	a, b, c := run(1, false), run(1, false), run(2, false)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("one seed gave two failure sequences")
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Fatal("two seeds gave one failure sequence")
	}
	failed := 0
	for _, x := range a {
		if x {
			failed++
		}
	}
	if failed < n/5 || failed > n*3/10 { // expected n/4; the bounds are over 8 standard deviations wide
		t.Fatalf("Prob 0.25 failed %d of %d", failed, n)
	}
	p := run(1, true)
	first := 0
	for !p[first] {
		first++
	}
	for i := first; i < n; i++ {
		if !p[i] {
			t.Fatalf("persistent probabilistic fault stopped failing at %d (first at %d)", i, first)
		}
	}
}

// TestFaultEnumeration runs the SQLite-style loop: fail operation k for
// k = 1, 2, ... until a run sees no fault, checking that every k up to the
// clean run's operation count injects exactly once and the loop ends there.
func TestFaultEnumeration(t *testing.T) {
	workload := func(fs vfs.FS) {
		f, err := fs.OpenFile("/f", vfs.Create)
		if err != nil {
			return
		}
		defer f.Close()
		f.WriteAt([]byte("hello"), 0)
		f.Datasync()
		fs.SyncDir("/")
		f.ReadAt(make([]byte, 5), 0)
	}
	clean := vfs.WithErrors(vfs.NewMem(), nil)
	workload(clean)
	total := clean.Count(vfs.OpAny)
	k := int64(1)
	for ; k <= total+1; k++ {
		efs := vfs.WithErrors(vfs.NewMem(), &vfs.Fault{Index: k})
		workload(efs)
		if efs.Injected() == 0 {
			break
		}
	}
	if k != total+1 {
		t.Fatalf("enumeration ended at k=%d; the clean run has %d operations", k, total)
	}
}

// TestInjectorFunc checks that a custom Injector sees each operation's
// kind, path, offset and length, and that OpKind names print.
func TestInjectorFunc(t *testing.T) {
	var seen []vfs.Op
	_, f := newErrorFS(t, vfs.InjectorFunc(func(op vfs.Op) error {
		seen = append(seen, op)
		return nil
	}))
	f.WriteAt(make([]byte, 7), 5)
	f.ReadAt(make([]byte, 3), 1)
	f.Truncate(2)
	want := []vfs.Op{
		{Kind: vfs.OpWrite, Path: "/f", Off: 5, Len: 7},
		{Kind: vfs.OpRead, Path: "/f", Off: 1, Len: 3},
		{Kind: vfs.OpTruncate, Path: "/f", Off: 2},
	}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("injector saw %v, want %v", seen, want)
	}
	if vfs.OpSyncDir.String() != "syncdir" || vfs.OpKind(99).String() != "OpKind(99)" {
		t.Fatal("OpKind names")
	}
	must(t, f.Close()) // Close is never injected, nor shown to the injector
	if len(seen) != 3 {
		t.Fatalf("the injector saw Close: %v", seen)
	}
}

// TestAnyOf checks that combined faults each fail their own operations,
// the first matching fault's error wins, and a fault does not see the
// operations an earlier one failed.
func TestAnyOf(t *testing.T) {
	efs, f := newErrorFS(t, vfs.AnyOf(
		&vfs.Fault{Kind: vfs.OpSync, Err: vfs.ErrIO},
		&vfs.Fault{Kind: vfs.OpWrite, Index: 2, Err: vfs.ErrNoSpace},
		// The second fault hides write 2 from this one, so write 3 is the
		// second write it sees.
		&vfs.Fault{Kind: vfs.OpWrite, Err: vfs.ErrIO, Persistent: true, Index: 2},
	))
	var got []string
	for range 3 {
		_, err := f.WriteAt([]byte("x"), 0)
		got = append(got, fmt.Sprint(errors.Is(err, vfs.ErrNoSpace), errors.Is(err, vfs.ErrIO)))
	}
	if fmt.Sprint(got) != "[false false true false false true]" {
		t.Fatalf("writes failed as %v", got)
	}
	if err := f.Datasync(); !errors.Is(err, vfs.ErrIO) || efs.Injected() != 3 {
		t.Fatalf("sync: %v, injected %d", err, efs.Injected())
	}
}

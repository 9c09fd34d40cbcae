package wal_test

import (
	"errors"
	"testing"

	"github.com/cowdb/cowdb/vfs"
	"github.com/cowdb/cowdb/wal"
)

// TestInjectedErrors fails each file system operation of a workload in
// turn (EIO, or ENOSPC for fallocate) and checks the fsyncgate contract:
// once a call fails with ErrFailed every later call does too, wrapping the
// injected error; and reopening without faults replays every acknowledged
// record and nothing that was not appended.
func TestInjectedErrors(t *testing.T) {
	mem := mustFS(t)
	efs := vfs.WithErrors(mem, nil)
	l, _, err := openReplay(t, efs, fuzzOpts(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := newHistory().run(l, 60, 0); err != nil {
		t.Fatal(err)
	}
	l.Close()
	total := efs.Count(vfs.OpAny)
	for k := int64(1); k <= total; k++ {
		mem := mustFS(t)
		fault := &vfs.Fault{Index: k}
		efs := vfs.WithErrors(mem, vfs.InjectorFunc(func(op vfs.Op) error {
			if err := fault.Inject(op); err != nil {
				if op.Kind == vfs.OpFallocate {
					return vfs.ErrNoSpace
				}
				return err
			}
			return nil
		}))
		h := newHistory()
		l, got, err := openReplay(t, efs, fuzzOpts(), 1)
		if err != nil {
			continue // a failed Open is a correct answer to a failed operation
		}
		h.check(t, got, "first open")
		err = h.run(l, 60, 0)
		if err != nil {
			if !errors.Is(err, wal.ErrFailed) && !errors.Is(err, wal.ErrLogFull) {
				t.Fatalf("fault at op %d: error without ErrFailed: %v", k, err)
			}
			if !errors.Is(err, vfs.ErrInjected) {
				t.Fatalf("fault at op %d: error does not wrap the cause: %v", k, err)
			}
			if _, err2 := l.Commit([]byte("later"), 0); !errors.Is(err2, wal.ErrFailed) {
				t.Fatalf("fault at op %d: commit after failure: %v", k, err2)
			}
		}
		l.Close()
		l, got, err = openReplay(t, mem, fuzzOpts(), h.ckpt)
		if err != nil {
			t.Fatalf("fault at op %d: reopen: %v", k, err)
		}
		h.check(t, got, "reopen after fault")
		l.Close()
	}
}

package cowdb_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

// TestFaultAtEveryOperation runs the crash workload once to count its file
// operations, then again failing operation k with EIO, for every k (a
// spread of them by default), the SQLite way. The call that sees the fault
// must return an error, and the store must either carry on or fail as a
// whole (fsyncgate); after the device recovers and the store is reopened,
// every acknowledged write is there and the failed call is all or nothing.
func TestFaultAtEveryOperation(t *testing.T) {
	seeds, nOps := 2, 100
	if *long {
		seeds, nOps = 10, 150
	}
	for seed := range uint64(seeds) {
		faultEveryOperation(t, seed+5, nOps)
	}
}

func faultEveryOperation(t *testing.T, seed uint64, nOps int) {
	count := vfs.WithErrors(vfs.NewMem(), nil)
	if _, _, err := workloadFS(count, seed, nOps, cowdb.SyncAlways); err != nil {
		t.Fatal(err)
	}
	total := count.Count(vfs.OpAny)
	step := max(1, total/200)
	if *long {
		step = 1
	}
	for k := int64(1); k <= total; k += step {
		mem := vfs.NewMem()
		fault := &vfs.Fault{Index: k}
		efs := vfs.WithErrors(mem, fault)
		h, pending, werr := workloadFS(efs, seed, nOps, cowdb.SyncAlways)
		repro := fmt.Sprintf("seed %d, fault at operation %d of %d (workload error: %v)", seed, k, total, werr)
		if fault.Fired() == 0 {
			continue // the run took another path before reaching k
		}
		if werr != nil && !errors.Is(werr, vfs.ErrIO) && !errors.Is(werr, cowdb.ErrCorrupt) {
			t.Fatalf("%s: unexpected error kind", repro)
		}
		// The device recovers; the process restarts on what is on disk
		// (synced or not: nothing crashed).
		fault.Clear()
		verifyRecovered(t, efs, mem, cowdb.SyncAlways, h, pending, repro)
	}
}

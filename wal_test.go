package cowdb_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

// TestWALRecycledByBackgroundCheckpoints checks that the background
// checkpointer, triggered by log size, keeps the log to a few recycled
// segments while far more than their size is written, and that everything
// reads back after reopening.
func TestWALRecycledByBackgroundCheckpoints(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs)
	o.CheckpointWALSize = 256 << 10
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	val := bytes.Repeat([]byte("v"), 400)
	const n = 8000 // about 3.5 MiB of log records, 14 segments' worth
	for i := range n {
		if err := db.Put([]byte(fmt.Sprintf("k%05d", i%2000)), val); err != nil {
			t.Fatal(err)
		}
	}
	// The checkpointer runs beside the writers; give it a moment to finish.
	deadline := time.Now().Add(10 * time.Second)
	for db.Stats().Checkpoints == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := db.Stats()
	if st.Checkpoints == 0 {
		t.Fatalf("no background checkpoint: %+v", st)
	}
	if st.WALSegments > 8 {
		t.Fatalf("%d log segments after %d bytes logged: not recycled (%+v)", st.WALSegments, st.WALBytes, st)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, fs, "/db")
	defer db.Close()
	for i := range 2000 {
		if v, err := db.Get([]byte(fmt.Sprintf("k%05d", i))); err != nil || !bytes.Equal(v, val) {
			t.Fatalf("k%05d: %v", i, err)
		}
	}
}

// TestSyncNever checks that under SyncNever writes are durable after
// DB.Sync: a power loss right after it keeps them all.
func TestSyncNever(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs)
	o.Sync = cowdb.SyncNever
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 200 {
		if err := db.Put([]byte(fmt.Sprintf("k%d", i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	crashed := mustOpen(t, fs.CloneDurable(), "/db")
	defer crashed.Close()
	for i := range 200 {
		if _, err := crashed.Get([]byte(fmt.Sprintf("k%d", i))); err != nil {
			t.Fatalf("k%d lost after Sync: %v", i, err)
		}
	}
}

// TestLogFailureFailsStore checks fsyncgate handling: once a log flush
// fails, the write that saw it and every later write return an error
// wrapping that failure, while reads keep working.
func TestLogFailureFailsStore(t *testing.T) {
	fault := &vfs.Fault{Kind: vfs.OpSync, Path: "wal/", Persistent: true}
	efs := vfs.WithErrors(vfs.NewMem(), nil)
	db, err := cowdb.Open("/db", memOpts(efs))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Put([]byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	efs.SetInjector(fault)
	err = db.Put([]byte("b"), []byte("2"))
	if !errors.Is(err, vfs.ErrIO) {
		t.Fatalf("Put during a failing flush = %v, want an I/O error", err)
	}
	efs.SetInjector(nil) // the device recovers, but the unsynced state is unknown
	for name, err := range map[string]error{
		"Put":    db.Put([]byte("c"), []byte("3")),
		"Delete": db.Delete([]byte("a")),
		"Update": db.Update(func(tx *cowdb.Tx) error { return tx.Put([]byte("d"), nil) }),
	} {
		if !errors.Is(err, vfs.ErrIO) {
			t.Errorf("%s after the failure = %v, want the failure", name, err)
		}
	}
	if v, err := db.Get([]byte("a")); err != nil || string(v) != "1" {
		t.Fatalf("Get after the failure = %q, %v", v, err)
	}
}

// TestNoSpace checks that a store bounded by MaxSize refuses writes with
// ErrNoSpace once full, stays readable and consistent, and reopens; and
// that without a bound it grows instead.
func TestNoSpace(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs)
	o.MaxSize = 1 << 20
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	val := bytes.Repeat([]byte("x"), 500)
	var i int
	for i = 0; i < 100000; i++ {
		err = db.Put([]byte(fmt.Sprintf("k%06d", i)), val)
		if err != nil {
			break
		}
	}
	if !errors.Is(err, cowdb.ErrNoSpace) {
		t.Fatalf("after %d puts: %v, want ErrNoSpace", i, err)
	}
	if v, err := db.Get([]byte("k000000")); err != nil || !bytes.Equal(v, val) {
		t.Fatalf("Get when full: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close when full: %v", err)
	}
	if err := cowdb.CheckPersisted(fs, "/db"); err != nil {
		t.Fatal(err)
	}
	db, err = cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	for j := range i {
		if _, err := db.Get([]byte(fmt.Sprintf("k%06d", j))); err != nil {
			t.Fatalf("k%06d after reopen: %v", j, err)
		}
	}
	db.Close()
	// Unbounded, the same workload grows the file.
	fs = vfs.NewMem()
	db = mustOpen(t, fs, "/db")
	defer db.Close()
	before := db.Stats().TotalBlocks
	for j := range 2 * i {
		if err := db.Put([]byte(fmt.Sprintf("k%06d", j)), val); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if after := db.Stats().TotalBlocks; after <= before {
		t.Fatalf("file did not grow: %d -> %d blocks", before, after)
	}
}

// TestCheckpointFailureFailsStore checks that a data file flush failing
// during a checkpoint fails the store (writes refused, reads working), and
// that reopening on a healthy device recovers every acknowledged write.
func TestCheckpointFailureFailsStore(t *testing.T) {
	mem := vfs.NewMem()
	efs := vfs.WithErrors(mem, nil)
	db, err := cowdb.Open("/db", memOpts(efs))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := db.Put([]byte(fmt.Sprintf("k%d", i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	efs.SetInjector(&vfs.Fault{Kind: vfs.OpSync, Path: "/db/data"})
	if err := db.Checkpoint(); !errors.Is(err, vfs.ErrIO) {
		t.Fatalf("Checkpoint with a failing data flush = %v", err)
	}
	efs.SetInjector(nil)
	if err := db.Put([]byte("after"), []byte("v")); !errors.Is(err, vfs.ErrIO) {
		t.Fatalf("Put after the failed checkpoint = %v", err)
	}
	if _, err := db.Get([]byte("k5")); err != nil {
		t.Fatalf("Get after the failed checkpoint = %v", err)
	}
	db.Close()
	mem.Crash(1)
	db = mustOpen(t, mem, "/db")
	defer db.Close()
	for i := range 100 {
		if _, err := db.Get([]byte(fmt.Sprintf("k%d", i))); err != nil {
			t.Fatalf("k%d after recovery: %v", i, err)
		}
	}
}

// TestNoSpaceReleasesBusyFirst checks that a bounded store rewriting the
// same data many times never reports ErrNoSpace: before giving up, a write
// checkpoints to release the blocks earlier versions freed.
func TestNoSpaceReleasesBusyFirst(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs)
	o.MaxSize = 2 << 20
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 60 {
		v := bytes.Repeat([]byte{byte(i)}, 600<<10)
		if err := db.Put([]byte("big"), v); err != nil {
			t.Fatalf("rewrite %d of a 600 KiB value in a 2 MiB store: %v", i, err)
		}
		if err := db.Put([]byte(fmt.Sprintf("small%d", i%10)), bytes.Repeat([]byte{1}, 400)); err != nil {
			t.Fatalf("small put %d: %v", i, err)
		}
	}
	if got, err := db.Get([]byte("big")); err != nil || got[0] != 59 || len(got) != 600<<10 {
		t.Fatalf("final value: %d bytes, %v", len(got), err)
	}
}

// TestCheckpointInterval checks the time trigger: with writes pending, a
// background checkpoint runs within about CheckpointInterval, and none
// runs while nothing changed.
func TestCheckpointInterval(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs)
	o.CheckpointInterval = 20 * time.Millisecond
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	time.Sleep(100 * time.Millisecond)
	idle := db.Stats().Checkpoints
	if idle != 0 {
		t.Fatalf("%d checkpoints with nothing to write", idle)
	}
	if err := db.Put([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for db.Stats().Checkpoints == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st := db.Stats()
	if st.Checkpoints == 0 || st.CheckpointLSN == 0 {
		t.Fatalf("no timed checkpoint: %+v", st)
	}
}

package cowdb_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

// TestTxScanEmptyRange checks that a transaction's Scan with start >= end
// yields nothing, in Update and in View, as DB.Scan does (DESIGN §13).
func TestTxScanEmptyRange(t *testing.T) {
	db := mustOpen(t, vfs.NewMem(), "db")
	defer db.Close()
	for _, k := range []string{"a", "b", "c", "d"} {
		if err := db.Put([]byte(k), []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	count := func(tx *cowdb.Tx, start, end string) int {
		n := 0
		for it, err := range tx.Scan([]byte(start), []byte(end)) {
			if err != nil {
				t.Fatal(err)
			}
			_ = it
			n++
		}
		return n
	}
	check := func(tx *cowdb.Tx, inRange int) error {
		for _, r := range [][2]string{{"c", "b"}, {"b", "b"}, {"d", "a"}} {
			if n := count(tx, r[0], r[1]); n != 0 {
				t.Errorf("Scan(%q, %q) yielded %d items, want 0", r[0], r[1], n)
			}
		}
		if n := count(tx, "b", "d"); n != inRange {
			t.Errorf("Scan(b, d) yielded %d items, want %d", n, inRange)
		}
		return nil
	}
	if err := db.View(func(tx *cowdb.Tx) error { return check(tx, 2) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *cowdb.Tx) error {
		if err := tx.Put([]byte("bb"), []byte("x")); err != nil {
			return err
		}
		if n := count(tx, "c", "b"); n != 0 {
			t.Errorf("Update: Scan(c, b) yielded %d items with a pending write, want 0", n)
		}
		return check(tx, 3)
	}); err != nil {
		t.Fatal(err)
	}
}

// syncGate is an injector that holds the first log sync after it is armed
// until it is opened, so a test can act while a commit waits for its flush.
type syncGate struct {
	armed   chan struct{} // closed to arm
	entered chan struct{} // closed when a sync is held
	open    chan struct{} // closed to let it go
	once    sync.Once
}

func (g *syncGate) Inject(op vfs.Op) error {
	if op.Kind != vfs.OpSync {
		return nil
	}
	select {
	case <-g.armed:
	default:
		return nil
	}
	held := false
	g.once.Do(func() { held = true; close(g.entered) })
	if held {
		<-g.open
	}
	return nil
}

// TestNoOpWriteWaitsForEarlierCommit checks that under SyncAlways a write
// that changes nothing (deleting a key another writer has just deleted)
// is not acknowledged before the state it observed is durable: if it
// returns while the earlier delete is still unflushed, a crash then must
// not bring the key back.
func TestNoOpWriteWaitsForEarlierCommit(t *testing.T) {
	mem := vfs.NewMem()
	g := &syncGate{armed: make(chan struct{}), entered: make(chan struct{}), open: make(chan struct{})}
	fs := vfs.WithErrors(mem, g)
	db := mustOpen(t, fs, "db")
	if err := db.Put([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	close(g.armed)
	aDone := make(chan error, 1)
	go func() { aDone <- db.Delete([]byte("k")) }()
	<-g.entered // A's delete is published, its flush held
	bDone := make(chan error, 1)
	go func() { bDone <- db.Delete([]byte("k")) }()
	select {
	case err := <-bDone:
		if err == nil {
			// B was acknowledged: a crash now must keep k deleted.
			img := mem.CloneDurable()
			close(g.open)
			<-aDone
			db.Close()
			db2 := mustOpen(t, img, "db")
			defer db2.Close()
			if _, err := db2.Get([]byte("k")); !errors.Is(err, cowdb.ErrNotFound) {
				t.Fatalf("acknowledged Delete not durable: Get after crash = %v, want ErrNotFound", err)
			}
			return
		}
		t.Fatalf("second Delete: %v", err)
	case <-time.After(300 * time.Millisecond):
		// B waits for the flush A's delete needs: what the test wants.
	}
	close(g.open)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCrashAfterGrowth checks that a large value acknowledged after the
// data file grew to make room for it survives a crash before the next
// checkpoint: the checkpoint on disk still describes the smaller file, and
// replay must still find the blocks the logged remap names.
func TestCrashAfterGrowth(t *testing.T) {
	mem := vfs.NewMem()
	o := crashOpts(mem, cowdb.SyncAlways)
	db, err := cowdb.Open("db", o)
	if err != nil {
		t.Fatal(err)
	}
	before := db.Stats().TotalBlocks
	val := make([]byte, 3<<20) // three times the initial size
	for i := range val {
		val[i] = byte(i*7 + i>>12)
	}
	if err := db.Put([]byte("big"), val); err != nil {
		t.Fatal(err)
	}
	if after := db.Stats().TotalBlocks; after <= before {
		t.Fatalf("the data file did not grow (%d -> %d blocks): the test needs it to", before, after)
	}
	img := mem.CloneDurable()
	db.Close()
	db2, err := cowdb.Open("db", crashOpts(img, cowdb.SyncAlways))
	if err != nil {
		t.Fatalf("Open after a crash following growth: %v", err)
	}
	got, err := db2.Get([]byte("big"))
	if err != nil || !bytes.Equal(got, val) {
		t.Fatalf("Get after crash: %d bytes, err %v; want the %d bytes put", len(got), err, len(val))
	}
	if err := db2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cowdb.CheckPersisted(img, "db"); err != nil {
		t.Fatalf("persisted allocation after recovery: %v", err)
	}
}

// TestUpdateFailedWriteAppliesNothing checks that a transaction in which a
// write failed (here a node read fails) commits nothing even if fn ignores
// the error and returns nil: the batch is then in an unknown state, and
// committing it could publish a tree the log does not describe.
func TestUpdateFailedWriteAppliesNothing(t *testing.T) {
	mem := vfs.NewMem()
	db := mustOpen(t, mem, "db")
	for i := range 2000 {
		k := fmt.Sprintf("key%05d", i)
		if err := db.Put([]byte(k), []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	fault := &vfs.Fault{Kind: vfs.OpRead, Path: "data", Persistent: true}
	efs := vfs.WithErrors(mem, nil)
	db = mustOpen(t, efs, "db")
	efs.SetInjector(fault)
	var putErr error
	err := db.Update(func(tx *cowdb.Tx) error {
		putErr = tx.Put([]byte("key01234"), []byte("new"))
		return nil // ignores putErr
	})
	efs.SetInjector(nil)
	if putErr == nil {
		t.Fatal("tx.Put succeeded with every data read failing: the test needs it to fail")
	}
	if err == nil {
		t.Errorf("Update returned nil after a write inside it failed (%v)", putErr)
	}
	if got, err := db.Get([]byte("key01234")); err != nil || string(got) != "key01234" {
		t.Errorf("after the failed Update: Get = %q, %v; want the old value", got, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cowdb.CheckPersisted(mem, "db"); err != nil {
		t.Fatal(err)
	}
}

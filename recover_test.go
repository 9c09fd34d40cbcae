package cowdb_test

import (
	"bytes"

	"fmt"
	"github.com/cowdb/cowdb"
	"sync/atomic"
	"testing"

	"github.com/cowdb/cowdb/vfs"
)

// TestRecoverWithoutClose checks that acknowledged writes survive a power
// loss that keeps only synced data, through WAL replay, and that the store
// written by recovery's checkpoint reopens again.
func TestRecoverWithoutClose(t *testing.T) {
	fs := vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	for i := range 300 {
		if err := db.Put([]byte(fmt.Sprintf("k%03d", i)), []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatal(err)
		}
		if i == 100 {
			if err := db.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.Delete([]byte("k007")); err != nil {
		t.Fatal(err)
	}
	fs2 := fs.CloneDurable()
	db.Close()
	for round := range 2 {
		db2 := mustOpen(t, fs2, "/db")
		for i := range 300 {
			got, err := db2.Get([]byte(fmt.Sprintf("k%03d", i)))
			if i == 7 {
				if err == nil {
					t.Fatalf("round %d: deleted key present", round)
				}
				continue
			}
			if err != nil || string(got) != fmt.Sprintf("v%d", i) {
				t.Fatalf("round %d: k%03d = %q, %v", round, i, got, err)
			}
		}
		if round == 0 {
			if st := db2.Stats(); st.Replayed == 0 {
				t.Fatalf("nothing replayed: %+v", st)
			}
		}
		fs2 = fs2.CloneDurable()
		db2.Close()
	}
}

// TestCheckpointInvariant checks the DESIGN §6 invariant after explicit
// checkpoints, after Close and after recovery: the persisted allocation is
// exactly the set of blocks reachable from the persisted roots.
func TestCheckpointInvariant(t *testing.T) {
	fs := vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	if err := cowdb.CheckPersisted(fs, "/db"); err != nil {
		t.Fatalf("new store: %v", err)
	}
	for round := range 5 {
		for i := range 400 {
			k := []byte(fmt.Sprintf("k%05d", (i*7919+round*13)%1000))
			var err error
			if i%5 == 4 {
				err = db.Delete(k)
			} else {
				err = db.Put(k, bytes.Repeat([]byte{byte(i)}, i%300))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		if err := cowdb.CheckPersisted(fs, "/db"); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	for i := range 100 {
		db.Put([]byte(fmt.Sprintf("z%d", i)), []byte("tail"))
	}
	crashed := fs.CloneDurable()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cowdb.CheckPersisted(fs, "/db"); err != nil {
		t.Fatalf("after Close: %v", err)
	}
	db = mustOpen(t, crashed, "/db")
	if err := cowdb.CheckPersisted(crashed, "/db"); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	db.Close()
}

// TestReadOnlyReplaysInMemory checks that a ReadOnly open of a store that
// needs recovery replays its log into memory, sees every acknowledged
// write, and writes nothing to the data file.
func TestReadOnlyReplaysInMemory(t *testing.T) {
	fs := vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	for i := range 50 {
		db.Put([]byte(fmt.Sprintf("k%d", i)), bytes.Repeat([]byte{byte(i)}, 10+i*200))
	}
	crashed := fs.CloneDurable()
	db.Close()
	var writes atomic.Int64
	efs := vfs.WithErrors(crashed, vfs.InjectorFunc(func(op vfs.Op) error {
		// Syncs are allowed: the log's replay syncs its last segment,
		// which changes nothing on disk.
		if op.Kind == vfs.OpWrite || op.Kind == vfs.OpFallocate || op.Kind == vfs.OpTruncate {
			writes.Add(1)
		}
		return nil
	}))
	o := memOpts(efs)
	o.ReadOnly = true
	ro, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		v, err := ro.Get([]byte(fmt.Sprintf("k%d", i)))
		if err != nil || !bytes.Equal(v, bytes.Repeat([]byte{byte(i)}, 10+i*200)) {
			t.Fatalf("k%d in ReadOnly recovery: %v", i, err)
		}
	}
	if st := ro.Stats(); st.Replayed == 0 {
		t.Fatal("nothing replayed")
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if n := writes.Load(); n != 0 {
		t.Fatalf("ReadOnly open and close wrote %d times", n)
	}
}

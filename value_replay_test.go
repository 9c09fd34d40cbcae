package cowdb_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

// TestRecoverLargeValues checks WAL replay of large values: values written,
// overwritten and deleted after the last checkpoint come back byte for
// byte from a power loss that keeps only synced data, the replaced ones'
// blocks are released (the DESIGN §6 invariant holds after recovery's
// checkpoint), and the recovered store keeps working.
func TestRecoverLargeValues(t *testing.T) {
	fs := vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	want := map[string][]byte{}
	for i := range 6 {
		k := fmt.Sprintf("big%d", i)
		want[k] = randValue(uint64(i), 3000+i*5000)
		if err := db.Put([]byte(k), want[k]); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	// After the checkpoint: new, replaced and deleted large values, and a
	// transaction mixing them, all to be replayed.
	want["big1"] = randValue(50, 20000)
	if err := db.Put([]byte("big1"), want["big1"]); err != nil {
		t.Fatal(err)
	}
	delete(want, "big2")
	if err := db.Delete([]byte("big2")); err != nil {
		t.Fatal(err)
	}
	want["big3"] = []byte("now small")
	if err := db.Put([]byte("big3"), want["big3"]); err != nil {
		t.Fatal(err)
	}
	err := db.Update(func(tx *cowdb.Tx) error {
		want["tx1"] = randValue(60, 12345)
		want["big4"] = randValue(61, 7000)
		if err := tx.Put([]byte("tx1"), want["tx1"]); err != nil {
			return err
		}
		return tx.Put([]byte("big4"), want["big4"])
	})
	if err != nil {
		t.Fatal(err)
	}
	crashed := fs.CloneDurable()
	db.Close()
	db = mustOpen(t, crashed, "/db")
	if st := db.Stats(); st.Replayed != 4 {
		t.Fatalf("replayed %d records, want 4", st.Replayed)
	}
	for k, w := range want {
		if got, err := db.Get([]byte(k)); err != nil || !bytes.Equal(got, w) {
			t.Fatalf("%s after replay: %d bytes, %v", k, len(got), err)
		}
	}
	if err := db.Put([]byte("more"), randValue(70, 9000)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cowdb.CheckPersisted(crashed, "/db"); err != nil {
		t.Fatal(err)
	}
}

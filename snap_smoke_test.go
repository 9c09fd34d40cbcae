package cowdb_test

import (
	"bytes"
	"testing"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

func TestSnapshotSmoke(t *testing.T) {
	fs := vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	big := bytes.Repeat([]byte{1}, 20000)
	if err := db.Put([]byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := db.Put([]byte("big"), big); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Snapshot("s1"); err != nil {
		t.Fatal(err)
	}
	if err := db.Put([]byte("a"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	b, _ := db.OpenBlob([]byte("big"))
	if _, err := b.WriteAt([]byte("xyz"), 5000); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteAt(bytes.Repeat([]byte{9}, 4096), 8192); err != nil {
		t.Fatal(err)
	}
	s, err := db.OpenSnapshot("s1")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("a")); err != nil || string(v) != "1" {
		t.Fatalf("snapshot a = %q %v", v, err)
	}
	if v, err := s.Get([]byte("big")); err != nil || !bytes.Equal(v, big) {
		t.Fatalf("snapshot big: %v", err)
	}
	var changes []string
	for c, err := range db.Diff("s1", "") {
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, c.Kind.String()+":"+string(c.Key))
		t.Logf("%s %v %v", c.Key, c.Kind, c.Ranges)
	}
	if len(changes) != 2 {
		t.Fatalf("changes %v", changes)
	}
	if err := db.Clone([]byte("big"), []byte("big2")); err != nil {
		t.Fatal(err)
	}
	if err := db.CloneFrom("s1", []byte("big"), []byte("old")); err != nil {
		t.Fatal(err)
	}
	if v, _ := db.Get([]byte("old")); !bytes.Equal(v, big) {
		t.Fatal("clonefrom")
	}
	if err := db.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if err := cowdb.CheckPersisted(fs, "/db"); err != nil {
		t.Fatal(err)
	}
	if err := db.Restore("s1"); err != nil {
		t.Fatal(err)
	}
	if v, _ := db.Get([]byte("a")); string(v) != "1" {
		t.Fatal("restore")
	}
	if _, err := b.ReadAt(make([]byte, 10), 0); err == nil {
		t.Fatal("stale handle after restore")
	}
	infos, err := db.Snapshots()
	if err != nil || len(infos) != 1 {
		t.Fatal(infos, err)
	}
	t.Logf("%+v", infos)
	if err := db.DeleteSnapshot("s1"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("big")); err != nil || !bytes.Equal(v, big) {
		t.Fatalf("open snapshot after delete: %v", err)
	}
	s.Close()
	for range 5 {
		if err := db.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		if err := cowdb.CheckPersisted(fs, "/db"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%+v", db.Stats().Dropping)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, fs, "/db")
	defer db.Close()
	if v, _ := db.Get([]byte("a")); string(v) != "1" {
		t.Fatal("reopen")
	}
}

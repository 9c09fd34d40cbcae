package cowdb

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/internal/record"
	"github.com/cowdb/cowdb/vfs"
)

// TestSharedExtentsPersist checks the refcount path that snapshots and
// clones will use: a large value's extents shared by a second key (made
// here by hand, as Clone will) get a refcount record, which a checkpoint
// persists in the refcount tree and Open loads back; deleting either key
// drops the count, deleting both frees the blocks; and the DESIGN §6
// invariant holds at every step.
func TestSharedExtentsPersist(t *testing.T) {
	fs := vfs.NewMem()
	opts := &Options{FS: fs, GroupSize: 1 << 20, WALSegmentSize: 256 << 10, Logger: slog.New(slog.DiscardHandler)}
	db, err := Open("/db", opts)
	if err != nil {
		t.Fatal(err)
	}
	val := bytes.Repeat([]byte("shared!"), 3000)
	if err := db.Put([]byte("a"), val); err != nil {
		t.Fatal(err)
	}
	// Clone a to b by hand: one more reference on each extent, then b's
	// inode and extent records, as one checkpointed change.
	db.mu.Lock()
	rec, _, _ := db.mu.live.Get(format.InodeKey(nil, []byte("a")))
	ino, _ := format.DecodeInode(rec)
	w, err := db.newWriterLocked()
	if err != nil {
		t.Fatal(err)
	}
	var shared []extents.Extent
	for e, err := range w.prefix(format.ExtentKey(nil, ino.ID, 0)[:9]) {
		if err != nil {
			t.Fatal(err)
		}
		r, _ := cowio.DecodeExtentRecord(e.Value)
		x := extents.Extent{Start: r.Start, Len: r.Len}
		if err := db.mu.alloc.Inc(x); err != nil {
			t.Fatal(err)
		}
		shared = append(shared, x)
		_, fb, _ := format.ParseExtentKey(e.Key)
		w.set(format.ExtentKey(nil, 999, fb), bytes.Clone(e.Value))
	}
	w.set(format.InodeKey(nil, []byte("b")), format.AppendInode(nil, format.Inode{ID: 999, Size: ino.Size}))
	w.set(format.BlobKeyKey(nil, 999), []byte("b"))
	db.mu.nextInode = max(db.mu.nextInode, 1000)
	// An empty record stands for the clone's (the checkpoint follows at
	// once, so replay never needs its contents).
	payload, _ := record.Append(nil, nil)
	lsn, err := db.wal.Append(payload, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.publishLocked(w, lsn); err != nil {
		t.Fatal(err)
	}
	db.mu.Unlock()
	if err := db.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if err := checkPersisted(fs, "/db"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open("/db", opts)
	if err != nil {
		t.Fatal(err)
	}
	db.mu.Lock()
	for _, x := range shared {
		if c := db.mu.alloc.Count(x.Start); c != 2 {
			t.Fatalf("after reopen block %d has count %d, want 2", x.Start, c)
		}
	}
	db.mu.Unlock()
	if st := db.Stats(); st.SharedBlocks == 0 {
		t.Fatalf("no shared blocks: %+v", st)
	}
	for _, k := range []string{"a", "b"} {
		if v, err := db.Get([]byte(k)); err != nil || !bytes.Equal(v, val) {
			t.Fatalf("Get(%s): %v", k, err)
		}
	}
	if err := db.Delete([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if v, err := db.Get([]byte("b")); err != nil || !bytes.Equal(v, val) {
		t.Fatalf("Get(b) after deleting a: %v", err)
	}
	if err := db.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if err := checkPersisted(fs, "/db"); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete([]byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := checkPersisted(fs, "/db"); err != nil {
		t.Fatal(err)
	}
	db, err = Open("/db", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.mu.Lock()
	defer db.mu.Unlock()
	for _, x := range shared {
		if s := db.mu.alloc.State(x.Start); s != extents.StateFree {
			t.Fatalf("block %d of the deleted value is in state %d, want free", x.Start, s)
		}
	}
}

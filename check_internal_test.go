package cowdb

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
)

// checkPersisted runs the full check (DB.Check's) on the store in dir as
// its files hold it now, without taking the directory's lock, so tests may
// call it on a store that is still open after a checkpoint: the durable
// image must satisfy every invariant, DESIGN §6's first (the allocation
// persisted by the newest checkpoint is exactly what its roots reach).
func checkPersisted(fs vfs.FS, dir string) error {
	return checkStore(fs, dir, vfs.DirectIOAuto, CheckOptions{})
}

// TestCheckDropInProgress takes a deleted snapshot's drop one step at a
// time, with the background checkpointer stopped, and checks every
// checkpoint in between: the image then holds a drop that has started,
// whose frames are allocated with count 0 while what they have not
// released yet keeps its referrers.
func TestCheckDropInProgress(t *testing.T) {
	fs := vfs.NewMem()
	db, err := Open("/db", &Options{FS: fs, GroupSize: 4 << 20, WALSegmentSize: 1 << 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.bg.stop() // the drop's steps are taken by hand
	put := func(round byte) {
		for i := range 2000 {
			v := bytes.Repeat([]byte{round}, 100)
			if i%100 == 0 {
				v = bytes.Repeat([]byte{round}, 3*4096)
			}
			if err := db.Put([]byte(fmt.Sprintf("key%05d", i)), v); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(1)
	if _, err := db.Snapshot("s"); err != nil {
		t.Fatal(err)
	}
	put(2) // the snapshot's nodes and extents are its own now
	if err := db.DeleteSnapshot("s"); err != nil {
		t.Fatal(err)
	}
	started := 0
	for step := 0; ; step++ {
		if err := db.Check(); err != nil { // checkpoints first
			t.Fatalf("step %d: %v", step, err)
		}
		c := inspectImage(t, fs)
		for _, r := range c.roots {
			if strings.HasPrefix(r.name, "drop") && r.tree == nil && len(c.unrefd) > 0 {
				started++
			}
		}
		more, err := db.dropSteps(1)
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
		if step > 1000 {
			t.Fatal("the drop does not end")
		}
	}
	t.Logf("%d checkpoints held a started drop", started)
	if started < 2 {
		t.Fatalf("%d checkpoints held a started drop; the test needs a bigger tree", started)
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
}

// inspectImage runs the check on the store in /db and returns the checker,
// whose trees stay readable until the test ends; any violation fails the
// test.
func inspectImage(t *testing.T, fs vfs.FS) *checker {
	t.Helper()
	f, err := fs.OpenFile("/db/data", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // the checker's trees read it
	c := newChecker("/db/data", f, CheckOptions{})
	if err := c.run(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCheckDataInBatches checks the data in batches of a few checksums,
// as a store too large to hold them all is: a clean store passes, and a
// damaged block shared by two values is reported for both.
func TestCheckDataInBatches(t *testing.T) {
	defer func(n int) { checkSumsMax = n }(checkSumsMax)
	checkSumsMax = 3
	fs := vfs.NewMem()
	db, err := Open("/db", &Options{FS: fs, GroupSize: 1 << 20, WALSegmentSize: 256 << 10, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := db.Put([]byte(fmt.Sprintf("v%d", i)), bytes.Repeat([]byte{byte(i)}, 5*4096+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Clone([]byte("v3"), []byte("copy")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	c := inspectImage(t, fs)
	live := c.roots[0].tree
	v, _, err := live.Get(format.InodeKey(nil, []byte("copy")))
	if err != nil {
		t.Fatal(err)
	}
	ino, err := format.DecodeInode(v)
	if err != nil {
		t.Fatal(err)
	}
	v, _, err = live.Get(format.ExtentKey(nil, ino.ID, 0))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := cowio.DecodeExtentRecord(v)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fs.OpenFile("/db/data", vfs.ReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("damage"), int64(rec.Start+1)*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	err = checkPersisted(fs, "/db")
	var ce *CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("damaged: %v", err)
	}
	var keys []string
	for _, v := range ce.Violations {
		if v.Kind == ViolationChecksum && v.Block == uint64(rec.Start)+1 {
			keys = append(keys, string(v.Key))
		}
	}
	if slices.Sort(keys); !slices.Equal(keys, []string{"copy", "v3"}) {
		t.Fatalf("checksum violations for %v, want copy and v3: %v", keys, ce)
	}
}

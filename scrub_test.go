package cowdb_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/snapshot"
	"github.com/cowdb/cowdb/vfs"
)

// scrubBlocks fills a value of n blocks with bytes derived from seed.
func scrubBlocks(n int, seed byte) []byte {
	v := make([]byte, n*4096)
	for i := range v {
		v[i] = seed + byte(i*7+i/4096)
	}
	return v
}

// mustScrub scrubs db and fails the test on an error.
func mustScrub(t *testing.T, db *cowdb.DB, o cowdb.ScrubOptions) cowdb.ScrubReport {
	t.Helper()
	rep, err := db.Scrub(o)
	if err != nil {
		t.Fatalf("Scrub: %v", err)
	}
	return rep
}

// sharedStore is a closed store whose layout the scrub tests know block
// by block: blob "a" of 5 blocks, "b" of 3 and its clone "c" (sharing its
// blocks), an inline value, snapshot "s1", then blocks 1 and 2 of "a"
// rewritten (2 new blocks, the old ones kept by s1) and "d" of 2 blocks
// put. Distinct data blocks: 5 + 3 + 2 + 2 = 12. It returns the first
// extent record of "a" as s1 maps it and of "b".
func sharedStore(t *testing.T) (fs *vfs.MemFS, a, b cowio.ExtentRecord) {
	t.Helper()
	fs = vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.Put([]byte("a"), scrubBlocks(5, 1)))
	must(db.Put([]byte("b"), scrubBlocks(3, 2)))
	must(db.Clone([]byte("b"), []byte("c")))
	must(db.Put([]byte("small"), []byte("inline")))
	must(db.Close())
	im := openImage(t, fs)
	_, a = im.blob("a")
	_, b = im.blob("b")
	if a.Len != 5 || b.Len != 3 {
		t.Fatalf("extent records of %d and %d blocks, want 5 and 3", a.Len, b.Len)
	}
	db = mustOpen(t, fs, "/db")
	_, err := db.Snapshot("s1")
	must(err)
	blob, err := db.OpenBlob([]byte("a"))
	must(err)
	_, err = blob.WriteAt(scrubBlocks(2, 9), 4096)
	must(err)
	must(blob.Close())
	must(db.Put([]byte("d"), scrubBlocks(2, 3)))
	must(db.Close())
	return fs, a, b
}

// TestScrubClean checks that a clean store with blobs, a clone and a
// snapshot scrubs clean, verifying each shared block once, and that the
// figures count what the store holds; and that a store holding every
// kind of root (fillRich) scrubs clean.
func TestScrubClean(t *testing.T) {
	fs, _, _ := sharedStore(t)
	db := mustOpen(t, fs, "/db")
	defer db.Close()
	rep := mustScrub(t, db, cowdb.ScrubOptions{})
	if len(rep.Damage) != 0 || rep.Truncated || len(rep.TreeErrors) != 0 {
		t.Fatalf("clean store: %+v", rep)
	}
	if rep.Blocks != 12 || rep.Bytes != 12*4096 {
		t.Errorf("verified %d blocks, %d bytes; want 12 blocks, %d bytes", rep.Blocks, rep.Bytes, 12*4096)
	}
	// live: a, b, c, d, small; s1: a, b, c, small.
	if rep.Values != 9 {
		t.Errorf("values %d, want 9", rep.Values)
	}
	if rep.Elapsed <= 0 {
		t.Errorf("elapsed %v", rep.Elapsed)
	}

	rich := mustOpen(t, vfs.NewMem(), "/rich")
	defer rich.Close()
	fillRich(t, rich)
	rep = mustScrub(t, rich, cowdb.ScrubOptions{})
	if len(rep.Damage) != 0 || len(rep.TreeErrors) != 0 || rep.Bytes == 0 || rep.Bytes != rep.Blocks*4096 {
		t.Fatalf("fillRich store: %+v", rep)
	}
	if err := rich.Check(); err != nil {
		t.Fatal(err)
	}

	empty := mustOpen(t, vfs.NewMem(), "/empty")
	defer empty.Close()
	calls := 0
	rep = mustScrub(t, empty, cowdb.ScrubOptions{Progress: func(done, total int64) {
		calls++
		if done != 0 || total != 0 {
			t.Errorf("empty store: progress %d/%d", done, total)
		}
	}})
	if rep.Bytes != 0 || rep.Values != 0 || len(rep.Damage) != 0 || calls != 1 {
		t.Errorf("empty store: %+v, %d progress calls", rep, calls)
	}
}

// TestScrubFindsDamage flips bytes in data blocks under an open DB (after
// reading them, so the cache holds good copies) and requires each damaged
// range reported with its root(s), key, byte range and block: a block
// shared by a clone is reported for both keys, a block shared by the
// snapshot and the live value for both roots, a block only the snapshot
// keeps for the snapshot only.
func TestScrubFindsDamage(t *testing.T) {
	damagesOnPurpose(t)
	fs, a, b := sharedStore(t)
	im := openImage(t, fs)
	db := mustOpen(t, fs, "/db")
	defer db.Close()
	for _, k := range []string{"a", "b", "c", "d"} {
		if _, err := db.Get([]byte(k)); err != nil { // cached now
			t.Fatal(err)
		}
	}
	im.flip(b.Start+1, 100)  // b's (and c's) block 1, in both roots
	im.flip(a.Start+1, 4095) // a's old block 1: s1's only
	im.flip(a.Start+3, 0)    // a's block 3, shared by live and s1
	im.flip(a.Start+4, 7)    // and block 4, next to it: one range
	want := []cowdb.ScrubDamage{
		{Root: "", Key: []byte("a"), Off: 3 * 4096, Len: 2 * 4096, Block: uint64(a.Start) + 3},
		{Root: "", Key: []byte("b"), Off: 4096, Len: 4096, Block: uint64(b.Start) + 1},
		{Root: "", Key: []byte("c"), Off: 4096, Len: 4096, Block: uint64(b.Start) + 1},
		{Root: "s1", Key: []byte("a"), Off: 4096, Len: 4096, Block: uint64(a.Start) + 1},
		{Root: "s1", Key: []byte("a"), Off: 3 * 4096, Len: 2 * 4096, Block: uint64(a.Start) + 3},
		{Root: "s1", Key: []byte("b"), Off: 4096, Len: 4096, Block: uint64(b.Start) + 1},
		{Root: "s1", Key: []byte("c"), Off: 4096, Len: 4096, Block: uint64(b.Start) + 1},
	}
	rep := mustScrub(t, db, cowdb.ScrubOptions{})
	if !slices.EqualFunc(rep.Damage, want, sameDamage) || rep.Truncated {
		t.Fatalf("damage:\n%v\nwant:\n%v", rep.Damage, want)
	}
	if rep.Blocks != 12 {
		t.Errorf("verified %d blocks, want 12", rep.Blocks)
	}
	rep = mustScrub(t, db, cowdb.ScrubOptions{MaxDamage: 3})
	if len(rep.Damage) != 3 || !rep.Truncated {
		t.Errorf("MaxDamage 3: %v, truncated %v", rep.Damage, rep.Truncated)
	}
	for _, d := range rep.Damage {
		if !slices.ContainsFunc(want, func(w cowdb.ScrubDamage) bool { return sameDamage(d, w) }) {
			t.Errorf("MaxDamage 3: %v is not damage", d)
		}
	}
}

func sameDamage(x, y cowdb.ScrubDamage) bool {
	return x.Root == y.Root && bytes.Equal(x.Key, y.Key) && x.Off == y.Off && x.Len == y.Len && x.Block == y.Block
}

// TestScrubDamageCutAtSize checks that a damaged last block of a value
// whose size is not a multiple of the block size is reported up to the
// size only.
func TestScrubDamageCutAtSize(t *testing.T) {
	damagesOnPurpose(t)
	fs := vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	if err := db.Put([]byte("v"), make([]byte, 2*4096+100)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	im := openImage(t, fs)
	_, rec := im.blob("v")
	db = mustOpen(t, fs, "/db")
	defer db.Close()
	im.flip(rec.Start+2, 5)
	rep := mustScrub(t, db, cowdb.ScrubOptions{})
	want := []cowdb.ScrubDamage{{Key: []byte("v"), Off: 2 * 4096, Len: 100, Block: uint64(rec.Start) + 2}}
	if !slices.EqualFunc(rep.Damage, want, sameDamage) {
		t.Fatalf("damage %v, want %v", rep.Damage, want)
	}
}

// TestScrubProgress checks that the progress callback's done never
// decreases nor passes total, and that the last call reaches total, which
// is the bytes verified.
func TestScrubProgress(t *testing.T) {
	db := mustOpen(t, vfs.NewMem(), "/db")
	defer db.Close()
	// More than one progress interval (16 MiB) and one read window.
	v := scrubBlocks(256, 5) // 1 MiB
	for i := range 20 {
		if err := db.Put([]byte(fmt.Sprintf("blob%02d", i)), v); err != nil {
			t.Fatal(err)
		}
	}
	var last, total int64 = -1, -1
	calls := 0
	rep := mustScrub(t, db, cowdb.ScrubOptions{Progress: func(done, tot int64) {
		calls++
		if done < last || done > tot || (total >= 0 && tot != total) {
			t.Errorf("progress %d/%d after %d/%d", done, tot, last, total)
		}
		last, total = done, tot
	}})
	if calls < 2 || last != total || total != rep.Bytes || rep.Bytes != 20<<20 {
		t.Errorf("%d calls, last %d/%d, verified %d bytes, want %d", calls, last, total, rep.Bytes, 20<<20)
	}
}

// TestScrubConcurrent scrubs again and again while writers put, rewrite
// in place, clone, snapshot and delete (run it under -race): every scrub
// must find no damage in a healthy store. After Close, Scrub is
// ErrClosed.
func TestScrubConcurrent(t *testing.T) {
	o := memOpts(vfs.NewMem())
	o.GroupSize, o.InitialSize = 4<<20, 4<<20
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 16 {
		if err := db.Put([]byte(fmt.Sprintf("w%d-%d", i%2, i/2)), scrubBlocks(3, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	var ops atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := []byte(fmt.Sprintf("w%d-%d", w, rng.IntN(8)))
				var err error
				switch rng.IntN(6) {
				case 0, 1:
					err = db.Put(k, scrubBlocks(1+rng.IntN(4), byte(i)))
				case 2:
					var b *cowdb.Blob
					if b, err = db.OpenBlob(k); err == nil {
						_, err = b.WriteAt(scrubBlocks(2, byte(i)), int64(rng.IntN(3))*4096)
						err = errors.Join(err, b.Close())
					}
				case 3:
					err = db.Clone(k, []byte(fmt.Sprintf("w%d-clone", w)))
				case 4:
					name := fmt.Sprintf("w%d-s%d", w, rng.IntN(3))
					if err = db.DeleteSnapshot(name); errors.Is(err, cowdb.ErrSnapshotNotFound) {
						_, err = db.Snapshot(name)
					}
				case 5:
					err = db.Delete(k)
				}
				if err != nil && !errors.Is(err, cowdb.ErrNotFound) && !errors.Is(err, cowdb.ErrStale) {
					errs <- err
					return
				}
				ops.Add(1)
			}
		}()
	}
	// Scrub until the writers have done enough to overlap many scrubs
	// (bounded, should they stall).
	for i := 0; i < 10_000 && (i < 10 || ops.Load() < 300); i++ {
		rep, err := db.Scrub(cowdb.ScrubOptions{})
		if err != nil {
			t.Error(err)
			break
		}
		if len(rep.Damage) != 0 || len(rep.TreeErrors) != 0 {
			t.Errorf("damage in a healthy store: %v %v", rep.Damage, rep.TreeErrors)
			break
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := db.Check(); err != nil {
		t.Error(err)
	}
	// Scrub racing Close: clean or ErrClosed, never anything else.
	done := make(chan error)
	go func() {
		_, err := db.Scrub(cowdb.ScrubOptions{})
		done <- err
	}()
	if err := db.Close(); err != nil {
		t.Error(err)
	}
	if err := <-done; err != nil && !errors.Is(err, cowdb.ErrClosed) {
		t.Errorf("Scrub racing Close: %v", err)
	}
	if _, err := db.Scrub(cowdb.ScrubOptions{}); !errors.Is(err, cowdb.ErrClosed) {
		t.Errorf("Scrub after Close: %v, want ErrClosed", err)
	}
}

// BenchmarkScrub measures Scrub on the operating system's file system:
// about 100 MiB of blob data (100 values of 1 MiB), a snapshot, and 10
// clones sharing blocks with it (each shared block verified once). Bytes
// per op are the data verified.
func BenchmarkScrub(b *testing.B) {
	const (
		blobs    = 100
		blobSize = 1 << 20
	)
	dir := b.TempDir()
	db, err := cowdb.Open(dir, &cowdb.Options{Sync: cowdb.SyncNever, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	v := make([]byte, blobSize)
	for i := range blobs {
		for j := range v {
			v[j] = byte(i + j*31)
		}
		if err := db.Put([]byte(fmt.Sprintf("blob%03d", i)), v); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := db.Snapshot("s"); err != nil {
		b.Fatal(err)
	}
	for i := range 10 {
		if err := db.Clone([]byte(fmt.Sprintf("blob%03d", i)), []byte(fmt.Sprintf("clone%03d", i))); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Checkpoint(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(blobs * blobSize)
	for b.Loop() {
		rep, err := db.Scrub(cowdb.ScrubOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if len(rep.Damage) != 0 || rep.Bytes != blobs*blobSize {
			b.Fatalf("%+v", rep)
		}
	}
}

// TestScrubTreeDamage damages a node only a snapshot reaches and
// requires the scrub to go on: the snapshot's walk is reported in
// TreeErrors (wrapping ErrCorrupt), the live store's data still verified.
func TestScrubTreeDamage(t *testing.T) {
	damagesOnPurpose(t)
	fs := vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	for i := range 300 {
		if err := db.Put([]byte(fmt.Sprintf("k%03d", i)), bytes.Repeat([]byte{byte(i)}, 60)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Snapshot("s"); err != nil {
		t.Fatal(err)
	}
	// Every key rewritten: the live root shares no node with the snapshot.
	for i := range 300 {
		if err := db.Put([]byte(fmt.Sprintf("k%03d", i)), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Put([]byte("blob"), scrubBlocks(3, 4)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	im := openImage(t, fs)
	rec, err := snapshot.DecodeRecord(im.get(im.sb.CatalogRoot, snapshot.SnapshotKey("s")))
	if err != nil {
		t.Fatal(err)
	}
	p := im.path(rec.Root, format.InodeKey(nil, []byte("k150")))
	db = mustOpen(t, fs, "/db")
	defer db.Close()
	im.flip(p[len(p)-1].b, 200)
	rep := mustScrub(t, db, cowdb.ScrubOptions{})
	if len(rep.TreeErrors) != 1 || !errors.Is(rep.TreeErrors[0], cowdb.ErrCorrupt) {
		t.Fatalf("tree errors %v, want one wrapping ErrCorrupt", rep.TreeErrors)
	}
	if len(rep.Damage) != 0 || rep.Bytes != 3*4096 {
		t.Errorf("damage %v, %d bytes verified; want none, %d", rep.Damage, rep.Bytes, 3*4096)
	}
}

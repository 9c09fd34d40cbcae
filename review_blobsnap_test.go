package cowdb_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

// Tests for bugs found reviewing the blob and snapshot write path. Each
// fails now and passes once its bug is fixed.

// TestReviewCloneRacesInlineConversion clones an inline value while a
// Blob handle's first WriteAt converts it to a blob (ensureBlob: the
// bytes become a dirty page of a new inode). clone looks src up with no
// lock, sees it inline and writes nothing back; if the conversion
// commits before the clone's record, applyClone copies the new inode's
// extent records (none) and dst reads as zeros. dst must hold src's
// value before or after the write.
func TestReviewCloneRacesInlineConversion(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs)
	o.Sync = cowdb.SyncNever
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v := bytes.Repeat([]byte("v"), 100)
	for i := range 3000 {
		src, dst := []byte(fmt.Sprintf("src%d", i)), []byte(fmt.Sprintf("dst%d", i))
		if err := db.Put(src, v); err != nil {
			t.Fatal(err)
		}
		b, err := db.OpenBlob(src)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		var ready sync.WaitGroup
		ready.Add(1)
		go func() {
			ready.Done()
			_, err := b.WriteAt([]byte("W"), 5000)
			done <- err
		}()
		ready.Wait()
		for range i % 50 {
			runtime.Gosched()
		}
		if err := db.Clone(src, dst); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		after := append(bytes.Clone(v), make([]byte, 5001-len(v))...)
		after[5000] = 'W'
		got, err := db.Get(dst)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, v) && !bytes.Equal(got, after) {
			t.Fatalf("iteration %d: clone holds %d bytes %q..., want src before (%d bytes) or after (%d bytes) the write", i, len(got), got[:min(len(got), 8)], len(v), len(after))
		}
		b.Close()
	}
}

// TestReviewNoSpaceHeldByReservations fills a small store (64 KiB
// blocks, one 4 MiB group) while a blob has a dirty page. The checkpoint
// a full write forces (putLarge, commitRetrying) releases the cowio
// reservations first (checkpoint: db.inodes.ReleaseReserved), then writes
// the page back (sealWrittenBack) through the blob's cowio.Inode, whose
// CoW extent-size hint (32 blocks whatever the block size) reserves the
// rest of the page's chunk again as staging blocks. So the retried write
// fails with ErrNoSpace while half the store is only reserved, with
// nothing in flight (DESIGN §8: fail only once nothing can be released).
func TestReviewNoSpaceHeldByReservations(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs)
	o.BlockSize = 65536
	o.GroupSize = 64 * 65536
	o.InitialSize = o.GroupSize
	o.MaxSize = o.GroupSize
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b, err := db.CreateBlob([]byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteAt([]byte("dirty"), 10); err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 100; n++ {
		err := db.Put([]byte(fmt.Sprintf("filler%03d", n)), bytes.Repeat([]byte{1}, 65536))
		if err == nil {
			// A small write in another chunk of the blob: a dirty page.
			if _, err := b.WriteAt([]byte("dirty"), int64(n+1)*40*65536+10); err != nil && !errors.Is(err, cowdb.ErrNoSpace) {
				t.Fatal(err)
			}
			continue
		}
		if !errors.Is(err, cowdb.ErrNoSpace) {
			t.Fatal(err)
		}
		if st := db.Stats(); st.StagingBlocks >= 16 {
			t.Fatalf("Put of one block after %d: %v, with %d blocks free and %d staging blocks only reserved (nothing in flight)", n, err, st.FreeBlocks, st.StagingBlocks)
		}
		return
	}
	t.Fatal("the store never filled")
}

// TestReviewRelogFullPage64K: with 64 KiB blocks and the smallest log
// segments (256 KiB, so records of at most 64 KiB), a checkpoint that
// cannot write a full dirty page back (no space) relogs it
// (relogPagesLocked) as one DeferredWrite of the whole block: a record
// of 64 KiB plus its header, over the limit. The append fails and
// relogPagesLocked fails the store: every later write is refused until
// reopened. The size check there counts bs+64 a block and flushes before
// a block, but never splits one block's bytes.
func TestReviewRelogFullPage64K(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs)
	o.BlockSize = 65536
	o.GroupSize = 64 * 65536
	o.InitialSize = o.GroupSize
	o.MaxSize = o.GroupSize
	o.WALSegmentSize = 256 << 10
	o.CacheSize = 64 << 20
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b, err := db.CreateBlob([]byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	quarter := bytes.Repeat([]byte{9}, 16<<10)
	for blk := int64(0); blk < 60; blk++ {
		for q := int64(0); q < 4; q++ {
			if _, err := b.WriteAt(quarter, blk*65536+q*(16<<10)); err != nil {
				if !errors.Is(err, cowdb.ErrNoSpace) {
					t.Fatalf("block %d: %v", blk, err)
				}
			}
		}
		if err := db.Put([]byte(fmt.Sprintf("f%d", blk)), bytes.Repeat([]byte{1}, 65536)); err != nil && !errors.Is(err, cowdb.ErrNoSpace) {
			t.Fatalf("filler %d: %v", blk, err)
		}
		if err := db.Checkpoint(); err != nil && !errors.Is(err, cowdb.ErrNoSpace) {
			t.Fatalf("checkpoint after block %d: %v (stats %+v)", blk, err, db.Stats())
		}
	}
}

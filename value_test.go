package cowdb_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

// randValue returns n pseudo-random bytes from seed.
func randValue(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestLargeValues checks values of every size class — inline, exactly
// InlineMax, one block, unaligned multi-block, megabytes — through Put,
// Get, Scan, Update, overwrite and Delete, before and after reopening;
// that replaced and deleted values' blocks are freed (the DESIGN §6
// invariant holds); and that space is reused.
func TestLargeValues(t *testing.T) {
	fs := vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	sizes := []int{0, 1, 511, 512, 513, 4095, 4096, 4097, 10000, 65536 + 3, 1 << 20, 3<<20 + 17}
	want := map[string][]byte{}
	for i, n := range sizes {
		k := fmt.Sprintf("v%02d", i)
		want[k] = randValue(uint64(i), n)
		if err := db.Put([]byte(k), want[k]); err != nil {
			t.Fatalf("Put %d bytes: %v", n, err)
		}
	}
	err := db.Update(func(tx *cowdb.Tx) error {
		want["tx-big"] = randValue(100, 50000)
		if err := tx.Put([]byte("tx-big"), want["tx-big"]); err != nil {
			return err
		}
		got, err := tx.Get([]byte("tx-big"))
		if err != nil || !bytes.Equal(got, want["tx-big"]) {
			return fmt.Errorf("tx.Get of its own large value: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A failed transaction's large value leaves no block behind.
	sentinel := errors.New("abort")
	if err := db.Update(func(tx *cowdb.Tx) error {
		tx.Put([]byte("lost"), randValue(5, 100000))
		return sentinel
	}); err != sentinel {
		t.Fatal(err)
	}
	check := func(db *cowdb.DB) {
		t.Helper()
		for k, w := range want {
			got, err := db.Get([]byte(k))
			if err != nil || !bytes.Equal(got, w) {
				t.Fatalf("Get(%s) = %d bytes, %v; want %d bytes", k, len(got), err, len(w))
			}
		}
		n := 0
		for it, err := range db.Scan(nil, nil) {
			if err != nil {
				t.Fatal(err)
			}
			if it.Size != int64(len(want[string(it.Key)])) {
				t.Fatalf("item %s size %d, want %d", it.Key, it.Size, len(want[string(it.Key)]))
			}
			v, err := it.Value()
			if err != nil || !bytes.Equal(v, want[string(it.Key)]) {
				t.Fatalf("item %s value: %v", it.Key, err)
			}
			n++
		}
		if n != len(want) {
			t.Fatalf("scan saw %d items, want %d", n, len(want))
		}
	}
	check(db)
	if st := db.Stats(); st.StagingBlocks != 0 {
		t.Fatalf("%d staging blocks left behind", st.StagingBlocks)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cowdb.CheckPersisted(fs, "/db"); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, fs, "/db")
	check(db)
	total := db.Stats().TotalBlocks
	// Overwrite and delete the large ones many times: space is reused.
	for round := range 10 {
		for i, n := range sizes {
			k := fmt.Sprintf("v%02d", i)
			if round%3 == 2 {
				delete(want, k)
				if err := db.Delete([]byte(k)); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want[k] = randValue(uint64(round*100+i), n)
			if err := db.Put([]byte(k), want[k]); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if err := db.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	check(db)
	// Ten rounds of rewriting about 4.5 MiB would need 45 MiB more
	// without reuse; with it, the file grows by a few groups at most.
	if after := db.Stats().TotalBlocks; after > total+(8<<20)/4096 {
		t.Fatalf("data file went from %d to %d blocks: space not reused", total, after)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cowdb.CheckPersisted(fs, "/db"); err != nil {
		t.Fatal(err)
	}
}

// TestScanIsLazy checks that Scan and Prefix do not read values unless
// asked: iterating over large values reads a few node blocks from the data
// file, not the values' data, until Value is called.
func TestScanIsLazy(t *testing.T) {
	var read atomic.Int64
	fs := vfs.WithErrors(vfs.NewMem(), vfs.InjectorFunc(func(op vfs.Op) error {
		if op.Kind == vfs.OpRead && op.Path == "/db/data" {
			read.Add(op.Len)
		}
		return nil
	}))
	db := mustOpen(t, fs, "/db")
	for i := range 8 {
		if err := db.Put([]byte(fmt.Sprintf("big%d", i)), randValue(uint64(i), 64<<10)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	db = mustOpen(t, fs, "/db")
	defer db.Close()
	before := read.Load()
	n := 0
	for it, err := range db.Prefix([]byte("big")) {
		if err != nil {
			t.Fatal(err)
		}
		if it.Size != 64<<10 {
			t.Fatalf("%s: size %d", it.Key, it.Size)
		}
		n++
	}
	scanned := read.Load() - before
	if n != 8 || scanned > 4*4096 {
		t.Fatalf("scan of %d items read %d bytes; the values (512 KiB) must not be read", n, scanned)
	}
	for it, err := range db.Prefix([]byte("big1")) {
		if err != nil {
			t.Fatal(err)
		}
		if v, err := it.Value(); err != nil || !bytes.Equal(v, randValue(1, 64<<10)) {
			t.Fatalf("Value: %v", err)
		}
	}
	if got := read.Load() - before - scanned; got < 64<<10 {
		t.Fatalf("Value read %d bytes, want at least the value's 64 KiB", got)
	}
}

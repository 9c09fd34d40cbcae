package cowdb_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

// memOpts returns options for a small store on fs.
func memOpts(fs vfs.FS) *cowdb.Options {
	return &cowdb.Options{FS: fs, GroupSize: 1 << 20, InitialSize: 1 << 20, WALSegmentSize: 256 << 10, CacheSize: 1 << 20,
		Logger: slog.New(slog.DiscardHandler)}
}

func mustOpen(t testing.TB, fs vfs.FS, dir string) *cowdb.DB {
	t.Helper()
	db, err := cowdb.Open(dir, memOpts(fs))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

// TestPutGetReopen checks that values put, overwritten and deleted read
// back as written, before and after Close and reopen.
func TestPutGetReopen(t *testing.T) {
	fs := vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	want := map[string]string{}
	for i := range 500 {
		k, v := fmt.Sprintf("key%04d", i), fmt.Sprintf("value-%d", i*i)
		if err := db.Put([]byte(k), []byte(v)); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	for i := 0; i < 500; i += 3 {
		k := fmt.Sprintf("key%04d", i)
		if err := db.Delete([]byte(k)); err != nil {
			t.Fatal(err)
		}
		delete(want, k)
	}
	check := func(db *cowdb.DB) {
		t.Helper()
		for i := range 500 {
			k := fmt.Sprintf("key%04d", i)
			got, err := db.Get([]byte(k))
			if w, ok := want[k]; ok {
				if err != nil || string(got) != w {
					t.Fatalf("Get(%s) = %q, %v; want %q", k, got, err, w)
				}
			} else if !errors.Is(err, cowdb.ErrNotFound) {
				t.Fatalf("Get(%s) = %q, %v; want ErrNotFound", k, got, err)
			}
		}
	}
	check(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, fs, "/db")
	check(db)
	n := 0
	var prev []byte
	for it, err := range db.Scan(nil, nil) {
		if err != nil {
			t.Fatal(err)
		}
		if prev != nil && bytes.Compare(prev, it.Key) >= 0 {
			t.Fatalf("scan out of order: %q after %q", it.Key, prev)
		}
		prev = bytes.Clone(it.Key)
		n++
	}
	if n != len(want) {
		t.Fatalf("scan yielded %d items, want %d", n, len(want))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

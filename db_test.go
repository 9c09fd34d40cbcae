package cowdb_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

// memOpts returns options for a small store on fs.
func memOpts(fs vfs.FS) *cowdb.Options {
	return &cowdb.Options{FS: fs, GroupSize: 1 << 20, InitialSize: 1 << 20, WALSegmentSize: 256 << 10, CacheSize: 1 << 20,
		Logger: slog.New(slog.DiscardHandler)}
}

// onPurpose holds the tests that damage their stores on purpose (to test
// the checks themselves): mustOpen's closing check leaves them alone.
var onPurpose = newTestSet()

// damagesOnPurpose marks t as damaging its stores on purpose.
func damagesOnPurpose(t testing.TB) { onPurpose.Store(t) }

// testSet is a set of tests, safe for parallel tests.
type testSet struct {
	mu sync.Mutex
	m  map[testing.TB]bool
}

func newTestSet() *testSet { return &testSet{m: map[testing.TB]bool{}} }

func (s *testSet) Store(t testing.TB) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[t] = true
}

func (s *testSet) Load(t testing.TB) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[t]
}

// mustOpen opens the store in dir on fs with memOpts. When the test ends
// it closes the store and runs the full offline check on what is left
// (unless the test failed already, or left the store unopenable on
// purpose: a crashed or damaged file system), so every test that uses it
// also proves the store consistent.
func mustOpen(t testing.TB, fs vfs.FS, dir string) *cowdb.DB {
	t.Helper()
	db, err := cowdb.Open(dir, memOpts(fs))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() || onPurpose.Load(t) {
			return
		}
		if mem, ok := fs.(*vfs.MemFS); ok && mem.Crashed() {
			return
		}
		if err := db.Close(); err != nil {
			return // a test of failures: the store refused to close cleanly
		}
		err := cowdb.CheckDir(dir, memOpts(fs))
		if errors.Is(err, cowdb.ErrCorrupt) {
			t.Errorf("check of %s after the test: %v", dir, err)
		}
	})
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

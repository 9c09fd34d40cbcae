package cowdb_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

// TestKeyAndValueLimits checks that every call taking a key refuses an
// empty one with ErrInvalidKey and a 1025-byte one with ErrKeyTooLarge,
// accepts 1 and 1024 bytes, and that an oversize value is ErrValueTooLarge;
// refused calls change nothing.
func TestKeyAndValueLimits(t *testing.T) {
	db := mustOpen(t, vfs.NewMem(), "/db")
	defer db.Close()
	long := bytes.Repeat([]byte("k"), cowdb.MaxKeySize+1)
	for _, c := range []struct {
		key  []byte
		want error
	}{{nil, cowdb.ErrInvalidKey}, {[]byte{}, cowdb.ErrInvalidKey}, {long, cowdb.ErrKeyTooLarge}} {
		calls := map[string]error{
			"Put":    db.Put(c.key, []byte("v")),
			"Delete": db.Delete(c.key),
		}
		_, calls["Get"] = db.Get(c.key)
		db.Update(func(tx *cowdb.Tx) error {
			calls["Tx.Put"] = tx.Put(c.key, []byte("v"))
			calls["Tx.Delete"] = tx.Delete(c.key)
			_, calls["Tx.Get"] = tx.Get(c.key)
			return nil
		})
		db.View(func(tx *cowdb.Tx) error {
			_, calls["View.Get"] = tx.Get(c.key)
			return nil
		})
		for name, err := range calls {
			if !errors.Is(err, c.want) {
				t.Errorf("%s(%d-byte key) = %v, want %v", name, len(c.key), err, c.want)
			}
		}
	}
	for _, n := range []int{1, cowdb.MaxKeySize} {
		k := bytes.Repeat([]byte{'a'}, n)
		if err := db.Put(k, []byte("v")); err != nil {
			t.Fatalf("Put(%d-byte key): %v", n, err)
		}
		if v, err := db.Get(k); err != nil || string(v) != "v" {
			t.Fatalf("Get(%d-byte key) = %q, %v", n, v, err)
		}
	}
	// Not touched, so the OS never backs it with memory.
	if err := db.Put([]byte("big"), make([]byte, cowdb.MaxValueSize+1)); !errors.Is(err, cowdb.ErrValueTooLarge) {
		t.Fatalf("Put above MaxValueSize = %v, want ErrValueTooLarge", err)
	}
	if _, err := db.Get([]byte("big")); !errors.Is(err, cowdb.ErrNotFound) {
		t.Fatalf("refused Put left %v", err)
	}
	if err := db.Put([]byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if v, err := db.Get([]byte("empty")); err != nil || len(v) != 0 {
		t.Fatalf("empty value = %q, %v", v, err)
	}
	if err := db.Delete([]byte("missing")); err != nil {
		t.Fatalf("Delete of a missing key = %v", err)
	}
}

// TestClosed checks that every method returns ErrClosed after Close and
// that Close is idempotent.
func TestClosed(t *testing.T) {
	db := mustOpen(t, vfs.NewMem(), "/db")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	_, getErr := db.Get([]byte("k"))
	var scanErr, prefixErr error
	for _, err := range db.Scan(nil, nil) {
		scanErr = err
	}
	for _, err := range db.Prefix(nil) {
		prefixErr = err
	}
	for name, err := range map[string]error{
		"Put":        db.Put([]byte("k"), []byte("v")),
		"Get":        getErr,
		"Delete":     db.Delete([]byte("k")),
		"Update":     db.Update(func(*cowdb.Tx) error { return nil }),
		"View":       db.View(func(*cowdb.Tx) error { return nil }),
		"Scan":       scanErr,
		"Prefix":     prefixErr,
		"Sync":       db.Sync(),
		"Checkpoint": db.Checkpoint(),
	} {
		if !errors.Is(err, cowdb.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

// TestTransactions checks Update's atomicity and error semantics: its
// writes are visible to its own reads and scans, a returned error is
// passed through unchanged with nothing applied, a panic applies nothing
// and propagates, a Tx used after its function is ErrTxClosed, and a write
// in View is ErrReadOnly.
func TestTransactions(t *testing.T) {
	db := mustOpen(t, vfs.NewMem(), "/db")
	defer db.Close()
	for _, k := range []string{"a", "b", "c"} {
		if err := db.Put([]byte(k), []byte("old-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	err := db.Update(func(tx *cowdb.Tx) error {
		if err := tx.Put([]byte("b"), []byte("new-b")); err != nil {
			return err
		}
		if err := tx.Put([]byte("bb"), []byte("new-bb")); err != nil {
			return err
		}
		if err := tx.Delete([]byte("c")); err != nil {
			return err
		}
		if v, err := tx.Get([]byte("b")); err != nil || string(v) != "new-b" {
			return fmt.Errorf("tx.Get(b) = %q, %v", v, err)
		}
		if _, err := tx.Get([]byte("c")); !errors.Is(err, cowdb.ErrNotFound) {
			return fmt.Errorf("tx.Get(c) after delete = %v", err)
		}
		var keys []string
		for it, err := range tx.Scan(nil, nil) {
			if err != nil {
				return err
			}
			v, _ := it.Value()
			keys = append(keys, string(it.Key)+"="+string(v))
		}
		if got := strings.Join(keys, ","); got != "a=old-a,b=new-b,bb=new-bb" {
			return fmt.Errorf("tx.Scan = %s", got)
		}
		keys = nil
		for it, err := range tx.Prefix([]byte("b")) {
			if err != nil {
				return err
			}
			keys = append(keys, string(it.Key))
		}
		if got := strings.Join(keys, ","); got != "b,bb" {
			return fmt.Errorf("tx.Prefix(b) = %s", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "old-a", "b": "new-b", "bb": "new-bb"}
	checkContents(t, db, want)

	sentinel := errors.New("no thanks")
	if err := db.Update(func(tx *cowdb.Tx) error {
		tx.Put([]byte("a"), []byte("lost"))
		tx.Delete([]byte("b"))
		return sentinel
	}); err != sentinel {
		t.Fatalf("Update returned %v, want the sentinel itself", err)
	}
	checkContents(t, db, want)

	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want boom", r)
			}
		}()
		db.Update(func(tx *cowdb.Tx) error {
			tx.Put([]byte("a"), []byte("lost"))
			panic("boom")
		})
	}()
	checkContents(t, db, want)

	var kept *cowdb.Tx
	db.Update(func(tx *cowdb.Tx) error { kept = tx; return nil })
	if err := kept.Put([]byte("a"), []byte("x")); !errors.Is(err, cowdb.ErrTxClosed) {
		t.Fatalf("Put after Update = %v", err)
	}
	if _, err := kept.Get([]byte("a")); !errors.Is(err, cowdb.ErrTxClosed) {
		t.Fatalf("Get after Update = %v", err)
	}
	db.View(func(tx *cowdb.Tx) error { kept = tx; return nil })
	if _, err := kept.Get([]byte("a")); !errors.Is(err, cowdb.ErrTxClosed) {
		t.Fatalf("Get after View = %v", err)
	}
	for _, err := range kept.Scan(nil, nil) {
		if !errors.Is(err, cowdb.ErrTxClosed) {
			t.Fatalf("Scan after View = %v", err)
		}
	}
	db.View(func(tx *cowdb.Tx) error {
		if err := tx.Put([]byte("a"), []byte("x")); !errors.Is(err, cowdb.ErrReadOnly) {
			t.Fatalf("Put in View = %v", err)
		}
		if err := tx.Delete([]byte("a")); !errors.Is(err, cowdb.ErrReadOnly) {
			t.Fatalf("Delete in View = %v", err)
		}
		return nil
	})
	checkContents(t, db, want)
}

// checkContents checks db holds exactly want, through Scan and Get.
func checkContents(t *testing.T, db *cowdb.DB, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for it, err := range db.Scan(nil, nil) {
		if err != nil {
			t.Fatal(err)
		}
		v, err := it.Value()
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(v)) != it.Size {
			t.Fatalf("item %q size %d, value %d bytes", it.Key, it.Size, len(v))
		}
		got[string(it.Key)] = string(v)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("store holds %v, want %v", got, want)
	}
	for k, w := range want {
		if v, err := db.Get([]byte(k)); err != nil || string(v) != w {
			t.Fatalf("Get(%q) = %q, %v; want %q", k, v, err, w)
		}
	}
}

// TestScanAndPrefix checks Scan's half-open bounds, empty and unbounded
// ranges, Prefix, and that one iteration reads one version while the loop
// body writes.
func TestScanAndPrefix(t *testing.T) {
	db := mustOpen(t, vfs.NewMem(), "/db")
	defer db.Close()
	for _, k := range []string{"a", "ab", "abc", "b", "ba", "c"} {
		db.Put([]byte(k), []byte("v"+k))
	}
	keys := func(seq func(func(*cowdb.Item, error) bool)) string {
		var ks []string
		for it, err := range seq {
			if err != nil {
				t.Fatal(err)
			}
			ks = append(ks, string(it.Key))
		}
		return strings.Join(ks, ",")
	}
	for _, c := range []struct {
		start, end []byte
		want       string
	}{
		{nil, nil, "a,ab,abc,b,ba,c"},
		{[]byte("ab"), []byte("b"), "ab,abc"},
		{[]byte("ab"), []byte("ba"), "ab,abc,b"},
		{nil, []byte("ab"), "a"},
		{[]byte("b"), nil, "b,ba,c"},
		{[]byte("b"), []byte("b"), ""},
		{[]byte("c"), []byte("a"), ""},
	} {
		if got := keys(db.Scan(c.start, c.end)); got != c.want {
			t.Errorf("Scan(%q, %q) = %s, want %s", c.start, c.end, got, c.want)
		}
	}
	for p, want := range map[string]string{"a": "a,ab,abc", "ab": "ab,abc", "b": "b,ba", "d": "", "": "a,ab,abc,b,ba,c"} {
		if got := keys(db.Prefix([]byte(p))); got != want {
			t.Errorf("Prefix(%q) = %s, want %s", p, got, want)
		}
	}
	n := 0
	for it, err := range db.Scan(nil, nil) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if err := db.Put(append([]byte("z"), it.Key...), []byte("new")); err != nil {
			t.Fatal(err)
		}
		if err := db.Delete([]byte("c")); err != nil {
			t.Fatal(err)
		}
	}
	if n != 6 {
		t.Fatalf("iteration while writing saw %d items, want its version's 6", n)
	}
	if got := keys(db.Prefix([]byte("z"))); got != "za,zab,zabc,zb,zba,zc" {
		t.Fatalf("writes from the loop body: %s", got)
	}
}

// TestReadOnlyAndLocking checks ReadOnly mode (reads work, writes are
// ErrReadOnly, readers share the lock, a writer is excluded) and that a
// second writer gets ErrLocked.
func TestReadOnlyAndLocking(t *testing.T) {
	fs := vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	db.Put([]byte("k"), []byte("v"))
	if _, err := cowdb.Open("/db", memOpts(fs)); !errors.Is(err, cowdb.ErrLocked) {
		t.Fatalf("second writer: %v, want ErrLocked", err)
	}
	ro := memOpts(fs)
	ro.ReadOnly = true
	if _, err := cowdb.Open("/db", ro); !errors.Is(err, cowdb.ErrLocked) {
		t.Fatalf("reader beside a writer: %v, want ErrLocked", err)
	}
	db.Close()
	r1, err := cowdb.Open("/db", ro)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := cowdb.Open("/db", ro)
	if err != nil {
		t.Fatalf("second reader: %v", err)
	}
	defer r2.Close()
	if v, err := r2.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("ReadOnly Get = %q, %v", v, err)
	}
	if _, err := cowdb.Open("/db", memOpts(fs)); !errors.Is(err, cowdb.ErrLocked) {
		t.Fatalf("writer beside readers: %v, want ErrLocked", err)
	}
	for name, err := range map[string]error{
		"Put":        r1.Put([]byte("k"), []byte("w")),
		"Delete":     r1.Delete([]byte("k")),
		"Update":     r1.Update(func(*cowdb.Tx) error { return nil }),
		"Checkpoint": r1.Checkpoint(),
	} {
		if !errors.Is(err, cowdb.ErrReadOnly) {
			t.Errorf("ReadOnly %s = %v, want ErrReadOnly", name, err)
		}
	}
	if _, err := cowdb.Open("/nothing", ro); err == nil {
		t.Fatal("ReadOnly Open of a missing store succeeded")
	}
}

// TestLockedAcrossProcesses checks that a store open in another process
// gives ErrLocked: the test binary re-executes itself as the holder.
func TestLockedAcrossProcesses(t *testing.T) {
	if dir := os.Getenv("COWDB_TEST_HOLD_DIR"); dir != "" {
		db, err := cowdb.Open(dir, &cowdb.Options{GroupSize: 1 << 20, WALSegmentSize: 256 << 10})
		if err != nil {
			fmt.Println("open failed:", err)
			os.Exit(2)
		}
		fmt.Println("holding")
		os.Stdin.Read(make([]byte, 1)) // until the parent closes our stdin
		db.Close()
		os.Exit(0)
	}
	dir := filepath.Join(t.TempDir(), "db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockedAcrossProcesses$")
	cmd.Env = append(os.Environ(), "COWDB_TEST_HOLD_DIR="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := stdout.Read(buf)
	if !strings.Contains(string(buf[:n]), "holding") {
		t.Fatalf("child said %q", buf[:n])
	}
	_, err = cowdb.Open(dir, &cowdb.Options{GroupSize: 1 << 20, WALSegmentSize: 256 << 10})
	stdin.Close()
	cmd.Wait()
	if !errors.Is(err, cowdb.ErrLocked) {
		t.Fatalf("Open while another process holds the store: %v, want ErrLocked", err)
	}
	db, err := cowdb.Open(dir, &cowdb.Options{GroupSize: 1 << 20, WALSegmentSize: 256 << 10})
	if err != nil {
		t.Fatalf("Open after the other process exited: %v", err)
	}
	db.Close()
}

// TestNotAStore checks that a data file that is not a cowdb store is
// ErrCorrupt naming the file, and is left untouched.
func TestNotAStore(t *testing.T) {
	fs := vfs.NewMem()
	fs.MkdirAll("/db")
	f, _ := fs.OpenFile("/db/data", vfs.Create|vfs.ReadWrite)
	junk := bytes.Repeat([]byte("not a store "), 4000)
	f.WriteAt(junk, 0)
	f.Sync()
	f.Close()
	_, err := cowdb.Open("/db", memOpts(fs))
	if !errors.Is(err, cowdb.ErrCorrupt) || !strings.Contains(err.Error(), "/db/data") {
		t.Fatalf("Open of a foreign file: %v, want ErrCorrupt naming /db/data", err)
	}
	f, _ = fs.OpenFile("/db/data", 0)
	got := make([]byte, len(junk))
	f.ReadAt(got, 0)
	f.Close()
	if !bytes.Equal(got, junk) {
		t.Fatal("the foreign file was modified")
	}
	// A second open is refused the same way: nothing was reinitialized.
	if _, err := cowdb.Open("/db", memOpts(fs)); !errors.Is(err, cowdb.ErrCorrupt) {
		t.Fatalf("second Open: %v", err)
	}
}

// TestOptionsChecked checks that invalid options are refused naming the
// field, and that reopening with another block size is refused.
func TestOptionsChecked(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs)
	o.WALSegmentSize = 1000
	if _, err := cowdb.Open("/db", o); !errors.Is(err, cowdb.ErrInvalidOptions) || !strings.Contains(err.Error(), "WALSegmentSize") {
		t.Fatalf("bad WALSegmentSize: %v", err)
	}
	o = memOpts(fs)
	o.BlockSize = 1234
	if _, err := cowdb.Open("/db", o); !errors.Is(err, cowdb.ErrInvalidOptions) || !strings.Contains(err.Error(), "BlockSize") {
		t.Fatalf("bad BlockSize: %v", err)
	}
	mustOpen(t, fs, "/db").Close()
	o = memOpts(fs)
	o.BlockSize = 8192
	if _, err := cowdb.Open("/db", o); !errors.Is(err, cowdb.ErrInvalidOptions) || !strings.Contains(err.Error(), "BlockSize") {
		t.Fatalf("reopen with another BlockSize: %v", err)
	}
}

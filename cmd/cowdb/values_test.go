package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cowdb/cowdb"
)

// randomBytes returns n seeded pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// TestPutGet stores values the three ways put takes them (argument, file,
// standard input) and reads them back with get, get -o and cat.
func TestPutGet(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	tl.ok("put", "greeting", "hello, cowdb")
	file := filepath.Join(t.TempDir(), "value")
	fileData := randomBytes(300<<10, 1) // stored in extents
	if err := os.WriteFile(file, fileData, 0o644); err != nil {
		t.Fatal(err)
	}
	tl.ok("put", "fromfile", "-f", file)
	if r := tl.runIn("from stdin", "put", "stdin", "-"); r.code != 0 {
		t.Fatalf("put -: %+v", r)
	}
	tl.ok("put", "dash", "--", "-v") // "--" lets a value start with "-"

	if got := tl.ok("get", "greeting"); got != "hello, cowdb" {
		t.Errorf("get greeting = %q", got)
	}
	if got := tl.ok("get", "fromfile"); got != string(fileData) {
		t.Errorf("get fromfile: %d bytes, want the file's %d", len(got), len(fileData))
	}
	if got := tl.ok("get", "stdin"); got != "from stdin" {
		t.Errorf("get stdin = %q", got)
	}
	if got := tl.ok("get", "dash"); got != "-v" {
		t.Errorf("get dash = %q", got)
	}
	out := filepath.Join(t.TempDir(), "out")
	tl.ok("get", "fromfile", "-o", out)
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, fileData) {
		t.Errorf("get -o: %d bytes, %v", len(got), err)
	}
	if got := tl.ok("cat", "greeting", "stdin", "greeting"); got != "hello, cowdbfrom stdinhello, cowdb" {
		t.Errorf("cat = %q", got)
	}

	// Replacing a value, and the errors a person gets.
	tl.ok("put", "greeting", "bye")
	if got := tl.ok("get", "greeting"); got != "bye" {
		t.Errorf("get after a second put = %q", got)
	}
	tl.fails(exitError, `cowdb: key "nope" not found`, "get", "nope")
	tl.fails(exitError, `cowdb: key "nope" not found`, "cat", "greeting", "nope")
	missingOut := filepath.Join(t.TempDir(), "missing")
	tl.fails(exitError, "not found", "get", "nope", "-o", missingOut)
	if _, err := os.Stat(missingOut); err == nil {
		t.Error("get -o of a missing key left a file behind")
	}
	tl.fails(exitError, "invalid key", "put", "", "v")
	tl.fails(exitError, "keys are at most 1024 bytes", "put", strings.Repeat("k", 1025), "v")
	tl.fails(exitError, "no such file", "put", "k", "-f", filepath.Join(t.TempDir(), "absent"))

	// A directory of other files is not made a store by a mistyped -d.
	other := t.TempDir()
	writeTree(t, other, map[string][]byte{"notes.txt": []byte("mine")})
	tl.fails(exitError, "is not empty and holds no store", "-d", other, "put", "k", "v")
	tl.fails(exitError, "no store in "+other, "-d", other, "ls")
}

// TestPutLargeIsAtomicStream streams values larger than the in-memory
// bound through a temporary blob and a clone, and checks that the value
// arrives whole and that no temporary key is left.
func TestPutLargeIsAtomicStream(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	tl.putInMemoryMax = 64 << 10
	big := randomBytes(1<<20+123, 2)
	file := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(file, big, 0o644); err != nil {
		t.Fatal(err)
	}
	tl.ok("put", "old", "small value first")
	tl.ok("put", "old", "-f", file)                                   // size known: streamed at once
	if r := tl.runIn(string(big), "put", "piped", "-"); r.code != 0 { // size unknown: read, then streamed
		t.Fatalf("put -: %+v", r)
	}
	for _, k := range []string{"old", "piped"} {
		if got := tl.ok("get", k); got != string(big) {
			t.Errorf("get %s: %d bytes, want %d", k, len(got), len(big))
		}
	}
	if got := lines(tl.ok("ls")); !slices.Equal(got, []string{"old", "piped"}) {
		t.Errorf("ls after streamed puts = %q (a temporary key left?)", got)
	}
}

// TestLsRm lists keys (with a prefix, with sizes) and deletes them one by
// one and by prefix.
func TestLsRm(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	tl.fails(exitError, "no store in", "ls")
	for _, kv := range [][2]string{{"a/1", "x"}, {"a/2", strings.Repeat("y", 2048)}, {"b", "zz"}, {"odd\nkey", "q"}} {
		tl.ok("put", kv[0], kv[1])
	}
	if got := lines(tl.ok("ls")); !slices.Equal(got, []string{"a/1", "a/2", "b", `"odd\nkey"`}) {
		t.Errorf("ls = %q", got)
	}
	if got := lines(tl.ok("ls", "a/")); !slices.Equal(got, []string{"a/1", "a/2"}) {
		t.Errorf("ls a/ = %q", got)
	}
	if got := lines(tl.ok("ls", "a/", "-l")); !slices.Equal(got, []string{"       1 B  a/1", "   2.0 KiB  a/2"}) {
		t.Errorf("ls a/ -l = %q", got)
	}
	if got := lines(tl.ok("ls", "-l", "-b", "a/")); !slices.Equal(got, []string{"           1  a/1", "        2048  a/2"}) {
		t.Errorf("ls -l -b a/ = %q", got)
	}
	if got := tl.ok("ls", "nothing/"); got != "" {
		t.Errorf("ls of an unused prefix = %q", got)
	}

	// A missing key fails rm, after the others are deleted; -f ignores it.
	tl.fails(exitError, `key "missing" not found`, "rm", "b", "missing")
	if got := lines(tl.ok("ls")); !slices.Equal(got, []string{"a/1", "a/2", `"odd\nkey"`}) {
		t.Errorf("ls after rm b missing = %q", got)
	}
	tl.ok("rm", "-f", "missing", "odd\nkey")
	tl.ok("rm", "--prefix", "a/")
	if got := tl.ok("ls"); got != "" {
		t.Errorf("ls after rm --prefix = %q", got)
	}
	tl.fails(exitError, "invalid key", "rm", "")
}

// TestClone clones values in the live store and out of a snapshot, and
// checks that the copies are independent.
func TestClone(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	big := string(randomBytes(256<<10, 3))
	tl.ok("put", "src", big)
	tl.ok("clone", "src", "dst")
	tl.ok("put", "src", "changed")
	if got := tl.ok("get", "dst"); got != big {
		t.Errorf("clone: dst has %d bytes, want src's old %d", len(got), len(big))
	}
	tl.ok("snapshot", "create", "before")
	tl.ok("rm", "dst")
	tl.ok("clone", "dst", "back", "--from", "before")
	if got := tl.ok("get", "back"); got != big {
		t.Errorf("clone --from: %d bytes", len(got))
	}
	tl.fails(exitError, `key "nope" not found`, "clone", "nope", "x")
	tl.fails(exitError, `key "nope" not found in snapshot "before"`, "clone", "--from", "before", "nope", "x")
	tl.fails(exitError, `snapshot "never" not found`, "clone", "--from", "never", "dst", "x")
}

// TestLocked checks the errors of a store another opener holds: a writer
// excludes every command, a reader excludes writing commands only.
func TestLocked(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	tl.ok("put", "k", "v")
	db, err := cowdb.Open(tl.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	tl.fails(exitError, "is locked by another process", "put", "k", "w")
	tl.fails(exitError, "is locked by another process writing to it", "get", "k")
	tl.fails(exitError, "is locked by another process writing to it", "check", "--offline")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := cowdb.Open(tl.dir, &cowdb.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got := tl.ok("get", "k"); got != "v" {
		t.Errorf("get beside a reader = %q", got)
	}
	tl.fails(exitError, "is locked by another process", "rm", "k")
}

package main

import (
	"bytes"
	"context"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeTree creates files (slash paths relative to root) with their
// contents.
func writeTree(t *testing.T, root string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readTree returns the regular files under root by slash path.
func readTree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		got[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func equalTrees(t *testing.T, what string, got, want map[string][]byte) {
	t.Helper()
	if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
		t.Fatalf("%s: files %q, want %q", what, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for name, data := range want {
		if !bytes.Equal(got[name], data) {
			t.Errorf("%s: %s has %d bytes, not the %d expected", what, name, len(got[name]), len(data))
		}
	}
}

// TestImportExport imports a directory tree (small, empty, nested and
// streamed files, and a symbolic link that is skipped), checks the keys,
// exports it back and compares, live and from a snapshot.
func TestImportExport(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	tl.putInMemoryMax = 64 << 10 // the large file goes through a blob
	src := filepath.Join(t.TempDir(), "src")
	files := map[string][]byte{
		"a.txt":           []byte("alpha\n"),
		"empty":           {},
		"dir/b.bin":       randomBytes(5000, 4),
		"dir/sub/big.bin": randomBytes(300<<10, 5),
		"dir/sub/c":       []byte("c"),
	}
	writeTree(t, src, files)
	if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	r := tl.run("import", src, "p/")
	if r.code != 0 || !strings.Contains(r.stderr, "link: not a regular file; skipped") ||
		!strings.Contains(r.stdout, "imported 5 files") {
		t.Fatalf("import: %+v", r)
	}
	want := []string{"p/a.txt", "p/dir/b.bin", "p/dir/sub/big.bin", "p/dir/sub/c", "p/empty"}
	if got := lines(tl.ok("ls")); !slices.Equal(got, want) {
		t.Fatalf("keys after import = %q, want %q", got, want)
	}
	if got := tl.ok("get", "p/dir/sub/big.bin"); got != string(files["dir/sub/big.bin"]) {
		t.Fatalf("the streamed file came back as %d bytes", len(got))
	}

	out := filepath.Join(t.TempDir(), "out")
	if got := tl.ok("export", "p/", out); !strings.Contains(got, "exported 5 files") {
		t.Errorf("export summary %q", got)
	}
	equalTrees(t, "export", readTree(t, out), files)

	// From a snapshot, after the live store moved on.
	tl.ok("snapshot", "create", "imported")
	tl.ok("rm", "--prefix", "p/dir/")
	snapOut := filepath.Join(t.TempDir(), "snap")
	tl.ok("export", "-s", "imported", "p/", snapOut)
	equalTrees(t, "export -s", readTree(t, snapOut), files)

	// A single file goes under prefix + its name; -q drops the summary.
	if got := tl.ok("-q", "import", filepath.Join(src, "a.txt"), "one/"); got != "" {
		t.Errorf("import -q printed %q", got)
	}
	if got := tl.ok("get", "one/a.txt"); got != "alpha\n" {
		t.Errorf("single-file import: %q", got)
	}
	// A key equal to the prefix is written under its last name.
	keyOut := filepath.Join(t.TempDir(), "key")
	tl.ok("export", "one/a.txt", keyOut)
	equalTrees(t, "export of one key", readTree(t, keyOut), map[string][]byte{"a.txt": []byte("alpha\n")})

	tl.fails(exitError, "no such file", "import", filepath.Join(src, "absent"))
}

// TestExportBadNames checks that keys that are not safe relative paths are
// reported and skipped, with exit status 1, while the others are written.
func TestExportBadNames(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	for _, k := range []string{"x/../../escape", "x//double", "x/ok", "x/ok/under-a-file"} {
		tl.ok("put", k, "v")
	}
	out := filepath.Join(t.TempDir(), "out")
	r := tl.fails(exitError, "3 keys not exported", "export", "x/", out)
	for _, k := range []string{"x/../../escape", "x//double", "x/ok/under-a-file"} {
		if !strings.Contains(r.stderr, quoteKey([]byte(k))) {
			t.Errorf("export does not report key %q: %s", k, r.stderr)
		}
	}
	equalTrees(t, "export", readTree(t, out), map[string][]byte{"ok": []byte("v")})
	if _, err := os.Stat(filepath.Join(filepath.Dir(out), "escape")); err == nil {
		t.Error("a key with .. escaped the destination")
	}
}

// TestImportBadFiles checks that an unreadable file is reported and
// skipped (exit 1) and a key too long for the store likewise.
func TestImportBadFiles(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"good": []byte("g"), strings.Repeat("n", 200) + "/" + strings.Repeat("m", 200): []byte("x")})
	r := tl.fails(exitError, "1 file not imported", "import", src, strings.Repeat("p", 700))
	if !strings.Contains(r.stderr, "keys are at most 1024 bytes") {
		t.Errorf("import did not explain the long key: %s", r.stderr)
	}
	if got := lines(tl.ok("ls", "-b", "-l")); len(got) != 1 || !strings.HasSuffix(got[0], "good") {
		t.Errorf("ls after a partial import = %q", got)
	}
}

// TestInterrupted checks that the long commands, interrupted, stop, leave
// the store usable, and exit with status 1.
func TestInterrupted(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"a": []byte("a"), "b": []byte("b")})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tl.ctx = ctx
	tl.fails(exitError, "import interrupted after 0 of 2 files", "import", src)
	tl.ctx = nil
	tl.ok("import", src)
	if got := lines(tl.ok("ls")); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("ls = %q", got)
	}
	tl.ctx = ctx
	tl.fails(exitError, "export interrupted after 0 of 2 files", "export", t.TempDir())
	tl.fails(exitError, "scrub interrupted", "scrub")
	tl.fails(exitError, "bench interrupted", "bench", "--store")
	tl.ctx = nil
	tl.ok("check")
}

// TestProgressBars runs the long commands as if stderr were a terminal and
// checks that they draw a bar that reaches 100%, and that -q keeps it off.
func TestProgressBars(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	tl.terminal = true
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"a": randomBytes(100<<10, 6), "b": []byte("b")})
	for _, args := range [][]string{
		{"import", src},
		{"export", filepath.Join(t.TempDir(), "out")},
		{"scrub"},
		{"check"},
	} {
		r := tl.run(args...)
		if r.code != 0 || !strings.Contains(r.stderr, args[0]) || !strings.Contains(r.stderr, "100%") {
			t.Errorf("cowdb %s on a terminal: exit %d, stderr %q", args[0], r.code, r.stderr)
		}
		if r := tl.run(append([]string{"-q"}, args...)...); r.code != 0 || r.stderr != "" || r.stdout != "" {
			t.Errorf("cowdb -q %s: %+v", args[0], r)
		}
	}
}

// TestImportSkipsTheStore imports a tree that holds the store's own
// directory: the store is left out, with a warning.
func TestImportSkipsTheStore(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	src := t.TempDir()
	tl.dir = filepath.Join(src, "store")
	writeTree(t, src, map[string][]byte{"a": []byte("a")})
	tl.ok("put", "k", "v") // the store exists under src
	r := tl.run("import", src, "src/")
	if r.code != 0 || !strings.Contains(r.stderr, "the store itself; skipped") {
		t.Fatalf("import of a tree holding the store: %+v", r)
	}
	if got := lines(tl.ok("ls")); !slices.Equal(got, []string{"k", "src/a"}) {
		t.Errorf("ls = %q", got)
	}
}

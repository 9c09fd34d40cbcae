package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/cowdb/cowdb"
)

// TestSnapshots takes, lists, reads, diffs, restores and deletes snapshots
// through the tool.
func TestSnapshots(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	big := string(randomBytes(64<<10, 7))
	tl.ok("put", "keep", "1")
	tl.ok("put", "change", "old")
	tl.ok("put", "drop", "x")
	tl.ok("put", "blob", big)
	tl.ok("snapshot", "create", "s1")

	tl.ok("put", "change", "new")
	tl.ok("rm", "drop")
	tl.ok("put", "add", "y")
	// An in-place write, which diff reports with its byte range.
	db, err := cowdb.Open(tl.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := db.OpenBlob([]byte("blob"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteAt(make([]byte, 4096), 8192); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	tl.ok("snapshot", "create", "s2")

	ls := lines(tl.ok("snapshot", "ls"))
	if len(ls) != 3 || !strings.HasPrefix(ls[0], "NAME") || !strings.HasPrefix(ls[1], "s1 ") || !strings.HasPrefix(ls[2], "s2 ") {
		t.Fatalf("snapshot ls:\n%s", strings.Join(ls, "\n"))
	}
	if !strings.Contains(ls[1], "KiB") {
		t.Errorf("snapshot ls shows no human-readable size: %q", ls[1])
	}

	wantDiff := []string{"A  add", "M  blob  (4.0 KiB in 1 range)", "M  change", "D  drop"}
	if got := lines(tl.ok("snapshot", "diff", "s1")); !slices.Equal(got, wantDiff) {
		t.Errorf("snapshot diff s1 (to live) = %q, want %q", got, wantDiff)
	}
	if got := lines(tl.ok("snapshot", "diff", "s1", "s2", "-l")); !slices.Equal(got,
		[]string{"A  add", "M  blob  (4.0 KiB in 1 range)", "     bytes 8192-12287 (4.0 KiB)", "M  change", "D  drop"}) {
		t.Errorf("snapshot diff s1 s2 -l = %q", got)
	}
	if got := tl.ok("snapshot", "diff", "s2", ""); got != "" {
		t.Errorf("snapshot diff s2 \"\" (nothing changed) = %q", got)
	}
	if got := lines(tl.ok("snapshot", "diff", "s2", "s1")); !slices.Equal(got, []string{"D  add", "M  blob  (4.0 KiB in 1 range)", "M  change", "A  drop"}) {
		t.Errorf("snapshot diff s2 s1 = %q", got)
	}

	// Reading a snapshot.
	if got := tl.ok("get", "-s", "s1", "change"); got != "old" {
		t.Errorf("get -s s1 change = %q", got)
	}
	if got := tl.ok("cat", "-s", "s1", "drop", "keep"); got != "x1" {
		t.Errorf("cat -s s1 = %q", got)
	}
	if got := lines(tl.ok("ls", "-s", "s1")); !slices.Equal(got, []string{"blob", "change", "drop", "keep"}) {
		t.Errorf("ls -s s1 = %q", got)
	}

	// Restore, then delete.
	tl.ok("snapshot", "restore", "s1")
	if got := lines(tl.ok("ls")); !slices.Equal(got, []string{"blob", "change", "drop", "keep"}) {
		t.Errorf("ls after restore = %q", got)
	}
	if got := tl.ok("get", "blob"); got != big {
		t.Error("restore did not bring the blob's old bytes back")
	}
	tl.fails(exitError, `snapshot "nope" not found`, "snapshot", "rm", "nope", "s2")
	if got := lines(tl.ok("snapshot", "ls")); len(got) != 2 || !strings.HasPrefix(got[1], "s1 ") {
		t.Errorf("snapshot ls after rm nope s2 = %q", got)
	}
	tl.ok("snapshot", "rm", "s1")
	if got := tl.ok("snapshot", "ls"); got != "" {
		t.Errorf("snapshot ls with none = %q", got)
	}
}

// TestSnapshotErrors checks the messages of snapshot commands given bad
// names.
func TestSnapshotErrors(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	tl.fails(exitError, "no store in", "snapshot", "create", "s")
	tl.ok("put", "k", "v")
	tl.ok("snapshot", "create", "s")
	tl.fails(exitError, `snapshot "s" already exists`, "snapshot", "create", "s")
	tl.fails(exitError, `invalid snapshot name "a b"`, "snapshot", "create", "a b")
	tl.fails(exitError, `snapshot "x" not found`, "snapshot", "restore", "x")
	tl.fails(exitError, `snapshot "x" not found`, "snapshot", "diff", "x")
	tl.fails(exitError, `snapshot "y" not found`, "snapshot", "diff", "s", "y")
	tl.fails(exitError, `snapshot "x" not found`, "get", "-s", "x", "k")
	tl.fails(exitError, `key "nope" not found`, "get", "-s", "s", "nope")
}

// TestStat checks that stat shows the space figures and every snapshot's
// exclusive size, and that --json decodes.
func TestStat(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	tl.fails(exitError, "no store in", "stat")
	tl.ok("put", "k", string(randomBytes(40<<10, 8)))
	tl.ok("snapshot", "create", "snap-1")
	tl.ok("rm", "k")
	out := tl.ok("stat")
	for _, want := range []string{"block size", "4.0 KiB", "total", "free", "busy", "shared", "snapshots", "snap-1", "exclusive", "log", "cache"} {
		if !strings.Contains(out, want) {
			t.Errorf("stat does not show %q:\n%s", want, out)
		}
	}
	var st statJSON
	if err := json.Unmarshal([]byte(tl.ok("stat", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Stats.BlockSize != 4096 || st.Stats.TotalBlocks == 0 || len(st.Snapshots) != 1 || st.Snapshots[0].Name != "snap-1" ||
		st.Snapshots[0].ExclusiveBytes < 40<<10 {
		t.Errorf("stat --json = %+v", st)
	}
}

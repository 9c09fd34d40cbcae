package vfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/cowdb/cowdb/vfs"
)

// tb is what the helpers need of a *testing.T or a *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// readAll returns the whole content of the named file.
func readAll(t tb, fs vfs.FS, name string) []byte {
	t.Helper()
	f, err := fs.OpenFile(name, 0)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, fi.Size)
	if n, err := f.ReadAt(b, 0); n != len(b) || (err != nil && len(b) > 0) {
		t.Fatalf("read %s: %d, %v", name, n, err)
	}
	return b
}

func must(t tb, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestMemUnsyncedEntryLost checks the classic bug MemFS exists to catch: a
// file created and fsynced whose directory entry was never made durable by
// SyncDir disappears on a crash, while the same file with SyncDir survives
// with its synced content, whatever the seed.
func TestMemUnsyncedEntryLost(t *testing.T) {
	for seed := range int64(20) {
		fs := vfs.NewMem()
		must(t, fs.MkdirAll("/db"))
		must(t, fs.SyncDir("/"))
		for _, name := range []string{"/db/synced", "/db/unsynced"} {
			f, err := fs.OpenFile(name, vfs.Create)
			must(t, err)
			_, err = f.WriteAt([]byte("payload"), 0)
			must(t, err)
			must(t, f.Datasync())
			if name == "/db/synced" {
				must(t, fs.SyncDir("/db"))
			}
		}
		fs.Crash(seed)
		names, err := fs.ReadDir("/db")
		if err != nil || !slices.Equal(names, []string{"synced"}) {
			t.Fatalf("seed %d: after crash /db holds %v, %v; want [synced]", seed, names, err)
		}
		if got := readAll(t, fs, "/db/synced"); string(got) != "payload" {
			t.Fatalf("seed %d: synced file holds %q", seed, got)
		}
	}
}

// TestMemSubtreeLost checks that entries synced inside a directory whose
// own entry was never made durable vanish with it, and that renames and
// removals are undone by a crash unless the directory was synced after
// them.
func TestMemSubtreeLost(t *testing.T) {
	fs := vfs.NewMem()
	must(t, fs.MkdirAll("/a/b"))
	f, err := fs.OpenFile("/a/b/f", vfs.Create)
	must(t, err)
	must(t, f.Sync())
	must(t, fs.SyncDir("/a/b"))
	must(t, fs.SyncDir("/a")) // but never "/": a itself is not durable
	fs.Crash(1)
	if names, _ := fs.ReadDir("/"); len(names) != 0 {
		t.Fatalf("root after crash: %v; want empty", names)
	}

	must(t, fs.MkdirAll("/d"))
	for _, n := range []string{"/d/x", "/d/y"} {
		_, err := fs.OpenFile(n, vfs.Create)
		must(t, err)
	}
	must(t, fs.SyncDir("/d"))
	must(t, fs.SyncDir("/"))
	must(t, fs.Rename("/d/x", "/d/z"))
	must(t, fs.Remove("/d/y"))
	fs.Crash(2)
	if names, _ := fs.ReadDir("/d"); !slices.Equal(names, []string{"x", "y"}) {
		t.Fatalf("unsynced rename and remove survived the crash: %v", names)
	}
	must(t, fs.Rename("/d/x", "/d/z"))
	must(t, fs.Remove("/d/y"))
	must(t, fs.SyncDir("/d"))
	fs.Crash(3)
	if names, _ := fs.ReadDir("/d"); !slices.Equal(names, []string{"z"}) {
		t.Fatalf("synced rename and remove were lost: %v", names)
	}
}

// TestMemCrashKillsHandles checks that every file and lock from before a
// crash fails with ErrClosed afterwards, that the locks are released, and
// that the file system is usable again.
func TestMemCrashKillsHandles(t *testing.T) {
	fs := vfs.NewMem()
	f, err := fs.OpenFile("/f", vfs.Create)
	must(t, err)
	must(t, fs.SyncDir("/"))
	l, err := fs.Lock("/LOCK", false)
	must(t, err)
	fs.Crash(7)
	if _, err := f.WriteAt([]byte("x"), 0); !errors.Is(err, vfs.ErrClosed) {
		t.Fatalf("WriteAt after crash: %v", err)
	}
	if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, vfs.ErrClosed) {
		t.Fatalf("ReadAt after crash: %v", err)
	}
	if err := f.Datasync(); !errors.Is(err, vfs.ErrClosed) {
		t.Fatalf("Datasync after crash: %v", err)
	}
	if err := l.Close(); !errors.Is(err, vfs.ErrClosed) {
		t.Fatalf("lock Close after crash: %v", err)
	}
	l2, err := fs.Lock("/LOCK", false)
	if err != nil {
		t.Fatalf("lock after crash: %v", err)
	}
	l2.Close()
	g, err := fs.OpenFile("/f", vfs.ReadWrite)
	must(t, err)
	_, err = g.WriteAt([]byte("x"), 0)
	must(t, err)
}

// TestMemFallocateCrash checks that a synced fallocation keeps its size and
// reads zeros after a crash, and that an unsynced one leaves either the old
// size or the new size with zeros, both outcomes occurring across seeds.
func TestMemFallocateCrash(t *testing.T) {
	sizes := map[int64]bool{}
	for seed := range int64(32) {
		fs := vfs.NewMem()
		f, err := fs.OpenFile("/f", vfs.Create)
		must(t, err)
		must(t, fs.SyncDir("/"))
		_, err = f.WriteAt([]byte("abc"), 0)
		must(t, err)
		must(t, f.Fallocate(0, 8192))
		must(t, f.Datasync())
		must(t, f.Fallocate(8192, 1<<20))
		fs.Crash(seed)
		got := readAll(t, fs, "/f")
		if len(got) != 8192 && len(got) != 8192+1<<20 {
			t.Fatalf("seed %d: size %d after crash", seed, len(got))
		}
		if string(got[:3]) != "abc" || !bytes.Equal(got[3:], make([]byte, len(got)-3)) {
			t.Fatalf("seed %d: fallocated range is not zeros", seed)
		}
		sizes[int64(len(got))] = true
	}
	if len(sizes) != 2 {
		t.Fatalf("32 seeds gave sizes %v; want both outcomes of the unsynced fallocate", sizes)
	}
}

// TestMemCrashFates checks that Crash really loses, keeps and tears
// unsynced writes at sector granularity (each outcome seen across seeds)
// and that the same history and seed give the same image.
func TestMemCrashFates(t *testing.T) {
	build := func() *vfs.MemFS {
		fs := vfs.NewMem()
		f, err := fs.OpenFile("/f", vfs.Create)
		must(t, err)
		must(t, fs.SyncDir("/"))
		_, err = f.WriteAt(bytes.Repeat([]byte{1}, 4*vfs.SectorSize), 0)
		must(t, err)
		must(t, f.Datasync())
		_, err = f.WriteAt(bytes.Repeat([]byte{2}, 4*vfs.SectorSize), 0)
		must(t, err)
		return fs
	}
	seen := map[string]bool{}
	for seed := range int64(40) {
		a, b := build(), build()
		a.Crash(seed)
		b.Crash(seed)
		ga, gb := readAll(t, a, "/f"), readAll(t, b, "/f")
		if !bytes.Equal(ga, gb) {
			t.Fatalf("seed %d: two crashes of one history differ", seed)
		}
		var ones, twos int
		for s := 0; s < len(ga); s += vfs.SectorSize {
			sector := ga[s : s+vfs.SectorSize]
			switch {
			case bytes.Equal(sector, bytes.Repeat([]byte{1}, vfs.SectorSize)):
				ones++
			case bytes.Equal(sector, bytes.Repeat([]byte{2}, vfs.SectorSize)):
				twos++
			default:
				t.Fatalf("seed %d: sector at %d torn inside: %v", seed, s, sector[:8])
			}
		}
		switch {
		case twos == 0:
			seen["lost"] = true
		case ones == 0:
			seen["kept"] = true
		default:
			seen["torn"] = true
		}
	}
	if len(seen) != 3 {
		t.Fatalf("40 seeds produced only %v", seen)
	}
}

// TestMemCrashAfter enumerates every crash point of a small workload: with
// CrashAfter(k), exactly k mutating operations succeed, every later one
// fails with ErrCrashed (and so ErrIO) and changes nothing, reads still
// work, and after Crash the file is there exactly when its content and
// both directory entries were synced before the crash point.
func TestMemCrashAfter(t *testing.T) {
	workload := func(fs vfs.FS) error {
		if err := fs.MkdirAll("/db"); err != nil {
			return err
		}
		f, err := fs.OpenFile("/db/f", vfs.Create)
		if err != nil {
			return err
		}
		steps := []func() error{
			func() error { _, err := f.WriteAt([]byte("hello"), 0); return err },
			f.Datasync,
			func() error { return fs.SyncDir("/db") },
			func() error { return fs.SyncDir("/") },
			func() error { _, err := f.WriteAt([]byte("world"), 5); return err },
			f.Datasync,
		}
		for _, s := range steps {
			if err := s(); err != nil {
				return err
			}
		}
		return nil
	}
	clean := vfs.NewMem()
	must(t, workload(clean))
	total := clean.Ops()
	if total != 8 {
		t.Fatalf("workload counted %d operations, want 8", total)
	}
	for k := range total + 1 {
		fs := vfs.NewMem()
		fs.CrashAfter(k)
		err := workload(fs)
		if k < total && (!errors.Is(err, vfs.ErrCrashed) || !errors.Is(err, vfs.ErrIO) || !fs.Crashed()) {
			t.Fatalf("k=%d: workload error %v, crashed %v", k, err, fs.Crashed())
		}
		if fs.Ops() != k {
			t.Fatalf("k=%d: %d operations succeeded", k, fs.Ops())
		}
		if k < total {
			if err := fs.MkdirAll("/other"); !errors.Is(err, vfs.ErrCrashed) || fs.Ops() != k {
				t.Fatalf("k=%d: mutating a dead machine: %v", k, err)
			}
			if _, err := fs.ReadDir("/"); err != nil {
				t.Fatalf("k=%d: reading a dead machine: %v", k, err)
			}
		}
		fs.Crash(k)
		checkCrashAfter(t, fs, k)
	}
	fs := vfs.NewMem()
	fs.CrashAfter(3)
	fs.CrashAfter(-1)
	if err := workload(fs); err != nil || fs.Crashed() {
		t.Fatalf("disarmed crash point still fired: %v", err)
	}
}

// checkCrashAfter checks the state after crashing the TestMemCrashAfter
// workload at point k.
func checkCrashAfter(t *testing.T, fs *vfs.MemFS, k int64) {
	t.Helper()
	_, err := fs.Stat("/db/f")
	if k < 6 {
		if !errors.Is(err, vfs.ErrNotExist) {
			t.Fatalf("k=%d: file survived without durable entries: %v", k, err)
		}
		return
	}
	got := string(readAll(t, fs, "/db/f"))
	switch {
	case k == 8 && got != "helloworld":
		t.Fatalf("k=%d: file holds %q, want helloworld", k, got)
	case len(got) < 5 || got[:5] != "hello":
		t.Fatalf("k=%d: synced prefix lost: %q", k, got)
	}
}

// TestMemCloneDurable checks that CloneDurable returns exactly the synced
// image, independent of the original.
func TestMemCloneDurable(t *testing.T) {
	fs := vfs.NewMem()
	f, err := fs.OpenFile("/f", vfs.Create)
	must(t, err)
	_, err = f.WriteAt([]byte("synced"), 0)
	must(t, err)
	must(t, f.Datasync())
	must(t, fs.SyncDir("/"))
	_, err = f.WriteAt([]byte("UNSYNC"), 0)
	must(t, err)
	_, err = fs.OpenFile("/g", vfs.Create)
	must(t, err)
	c := fs.CloneDurable()
	if names, _ := c.ReadDir("/"); !slices.Equal(names, []string{"f"}) {
		t.Fatalf("clone holds %v", names)
	}
	if got := readAll(t, c, "/f"); string(got) != "synced" {
		t.Fatalf("clone's file holds %q", got)
	}
	g, err := c.OpenFile("/f", vfs.ReadWrite)
	must(t, err)
	_, err = g.WriteAt([]byte("clone!"), 0)
	must(t, err)
	if got := readAll(t, fs, "/f"); string(got) != "UNSYNC" {
		t.Fatalf("writing the clone changed the original: %q", got)
	}
}

// TestMemConcurrent checks, under -race, that concurrent writers, readers
// and syncers on one MemFS file keep every writer's disjoint range intact.
func TestMemConcurrent(t *testing.T) {
	fs := vfs.NewMem()
	f, err := fs.OpenFile("/f", vfs.Create)
	must(t, err)
	const writers, rounds = 4, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			buf := bytes.Repeat([]byte{byte(w + 1)}, 100)
			for r := range rounds {
				if _, err := f.WriteAt(buf, int64(w*100)); err != nil {
					t.Error(err)
				}
				if r%10 == 0 {
					if err := f.Datasync(); err != nil {
						t.Error(err)
					}
				}
				if _, err := f.ReadAt(make([]byte, 100), int64(w*100)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	got := readAll(t, fs, "/f")
	for w := range writers {
		if !bytes.Equal(got[w*100:(w+1)*100], bytes.Repeat([]byte{byte(w + 1)}, 100)) {
			t.Fatalf("writer %d's range is damaged", w)
		}
	}
}

// TestMemMisuse checks MemFS's answers to operations a correct caller never
// makes: parents missing, files used as directories, removing a non-empty
// directory, renaming a directory into itself, negative offsets.
func TestMemMisuse(t *testing.T) {
	fs := vfs.NewMem()
	if _, err := fs.OpenFile("/no/f", vfs.Create); !errors.Is(err, vfs.ErrNotExist) {
		t.Errorf("create under a missing parent: %v", err)
	}
	f, err := fs.OpenFile("/f", vfs.Create)
	must(t, err)
	must(t, fs.MkdirAll("/d/e"))
	for name, err := range map[string]error{
		"mkdir under a file":      fs.MkdirAll("/f/x"),
		"remove non-empty":        fs.Remove("/d"),
		"rename into itself":      fs.Rename("/d", "/d/e/x"),
		"rename dir over file":    fs.Rename("/d", "/f"),
		"rename file over dir":    fs.Rename("/f", "/d"),
		"truncate negative":       f.Truncate(-1),
		"truncate huge":           f.Truncate(1 << 62),
		"fallocate overflowing":   f.Fallocate(1<<62, 1<<62),
		"write huge":              func() error { _, err := f.WriteAt([]byte("x"), 1<<62); return err }(),
		"fallocate empty":         f.Fallocate(0, 0),
		"remove root":             fs.Remove("/"),
		"rename missing":          fs.Rename("/nope", "/x"),
		"syncdir of missing dir":  fs.SyncDir("/nope"),
		"readdir of a file":       func() error { _, err := fs.ReadDir("/f"); return err }(),
		"open a directory":        func() error { _, err := fs.OpenFile("/d", 0); return err }(),
		"write at negative":       func() error { _, err := f.WriteAt([]byte("x"), -1); return err }(),
		"read at negative offset": func() error { _, err := f.ReadAt([]byte("x"), -1); return err }(),
	} {
		if err == nil {
			t.Errorf("%s succeeded", name)
		}
	}
	if names, _ := fs.ReadDir("/d"); !slices.Equal(names, []string{"e"}) {
		t.Errorf("misuse changed /d: %v", names)
	}
	if fi, _ := fs.Stat("/f"); fi.Size != 0 {
		t.Errorf("misuse changed /f: %+v", fi)
	}
}

// TestMemEntryJournal checks SetEntryJournal: unsynced directory changes
// survive a crash as an ordered prefix, so across seeds an unsynced create
// followed by an unsynced rename leaves nothing, the created name, or the
// renamed name (never the rename without the create, never both names),
// each for some seed; with the journal off, nothing survives.
func TestMemEntryJournal(t *testing.T) {
	for _, on := range []bool{true, false} {
		seen := map[string]bool{}
		for seed := range int64(30) {
			fs := vfs.NewMem()
			fs.SetEntryJournal(on)
			must(t, fs.MkdirAll("/d"))
			must(t, fs.SyncDir("/"))
			must(t, fs.SyncDir("/d"))
			_, err := fs.OpenFile("/d/tmp", vfs.Create)
			must(t, err)
			must(t, fs.Rename("/d/tmp", "/d/final"))
			fs.Crash(seed)
			names, err := fs.ReadDir("/d")
			must(t, err)
			seen[fmt.Sprint(names)] = true
		}
		want := "map[[]:true [final]:true [tmp]:true]"
		if !on {
			want = "map[[]:true]"
		}
		if got := fmt.Sprint(seen); got != want {
			t.Errorf("journal %v: crashes left %s, want %s", on, got, want)
		}
	}
}

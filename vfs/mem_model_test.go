package vfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/cowdb/cowdb/vfs"
)

// TestMemCrashModel checks MemFS against a deliberately simple model of what
// a crash may leave. Random histories of creates, writes, truncations,
// fallocations, datasyncs, renames, removes and directory syncs run on two
// MemFS at once and on the model; both are then crashed with one seed, and
// the test requires: the two results are identical (determinism); the
// directory holds exactly the entries of its last SyncDir; a file with no
// unsynced change holds exactly its synced content; otherwise its size is
// one a subset of its unsynced changes could produce and every byte is its
// synced value or one written or zeroed by an unsynced change (so synced
// bytes survive and never-synced fallocated ranges read zeros). With
// sector-aligned histories every 512-byte sector must moreover come whole
// from one version, which is what tearing at sector granularity means. With
// the entry journal on (a random half of the runs), the directory may also
// hold its entries as of any later change, with the files they name.
func TestMemCrashModel(t *testing.T) {
	for _, aligned := range []bool{true, false} {
		name := "unaligned"
		if aligned {
			name = "aligned"
		}
		t.Run(name, func(t *testing.T) {
			rapid.Check(t, func(rt *rapid.T) { checkCrashModel(rt, aligned) })
		})
	}
}

// modelFile is the model of one file (an inode): the content as of its
// last sync, the changes since then, and the content seen now.
type modelFile struct {
	synced  []byte
	pending []modelChange
	cur     []byte
	f       [2]vfs.File // its handle on each MemFS
}

type modelChange struct {
	kind   string // "write", "truncate", "fallocate"
	off, n int64  // truncate: off is the new size
	fill   byte   // write: every byte written is fill
}

type crashModel struct {
	fs            [2]*vfs.MemFS
	live, durable map[string]*modelFile // the entries of /d
	fill          byte                  // the last fill used; unique per write
	aligned       bool

	// With the entry journal on, the entries of /d after each change since
	// the last SyncDir, any of which (or durable) a crash may leave.
	journal  bool
	unsynced []map[string]*modelFile
}

func checkCrashModel(rt *rapid.T, aligned bool) {
	m := &crashModel{live: map[string]*modelFile{}, durable: map[string]*modelFile{}, aligned: aligned}
	m.journal = rapid.Bool().Draw(rt, "journal")
	for i := range m.fs {
		m.fs[i] = vfs.NewMem()
		m.fs[i].SetEntryJournal(m.journal)
		mustR(rt, m.fs[i].MkdirAll("/d"))
		mustR(rt, m.fs[i].SyncDir("/"))
	}
	for range rapid.IntRange(1, 40).Draw(rt, "steps") {
		m.step(rt)
	}
	for name, mf := range m.live {
		if got := readAll(rt, m.fs[0], "/d/"+name); !bytes.Equal(got, mf.cur) {
			rt.Fatalf("before the crash %s reads %v, model %v", name, got, mf.cur)
		}
	}
	seed := rapid.Int64().Draw(rt, "seed")
	for _, fs := range m.fs {
		fs.Crash(seed)
	}
	m.check(rt)
}

func mustR(rt *rapid.T, err error) {
	rt.Helper()
	if err != nil {
		rt.Fatal(err)
	}
}

// span draws an offset and a length, multiples of SectorSize if aligned.
func (m *crashModel) span(rt *rapid.T) (off, n int64) {
	if m.aligned {
		return int64(rapid.IntRange(0, 24).Draw(rt, "off")) * vfs.SectorSize,
			int64(rapid.IntRange(1, 8).Draw(rt, "len")) * vfs.SectorSize
	}
	return int64(rapid.IntRange(0, 12288).Draw(rt, "off")), int64(rapid.IntRange(1, 3000).Draw(rt, "len"))
}

// resize returns b cut or zero-extended to size.
func resize(b []byte, size int64) []byte {
	if size <= int64(len(b)) {
		return b[:size]
	}
	return append(b, make([]byte, size-int64(len(b)))...)
}

func (m *crashModel) step(rt *rapid.T) {
	kind := rapid.SampledFrom([]string{"create", "write", "truncate", "fallocate", "datasync", "rename", "remove", "syncdir"}).Draw(rt, "kind")
	name := rapid.SampledFrom([]string{"a", "b", "c"}).Draw(rt, "name")
	mf := m.live[name]
	switch {
	case kind == "syncdir":
		for _, fs := range m.fs {
			mustR(rt, fs.SyncDir("/d"))
		}
		m.durable, m.unsynced = maps.Clone(m.live), nil
	case kind == "create" && mf == nil:
		mf = &modelFile{}
		for i, fs := range m.fs {
			f, err := fs.OpenFile("/d/"+name, vfs.Create)
			mustR(rt, err)
			mf.f[i] = f
		}
		m.live[name] = mf
		m.entriesChanged()
	case mf == nil || kind == "create":
	case kind == "rename":
		to := rapid.SampledFrom([]string{"a", "b", "c"}).Draw(rt, "to")
		for _, fs := range m.fs {
			mustR(rt, fs.Rename("/d/"+name, "/d/"+to))
		}
		delete(m.live, name)
		m.live[to] = mf
		m.entriesChanged()
	case kind == "remove":
		for _, fs := range m.fs {
			mustR(rt, fs.Remove("/d/"+name))
		}
		delete(m.live, name)
		m.entriesChanged()
	default:
		m.fileStep(rt, kind, mf)
	}
}

// entriesChanged records the entries of /d after a change, for the journal.
func (m *crashModel) entriesChanged() {
	if m.journal {
		m.unsynced = append(m.unsynced, maps.Clone(m.live))
	}
}

// fileStep applies a write, truncate, fallocate or datasync to mf.
func (m *crashModel) fileStep(rt *rapid.T, kind string, mf *modelFile) {
	var c modelChange
	switch kind {
	case "datasync":
		for _, f := range mf.f {
			mustR(rt, f.Datasync())
		}
		mf.synced, mf.pending = slices.Clone(mf.cur), nil
		return
	case "write":
		off, n := m.span(rt)
		m.fill++
		c = modelChange{kind: kind, off: off, n: n, fill: m.fill}
		data := bytes.Repeat([]byte{m.fill}, int(n))
		for _, f := range mf.f {
			_, err := f.WriteAt(data, off)
			mustR(rt, err)
		}
		mf.cur = resize(mf.cur, max(int64(len(mf.cur)), off+n))
		copy(mf.cur[off:], data)
	case "truncate":
		off, _ := m.span(rt)
		c = modelChange{kind: kind, off: off}
		for _, f := range mf.f {
			mustR(rt, f.Truncate(off))
		}
		mf.cur = resize(mf.cur, off)
	case "fallocate":
		off, n := m.span(rt)
		c = modelChange{kind: kind, off: off, n: n}
		for _, f := range mf.f {
			mustR(rt, f.Fallocate(off, n))
		}
		mf.cur = resize(mf.cur, max(int64(len(mf.cur)), off+n))
	}
	mf.pending = append(mf.pending, c)
}

// check compares both crashed MemFS with each other and with the model:
// /d must hold the entries of its last SyncDir or, with the journal on, of
// a later point, with every file's content possible for its model.
func (m *crashModel) check(rt *rapid.T) {
	names, err := m.fs[0].ReadDir("/d")
	mustR(rt, err)
	if other, _ := m.fs[1].ReadDir("/d"); !slices.Equal(names, other) {
		rt.Fatalf("one history and seed crashed two ways: %v, %v", names, other)
	}
	contents := map[string][]byte{}
	for _, name := range names {
		contents[name] = readAll(rt, m.fs[0], "/d/"+name)
		if other := readAll(rt, m.fs[1], "/d/"+name); !bytes.Equal(contents[name], other) {
			rt.Fatalf("%s: one history and seed crashed two ways", name)
		}
	}
	var errs []error
	for _, entries := range append([]map[string]*modelFile{m.durable}, m.unsynced...) {
		err := matchEntries(names, contents, entries, m.aligned)
		if err == nil {
			errs = nil
			break
		}
		errs = append(errs, err)
	}
	if errs != nil {
		rt.Fatalf("after the crash /d matches no possible state: %v", errors.Join(errs...))
	}
	for _, mf := range m.live {
		if _, err := mf.f[0].ReadAt(make([]byte, 1), 0); !errors.Is(err, vfs.ErrClosed) {
			rt.Fatalf("a handle from before the crash still works: %v", err)
		}
	}
}

// matchEntries reports why the crashed directory (names, contents) is not
// the model's entries, or nil if it is.
func matchEntries(names []string, contents map[string][]byte, entries map[string]*modelFile, aligned bool) error {
	if want := slices.Sorted(maps.Keys(entries)); !slices.Equal(names, want) {
		return fmt.Errorf("entries %v, want %v", names, want)
	}
	for name, mf := range entries {
		if err := checkCrashedFile(name, contents[name], mf, aligned); err != nil {
			return err
		}
	}
	return nil
}

// checkCrashedFile reports why got is not a possible crashed content of
// the file mf, or nil if it is.
func checkCrashedFile(name string, got []byte, mf *modelFile, aligned bool) error {
	if len(mf.pending) == 0 {
		if !bytes.Equal(got, mf.synced) {
			return fmt.Errorf("%s: fully synced file reads %v, want %v", name, got, mf.synced)
		}
		return nil
	}
	if sizes := possibleSizes(mf); !sizes[int64(len(got))] {
		return fmt.Errorf("%s: size %d after the crash; possible sizes %v", name, len(got), sizes)
	}
	for x, b := range got {
		if !possibleByte(mf, int64(x), b) {
			return fmt.Errorf("%s: byte %d is %d, which no subset of unsynced changes can give", name, x, b)
		}
	}
	if !aligned {
		return nil
	}
	for s := 0; s < len(got); s += vfs.SectorSize {
		sector := got[s:min(len(got), s+vfs.SectorSize)]
		if bytes.Count(sector, sector[:1]) != len(sector) {
			return fmt.Errorf("%s: sector at %d mixes versions: %v", name, s, sector)
		}
	}
	return nil
}

// possibleSizes returns every size that applying some subset of mf's
// unsynced changes, with writes torn at sector boundaries, could produce.
func possibleSizes(mf *modelFile) map[int64]bool {
	sizes := map[int64]bool{int64(len(mf.synced)): true}
	for _, c := range mf.pending {
		var ends []int64
		switch c.kind {
		case "write":
			for e := (c.off/vfs.SectorSize + 1) * vfs.SectorSize; e < c.off+c.n; e += vfs.SectorSize {
				ends = append(ends, e)
			}
			ends = append(ends, c.off+c.n)
		case "fallocate":
			ends = []int64{c.off + c.n}
		case "truncate":
			sizes[c.off] = true
			continue
		}
		for s := range maps.Clone(sizes) {
			for _, e := range ends {
				sizes[max(s, e)] = true
			}
		}
	}
	return sizes
}

// possibleByte reports whether b can be the value at x after a crash: the
// synced value (zero past the synced end), the fill of an unsynced write
// covering x, or zero if an unsynced truncation cut x off.
func possibleByte(mf *modelFile, x int64, b byte) bool {
	if x < int64(len(mf.synced)) && mf.synced[x] == b || x >= int64(len(mf.synced)) && b == 0 {
		return true
	}
	for _, c := range mf.pending {
		switch {
		case c.kind == "write" && c.off <= x && x < c.off+c.n && c.fill == b:
			return true
		case c.kind == "truncate" && c.off <= x && b == 0:
			return true
		}
	}
	return false
}

package cowdb_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"iter"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

// The storage fault tests, TigerBeetle's kind: the device gets a write of
// the data file wrong while reporting success (lost, or misdirected to
// another block), or flips bits at rest, and the store must notice or be
// unharmed. After each fault the store is reopened, everything the model
// says it holds is read back, and Check runs; each case then falls in one
// class:
//
//   - detected: Open, a read or Check fails with ErrCorrupt (or the
//     workload itself did, when the fault bit it early);
//   - harmless: every key, value, blob and snapshot reads back exactly as
//     the model has it and Check is clean;
//   - wrong: a read returned bytes the model does not have, a key appeared
//     or vanished without an error, or an error other than ErrCorrupt came
//     back. There must be none.

// sfOnlySeed narrows TestStorageFaultWrites to one seed, to reproduce a
// failure it printed.
var sfOnlySeed = flag.Uint64("storagefault.seed", 0, "run only this seed of TestStorageFaultWrites (0: all)")

// sfPrefix is the key prefix of the blobs the storage fault workload
// writes at offsets; other keys are put whole.
const sfPrefix = "blob-"

// sfModel is what the storage fault workload acknowledged: the live
// store's content (values and blobs alike, as Scan reads them) and each
// snapshot's.
type sfModel struct {
	live  map[string]string
	snaps map[string]map[string]string
}

// sfWorkload drives the public API on fs from seed under SyncAlways:
// inline and large puts, deletes, blob writes aligned and unaligned,
// snapshots taken, deleted and restored, checkpoints, and a reopen. Every
// call is acknowledged durable, so the model is exact. With crash set it
// ends in a power loss on mem instead of Close. It stops at the first
// error and returns it (the model is then exact but for that call).
func sfWorkload(fs vfs.FS, mem *vfs.MemFS, seed uint64, nOps int, crash bool) (*sfModel, error) {
	rng := rand.New(rand.NewPCG(seed, 0x5f))
	m := &sfModel{live: map[string]string{}, snaps: map[string]map[string]string{}}
	o := crashOpts(fs, cowdb.SyncAlways)
	db, err := cowdb.Open("/db", o)
	if err != nil {
		return m, err
	}
	defer func() {
		if db != nil {
			db.Close()
		}
	}()
	for i := range nOps {
		if err := sfStep(db, m, rng, i); err != nil {
			return m, err
		}
		if i == nOps/2 { // a reopen in the middle, through the same device
			if err := db.Close(); err != nil {
				db = nil
				return m, err
			}
			if db, err = cowdb.Open("/db", o); err != nil {
				db = nil
				return m, err
			}
		}
	}
	if crash {
		mem.CrashAfter(0) // the power goes: nothing more reaches the image
		db.Close()
		db = nil
		mem.Crash(int64(seed))
		return m, nil
	}
	err = db.Close()
	db = nil
	return m, err
}

// sfStep performs operation i of the workload and applies it to the model
// once acknowledged.
func sfStep(db *cowdb.DB, m *sfModel, rng *rand.Rand, i int) error {
	key := func() string { return fmt.Sprintf("key-%02d", rng.IntN(30)) }
	switch p := rng.IntN(100); {
	case p < 30, p < 45: // inline, then large
		n := rng.IntN(400)
		if p >= 30 {
			n = 600 + rng.IntN(20000)
		}
		k, v := key(), randBytes(rng, n)
		if err := db.Put([]byte(k), v); err != nil {
			return err
		}
		m.live[k] = string(v)
	case p < 52:
		k := key()
		if err := db.Delete([]byte(k)); err != nil && !errors.Is(err, cowdb.ErrNotFound) {
			return err
		}
		delete(m.live, k)
	case p < 77:
		return sfBlobWrite(db, m, rng)
	case p < 83:
		name := fmt.Sprintf("snap-%d", i)
		if len(m.snaps) >= 5 {
			return nil
		}
		if _, err := db.Snapshot(name); err != nil {
			return err
		}
		m.snaps[name] = maps.Clone(m.live)
	case p < 86, p < 88:
		names := slices.Sorted(maps.Keys(m.snaps))
		if len(names) == 0 {
			return nil
		}
		name := names[rng.IntN(len(names))]
		if p < 86 {
			if err := db.DeleteSnapshot(name); err != nil {
				return err
			}
			delete(m.snaps, name)
			return nil
		}
		if err := db.Restore(name); err != nil {
			return err
		}
		m.live = maps.Clone(m.snaps[name])
	default:
		return db.Checkpoint()
	}
	return nil
}

// sfBlobWrite writes into one of a few blobs at an offset: aligned (whole
// blocks, one block taking the logged route, several going straight to new
// blocks) or unaligned.
func sfBlobWrite(db *cowdb.DB, m *sfModel, rng *rand.Rand) error {
	k := fmt.Sprintf("%s%d", sfPrefix, rng.IntN(4))
	b, err := db.OpenBlob([]byte(k))
	if errors.Is(err, cowdb.ErrNotFound) {
		b, err = db.CreateBlob([]byte(k))
		if err == nil {
			m.live[k] = ""
		}
	}
	if err != nil {
		return err
	}
	var off, n int
	if rng.IntN(2) == 0 {
		off, n = rng.IntN(12)*4096, (1+rng.IntN(4))*4096
	} else {
		off, n = rng.IntN(50000), 1+rng.IntN(6000)
	}
	p := randBytes(rng, n)
	if _, err := b.WriteAt(p, int64(off)); err != nil {
		b.Close()
		return err
	}
	if err := b.Close(); err != nil {
		return err
	}
	cur := []byte(m.live[k])
	if len(cur) < off+n {
		cur = append(cur, make([]byte, off+n-len(cur))...)
	}
	copy(cur[off:], p)
	m.live[k] = string(cur)
	return nil
}

// sfOutcome classifies one faulted case.
type sfOutcome int

const (
	sfHarmless   sfOutcome = iota
	sfDetected             // ErrCorrupt somewhere, nothing wrong read
	sfWrong                // bytes or keys other than the model's, without an error
	sfUnexpected           // an error that is not ErrCorrupt: the fault went unnoticed until something broke
)

// sfVerify reopens the store on fs and classifies it against the model:
// wrong (with the reason) if anything reads back other than the model says
// or fails with an error other than ErrCorrupt, detected if something
// fails with ErrCorrupt, harmless otherwise. It never stops at the first
// ErrCorrupt: the rest must still read right.
func sfVerify(fs vfs.FS, m *sfModel) (sfOutcome, string) {
	db, err := cowdb.Open("/db", crashOpts(fs, cowdb.SyncAlways))
	if err != nil {
		if errors.Is(err, cowdb.ErrCorrupt) {
			return sfDetected, ""
		}
		return sfUnexpected, fmt.Sprintf("Open: %v", err)
	}
	defer db.Close()
	out := sfHarmless
	note := func(err error, what string) (sfOutcome, string) {
		if errors.Is(err, cowdb.ErrCorrupt) {
			out = sfDetected
			return sfHarmless, ""
		}
		return sfUnexpected, fmt.Sprintf("%s: %v", what, err)
	}
	if o, why := sfCompare(db.Scan, m.live, "live", note); o >= sfWrong {
		return o, why
	}
	infos, err := db.Snapshots()
	if err != nil {
		if o, why := note(err, "Snapshots"); o >= sfWrong {
			return o, why
		}
	} else {
		var names []string
		for _, in := range infos {
			names = append(names, in.Name)
		}
		sort.Strings(names)
		if want := slices.Sorted(maps.Keys(m.snaps)); !slices.Equal(names, want) {
			return sfWrong, fmt.Sprintf("snapshots %v, want %v", names, want)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.snaps)) {
		s, err := db.OpenSnapshot(name)
		if err != nil {
			if o, why := note(err, "OpenSnapshot "+name); o >= sfWrong {
				return o, why
			}
			continue
		}
		o, why := sfCompare(s.Scan, m.snaps[name], "snapshot "+name, note)
		s.Close()
		if o >= sfWrong {
			return o, why
		}
	}
	if err := db.Check(); err != nil {
		if o, why := note(err, "Check"); o >= sfWrong {
			return o, why
		}
	}
	return out, ""
}

// sfCompare scans one version through scan and compares it with want. A
// scan cut short by an error is noted (ErrCorrupt is detection); a scan
// that completes must hold exactly want's keys and values.
func sfCompare(scan func(start, end []byte) iter.Seq2[*cowdb.Item, error], want map[string]string, what string,
	note func(error, string) (sfOutcome, string)) (sfOutcome, string) {
	seen := map[string]bool{}
	for it, err := range scan(nil, nil) {
		if err != nil {
			return note(err, what+" scan")
		}
		k := string(it.Key)
		w, ok := want[k]
		if !ok {
			return sfWrong, fmt.Sprintf("%s: key %q present, the model has none", what, k)
		}
		seen[k] = true
		v, err := it.Value()
		if err != nil {
			if o, why := note(err, fmt.Sprintf("%s: value of %q", what, k)); o >= sfWrong {
				return o, why
			}
			continue
		}
		if !bytes.Equal(v, []byte(w)) {
			return sfWrong, fmt.Sprintf("%s: %q read back %d bytes differing at %d, want %d bytes", what, k, len(v), firstDiff(v, []byte(w)), len(w))
		}
	}
	for k := range want {
		if !seen[k] {
			return sfWrong, fmt.Sprintf("%s: key %q vanished without an error", what, k)
		}
	}
	return sfHarmless, ""
}

// sfTally counts the outcomes of a storage fault test.
type sfTally struct {
	cases, injected                       int
	detected, harmless, wrong, unexpected int
	byHit                                 map[string][4]int // what the fault hit -> count per outcome
}

func (s *sfTally) add(hit string, o sfOutcome) {
	if s.byHit == nil {
		s.byHit = map[string][4]int{}
	}
	c := s.byHit[hit]
	c[o]++
	s.byHit[hit] = c
	s.injected++
	switch o {
	case sfHarmless:
		s.harmless++
	case sfDetected:
		s.detected++
	case sfWrong:
		s.wrong++
	default:
		s.unexpected++
	}
}

func (s *sfTally) String() string {
	r := fmt.Sprintf("%d cases, %d faults injected: %d detected, %d harmless, %d wrong, %d unexpected errors",
		s.cases, s.injected, s.detected, s.harmless, s.wrong, s.unexpected)
	for _, h := range slices.Sorted(maps.Keys(s.byHit)) {
		c := s.byHit[h]
		r += fmt.Sprintf("; %s %d/%d/%d/%d", h, c[sfDetected], c[sfHarmless], c[sfWrong], c[sfUnexpected])
	}
	return r
}

// bad reports whether any case went wrong.
func (s *sfTally) bad() bool { return s.wrong+s.unexpected > 0 }

// sfHit names what a faulted write was, from its first bytes.
func sfHit(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("cowdb-SB")):
		return "superblock"
	case bytes.HasPrefix(head, []byte("cowdb-AG")):
		return "bitmap"
	case bytes.HasPrefix(head, []byte("CBTN")):
		return "node"
	}
	return "data"
}

// sfRun runs f, turning a panic into a failure that names the repro.
func sfRun(t *testing.T, repro string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%s: panic: %v", repro, r)
		}
	}()
	f()
}

// TestStorageFaultWrites runs the workload once per seed to count its
// data file writes, then again with one of them, at a random index, lost
// or misdirected to another block; the run ends in Close or in a power
// loss, and the reopened store must detect the fault or be unharmed by it.
//
// The order of data file writes is not quite fixed by the seed (writeback
// writes runs from parallel goroutines), so the index may hit another
// write on another run; with -storagefault.seed the case runs 20 times.
func TestStorageFaultWrites(t *testing.T) {
	seeds, nOps, attempts := 200, 60, 1
	if *long {
		seeds, nOps = 1500, 80
	}
	if *sfOnlySeed != 0 {
		attempts = 20
	}
	var tally sfTally
	for s := range seeds {
		seed := uint64(s + 1)
		if *sfOnlySeed != 0 && seed != *sfOnlySeed {
			continue
		}
		kind := []vfs.StorageFaultKind{vfs.LostWrite, vfs.MisdirectedWrite}[s%2]
		crash := s%4 >= 2
		count := vfs.WithStorageFaults(vfs.NewMem(), vfs.StorageFaults{Path: "/db/data"})
		if _, err := sfWorkload(count, nil, seed, nOps, false); err != nil {
			t.Fatalf("seed %d without faults: %v", seed, err)
		}
		rng := rand.New(rand.NewPCG(seed, 0xfa))
		index := 1 + rng.Int64N(count.Writes())
		repro := fmt.Sprintf("go test -run 'TestStorageFaultWrites$' -storagefault.seed=%d%s (%v write %d of %d, crash %v, %d ops)",
			seed, sfLongFlag(), kind, index, count.Writes(), crash, nOps)
		for range attempts {
			tally.cases++
			sfRun(t, repro, func() {
				cfg := vfs.StorageFaults{Kind: kind, Path: "/db/data", Index: index, Seed: int64(seed)}
				sfWriteCase(t, &tally, cfg, seed, nOps, crash, repro)
			})
		}
	}
	t.Logf("storage faults (detected/harmless/wrong/unexpected by what was hit): %v", &tally)
	if tally.bad() {
		t.Fatalf("%d faults returned wrong data, %d unexpected errors", tally.wrong, tally.unexpected)
	}
}

// sfWriteCase runs the workload of seed with the write fault cfg and
// classifies the outcome into tally, failing t if it went wrong.
func sfWriteCase(t *testing.T, tally *sfTally, cfg vfs.StorageFaults, seed uint64, nOps int, crash bool, repro string) {
	t.Helper()
	mem := vfs.NewMem()
	sfs := vfs.WithStorageFaults(mem, cfg)
	m, werr := sfWorkload(sfs, mem, seed, nOps, crash)
	faults := sfs.Faults()
	if len(faults) == 0 {
		return // the run wrote less this time
	}
	f := faults[0]
	hit := fmt.Sprintf("%v %s", f.Kind, sfHit(f.Head))
	if werr != nil {
		if !errors.Is(werr, cowdb.ErrCorrupt) {
			t.Errorf("%s: fault %+v: workload: %v, want ErrCorrupt or nothing", repro, f, werr)
			tally.add(hit, sfUnexpected)
			return
		}
		tally.add(hit, sfDetected)
		return
	}
	o, why := sfVerify(mem, m)
	if o >= sfWrong {
		t.Errorf("%s: fault %+v: %s", repro, f, why)
	}
	tally.add(hit, o)
}

// TestStorageFaultBitFlips flips bits in random non-zero blocks of the
// data file of stores at rest, closed and crashed (half the time in the
// first 256 bytes of the block, where superblock and bitmap live: the rest
// of their blocks is unchecksummed padding), and requires each flip to be
// detected or harmless. Flips in the log are left out: a flip in
// the last record is indistinguishable from a torn write and truncated by
// design (the wal tests cover torn tails and mid-log damage).
func TestStorageFaultBitFlips(t *testing.T) {
	images, flips, nOps := 6, 80, 50
	if *long {
		images, flips = 16, 300
	}
	var tally sfTally
	for s := range images {
		seed := uint64(100 + s)
		crash := s%2 == 1
		mem := vfs.NewMem()
		m, err := sfWorkload(mem, mem, seed, nOps, crash)
		if err != nil {
			t.Fatalf("seed %d without faults: %v", seed, err)
		}
		blocks := sfNonZeroBlocks(t, mem)
		rng := rand.New(rand.NewPCG(seed, 0xf1))
		for i := range flips {
			tally.cases++
			blk := blocks[rng.IntN(len(blocks))]
			bits := 1 + rng.IntN(3)
			repro := fmt.Sprintf("go test -run 'TestStorageFaultBitFlips$'%s (seed %d, crash %v, flip %d: block %d, %d bits)", sfLongFlag(), seed, crash, i, blk, bits)
			sfRun(t, repro, func() {
				fs := mem.CloneDurable()
				buf := sfReadBlock(t, fs, blk)
				span := len(buf)
				if rng.IntN(2) == 0 {
					span = 256 // the head: superblock fields, bitmap header and bits, node header
				}
				for range bits {
					bit := rng.IntN(span * 8)
					buf[bit/8] ^= 1 << (bit % 8)
				}
				overwrite(t, fs, "/db/data", blk*4096, buf)
				hit := "flip " + sfHit(buf)
				o, why := sfVerify(fs, m)
				if o >= sfWrong {
					t.Errorf("%s: %s", repro, why)
				}
				tally.add(hit, o)
			})
		}
	}
	t.Logf("bit flips (detected/harmless/wrong/unexpected by block kind): %v", &tally)
	if tally.bad() {
		t.Fatalf("%d flips returned wrong data, %d unexpected errors", tally.wrong, tally.unexpected)
	}
}

// sfNonZeroBlocks returns the numbers of the data file's blocks holding
// something other than zeros: the ones a flip can matter in.
func sfNonZeroBlocks(t *testing.T, fs vfs.FS) []int64 {
	t.Helper()
	fi, err := fs.Stat("/db/data")
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	zero := make([]byte, 4096)
	for b := range fi.Size / 4096 {
		if !bytes.Equal(sfReadBlock(t, fs, b), zero) {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		t.Fatal("data file is all zeros")
	}
	return out
}

// sfReadBlock reads block b of the data file.
func sfReadBlock(t *testing.T, fs vfs.FS, b int64) []byte {
	t.Helper()
	f, err := fs.OpenFile("/db/data", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	if _, err := f.ReadAt(buf, b*4096); err != nil {
		t.Fatal(err)
	}
	return buf
}

// TestStorageFaultLostBitmapWrite is the minimal case the long run of
// TestStorageFaultWrites finds: the last AG bitmap write before a power
// loss is lost. The older copy then passes every check PickAGBitmap makes
// (its epoch is below the superblock's, as a clean AG's would be), so Open
// loads an allocation state in which the blocks allocated since that copy
// are free. The store must notice (ErrCorrupt) rather than hand those
// blocks out again.
func TestStorageFaultLostBitmapWrite(t *testing.T) {
	isBitmap := func(off int64, p []byte) bool { return bytes.HasPrefix(p, []byte("cowdb-AG")) }
	cmem := vfs.NewMem()
	count := vfs.WithStorageFaults(cmem, vfs.StorageFaults{Path: "/db/data", Match: isBitmap})
	sfBitmapSteps(t, count, cmem)
	repro := fmt.Sprintf("go test -run 'TestStorageFaultLostBitmapWrite$' (bitmap write %d of %d lost)", count.Writes(), count.Writes())
	mem := vfs.NewMem()
	sfs := vfs.WithStorageFaults(mem, vfs.StorageFaults{Path: "/db/data", Match: isBitmap, Index: count.Writes()})
	sfBitmapSteps(t, sfs, mem)
	if len(sfs.Faults()) != 1 {
		t.Fatalf("%s: no bitmap write lost", repro)
	}
	db, err := cowdb.Open("/db", crashOpts(mem, cowdb.SyncAlways))
	if err != nil {
		if !errors.Is(err, cowdb.ErrCorrupt) {
			t.Fatalf("%s: Open: %v, want ErrCorrupt", repro, err)
		}
		return
	}
	defer db.Close()
	// New allocations; then everything must read back or be ErrCorrupt.
	for i := range 8 {
		if err := db.Put([]byte(fmt.Sprintf("new-%d", i)), bytes.Repeat([]byte{byte(i)}, 20000)); err != nil {
			if errors.Is(err, cowdb.ErrCorrupt) {
				return
			}
			t.Fatalf("%s: Put after reopen: %v, want ErrCorrupt or nothing", repro, err)
		}
	}
	for i := range 4 {
		v, err := db.Get([]byte(fmt.Sprintf("old-%d", i)))
		if err != nil {
			if errors.Is(err, cowdb.ErrCorrupt) {
				t.Errorf("%s: old-%d: %v: detected, but only after acknowledged data was overwritten", repro, i, err)
				continue
			}
			t.Fatalf("%s: old-%d: %v", repro, i, err)
		}
		if !bytes.Equal(v, bytes.Repeat([]byte{byte(100 + i)}, 20000)) {
			t.Fatalf("%s: old-%d read back wrong", repro, i)
		}
	}
	if err := db.Check(); err != nil {
		t.Fatalf("%s: Check after reopen: %v", repro, err)
	}
}

// sfBitmapSteps writes large values with a checkpoint after each, then
// loses power on mem.
func sfBitmapSteps(t *testing.T, fs vfs.FS, mem *vfs.MemFS) {
	t.Helper()
	db, err := cowdb.Open("/db", crashOpts(fs, cowdb.SyncAlways))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := db.Put([]byte(fmt.Sprintf("old-%d", i)), bytes.Repeat([]byte{byte(100 + i)}, 20000)); err != nil {
			t.Fatal(err)
		}
		if err := db.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	mem.CrashAfter(0)
	db.Close()
	mem.Crash(1)
}

// sfLongFlag returns " -long" when the run is long, for repro lines.
func sfLongFlag() string {
	if *long {
		return " -long"
	}
	return ""
}

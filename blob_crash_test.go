package cowdb_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"testing"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

// blobCrashConfig is one set of options the blob crash tests run under:
// small files, and either a large cache (writeback at checkpoints only) or
// a small one (writeback under memory pressure, in the writer's own call),
// with a log whose records take any write the workload makes or a small
// one (256 KiB segments, records of 64 KiB: larger unaligned writes split,
// or with 64 KiB blocks rewrite their edge blocks).
type blobCrashConfig struct {
	name       string
	blockSize  int
	cacheSize  int64
	walSegment int64
}

var blobCrashConfigs = []blobCrashConfig{
	{"roomy", 4096, 64 << 20, 1 << 20},
	{"pressure-smalllog", 4096, 1 << 20, 256 << 10},
	{"block64k-smalllog", 65536, 1 << 20, 256 << 10},
}

func (c blobCrashConfig) opts(fs vfs.FS) *cowdb.Options {
	o := memOpts(fs)
	o.BlockSize = c.blockSize
	o.GroupSize = max(o.GroupSize, 64*int64(c.blockSize))
	o.InitialSize = o.GroupSize
	o.CacheSize = c.cacheSize
	o.WALSegmentSize = c.walSegment
	return o
}

// blobState is what the store must hold: key -> value (a blob's bytes).
type blobState map[string][]byte

// blobPending is the effect of the call in flight when the machine died:
// key's value becomes val (absent if gone).
type blobPending struct {
	key  string
	val  []byte
	gone bool
}

// blobCrashWorkload drives blobs under SyncAlways from seed: WriteAt of
// every kind (aligned, unaligned, split, 1 byte, past the end), Truncate,
// streamed Write with Sync, CreateBlob over a key, Delete, an inline Put
// later written as a blob, checkpoints and reopens. It stops at the first
// error (the machine died) and returns the acknowledged state and the
// effect of the call in flight, or nil if none was.
func blobCrashWorkload(fs vfs.FS, seed uint64, nOps int, cfg blobCrashConfig) (blobState, *blobPending, error) {
	w := &blobWorkload{fs: fs, cfg: cfg, rng: rand.New(rand.NewPCG(seed, 21)), state: blobState{}}
	if err := w.open(); err != nil {
		return w.state, nil, err
	}
	for range nOps {
		p, err := w.safeStep()
		if err != nil {
			if w.db != nil {
				w.db.Close()
			}
			return w.state, p, err
		}
		if p != nil {
			w.apply(*p)
		}
	}
	return w.state, nil, w.db.Close()
}

// blobWorkload is the state of one crash workload run.
type blobWorkload struct {
	fs      vfs.FS
	cfg     blobCrashConfig
	rng     *rand.Rand
	db      *cowdb.DB
	handles map[string]*cowdb.Blob
	state   blobState
}

func (w *blobWorkload) open() error {
	db, err := cowdb.Open("/db", w.cfg.opts(w.fs))
	w.db, w.handles = db, map[string]*cowdb.Blob{} // db is nil on error
	return err
}

func (w *blobWorkload) apply(p blobPending) {
	if p.gone {
		delete(w.state, p.key)
	} else {
		w.state[p.key] = p.val
	}
}

// handle returns an open handle on key, which holds a value.
func (w *blobWorkload) handle(key string) (*cowdb.Blob, error) {
	if b := w.handles[key]; b != nil {
		return b, nil
	}
	b, err := w.db.OpenBlob([]byte(key))
	w.handles[key] = b
	return b, err
}

// step does one random call and returns its effect (nil: none).
func (w *blobWorkload) step() (*blobPending, error) {
	rng := w.rng
	key := fmt.Sprintf("b%d", rng.IntN(3))
	old, ok := w.state[key]
	switch p := rng.IntN(100); {
	case !ok || p < 4:
		delete(w.handles, key)
		b, err := w.db.CreateBlob([]byte(key))
		w.handles[key] = b
		return &blobPending{key: key, val: []byte{}}, err
	case p < 7:
		delete(w.handles, key)
		return &blobPending{key: key, gone: true}, w.db.Delete([]byte(key))
	case p < 10:
		delete(w.handles, key)
		v := randBytes(rng, rng.IntN(300))
		return &blobPending{key: key, val: v}, w.db.Put([]byte(key), v)
	case p < 18:
		return nil, w.db.Checkpoint()
	case p < 22:
		err := w.db.Close()
		if err == nil {
			err = w.open()
		}
		return nil, err
	}
	b, err := w.handle(key)
	if err != nil {
		return nil, err
	}
	m := blobModel(bytes.Clone(old))
	switch p := rng.IntN(100); {
	case p < 15:
		size := w.truncateTo(int64(len(m)))
		m.truncate(size)
		return &blobPending{key: key, val: m}, b.Truncate(size)
	case p < 25:
		off, data := rng.Int64N(int64(len(m))+5000), randBytes(rng, 1+rng.IntN(100000))
		m.writeAt(data, off)
		return &blobPending{key: key, val: m}, streamWrite(b, off, data)
	default:
		off, n := randSpan(rng, int64(w.cfg.blockSize), int64(len(m)))
		if n > 300<<10 {
			n = 300<<10 + rng.IntN(4096)
		}
		data := randBytes(rng, n)
		m.writeAt(data, off)
		_, err := b.WriteAt(data, off)
		return &blobPending{key: key, val: m}, err
	}
}

// safeStep is step with a panic turned into an error, so that one failing
// case does not end the whole test binary. The store may then hold its
// locks, so it is left unclosed.
func (w *blobWorkload) safeStep() (p *blobPending, err error) {
	defer func() {
		if r := recover(); r != nil {
			w.db = nil
			p, err = nil, fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return w.step()
}

// truncateTo returns a new size for a blob of size bytes: smaller (mostly
// unaligned), larger, or the same.
func (w *blobWorkload) truncateTo(size int64) int64 {
	switch w.rng.IntN(5) {
	case 0:
		return size + w.rng.Int64N(100000)
	case 1:
		return size
	}
	return w.rng.Int64N(size + 1)
}

// streamWrite writes data at off with Seek and Write, then Sync: one
// flush, so one atomic write.
func streamWrite(b *cowdb.Blob, off int64, data []byte) error {
	if _, err := b.Seek(off, io.SeekStart); err != nil {
		return err
	}
	for len(data) > 0 {
		n := min(len(data), 1+len(data)/3)
		if _, err := b.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return b.Sync()
}

// TestBlobCrash crashes the blob workload at enumerated points (every
// point with -long, an even spread by default), with random power-loss
// outcomes, and sometimes crashes the recovery too (while it replays
// deferred writes and writes their pages back); every acknowledged write
// must survive byte for byte, the write in flight must be all or nothing,
// and the store must reopen, take writes, keep the DESIGN §6 invariant,
// and once emptied free every block (nothing staged, busy or leaked).
func TestBlobCrash(t *testing.T) {
	seeds, nOps, points := 3, 50, 25
	switch {
	case *long:
		seeds, nOps, points = 5, 120, 1<<30
	case raceEnabled():
		seeds, points = 1, 12
	}
	for _, cfg := range blobCrashConfigs {
		for s := range seeds {
			seed := uint64(s + 1)
			fs := vfs.NewMem()
			if _, _, err := blobCrashWorkload(fs, seed, nOps, cfg); err != nil {
				t.Fatalf("%s, seed %d, without crash: %v", cfg.name, seed, err)
			}
			total := fs.Ops()
			step := max(1, total/int64(points))
			rng := rand.New(rand.NewPCG(seed, 17))
			for at := rng.Int64N(step); at <= total; at += step {
				rc := int64(-1)
				if rng.IntN(3) == 0 {
					rc = rng.Int64N(60)
				}
				blobCrashCase(t, cfg, seed, nOps, at, rc)
			}
		}
	}
}

// blobCrashCase runs the workload with a crash after crashAt file
// operations, crashes recovery after recoveryCrash operations if that is
// not negative, and checks what reopening finds.
func blobCrashCase(t *testing.T, cfg blobCrashConfig, seed uint64, nOps int, crashAt, recoveryCrash int64) {
	t.Helper()
	fs := vfs.NewMem()
	fs.CrashAfter(crashAt)
	state, pending, werr := blobCrashWorkload(fs, seed, nOps, cfg)
	fs.Crash(int64(seed) + crashAt)
	if recoveryCrash >= 0 {
		fs.CrashAfter(recoveryCrash)
		if db, err := cowdb.Open("/db", cfg.opts(fs)); err == nil {
			db.Close()
		}
		fs.Crash(int64(seed) + crashAt + 1)
	}
	repro := fmt.Sprintf("%s, seed %d, %d ops, crash after %d file ops, recovery crash %d (workload error: %v)",
		cfg.name, seed, nOps, crashAt, recoveryCrash, werr)
	verifyBlobsRecovered(t, fs, fs, cfg.opts(fs), state, pending, repro)
}

// verifyBlobsRecovered reopens the store on fs and requires its content to
// be state with pending applied whole or not at all, every blob to read
// the same through OpenBlob as through Get, a write to succeed, and Close
// to leave the DESIGN §6 invariant true on mem (the image under fs); then
// that deleting everything leaves no block staged, busy or leaked.
func verifyBlobsRecovered(t *testing.T, fs vfs.FS, mem *vfs.MemFS, o *cowdb.Options, state blobState, pending *blobPending, repro string) {
	t.Helper()
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatalf("%s: reopen: %v", repro, err)
	}
	got, err := readBlobState(db)
	if err != nil {
		t.Fatalf("%s: %v", repro, err)
	}
	if err := checkBlobState(state, pending, got); err != nil {
		t.Fatalf("%s: %v", repro, err)
	}
	b, err := db.CreateBlob([]byte("after"))
	if err == nil {
		_, err = b.WriteAt([]byte("recovery"), 4095)
	}
	if err != nil {
		t.Fatalf("%s: write after recovery: %v", repro, err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("%s: Close after recovery: %v", repro, err)
	}
	if err := cowdb.CheckPersisted(mem, "/db"); err != nil {
		t.Fatalf("%s: invariant: %v", repro, err)
	}
	if err := checkEmptied(fs, o); err != nil {
		t.Fatalf("%s: %v", repro, err)
	}
}

// checkEmptied opens the store, deletes every key, checkpoints twice (so
// the freed blocks become free) and requires every block but the headers
// and the empty trees' nodes to be free: nothing staged, busy or leaked,
// and no extent left in the tree without a key (which CheckPersisted
// counts as reachable). It leaves the store closed.
func checkEmptied(fs vfs.FS, o *cowdb.Options) error {
	db, err := cowdb.Open("/db", o)
	if err != nil {
		return err
	}
	defer db.Close()
	var keys [][]byte
	for it, err := range db.Scan(nil, nil) {
		if err != nil {
			return err
		}
		keys = append(keys, bytes.Clone(it.Key))
	}
	for _, k := range keys {
		if err := db.Delete(k); err != nil {
			return err
		}
	}
	for range 2 {
		if err := db.Checkpoint(); err != nil {
			return err
		}
	}
	st := db.Stats()
	if st.StagingBlocks != 0 || st.BusyBlocks != 0 || st.FreeBlocks+st.CommittedBlocks+st.HeaderBlocks != st.TotalBlocks {
		return fmt.Errorf("emptied store: %d staging, %d busy, %d free + %d committed + %d header of %d blocks",
			st.StagingBlocks, st.BusyBlocks, st.FreeBlocks, st.CommittedBlocks, st.HeaderBlocks, st.TotalBlocks)
	}
	if fresh, err := freshCommitted(o); err != nil || st.CommittedBlocks != fresh {
		return fmt.Errorf("emptied store: %d blocks still committed, a new store has %d (%v)", st.CommittedBlocks, fresh, err)
	}
	return db.Close()
}

// freshCommitted returns the committed blocks of a new, empty store with
// options o (on a new MemFS): the trees' nodes and nothing else.
func freshCommitted(o *cowdb.Options) (int64, error) {
	fo := *o
	fo.FS = vfs.NewMem()
	db, err := cowdb.Open("/db", &fo)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if err := db.Checkpoint(); err != nil {
		return 0, err
	}
	return db.Stats().CommittedBlocks, nil
}

// readBlobState reads every value of db, each one through Get and, for
// the larger ones, through OpenBlob (Size and ReadAt) too.
func readBlobState(db *cowdb.DB) (blobState, error) {
	got := blobState{}
	for it, err := range db.Scan(nil, nil) {
		if err != nil {
			return nil, err
		}
		got[string(it.Key)] = nil
	}
	for k := range got {
		v, err := db.Get([]byte(k))
		if err != nil {
			return nil, fmt.Errorf("Get(%s): %w", k, err)
		}
		b, err := db.OpenBlob([]byte(k))
		if err != nil {
			return nil, fmt.Errorf("OpenBlob(%s): %w", k, err)
		}
		if err := checkBlob(b, v, nil); err != nil {
			return nil, fmt.Errorf("blob %s reads otherwise than Get: %w", k, err)
		}
		got[k] = v
	}
	return got, nil
}

// checkBlobState checks that got is want with pending applied whole or
// not at all.
func checkBlobState(want blobState, pending *blobPending, got blobState) error {
	if equalBlobStates(want, got) {
		return nil
	}
	if pending != nil {
		applied := maps.Clone(want)
		if pending.gone {
			delete(applied, pending.key)
		} else {
			applied[pending.key] = pending.val
		}
		if equalBlobStates(applied, got) {
			return nil
		}
	}
	keys := slices.Sorted(maps.Keys(merge(stringKeys(want), stringKeys(got))))
	for _, k := range keys {
		w, inW := want[k]
		g, inG := got[k]
		if inW != inG || !bytes.Equal(w, g) {
			desc := fmt.Sprintf("key %s: recovered %d bytes (present %v), acknowledged %d bytes (present %v), first difference at %d",
				k, len(g), inG, len(w), inW, firstDiff(g, w))
			if pending != nil && pending.key == k {
				desc += fmt.Sprintf("; the call in flight left %d bytes (gone %v), first difference at %d",
					len(pending.val), pending.gone, firstDiff(g, pending.val))
			}
			return errors.New(desc)
		}
	}
	return errors.New("states differ")
}

func equalBlobStates(a, b blobState) bool {
	return maps.EqualFunc(a, b, func(x, y []byte) bool { return bytes.Equal(x, y) })
}

func stringKeys(s blobState) map[string]string {
	m := map[string]string{}
	for k := range s {
		m[k] = ""
	}
	return m
}

// TestBlobCrashDuringRecovery builds a store whose blobs live mostly in
// the log as deferred writes (dirty pages never written back), takes the
// image a crash right then would leave, and crashes the recovery of that
// image after each of its file operations in turn (every one with -long),
// then recovers for good: every write was acknowledged, so every byte
// must be there, and no block may leak.
func TestBlobCrashDuringRecovery(t *testing.T) {
	for _, cfg := range blobCrashConfigs {
		fs := vfs.NewMem()
		w := &blobWorkload{fs: fs, cfg: cfg, rng: rand.New(rand.NewPCG(5, 5)), state: blobState{}}
		if err := w.open(); err != nil {
			t.Fatal(err)
		}
		for range 80 {
			p, err := w.safeStep()
			if err != nil {
				t.Fatal(err)
			}
			if p != nil {
				w.apply(*p)
			}
		}
		if err := w.deferredBurst(30); err != nil {
			t.Fatal(err)
		}
		image := fs.CloneDurable()
		w.db.Close()
		count := image.CloneDurable()
		before := count.Ops()
		db, err := cowdb.Open("/db", cfg.opts(count))
		if err != nil {
			t.Fatal(err)
		}
		if st := db.Stats(); st.Replayed == 0 {
			t.Fatalf("%s: recovery replayed no log record", cfg.name)
		}
		db.Close()
		total := count.Ops() - before
		step := max(1, total/20)
		switch {
		case *long:
			step = 1
		case raceEnabled():
			step = max(1, total/6)
		}
		for k := int64(0); k < total; k += step {
			try := image.CloneDurable()
			try.CrashAfter(k)
			if db, err := cowdb.Open("/db", cfg.opts(try)); err == nil {
				db.Close()
			}
			try.Crash(int64(k))
			repro := fmt.Sprintf("%s, recovery crashed after %d of %d file ops", cfg.name, k, total)
			verifyBlobsRecovered(t, try, try, cfg.opts(try), w.state, nil, repro)
		}
	}
}

// deferredBurst makes n small unaligned writes to the blobs, so that the
// log holds deferred writes since the last checkpoint.
func (w *blobWorkload) deferredBurst(n int) error {
	for i := range n {
		key := fmt.Sprintf("b%d", i%3)
		if _, ok := w.state[key]; !ok {
			continue
		}
		b, err := w.handle(key)
		if err != nil {
			return err
		}
		m := blobModel(bytes.Clone(w.state[key]))
		off, data := w.rng.Int64N(int64(len(m))+100), randBytes(w.rng, 1+w.rng.IntN(3000))
		if _, err := b.WriteAt(data, off); err != nil {
			return err
		}
		m.writeAt(data, off)
		w.state[key] = m
	}
	return nil
}

package cowdb_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

var long = flag.Bool("long", false, "run the long crash tests: every crash point, more seeds")

// largeValues makes the crash workload write values stored in extents too,
// so crashes hit their data writes, data syncs and remap replay.
const largeValues = true

// crashOpts are the options of the crash tests: small files, and a cache
// large enough that the dirty-memory trigger never starts a background
// checkpoint, so a seed always produces the same sequence of file
// operations.
func crashOpts(fs vfs.FS, mode cowdb.SyncMode) *cowdb.Options {
	o := memOpts(fs)
	o.CacheSize = 64 << 20
	o.Sync = mode
	return o
}

// effect is what one write call does: key -> new value, nil for deleted.
type effect map[string]*string

// history is what a workload acknowledged: the model after each
// acknowledged write call (states[0] is the empty store), and how many of
// those states a Sync, Checkpoint or Close made durable (under SyncAlways,
// all of them).
type history struct {
	states []map[string]string
	synced int // states[synced-1] at least is durable
}

func (h *history) last() map[string]string { return h.states[len(h.states)-1] }

// workload drives the public API with random puts (inline and large
// values), deletes, transactions, checkpoints, syncs and reopens from seed,
// keeping a model of every acknowledged write. It stops at the first error
// (the simulated machine died) and returns the history and the effect of
// the call that failed, whose fate is unknown; that is nil if no write call
// was in flight.
func workload(fs *vfs.MemFS, seed uint64, nOps int, mode cowdb.SyncMode) (h *history, pending effect, err error) {
	return workloadFS(fs, seed, nOps, mode)
}

// workloadFS is workload on any file system.
func workloadFS(fs vfs.FS, seed uint64, nOps int, mode cowdb.SyncMode) (h *history, pending effect, err error) {
	rng := rand.New(rand.NewPCG(seed, 99))
	h = &history{states: []map[string]string{{}}, synced: 1}
	model := map[string]string{}
	db, err := cowdb.Open("/db", crashOpts(fs, mode))
	if err != nil {
		return h, nil, err
	}
	defer func() {
		if db != nil {
			db.Close()
		}
	}()
	key := func() string { return fmt.Sprintf("key-%02d", rng.IntN(40)) }
	val := func() *string {
		n := rng.IntN(500)
		if largeValues && rng.IntN(6) == 0 {
			n = 500 + rng.IntN(20000)
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		s := string(b)
		return &s
	}
	for range nOps {
		eff := effect{}
		switch p := rng.IntN(100); {
		case p < 45:
			k, v := key(), val()
			eff[k] = v
			err = db.Put([]byte(k), []byte(*v))
		case p < 60:
			k := key()
			eff[k] = nil
			err = db.Delete([]byte(k))
		case p < 85:
			n := 2 + rng.IntN(5)
			for range n {
				if rng.IntN(4) == 0 {
					eff[key()] = nil
				} else {
					eff[key()] = val()
				}
			}
			err = db.Update(func(tx *cowdb.Tx) error {
				for k, v := range eff {
					var err error
					if v == nil {
						err = tx.Delete([]byte(k))
					} else {
						err = tx.Put([]byte(k), []byte(*v))
					}
					if err != nil {
						return err
					}
				}
				return nil
			})
		case p < 90:
			eff = nil
			if err = db.Checkpoint(); err == nil {
				h.synced = len(h.states)
			}
		case p < 95:
			eff = nil
			if err = db.Sync(); err == nil {
				h.synced = len(h.states)
			}
		default:
			eff = nil
			if err = db.Close(); err == nil {
				h.synced = len(h.states)
				db, err = cowdb.Open("/db", crashOpts(fs, mode))
				if err != nil {
					db = nil
					return h, nil, err
				}
			}
		}
		if err != nil {
			return h, eff, err
		}
		if eff == nil {
			continue
		}
		for k, v := range eff {
			if v == nil {
				delete(model, k)
			} else {
				model[k] = *v
			}
		}
		h.states = append(h.states, maps.Clone(model))
		if mode == cowdb.SyncAlways {
			h.synced = len(h.states)
		}
	}
	err = db.Close()
	db = nil
	if err == nil {
		h.synced = len(h.states)
	}
	return h, nil, err
}

// crashCase runs the workload with a crash after crashAt file operations,
// simulates the power loss with seed, optionally crashes recovery too, and
// checks what reopening finds.
func crashCase(t *testing.T, seed uint64, nOps int, mode cowdb.SyncMode, crashAt int64, recoveryCrash int64) {
	t.Helper()
	fs := vfs.NewMem()
	fs.CrashAfter(crashAt)
	h, pending, werr := workload(fs, seed, nOps, mode)
	fs.Crash(int64(seed) + crashAt)
	if recoveryCrash >= 0 {
		fs.CrashAfter(recoveryCrash)
		if db, err := cowdb.Open("/db", crashOpts(fs, mode)); err == nil {
			db.Close()
		}
		fs.Crash(int64(seed) + crashAt + 1)
	}
	repro := fmt.Sprintf("mode %d, seed %d, crash after %d ops, recovery crash %d (workload error: %v)", mode, seed, crashAt, recoveryCrash, werr)
	verifyRecovered(t, fs, fs, mode, h, pending, repro)
}

// checkHistory checks that got is a state the history allows: the last
// acknowledged state with the pending call applied whole or not at all
// (under SyncAlways, where every acknowledged state is durable), or any
// state from the last synced one on (SyncNever loses a suffix, never
// corrupts).
func checkHistory(h *history, pending effect, got map[string]string) error {
	err := checkRecovered(h.last(), pending, got)
	if err == nil {
		return nil
	}
	for i := h.synced - 1; i < len(h.states)-1; i++ {
		if checkRecovered(h.states[i], nil, got) == nil {
			return nil
		}
	}
	if h.synced < len(h.states) {
		return fmt.Errorf("matches no state from the last synced one (%d of %d): %v", h.synced, len(h.states), err)
	}
	return err
}

// checkRecovered checks that got equals the model, except that the keys of
// the pending call are all as the model has them or all as the call left
// them (atomicity).
func checkRecovered(model map[string]string, pending effect, got map[string]string) error {
	lookup := func(m map[string]string, k string) *string {
		if v, ok := m[k]; ok {
			return &v
		}
		return nil
	}
	eq := func(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	old, applied := true, true
	for k, v := range pending {
		g := lookup(got, k)
		old = old && eq(g, lookup(model, k))
		applied = applied && eq(g, v)
	}
	if !old && !applied {
		return fmt.Errorf("the unacknowledged call %v was applied in part", pending)
	}
	for k := range merge(model, got) {
		if _, ok := pending[k]; ok {
			continue
		}
		if g, m := lookup(got, k), lookup(model, k); !eq(g, m) {
			return fmt.Errorf("key %q: recovered %v, acknowledged %v", k, deref(g), deref(m))
		}
	}
	return nil
}

func merge(a, b map[string]string) map[string]bool {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return m
}

func deref(s *string) string {
	if s == nil {
		return "<absent>"
	}
	return fmt.Sprintf("%.20q", *s)
}

// TestCrash crashes a random workload at enumerated points (every point
// with -long, an even spread of them by default), with random power-loss
// outcomes, and sometimes crashes recovery as well; every acknowledged
// write must survive byte for byte, the write in flight must be all or
// nothing, and the store must reopen, work and keep the DESIGN §6
// invariant.
func TestCrash(t *testing.T) {
	seeds, nOps, points := 3, 60, 50
	if *long {
		seeds, nOps, points = 20, 150, 1<<30
	}
	for _, mode := range []cowdb.SyncMode{cowdb.SyncAlways, cowdb.SyncNever} {
		for s := range seeds {
			seed := uint64(s + 1)
			fs := vfs.NewMem()
			if _, _, err := workload(fs, seed, nOps, mode); err != nil {
				t.Fatalf("seed %d without crash: %v", seed, err)
			}
			if err := cowdb.CheckPersisted(fs, "/db"); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			total := fs.Ops()
			step := max(1, total/int64(points))
			rng := rand.New(rand.NewPCG(seed, 7))
			for at := rng.Int64N(step); at <= total; at += step {
				rc := int64(-1)
				if rng.IntN(4) == 0 {
					rc = rng.Int64N(40)
				}
				crashCase(t, seed, nOps, mode, at, rc)
			}
		}
	}
}

// TestCrashDurableImage checks the workload's end state survives a crash
// that keeps only synced data, without Close: a plain sanity companion of
// TestCrash.
func TestCrashDurableImage(t *testing.T) {
	fs := vfs.NewMem()
	h, _, err := workload(fs, 42, 80, cowdb.SyncAlways)
	if err != nil {
		t.Fatal(err)
	}
	db := mustOpen(t, fs.CloneDurable(), "/db")
	defer db.Close()
	for k, v := range h.last() {
		got, err := db.Get([]byte(k))
		if err != nil || !bytes.Equal(got, []byte(v)) {
			t.Fatalf("%s = %.20q, %v", k, got, err)
		}
	}
	if _, err := db.Get([]byte("never")); !errors.Is(err, cowdb.ErrNotFound) {
		t.Fatal(err)
	}
}

// verifyRecovered reopens the store in /db on fs after a crash or a fault,
// requires its content to agree with the history (pending is the write that
// was in flight), then requires that it takes a write, closes cleanly, and
// that the DESIGN §6 invariant holds on mem, the image under fs. repro
// prefixes every failure so it names the run that reproduces it.
func verifyRecovered(t *testing.T, fs vfs.FS, mem *vfs.MemFS, mode cowdb.SyncMode, h *history, pending effect, repro string) {
	t.Helper()
	db, err := cowdb.Open("/db", crashOpts(fs, mode))
	if err != nil {
		t.Fatalf("%s: reopen: %v", repro, err)
	}
	got := map[string]string{}
	for it, err := range db.Scan(nil, nil) {
		if err != nil {
			t.Fatalf("%s: scan: %v", repro, err)
		}
		v, err := it.Value()
		if err != nil {
			t.Fatalf("%s: value of %q: %v", repro, it.Key, err)
		}
		got[string(it.Key)] = string(v)
	}
	if err := checkHistory(h, pending, got); err != nil {
		t.Fatalf("%s: %v", repro, err)
	}
	if err := db.Put([]byte("after"), []byte("recovery")); err != nil {
		t.Fatalf("%s: Put after recovery: %v", repro, err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("%s: Close after recovery: %v", repro, err)
	}
	if err := cowdb.CheckPersisted(mem, "/db"); err != nil {
		t.Fatalf("%s: invariant: %v", repro, err)
	}
}

package cowdb_test

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

// snapCrashOpts are the options of the snapshot crash tests: small files
// (1 MiB allocation groups, so the store grows while it runs), log
// segments large enough for the bulk transactions, and a cache large
// enough that no checkpoint starts for dirty memory. Background
// checkpoints and drop steps still run when a drop needs them, so a seed
// does not always make the same file operations: a crash point is a
// point in a run, not in a fixed sequence.
func snapCrashOpts(fs vfs.FS) *cowdb.Options {
	o := memOpts(fs)
	o.WALSegmentSize = 1 << 20
	o.CacheSize = 64 << 20
	return o
}

// snapCrashState is what a store holds: the live values and each
// snapshot's (values are never changed in place, so states share them).
type snapCrashState struct {
	live  map[string][]byte
	snaps map[string]map[string][]byte
}

func (s snapCrashState) clone() snapCrashState {
	return snapCrashState{live: maps.Clone(s.live), snaps: maps.Clone(s.snaps)}
}

func equalValues(a, b map[string][]byte) bool {
	return maps.EqualFunc(a, b, bytes.Equal)
}

func (s snapCrashState) equal(o snapCrashState) bool {
	return equalValues(s.live, o.live) && maps.EqualFunc(s.snaps, o.snaps, equalValues)
}

// describe says how got differs from s.
func (s snapCrashState) describe(got snapCrashState) string {
	if names, gotNames := slices.Sorted(maps.Keys(s.snaps)), slices.Sorted(maps.Keys(got.snaps)); !slices.Equal(names, gotNames) {
		return fmt.Sprintf("snapshots %v, want %v", gotNames, names)
	}
	diff := func(what string, want, got map[string][]byte) string {
		for _, k := range slices.Sorted(maps.Keys(merge(stringKeys(want), stringKeys(got)))) {
			w, inW := want[k]
			g, inG := got[k]
			if inW != inG || !bytes.Equal(w, g) {
				return fmt.Sprintf("%s: key %s: %d bytes (present %v), want %d bytes (present %v)", what, k, len(g), inG, len(w), inW)
			}
		}
		return ""
	}
	if d := diff("live", s.live, got.live); d != "" {
		return d
	}
	for n := range s.snaps {
		if d := diff("snapshot "+n, s.snaps[n], got.snaps[n]); d != "" {
			return d
		}
	}
	return "equal"
}

const (
	snapCrashBulk  = 3000 // bulk keys: a snapshot's exclusive tree takes several drop steps
	snapCrashNames = 4
)

// snapCrashWorkload is one run of the snapshot crash workload: the store,
// what it acknowledged (state), and when each acknowledged snapshot was
// taken, as Snapshot said.
type snapCrashWorkload struct {
	fs      vfs.FS
	rng     *rand.Rand
	db      *cowdb.DB
	state   snapCrashState
	created map[string]time.Time
}

// runSnapCrashWorkload drives snapshots under SyncAlways from seed: bulk
// transactions over a few thousand keys (so that snapshot trees, and the
// drops of deleted ones, span many nodes), Put and Delete of inline and
// extent values, blob writes, Snapshot, DeleteSnapshot, Restore, Clone,
// CloneFrom, checkpoints and reopens. It stops at the first error (the
// machine died) and returns the run, whose state is what was
// acknowledged, and the state the call in flight would have left (nil if
// none was in flight).
func runSnapCrashWorkload(fs vfs.FS, seed uint64, nOps int) (*snapCrashWorkload, *snapCrashState, error) {
	w := &snapCrashWorkload{fs: fs, rng: rand.New(rand.NewPCG(seed, 41)),
		state: snapCrashState{live: map[string][]byte{}, snaps: map[string]map[string][]byte{}}, created: map[string]time.Time{}}
	var err error
	if w.db, err = cowdb.Open("/db", snapCrashOpts(fs)); err != nil {
		w.db = nil
		return w, nil, err
	}
	defer func() {
		if w.db != nil {
			w.db.Close()
		}
	}()
	for range nOps {
		after, err := w.step()
		if err != nil {
			return w, after, err
		}
		if after != nil {
			w.state = *after
		}
	}
	err = w.db.Close()
	w.db = nil
	return w, nil, err
}

// step does one random call and returns the state it leaves (nil: none
// changed).
func (w *snapCrashWorkload) step() (*snapCrashState, error) {
	rng := w.rng
	after := w.state.clone()
	var existing, missing []string
	for i := range snapCrashNames {
		n := fmt.Sprintf("s%d", i)
		if _, ok := w.state.snaps[n]; ok {
			existing = append(existing, n)
		} else {
			missing = append(missing, n)
		}
	}
	key := fmt.Sprintf("k%d", rng.IntN(4))
	switch p := rng.IntN(100); {
	case p < 10 || len(w.state.live) == 0:
		return &after, w.bulk(&after)
	case p < 24:
		v := randBytes(rng, rng.IntN(400))
		if rng.IntN(3) == 0 {
			v = randBytes(rng, 600+rng.IntN(20000))
		}
		after.live[key] = v
		return &after, w.db.Put([]byte(key), v)
	case p < 28:
		delete(after.live, key)
		return &after, w.db.Delete([]byte(key))
	case p < 38:
		return w.blobWrite(key, &after)
	case p < 52 && len(missing) > 0:
		name := missing[rng.IntN(len(missing))]
		after.snaps[name] = after.live
		info, err := w.db.Snapshot(name)
		if err == nil {
			w.created[name] = info.Created
		}
		return &after, err
	case p < 64 && len(existing) > 0:
		name := existing[rng.IntN(len(existing))]
		delete(after.snaps, name)
		err := w.db.DeleteSnapshot(name)
		if err == nil {
			delete(w.created, name)
		}
		return &after, err
	case p < 72 && len(existing) > 0:
		name := existing[rng.IntN(len(existing))]
		after.live = maps.Clone(after.snaps[name])
		return &after, w.db.Restore(name)
	case p < 80:
		src := fmt.Sprintf("k%d", rng.IntN(4))
		if len(existing) > 0 && rng.IntN(2) == 0 {
			name := existing[rng.IntN(len(existing))]
			v, ok := after.snaps[name][src]
			if !ok {
				return nil, nil
			}
			after.live[key] = v
			return &after, w.db.CloneFrom(name, []byte(src), []byte(key))
		}
		v, ok := after.live[src]
		if !ok {
			return nil, nil
		}
		after.live[key] = v
		return &after, w.db.Clone([]byte(src), []byte(key))
	case p < 92:
		return nil, w.db.Checkpoint()
	}
	err := w.db.Close()
	w.db = nil
	if err == nil {
		w.db, err = cowdb.Open("/db", snapCrashOpts(w.fs))
	}
	return nil, err
}

// bulk rewrites (or deletes) a random run of up to a third of the bulk
// keys in one transaction; the first one writes them all.
func (w *snapCrashWorkload) bulk(after *snapCrashState) error {
	rng := w.rng
	lo := rng.IntN(snapCrashBulk)
	hi := min(snapCrashBulk, lo+1+rng.IntN(snapCrashBulk/3))
	if len(w.state.live) == 0 {
		lo, hi = 0, snapCrashBulk
	}
	del := rng.IntN(5) == 0
	seed := rng.Uint64()
	return w.db.Update(func(tx *cowdb.Tx) error {
		vr := rand.New(rand.NewPCG(seed, 3)) // Update may run fn more than once
		for i := lo; i < hi; i++ {
			k := fmt.Sprintf("b/%04d", i)
			if del {
				delete(after.live, k)
				if err := tx.Delete([]byte(k)); err != nil {
					return err
				}
				continue
			}
			v := randBytes(vr, 16+vr.IntN(48))
			after.live[k] = v
			if err := tx.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// blobWrite writes into key as a blob (creating it first if absent, as a
// call of its own).
func (w *snapCrashWorkload) blobWrite(key string, after *snapCrashState) (*snapCrashState, error) {
	if _, ok := w.state.live[key]; !ok {
		after.live[key] = []byte{}
		b, err := w.db.CreateBlob([]byte(key))
		if err == nil {
			b.Close()
		}
		return after, err
	}
	b, err := w.db.OpenBlob([]byte(key))
	if err != nil {
		return nil, err
	}
	defer b.Close()
	m := blobModel(bytes.Clone(w.state.live[key]))
	var off int64
	var data []byte
	if w.rng.IntN(2) == 0 {
		off, data = w.rng.Int64N(16)*4096, randBytes(w.rng, (1+w.rng.IntN(4))*4096)
	} else {
		off, data = w.rng.Int64N(int64(len(m))+5000), randBytes(w.rng, 1+w.rng.IntN(10000))
	}
	m.writeAt(data, off)
	after.live[key] = m
	_, err = b.WriteAt(data, off)
	return after, err
}

// TestSnapshotCrash crashes the snapshot workload at enumerated points
// (every point with -long; by default an even spread), with random
// power-loss outcomes, and sometimes crashes the recovery too. After
// recovery the store must hold exactly the acknowledged state, or the
// state the call in flight would have left (snapshots present or absent
// as acknowledged, each with its contents and creation time); the drops
// of deleted snapshots and replaced roots must resume and finish; the
// durable image must keep the DESIGN §6 invariant; and deleting every
// snapshot and key must leave a new store's committed blocks, no more.
func TestSnapshotCrash(t *testing.T) {
	seeds, nOps, points := 2, 40, 60
	switch {
	case *long:
		seeds, nOps, points = 6, 60, 1<<30
	case raceEnabled():
		seeds, points = 1, 8
	}
	for s := range seeds {
		seed := uint64(s + 1)
		fs := vfs.NewMem()
		w, _, err := runSnapCrashWorkload(fs, seed, nOps)
		if err != nil {
			t.Fatalf("seed %d without crash: %v", seed, err)
		}
		total := fs.Ops()
		t.Logf("seed %d: %d file operations, %d snapshots at the end", seed, total, len(w.state.snaps))
		step := max(1, total/int64(points))
		rng := rand.New(rand.NewPCG(seed, 43))
		for at := rng.Int64N(step); at <= total; at += step {
			rc := int64(-1)
			if rng.IntN(3) == 0 {
				rc = rng.Int64N(80)
			}
			snapCrashCase(t, seed, nOps, at, rc)
		}
	}
}

// snapCrashCase runs the workload with a crash after crashAt file
// operations, crashes the recovery after recoveryCrash operations if that
// is not negative, and checks what reopening finds.
func snapCrashCase(t *testing.T, seed uint64, nOps int, crashAt, recoveryCrash int64) {
	t.Helper()
	fs := vfs.NewMem()
	fs.CrashAfter(crashAt)
	w, after, werr := runSnapCrashWorkload(fs, seed, nOps)
	fs.Crash(int64(seed) + crashAt)
	if recoveryCrash >= 0 {
		fs.CrashAfter(recoveryCrash)
		if db, err := cowdb.Open("/db", snapCrashOpts(fs)); err == nil {
			waitDrops(db) // fails when the crash comes
			db.Close()
		}
		fs.Crash(int64(seed) + crashAt + 1)
	}
	repro := fmt.Sprintf("seed %d, %d ops, crash after %d file ops, recovery crash %d (workload error: %v)",
		seed, nOps, crashAt, recoveryCrash, werr)
	verifySnapRecovered(t, fs, w.state, after, w.created, repro)
}

// verifySnapRecovered reopens the store on fs and requires it to hold
// state, or after if not nil (the call in flight applied), with every
// acknowledged snapshot created when Snapshot said; then that the drops
// finish, the durable image keeps the DESIGN §6 invariant, and emptying
// the store leaves no block leaked.
func verifySnapRecovered(t *testing.T, fs *vfs.MemFS, state snapCrashState, after *snapCrashState, created map[string]time.Time, repro string) {
	t.Helper()
	db, err := cowdb.Open("/db", snapCrashOpts(fs))
	if err != nil {
		t.Fatalf("%s: reopen: %v", repro, err)
	}
	defer db.Close()
	got, gotCreated, err := readSnapCrashState(db)
	if err != nil {
		t.Fatalf("%s: %v", repro, err)
	}
	if !got.equal(state) && (after == nil || !got.equal(*after)) {
		msg := state.describe(got)
		if after != nil {
			msg += "; against the state the call in flight would leave: " + after.describe(got)
		}
		t.Fatalf("%s: recovered state: %s", repro, msg)
	}
	for n, c := range created {
		if g, ok := gotCreated[n]; ok && !g.Equal(c) {
			t.Fatalf("%s: snapshot %s created %v, Snapshot said %v", repro, n, g, c)
		}
	}
	if err := waitDrops(db); err != nil {
		t.Fatalf("%s: drops after recovery: %v", repro, err)
	}
	if err := db.Checkpoint(); err != nil {
		t.Fatalf("%s: %v", repro, err)
	}
	if err := cowdb.CheckPersisted(fs.CloneDurable(), "/db"); err != nil {
		t.Fatalf("%s: invariant after the drops: %v", repro, err)
	}
	if err := emptyStore(db); err != nil {
		t.Fatalf("%s: emptying: %v", repro, err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("%s: Close: %v", repro, err)
	}
	if err := cowdb.CheckPersisted(fs, "/db"); err != nil {
		t.Fatalf("%s: invariant after emptying: %v", repro, err)
	}
	if err := checkEmptied(fs, snapCrashOpts(fs)); err != nil {
		t.Fatalf("%s: %v", repro, err)
	}
}

// readSnapCrashState reads the live store and every snapshot, and when
// each snapshot was created.
func readSnapCrashState(db *cowdb.DB) (snapCrashState, map[string]time.Time, error) {
	s := snapCrashState{snaps: map[string]map[string][]byte{}}
	var err error
	if s.live, err = readItems(db.Scan(nil, nil)); err != nil {
		return s, nil, fmt.Errorf("live store: %w", err)
	}
	infos, err := db.Snapshots()
	if err != nil {
		return s, nil, err
	}
	created := map[string]time.Time{}
	for _, info := range infos {
		created[info.Name] = info.Created
		h, err := db.OpenSnapshot(info.Name)
		if err != nil {
			return s, nil, err
		}
		s.snaps[info.Name], err = readItems(h.Scan(nil, nil))
		h.Close()
		if err != nil {
			return s, nil, fmt.Errorf("snapshot %s: %w", info.Name, err)
		}
	}
	return s, created, nil
}

// readItems returns every key and value items yields.
func readItems(items func(func(*cowdb.Item, error) bool)) (map[string][]byte, error) {
	m := map[string][]byte{}
	for it, err := range items {
		if err != nil {
			return nil, err
		}
		v, err := it.Value()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", it.Key, err)
		}
		m[string(it.Key)] = v
	}
	return m, nil
}

// TestSnapshotCrashDuringRecovery crashes the recovery of three images
// after each of its file operations in turn (an even spread by default,
// every one with -long), then recovers for good: everything in them was
// acknowledged, so the state must be exactly the workload's, the drops
// must finish and no block may leak. The images are of one store: just
// after a snapshot of 6000 keys is deleted (its drop some two dozen
// steps, not yet begun unless a background checkpoint wrote its tree);
// just after the next checkpoint (the drop resumes from the catalog,
// unless background steps already ran); and a few calls later, its log
// holding past the checkpoint drop steps, a Snapshot, a Restore and clones
// to replay. What each recovery had to do is logged: the background makes
// it vary from run to run.
func TestSnapshotCrashDuringRecovery(t *testing.T) {
	fs := vfs.NewMem()
	w, _, err := runSnapCrashWorkload(fs, 7, 20)
	if err != nil {
		t.Fatal(err)
	}
	if w.db, err = cowdb.Open("/db", snapCrashOpts(fs)); err != nil {
		t.Fatal(err)
	}
	defer func() { w.db.Close() }()
	state := w.state.clone()
	wide := func(prefix string) func() error {
		return func() error {
			return w.db.Update(func(tx *cowdb.Tx) error {
				rng := rand.New(rand.NewPCG(uint64(len(state.live)), 5))
				for i := range snapCrashBulk {
					k, v := fmt.Sprintf("%s/%04d", prefix, i), randBytes(rng, 16+rng.IntN(48))
					state.live[k] = v
					if err := tx.Put([]byte(k), v); err != nil {
						return err
					}
				}
				return nil
			})
		}
	}
	var images []*vfs.MemFS
	tail := []func() error{
		wide("b"),
		wide("c"),
		func() error { _, err := w.db.Snapshot("r1"); return err },
		wide("b"),
		wide("c"),
		func() error { return w.db.DeleteSnapshot("r1") },
		func() error { images = append(images, fs.CloneDurable()); return nil },
		func() error { return w.db.Checkpoint() }, // the drop's tree is written: its steps may run
		func() error { images = append(images, fs.CloneDurable()); return nil },
		func() error { _, err := w.db.Snapshot("r2"); return err },
		func() error { return w.bulk(&state) },
		func() error { return w.db.Restore("r2") },
		func() error { return w.db.Clone([]byte("b/0001"), []byte("c1")) },
		func() error { return w.db.CloneFrom("r2", []byte("b/0002"), []byte("c2")) },
		func() error { images = append(images, fs.CloneDurable()); return nil },
	}
	var states []snapCrashState
	for i, f := range tail {
		state = state.clone()
		w.state = state
		if err := f(); err != nil {
			t.Fatalf("tail step %d: %v", i, err)
		}
		switch i {
		case 2:
			state.snaps["r1"] = maps.Clone(state.live)
		case 5:
			delete(state.snaps, "r1")
		case 6, 8, 14:
			states = append(states, state.clone())
		case 9:
			state.snaps["r2"] = maps.Clone(state.live)
		case 11:
			state.live = maps.Clone(state.snaps["r2"])
		case 12:
			state.live["c1"] = state.live["b/0001"]
		case 13:
			state.live["c2"] = state.snaps["r2"]["b/0002"]
		}
	}
	for i, image := range images {
		count := image.CloneDurable()
		before := count.Ops()
		db, err := cowdb.Open("/db", snapCrashOpts(count))
		if err != nil {
			t.Fatal(err)
		}
		st := db.Stats()
		if err := waitDrops(db); err != nil {
			t.Fatal(err)
		}
		steps := db.Stats().DropSteps
		db.Close()
		total := count.Ops() - before
		t.Logf("image %d: %d log records replayed, %d drops resumed, %d drop steps; recovery and drops take %d file operations",
			i, st.Replayed, st.Dropping, steps, total)
		step := max(1, total/25)
		switch {
		case *long:
			step = 1
		case raceEnabled():
			step = max(1, total/6)
		}
		for k := int64(0); k < total; k += step {
			try := image.CloneDurable()
			try.CrashAfter(k)
			if db, err := cowdb.Open("/db", snapCrashOpts(try)); err == nil {
				waitDrops(db) // fails when the crash comes
				db.Close()
			}
			try.Crash(k)
			verifySnapRecovered(t, try, states[i], nil, nil, fmt.Sprintf("image %d, recovery crashed after %d of %d file ops", i, k, total))
		}
	}
}

// TestCrashDuringInlineConversion writes, key after key, a small value
// (stored inline) and then into it as a blob, which first turns the
// inline value into a blob holding the same bytes, while another
// goroutine checkpoints in a loop (as the background checkpointer does
// for the drops of deleted snapshots); then it takes the image a crash
// would leave. Every write was acknowledged, so every key must recover
// with all its bytes: a checkpoint whose log position covers a
// conversion must have written its pages back, or the inline bytes read
// back as zeros. The race is narrow: each round is a new store, and
// -long runs many more rounds. (TestSnapshotCrash -long met it.)
func TestCrashDuringInlineConversion(t *testing.T) {
	rounds := 60
	switch {
	case *long:
		rounds = 400
	case raceEnabled():
		rounds = 10
	}
	rng := rand.New(rand.NewPCG(14, 14))
	for round := range rounds {
		fs := vfs.NewMem()
		db, err := cowdb.Open("/db", snapCrashOpts(fs))
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		checkpointer := make(chan error, 1)
		go func() {
			for {
				select {
				case <-stop:
					checkpointer <- nil
					return
				default:
				}
				if err := db.Checkpoint(); err != nil {
					checkpointer <- err
					return
				}
			}
		}()
		want := map[string][]byte{}
		for i := range 20 {
			k := fmt.Sprintf("k%02d", i)
			m := blobModel(randBytes(rng, 332))
			if err := db.Put([]byte(k), m); err != nil {
				t.Fatal(err)
			}
			b, err := db.OpenBlob([]byte(k))
			if err != nil {
				t.Fatal(err)
			}
			data := randBytes(rng, 1000)
			if _, err := b.WriteAt(data, 1157); err != nil {
				t.Fatal(err)
			}
			m.writeAt(data, 1157)
			want[k] = m
		}
		close(stop)
		if err := <-checkpointer; err != nil {
			t.Fatal(err)
		}
		image := fs.CloneDurable()
		db.Close()
		db, err = cowdb.Open("/db", snapCrashOpts(image))
		if err != nil {
			t.Fatal(err)
		}
		got, err := readItems(db.Scan(nil, nil))
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if !bytes.Equal(got[k], want[k]) {
				t.Fatalf("round %d: %s recovered as %d bytes (%x...), first difference at %d; acknowledged %d bytes",
					round, k, len(got[k]), got[k][:min(8, len(got[k]))], firstDiff(got[k], want[k]), len(want[k]))
			}
		}
	}
}

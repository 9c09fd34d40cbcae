package cowdb_test

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cowdb/cowdb"
)

// The snapshot benchmarks (DESIGN §9) measure what the snapshot API
// promises about cost: Snapshot and Restore in O(1) whatever the store
// holds, Clone in O(extents), reclaim after DeleteSnapshot following the
// snapshot's exclusive data, and Diff following the changes rather than
// the store's size. They run on the OS file system in the benchmark's temp
// directory; setup is outside the timer. Run them with an explicit
// -benchtime, e.g.
//
//	go test -run '^$' -bench 'Snapshot$|Restore$' -benchtime=2000x .
//	go test -run '^$' -bench 'CloneBlob' -benchtime=200x .
//	go test -run '^$' -bench 'DeleteSnapshotReclaim' -benchtime=5x .
//	go test -run '^$' -bench 'DiffNodes' -benchtime=20x .
//
// COWDB_BENCH_BIG=1 (or -snap.big) makes the large variants the full
// sizes: 4 GiB stored instead of 1 GiB, a 1 GiB blob to clone, 1M keys to
// diff. The medians (p50-ns) are steadier than ns/op on a shared machine:
// background checkpoints and reclaim land in the tail.

var (
	sbBig         = flag.Bool("snap.big", os.Getenv("COWDB_BENCH_BIG") == "1", "snapshot benchmarks: the full sizes (4 GiB stored, 1 GiB clone, 1M keys); default from COWDB_BENCH_BIG=1")
	sbCloneMiB    = flag.Int("snap.clone-mib", 0, "BenchmarkCloneBlob: size of the cloned blob in MiB (default 256, 1024 under -snap.big)")
	sbCloneHoles  = flag.Int("snap.clone-holes", 500, "BenchmarkCloneBlob: 4 KiB overwrites fragmenting the blob, each adding two extent records")
	sbDiffKeys    = flag.Int("snap.diff-keys", 0, "BenchmarkDiffNodes: keys in the store (default 200000, 1000000 under -snap.big)")
	sbDiffChanged = flag.Int("snap.diff-changed", 100, "BenchmarkDiffNodes: keys changed between the snapshot and the live store")
)

const (
	sbBlobSize = 64 << 20 // the blobs the stored data is made of
	sbPile     = 100      // snapshots kept before the benchmark deletes them
	// sbRecordBlocks is cowio.ExtentRecordMaxBlocks: one extent record
	// of a blob's mapping names at most this many blocks, so a blob of n
	// contiguous blocks has at least n/64 records.
	sbRecordBlocks = 64
)

// sbMiB names a size in whole GiB, or else MiB, for benchmark names.
func sbMiB(n int64) string {
	if n >= 1<<30 && n%(1<<30) == 0 {
		return fmt.Sprintf("%dGiB", n>>30)
	}
	return fmt.Sprintf("%dMiB", n>>20)
}

// sbSyncName names a sync mode for benchmark names.
func sbSyncName(s cowdb.SyncMode) string {
	if s == cowdb.SyncNever {
		return "never"
	}
	return "always"
}

// sbOpen opens (creating) the store in dir with o's fields and a silent
// logger; the caller closes it.
func sbOpen(b *testing.B, dir string, o cowdb.Options) *cowdb.DB {
	b.Helper()
	o.Logger = slog.New(slog.DiscardHandler)
	db, err := cowdb.Open(dir, &o)
	if err != nil {
		b.Fatal(err)
	}
	return db
}

// sbFill writes total bytes into the store in dir as 64 MiB blobs
// through io.Copy, then syncs, checkpoints and closes it.
func sbFill(b *testing.B, dir string, total int64) {
	b.Helper()
	db := sbOpen(b, dir, cowdb.Options{Sync: cowdb.SyncNever})
	defer db.Close()
	data := randomAligned(rawChunk, 5)
	for i := range total / sbBlobSize {
		blob, err := db.CreateBlob(fmt.Appendf(nil, "blob-%04d", i))
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(blob, &patternReader{data: data, n: sbBlobSize}); err != nil || n != sbBlobSize {
			b.Fatalf("io.Copy: %d of %d bytes: %v", n, sbBlobSize, err)
		}
		if err := blob.Close(); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := db.Checkpoint(); err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
}

// sbWaitReclaimed checkpoints until no root is being dropped and done (if
// set) holds, and returns how many checkpoints it took. done sees the
// Stats of every round. With a kick key it also puts an empty value there
// each round: a write wakes the checkpointer, which runs the drop steps,
// instead of leaving them to its next tick (a second). It fails b if the
// store makes no progress (drop steps, roots dropping, free blocks) over
// many rounds.
func sbWaitReclaimed(b *testing.B, db *cowdb.DB, kick []byte, done func(cowdb.Stats) bool) int {
	b.Helper()
	const maxStall = 20000 // rounds of at least 1ms without progress
	st := db.Stats()
	for rounds, stall := 0, 0; ; rounds++ {
		if ok := done == nil || done(st); ok && st.Dropping == 0 {
			return rounds
		}
		if kick != nil {
			if err := db.Put(kick, nil); err != nil {
				b.Fatal(err)
			}
		}
		if err := db.Checkpoint(); err != nil {
			b.Fatal(err)
		}
		next := db.Stats()
		if next.DropSteps != st.DropSteps || next.Dropping != st.Dropping || next.FreeBlocks != st.FreeBlocks {
			stall = 0
		} else if stall++; stall > maxStall {
			b.Fatalf("reclaim makes no progress: %d dropping, %d free, %d busy blocks, %d drop steps", next.Dropping, next.FreeBlocks, next.BusyBlocks, next.DropSteps)
		} else {
			time.Sleep(time.Millisecond)
		}
		st = next
	}
}

// sbStoredSizes are the stored totals of BenchmarkSnapshot and
// BenchmarkRestore: small, then large.
func sbStoredSizes() []int64 {
	if *sbBig {
		return []int64{256 << 20, 4 << 30}
	}
	return []int64{256 << 20, 1 << 30}
}

// sbRootOp runs one of BenchmarkSnapshot and BenchmarkRestore: for
// each stored size (filled once) and sync mode, a sub-benchmark timing op
// alone, with one Put between ops (untimed) so each op sees a new state.
// setup and tidy (every sbPile ops) run untimed. Besides ns/op it reports
// latency percentiles, and the large size its ns/op and median over the
// small one's in the same mode (x-256MiB, p50-x-256MiB), which O(1) keeps
// near 1. The background work each op leaves (a checkpoint, reclaim steps)
// overlaps later ops and shows in the tail and so in ns/op; the median is
// the op's own cost. bg-cp/op counts the background checkpoints that
// finished while an op ran.
func sbRootOp(b *testing.B, setup func(*testing.B, *cowdb.DB), op func(db *cowdb.DB, i int) error, tidy func(*testing.B, *cowdb.DB)) {
	sizes := sbStoredSizes()
	type run struct {
		size int64
		mode cowdb.SyncMode
	}
	results := map[run][2]float64{} // ns/op, p50
	for _, size := range sizes {
		dir := filepath.Join(b.TempDir(), "db")
		filled := false
		for _, mode := range []cowdb.SyncMode{cowdb.SyncNever, cowdb.SyncAlways} {
			b.Run(fmt.Sprintf("stored=%s/sync=%s", sbMiB(size), sbSyncName(mode)), func(b *testing.B) {
				if !filled {
					sbFill(b, dir, size)
					filled = true
				}
				db := sbOpen(b, dir, cowdb.Options{Sync: mode})
				defer func() {
					if err := db.Close(); err != nil {
						b.Error(err)
					}
				}()
				setup(b, db)
				var val [8]byte
				var lat []time.Duration
				ops, cpBefore, cpDuring := 0, int64(0), int64(0)
				for b.Loop() {
					b.StopTimer()
					if ops > 0 {
						cpDuring += db.Stats().Checkpoints - cpBefore
					}
					binary.BigEndian.PutUint64(val[:], uint64(ops))
					if err := db.Put([]byte("tick"), val[:]); err != nil {
						b.Fatal(err)
					}
					if ops > 0 && ops%sbPile == 0 {
						tidy(b, db)
					}
					cpBefore = db.Stats().Checkpoints
					b.StartTimer()
					t := time.Now()
					if err := op(db, ops); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t))
					ops++
				}
				b.StopTimer()
				cpDuring += db.Stats().Checkpoints - cpBefore
				b.ReportMetric(float64(cpDuring)/float64(ops), "bg-cp/op")
				got := [2]float64{float64(b.Elapsed().Nanoseconds()) / float64(ops), sbReportLatency(b, lat)}
				results[run{size, mode}] = got
				if small, ok := results[run{sizes[0], mode}]; size != sizes[0] && ok {
					b.ReportMetric(got[0]/small[0], "x-"+sbMiB(sizes[0]))
					b.ReportMetric(got[1]/small[1], "p50-x-"+sbMiB(sizes[0]))
				}
				tidy(b, db)
			})
		}
	}
}

// sbReportLatency reports the median, 99th percentile and largest of
// the ops' latencies, and returns the median: a background checkpoint or
// reclaim that overlaps an op shows in the tail, the op's own cost in the
// median.
func sbReportLatency(b *testing.B, lat []time.Duration) float64 {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
	return float64(lat[len(lat)/2].Nanoseconds())
}

// sbDeleteAll deletes every snapshot and waits until their roots are
// reclaimed.
func sbDeleteAll(b *testing.B, db *cowdb.DB) {
	b.Helper()
	infos, err := db.Snapshots()
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range infos {
		if err := db.DeleteSnapshot(s.Name); err != nil {
			b.Fatal(err)
		}
	}
	sbWaitReclaimed(b, db, []byte("kick"), nil)
}

// BenchmarkSnapshot: one op is a Snapshot of a store holding 256 MiB, or
// 1 GiB (4 GiB under COWDB_BENCH_BIG=1), of blobs, under SyncNever and
// SyncAlways (where it is durable on return: one log flush). A Put before
// each op changes the state; every 100 snapshots are deleted and reclaimed
// untimed. O(1): the large size's x-256MiB and p50-x-256MiB metrics (its
// ns/op and median over the small size's) stay near 1.
func BenchmarkSnapshot(b *testing.B) {
	sbRootOp(b, func(*testing.B, *cowdb.DB) {}, func(db *cowdb.DB, i int) error {
		_, err := db.Snapshot(fmt.Sprintf("s%d", i))
		return err
	}, sbDeleteAll)
}

// BenchmarkRestore: one op is a Restore of the snapshot "base", taken
// after the store was filled as in BenchmarkSnapshot, with a Put before
// each op so the live root it replaces differs. Each Restore leaves the
// replaced root to the background reclaim; every 100 ops the benchmark
// waits, untimed, for it to finish.
func BenchmarkRestore(b *testing.B) {
	sbRootOp(b, func(b *testing.B, db *cowdb.DB) {
		sbDeleteAll(b, db) // the other sync mode's
		if _, err := db.Snapshot("base"); err != nil {
			b.Fatal(err)
		}
	}, func(db *cowdb.DB, _ int) error {
		return db.Restore("base")
	}, func(b *testing.B, db *cowdb.DB) {
		sbWaitReclaimed(b, db, []byte("kick"), nil)
	})
}

// BenchmarkCloneBlob: one op is a Clone of a blob of -snap.clone-mib MiB
// (256 by default) to a new key; the previous clone is deleted untimed
// first. The blob is written sequentially (layout=sequential: one extent
// record per 64 blocks, the most a record names) or then fragmented by
// -snap.clone-holes 4 KiB overwrites (layout=fragmented), each in the
// middle of its own record, splitting it in three. No API counts a blob's
// extents, so "extents" is that construction's count (a few more where an
// allocation group boundary splits a run); ns/extent and p50-ns/extent are
// ns/op and the median over it, about the same for both layouts if Clone
// is O(extents). bg-cp/op counts the background checkpoints that finished
// during a Clone: each clone and each delete dirties a leaf per few
// records, and a checkpoint starts once dirty nodes fill CacheSize.
func BenchmarkCloneBlob(b *testing.B) {
	size := int64(*sbCloneMiB) << 20
	if size == 0 {
		size = 256 << 20
		if *sbBig {
			size = 1 << 30
		}
	}
	blocks := size / benchBlock
	holes := int64(*sbCloneHoles)
	if size%(sbRecordBlocks*benchBlock) != 0 || holes > blocks/sbRecordBlocks {
		b.Fatalf("-snap.clone-mib=%d, -snap.clone-holes=%d: the size must be a multiple of 256 KiB holding a record per hole", size>>20, holes)
	}
	for _, frag := range []bool{false, true} {
		layout, extents := "sequential", blocks/sbRecordBlocks
		if frag {
			layout, extents = "fragmented", extents+2*holes
		}
		for _, mode := range []cowdb.SyncMode{cowdb.SyncNever, cowdb.SyncAlways} {
			name := fmt.Sprintf("size=%s/layout=%s/sync=%s", sbMiB(size), layout, sbSyncName(mode))
			b.Run(name, func(b *testing.B) {
				sbClone(b, size, frag, holes, mode, extents)
			})
		}
	}
}

func sbClone(b *testing.B, size int64, frag bool, holes int64, mode cowdb.SyncMode, extents int64) {
	dir := filepath.Join(b.TempDir(), "db")
	db := sbOpen(b, dir, cowdb.Options{Sync: cowdb.SyncNever})
	data := randomAligned(rawChunk, 6)
	blob, err := db.CreateBlob([]byte("src"))
	if err != nil {
		b.Fatal(err)
	}
	if n, err := io.Copy(blob, &patternReader{data: data, n: size}); err != nil || n != size {
		b.Fatalf("io.Copy: %d of %d bytes: %v", n, size, err)
	}
	if frag {
		// Overwrite the middle block of holes distinct records.
		r := rand.New(rand.NewPCG(9, 10))
		for _, rec := range r.Perm(int(size / (sbRecordBlocks * benchBlock)))[:holes] {
			off := (int64(rec)*sbRecordBlocks + sbRecordBlocks/2) * benchBlock
			if _, err := blob.WriteAt(data[benchBlock:2*benchBlock], off); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := blob.Close(); err != nil {
		b.Fatal(err)
	}
	if err := db.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := db.Checkpoint(); err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	db = sbOpen(b, dir, cowdb.Options{Sync: mode})
	defer db.Close()

	src, dst := []byte("src"), []byte("dst")
	var lat []time.Duration
	ops, cpBefore, cpDuring := 0, db.Stats().Checkpoints, int64(0)
	for b.Loop() {
		if ops > 0 {
			b.StopTimer()
			cpDuring += db.Stats().Checkpoints - cpBefore
			if err := db.Delete(dst); err != nil {
				b.Fatal(err)
			}
			cpBefore = db.Stats().Checkpoints
			b.StartTimer()
		}
		t := time.Now()
		if err := db.Clone(src, dst); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
		ops++
	}
	b.StopTimer()
	cpDuring += db.Stats().Checkpoints - cpBefore
	b.ReportMetric(float64(cpDuring)/float64(ops), "bg-cp/op")
	p50 := sbReportLatency(b, lat)
	b.ReportMetric(float64(extents), "extents")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops)/float64(extents), "ns/extent")
	b.ReportMetric(p50/float64(extents), "p50-ns/extent")
}

// BenchmarkDeleteSnapshotReclaim: each op takes a snapshot of a store
// holding one 256 MiB blob, overwrites the first X MiB of the blob in
// 1 MiB writes (so the snapshot alone holds X MiB of data) and checkpoints,
// untimed; then it times DeleteSnapshot until no root is dropping and
// FreeBlocks has grown by the X MiB, calling Checkpoint in the loop. The
// figure is MB/s of exclusive bytes reclaimed, and ms/op the latency from
// DeleteSnapshot to reusable space, of which ms-to-first-step passed
// before the loop saw a drop step. The checkpointer runs drop steps when a
// write kicks it or at its tick (every second): under wake=tick the loop
// only checkpoints, as an application that waits would; under wake=put it
// also Puts an empty value each round, which kicks the checkpointer, so
// the figure is the reclaim's own time.
func BenchmarkDeleteSnapshotReclaim(b *testing.B) {
	for _, kick := range []bool{false, true} {
		for _, x := range []int64{16, 64, 256} {
			name := fmt.Sprintf("exclusive=%dMiB/wake=tick", x)
			if kick {
				name = fmt.Sprintf("exclusive=%dMiB/wake=put", x)
			}
			b.Run(name, func(b *testing.B) { sbReclaim(b, x<<20, kick) })
		}
	}
}

func sbReclaim(b *testing.B, excl int64, kick bool) {
	const blobSize = 256 << 20
	const chunk = 1 << 20
	dir := filepath.Join(b.TempDir(), "db")
	db := sbOpen(b, dir, cowdb.Options{})
	defer db.Close()
	data := randomAligned(rawChunk, 7)
	blob, err := db.CreateBlob([]byte("data"))
	if err != nil {
		b.Fatal(err)
	}
	defer blob.Close()
	if n, err := io.Copy(blob, &patternReader{data: data, n: blobSize}); err != nil || n != blobSize {
		b.Fatalf("io.Copy: %d of %d bytes: %v", n, blobSize, err)
	}
	if err := blob.Sync(); err != nil {
		b.Fatal(err)
	}
	ops, checkpoints, steps := 0, 0, int64(0)
	var untilStep time.Duration
	for b.Loop() {
		b.StopTimer()
		if _, err := db.Snapshot("s"); err != nil {
			b.Fatal(err)
		}
		for off := int64(0); off < excl; off += chunk {
			p := data[(int64(ops)*chunk+off)%rawChunk:][:chunk]
			if _, err := blob.WriteAt(p, off); err != nil {
				b.Fatal(err)
			}
		}
		if err := blob.Sync(); err != nil {
			b.Fatal(err)
		}
		// Two checkpoints: the second frees what the first made busy.
		for range 2 {
			if err := db.Checkpoint(); err != nil {
				b.Fatal(err)
			}
		}
		st0 := db.Stats()
		want := st0.FreeBlocks + excl/int64(st0.BlockSize)
		b.StartTimer()
		if err := db.DeleteSnapshot("s"); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		var firstStep time.Time
		var kickKey []byte
		if kick {
			kickKey = []byte("kick")
		}
		checkpoints += sbWaitReclaimed(b, db, kickKey, func(st cowdb.Stats) bool {
			if firstStep.IsZero() && st.DropSteps > st0.DropSteps {
				firstStep = time.Now()
			}
			return st.FreeBlocks >= want
		})
		b.StopTimer()
		untilStep += firstStep.Sub(start)
		steps += db.Stats().DropSteps - st0.DropSteps
		ops++
		b.StartTimer() // b.Loop wants it running
	}
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(excl)*float64(ops)/1e6/secs, "MB/s")
	b.ReportMetric(secs*1e3/float64(ops), "ms/op")
	b.ReportMetric(float64(checkpoints)/float64(ops), "checkpoints/op")
	b.ReportMetric(float64(steps)/float64(ops), "drop-steps/op")
	b.ReportMetric(untilStep.Seconds()*1e3/float64(ops), "ms-to-first-step")
}

// BenchmarkDiffNodes: a store of -snap.diff-keys keys (200k by default;
// 16-byte keys, 128-byte values), a snapshot, then -snap.diff-changed
// (100) random keys changed; one op is a full Diff(snapshot, live),
// which must yield exactly the changed keys. Each op re-takes the snapshot
// and changes other keys, untimed. Under cache=cold the store is reopened
// with the smallest cache (1 MiB) before the timed Diff, so Stats
// BlockReads counts the nodes it visits; under cache=warm it runs on the
// cache the changes left. reads/changed-key is that count per changed key.
func BenchmarkDiffNodes(b *testing.B) {
	keys := *sbDiffKeys
	if keys == 0 {
		keys = 200_000
		if *sbBig {
			keys = 1_000_000
		}
	}
	changed := *sbDiffChanged
	if keys%1000 != 0 || changed < 1 || changed > keys {
		b.Fatalf("-snap.diff-keys=%d, -snap.diff-changed=%d: keys in thousands, 1 to keys changed", keys, changed)
	}
	dir := filepath.Join(b.TempDir(), "db")
	db := sbOpen(b, dir, cowdb.Options{Sync: cowdb.SyncNever})
	k := make([]byte, 16)
	val := make([]byte, 128)
	for batch := range keys / 1000 {
		err := db.Update(func(tx *cowdb.Tx) error {
			for i := range 1000 {
				if err := tx.Put(benchKey(k, uint64(batch*1000+i+1)), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Checkpoint(); err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	// gen numbers the changes across the sub-benchmarks, so that a key
	// picked again never gets the value it already holds.
	var gen uint64
	for _, cold := range []bool{true, false} {
		name := fmt.Sprintf("keys=%d/cache=warm", keys)
		if cold {
			name = fmt.Sprintf("keys=%d/cache=cold", keys)
		}
		b.Run(name, func(b *testing.B) { sbDiff(b, dir, keys, changed, cold, &gen) })
	}
}

func sbDiff(b *testing.B, dir string, keys, changed int, cold bool, gen *uint64) {
	const minCache = 1 << 20
	open := func(cache int64) *cowdb.DB { return sbOpen(b, dir, cowdb.Options{CacheSize: cache}) }
	db := open(0)
	defer func() { db.Close() }()
	r := rand.New(rand.NewPCG(11, *gen))
	k := make([]byte, 16)
	val := make([]byte, 128)
	var reads int64
	ops := 0
	for b.Loop() {
		b.StopTimer()
		if cold {
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
			db = open(0)
		}
		if err := db.DeleteSnapshot("base"); err != nil && ops > 0 {
			b.Fatal(err)
		}
		// Reclaimed before the snapshot, so the kicks are not changes.
		sbWaitReclaimed(b, db, []byte("kick"), nil)
		if _, err := db.Snapshot("base"); err != nil {
			b.Fatal(err)
		}
		pick := map[uint64]bool{}
		for len(pick) < changed {
			pick[1+r.Uint64N(uint64(keys))] = true
		}
		*gen++
		binary.BigEndian.PutUint64(val, *gen)
		err := db.Update(func(tx *cowdb.Tx) error {
			for n := range pick {
				if err := tx.Put(benchKey(k, n), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := db.Checkpoint(); err != nil {
			b.Fatal(err)
		}
		if cold {
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
			db = open(minCache)
		}
		before := db.Stats().BlockReads
		b.StartTimer()
		n := 0
		for c, err := range db.Diff("base", "") {
			if err != nil {
				b.Fatal(err)
			}
			if c.Kind != cowdb.Modified {
				b.Fatalf("change %v of %x, want %v", c.Kind, c.Key, cowdb.Modified)
			}
			n++
		}
		b.StopTimer()
		if n != changed {
			b.Fatalf("Diff yielded %d changes, want %d", n, changed)
		}
		reads += db.Stats().BlockReads - before
		ops++
		b.StartTimer() // b.Loop wants it running
	}
	b.ReportMetric(float64(reads)/float64(ops), "reads/op")
	b.ReportMetric(float64(reads)/float64(ops*changed), "reads/changed-key")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops*changed), "ns/changed-key")
}

package cowdb_test

import (
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

// The workloads: 16-byte keys, 128-byte values, on the OS file
// system in the test's temp directory (real fdatasync, O_DIRECT where the
// file system has it). Figures are ops/s; run with a small -benchtime on
// a shared machine, e.g.
//
//	go test -run='^$' -bench=. -benchtime=200x .

func benchOpen(b *testing.B) *cowdb.DB {
	b.Helper()
	db, err := cowdb.Open(b.TempDir(), &cowdb.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

func benchKey(k []byte, n uint64) []byte {
	binary.BigEndian.PutUint64(k, n*0x9E3779B97F4A7C15)
	binary.BigEndian.PutUint64(k[8:], n)
	return k
}

// BenchmarkPutBatch1000: one op is an Update of 1,000 puts, durable on
// return; -benchtime=200x is the 200k puts.
func BenchmarkPutBatch1000(b *testing.B) {
	db := benchOpen(b)
	n := putBatches(b, db)
	st := db.Stats()
	b.ReportMetric(float64(st.Checkpoints), "checkpoints")
	b.ReportMetric(st.CheckpointTime.Seconds(), "checkpoint-s")
	b.ReportMetric(float64(st.CheckpointBlocks*int64(st.BlockSize))/float64(n), "cp-bytes/put")
}

// BenchmarkGetRandom: 200k keys loaded in batches, then random gets.
func BenchmarkGetRandom(b *testing.B) {
	db := benchOpen(b)
	const keys = 200_000
	val := make([]byte, 128)
	k := make([]byte, 16)
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
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	gets := 0
	for b.Loop() {
		if _, err := db.Get(benchKey(k, 1+r.Uint64N(keys))); err != nil {
			b.Fatal(err)
		}
		gets++
	}
	b.ReportMetric(float64(gets)/time.Since(start).Seconds(), "gets/s")
	st := db.Stats()
	b.ReportMetric(float64(st.CacheHits)/float64(max(1, st.CacheHits+st.CacheMisses)), "cache-hit-ratio")
	b.ReportMetric(float64(st.BlockReads)/float64(gets), "block-reads/get")
}

// benchPutAlone: each Put commits alone (durable on return) from g
// goroutines at once; concurrent callers share log flushes.
func benchPutAlone(b *testing.B, g int) {
	db := benchOpen(b)
	val := make([]byte, 128)
	var seq uint64
	start := time.Now()
	b.SetParallelism(g) // g × GOMAXPROCS goroutines; see the callers
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	b.RunParallel(func(pb *testing.PB) {
		k := make([]byte, 16)
		for pb.Next() {
			<-mu
			seq++
			n := seq
			mu <- struct{}{}
			if err := db.Put(benchKey(k, n), val); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "puts/s")
}

// BenchmarkPut1: one goroutine, each Put durable alone.
func BenchmarkPut1(b *testing.B) {
	db := benchOpen(b)
	val := make([]byte, 128)
	k := make([]byte, 16)
	var n uint64
	start := time.Now()
	for b.Loop() {
		n++
		if err := db.Put(benchKey(k, n), val); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "puts/s")
}

// BenchmarkPut64: 64 goroutines, each Put durable alone.
func BenchmarkPut64(b *testing.B) {
	benchPutAlone(b, max(1, 64/runtimeProcs()))
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// memStoreWithKeys returns a store on the memory file system holding
// batches×1,000 keys benchKey(1..) with 128-byte values, closed when b ends.
func memStoreWithKeys(b *testing.B, batches int) *cowdb.DB {
	b.Helper()
	db, err := cowdb.Open("/db", &cowdb.Options{FS: vfs.NewMem(), Logger: slog.New(slog.DiscardHandler), GroupSize: 16 << 20, WALSegmentSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	k := make([]byte, 16)
	val := make([]byte, 128)
	for batch := range batches {
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
	return db
}

// BenchmarkGetMem measures the CPU cost of a Get of a cached key, on the
// memory file system so no device time is included.
func BenchmarkGetMem(b *testing.B) {
	db := memStoreWithKeys(b, 20)
	k := make([]byte, 16)
	r := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		if _, err := db.Get(benchKey(k, 1+r.Uint64N(20000))); err != nil {
			b.Fatal(err)
		}
	}
}

// putBatches runs the batch workload: each op is one Update of 1,000 puts
// of 16-byte keys and 128-byte values. It reports puts/s and returns the
// number of puts.
func putBatches(b *testing.B, db *cowdb.DB) uint64 {
	val := make([]byte, 128)
	k := make([]byte, 16)
	var n uint64
	start := time.Now()
	for b.Loop() {
		err := db.Update(func(tx *cowdb.Tx) error {
			for range 1000 {
				n++
				if err := tx.Put(benchKey(k, n), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "puts/s")
	return n
}

// BenchmarkPutBatchMem is BenchmarkPutBatch1000 on the memory file
// system: the CPU cost of the write path without device time.
func BenchmarkPutBatchMem(b *testing.B) {
	db, err := cowdb.Open("/db", &cowdb.Options{FS: vfs.NewMem(), Logger: slog.New(slog.DiscardHandler), GroupSize: 16 << 20, WALSegmentSize: 16 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	putBatches(b, db)
}

// BenchmarkGetMemParallel is BenchmarkGetMem from every P at once: what
// concurrent readers cost each other (the reader registry's mutex).
func BenchmarkGetMemParallel(b *testing.B) {
	db := memStoreWithKeys(b, 20)
	b.RunParallel(func(pb *testing.PB) {
		k := make([]byte, 16)
		r := rand.New(rand.NewPCG(rand.Uint64(), 2))
		for pb.Next() {
			if _, err := db.Get(benchKey(k, 1+r.Uint64N(20000))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

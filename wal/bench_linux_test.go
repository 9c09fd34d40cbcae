//go:build linux

package wal_test

import (
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
	"github.com/cowdb/cowdb/wal"
)

// Figures shared between the sub-benchmarks of BenchmarkCommit, so each
// reports its ratio to the baseline measured in the same run.
var (
	rawLatency     float64 // ns per 4 KiB O_DIRECT pwrite + fdatasync, each to a new block
	rawSameLatency float64 // the same, always rewriting one block
	oneRate        float64 // commits per second with one committer
)

// BenchmarkCommit measures, on the real file system in a temporary
// directory (O_DIRECT where it works): first the raw cost of one 4 KiB
// O_DIRECT pwrite plus fdatasync into a preallocated, zero-filled file,
// then Commit of ~100-byte records with 1, 8 and 64 concurrent committers.
// Each committer run reports commits/s, mean and p99 latency, latency
// relative to the raw write+sync ("lat/raw") and throughput relative to one
// committer ("x1"). Figures are noisy on a shared machine.
func BenchmarkCommit(b *testing.B) {
	b.Run("raw4k", func(b *testing.B) { rawLatency = benchRaw(b, true) })
	b.Run("raw4k-same-block", func(b *testing.B) { rawSameLatency = benchRaw(b, false) })
	for _, c := range []int{1, 8, 64} {
		b.Run(map[int]string{1: "committers=1", 8: "committers=8", 64: "committers=64"}[c], func(b *testing.B) {
			benchCommitters(b, c)
		})
	}
}

// benchRaw measures 4 KiB O_DIRECT pwrite + fdatasync into a preallocated,
// zero-filled file, to successive blocks if advance, else always to block
// 0 (as a single committer mostly does: it rewrites its partial tail
// block), and returns the mean in ns.
func benchRaw(b *testing.B, advance bool) float64 {
	const size = 64 << 20
	f, _, err := vfs.OpenDirect(vfs.OS, filepath.Join(b.TempDir(), "raw"), vfs.Create|vfs.ReadWrite, vfs.DirectIOAuto)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.Fallocate(0, size); err != nil {
		b.Fatal(err)
	}
	zeros := vfs.AlignedBuf(1 << 20)
	for off := int64(0); off < size; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Datasync(); err != nil {
		b.Fatal(err)
	}
	block := vfs.AlignedBuf(vfs.Alignment)
	copy(block, "raw baseline")
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		off := int64(0)
		if advance {
			off = int64(i) * vfs.Alignment % size
		}
		if _, err := f.WriteAt(block, off); err != nil {
			b.Fatal(err)
		}
		if err := f.Datasync(); err != nil {
			b.Fatal(err)
		}
	}
	return float64(time.Since(start).Nanoseconds()) / float64(b.N)
}

func benchCommitters(b *testing.B, committers int) {
	l, err := wal.Open(vfs.OS, filepath.Join(b.TempDir(), "wal"), wal.Options{StoreID: testStore})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if err := l.Replay(0, func(_ format.LSN, _ []byte) error { return nil }); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 100)
	if _, err := l.Commit(payload, 0); err != nil { // creates the segment
		b.Fatal(err)
	}
	before := l.Stats()
	var next atomic.Int64
	lat := make([][]time.Duration, committers)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range committers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if _, err := l.Commit(payload, 0); err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var all []time.Duration
	var sum time.Duration
	for _, ls := range lat {
		all = append(all, ls...)
		for _, d := range ls {
			sum += d
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	mean := float64(sum.Nanoseconds()) / float64(len(all))
	rate := float64(b.N) / elapsed.Seconds()
	after := l.Stats()
	b.ReportMetric(rate, "commits/s")
	b.ReportMetric(mean, "ns/latency")
	b.ReportMetric(float64(all[len(all)*99/100].Nanoseconds()), "ns/p99")
	b.ReportMetric(float64(after.Records-before.Records)/float64(max(1, after.Groups-before.Groups)), "records/group")
	if rawLatency > 0 {
		b.ReportMetric(mean/rawLatency, "lat/raw")
	}
	if rawSameLatency > 0 {
		b.ReportMetric(mean/rawSameLatency, "lat/rawsame")
	}
	if committers == 1 {
		oneRate = rate
	}
	if oneRate > 0 {
		b.ReportMetric(rate/oneRate, "x1")
	}
}

package peers

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The workloads' fixed sizes (issue 5). Each benchmark does a fixed amount
// of work per iteration, independent of b.N, and reports ops/s over the
// timed part only; run with -benchtime=1x (see docs/peers.md).
const (
	keySize   = 16
	valueSize = 128
	loadKeys  = 200_000 // BatchPut and the load of Get
	batchSize = 1_000
	getCount  = 200_000
)

// The durable-alone workloads are bounded by the device's flush rate, so
// their counts are flags: the defaults keep a full run near 5 minutes on
// the reference machine (docs/peers.md).
var (
	alone1Puts  = flag.Int("peers.alone1", 20_000, "puts of BenchmarkPutAlone1, per store")
	alone64Puts = flag.Int("peers.alone64", 100_000, "puts of BenchmarkPutAlone64, per store")
	rawGets     = flag.Int("peers.rawgets", 20_000, "direct 4 KiB reads of BenchmarkGet/raw")
)

// key returns key n: its first 8 bytes scatter consecutive n over the key
// space, so loads insert in random order, as bench_test.go's keys do.
func key(n uint64) []byte {
	k := make([]byte, keySize)
	binary.BigEndian.PutUint64(k, n*0x9E3779B97F4A7C15)
	binary.BigEndian.PutUint64(k[8:], n)
	return k
}

// value returns key n's value: n then a fixed filler, so a get can be
// checked cheaply.
func value(n uint64) []byte {
	v := bytes.Repeat([]byte{0xA5}, valueSize)
	binary.BigEndian.PutUint64(v, n)
	return v
}

// pairs returns keys and values lo..hi-1.
func pairs(lo, hi uint64) (keys, vals [][]byte) {
	for n := lo; n < hi; n++ {
		keys = append(keys, key(n))
		vals = append(vals, value(n))
	}
	return keys, vals
}

// openIn opens p in dir, failing tb on error.
func openIn(tb testing.TB, p peer, dir string) store {
	tb.Helper()
	s, err := p.open(dir)
	if err != nil {
		tb.Fatalf("%s: open: %v", p.name, err)
	}
	return s
}

// load writes keys 1..n in durable batches of batchSize.
func load(tb testing.TB, s store, n uint64) {
	tb.Helper()
	for lo := uint64(1); lo <= n; lo += batchSize {
		keys, vals := pairs(lo, min(lo+batchSize, n+1))
		if err := s.batch(keys, vals); err != nil {
			tb.Fatalf("load: %v", err)
		}
	}
}

// TestStores checks that every keyed adapter stores what it is given and
// keeps it across a reopen: batches, lone puts, overwrites, a missing key.
func TestStores(t *testing.T) {
	for _, p := range peers {
		if !p.keyed {
			continue
		}
		t.Run(p.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openIn(t, p, dir)
			load(t, s, 2_500)
			want := map[uint64][]byte{}
			for n := uint64(1); n <= 2_500; n++ {
				want[n] = value(n)
			}
			for n := uint64(2_000); n < 2_010; n++ {
				want[n] = value(n + 1_000_000)
				if err := s.put(key(n), want[n]); err != nil {
					t.Fatal(err)
				}
			}
			check := func(s store) {
				t.Helper()
				for n, v := range want {
					got, err := s.get(key(n))
					if err != nil || !bytes.Equal(got, v) {
						t.Fatalf("get %d = %x, %v; want %x", n, got, err, v)
					}
				}
				if _, err := s.get(key(9_999_999)); !errors.Is(err, errNotFound) {
					t.Fatalf("get of a missing key: err %v, want errNotFound", err)
				}
			}
			check(s)
			if err := s.close(); err != nil {
				t.Fatal(err)
			}
			s = openIn(t, p, dir)
			defer s.close()
			check(s)
		})
	}
}

// TestDurableModes checks that the peers are opened in their durable mode,
// as far as their options show it: bbolt syncs every commit and badger
// syncs its writes. (pebble's is the pebble.Sync passed on every write,
// and cowdb's the default SyncAlways.)
func TestDurableModes(t *testing.T) {
	b := openIn(t, peer{"bbolt", openBolt, true}, t.TempDir()).(boltStore)
	defer b.close()
	if b.db.NoSync {
		t.Error("bbolt opened with NoSync")
	}
	g := openIn(t, peer{"badger", openBadger, true}, t.TempDir()).(badgerStore)
	defer g.close()
	if !g.db.Opts().SyncWrites {
		t.Error("badger opened without SyncWrites")
	}
}

// TestRawDevice checks that the raw floor really writes what it claims:
// each commit's blocks, read back through O_DIRECT, hold the start of the
// source pattern (the file was filled with that pattern at other offsets,
// so a lost write shows), commits from several goroutines at once
// succeed, and a commit too large for one write is refused.
func TestRawDevice(t *testing.T) {
	dev, err := openRaw(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dev.close()
	dev.next.Store(5) // block 0 already holds the pattern's start
	for _, size := range []int{1, 144, 4096, 4097, 144_000, 100_000} {
		start := uint64(dev.next.Load())
		if err := dev.commit(size); err != nil {
			t.Fatal(err)
		}
		for i := range uint64((size + rawBlock - 1) / rawBlock) {
			b, err := dev.readBlock(start + i)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, dev.src[i*rawBlock:(i+1)*rawBlock]) {
				t.Fatalf("commit of %d bytes: block %d does not hold what was written", size, start+i)
			}
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 10 {
				if err := dev.commit(1 + (g*10+i)*3_000); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := dev.commit(rawMaxWrite + 1); !errors.Is(err, errRawTooLarge) {
		t.Fatalf("oversized commit: err %v, want errRawTooLarge", err)
	}
}

// runPeers runs fn once per iteration for each store, in a fresh
// directory, and reports ops/s and ns/op over the time fn measured. fn
// returns the ops it timed and how long they took.
func runPeers(b *testing.B, fn func(b *testing.B, p peer, dir string) (int, time.Duration)) {
	for _, p := range peers {
		b.Run(p.name, func(b *testing.B) {
			b.StopTimer()
			var ops int
			var took time.Duration
			for range b.N {
				n, d := fn(b, p, b.TempDir())
				ops += n
				took += d
			}
			b.ReportMetric(float64(ops)/took.Seconds(), "ops/s")
			b.ReportMetric(float64(took.Nanoseconds())/float64(ops), "ns/op")
		})
	}
}

// BenchmarkBatchPut is workload 1: 200k puts in durable batches of 1,000,
// into an empty store. raw writes each batch's 144,000 bytes of keys and
// values (36 blocks) and fdatasyncs.
func BenchmarkBatchPut(b *testing.B) {
	runPeers(b, func(b *testing.B, p peer, dir string) (int, time.Duration) {
		s := openIn(b, p, dir)
		defer s.close()
		start := time.Now()
		load(b, s, loadKeys)
		return loadKeys, time.Since(start)
	})
}

// BenchmarkGet is workload 2: 200k keys loaded as in BatchPut, the store
// closed and reopened (its own cache cold, the OS page cache warm), then
// 200k gets of uniformly random keys, each value checked: ops/s is that
// first pass; warm-ops/s is a second pass over the same keys (of the last
// iteration; run with -benchtime=1x). raw does direct (uncached) 4 KiB
// reads at random blocks instead: a cold read's cost.
func BenchmarkGet(b *testing.B) {
	runPeers(b, func(b *testing.B, p peer, dir string) (int, time.Duration) {
		s := openIn(b, p, dir)
		count := getCount
		if p.keyed {
			load(b, s, loadKeys)
			if err := s.close(); err != nil {
				b.Fatal(err)
			}
			s = openIn(b, p, dir)
		} else {
			count = *rawGets
		}
		defer s.close()
		rng := rand.New(rand.NewPCG(1, 2))
		keys := make([][]byte, count)
		for i := range keys {
			keys[i] = key(1 + rng.Uint64N(loadKeys))
		}
		took := getAll(b, s, p.keyed, keys)
		warm := getAll(b, s, p.keyed, keys)
		b.ReportMetric(float64(count)/warm.Seconds(), "warm-ops/s")
		return count, took
	})
}

// getAll gets every key, checking keyed stores' values, and returns the
// time it took.
func getAll(b *testing.B, s store, keyed bool, keys [][]byte) time.Duration {
	start := time.Now()
	for _, k := range keys {
		v, err := s.get(k)
		if err != nil {
			b.Fatalf("get %x: %v", k, err)
		}
		if keyed && !bytes.Equal(v[:8], k[8:]) {
			b.Fatalf("get %x returned the value of another key", k)
		}
	}
	return time.Since(start)
}

// BenchmarkPutAlone1 is workload 3: one goroutine, each put its own
// durable commit. Besides ops/s it reports the mean, median and 99th
// percentile latency of a put.
func BenchmarkPutAlone1(b *testing.B) {
	runPeers(b, func(b *testing.B, p peer, dir string) (int, time.Duration) {
		s := openIn(b, p, dir)
		defer s.close()
		n := *alone1Puts
		lat := make([]time.Duration, n)
		v := value(0)
		start := time.Now()
		for i := range n {
			t0 := time.Now()
			if err := s.put(key(uint64(i+1)), v); err != nil {
				b.Fatal(err)
			}
			lat[i] = time.Since(t0)
		}
		took := time.Since(start)
		slices.Sort(lat)
		b.ReportMetric(float64(took.Microseconds())/float64(n), "mean-µs")
		b.ReportMetric(float64(lat[n/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[n*99/100].Microseconds()), "p99-µs")
		return n, took
	})
}

// BenchmarkPutAlone64 is workload 4: 64 goroutines, each put its own
// durable commit; stores that group commits may share a sync among the
// waiting puts.
func BenchmarkPutAlone64(b *testing.B) {
	runPeers(b, func(b *testing.B, p peer, dir string) (int, time.Duration) {
		s := openIn(b, p, dir)
		defer s.close()
		total := int64(*alone64Puts)
		var next atomic.Int64
		var wg sync.WaitGroup
		v := value(0)
		start := time.Now()
		for range 64 {
			wg.Go(func() {
				for n := next.Add(1); n <= total; n = next.Add(1) {
					if err := s.put(key(uint64(n)), v); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return int(total), time.Since(start)
	})
}

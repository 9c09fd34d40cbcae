package cowio_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cowdb/cowdb/cache"
	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
)

// The benchmarks below run cowio and the raw device side by side in the
// same iterations, alternating, so the ratio they report is fair on a
// machine whose load changes during the run. Keep -benchtime short
// (e.g. -benchtime=10x): the machine is shared, and figures are noisy.

const (
	benchValue  = 32 << 20 // bytes per written value
	benchIOSize = 1 << 20  // the I/O size of both sides
	benchRegion = 64 << 20 // bytes of the file the read benchmarks use
)

// fixedSpace hands out the same extent every time, so every iteration
// rewrites the same preallocated blocks, exactly as the raw side does.
type fixedSpace struct{ start format.Block }

func (s fixedSpace) AllocStaging(n uint64, _ format.Block) ([]extents.Extent, error) {
	return []extents.Extent{{Start: s.start, Len: n}}, nil
}

func (fixedSpace) ReleaseStaging([]extents.Extent) {}

// prepare creates a file of size bytes under dir, written once in full
// and synced, so no timed write allocates or converts file-system extents.
func prepare(b *testing.B, dir string, size int) string {
	name := filepath.Join(dir, "f")
	f, err := vfs.OS.OpenFile(name, vfs.Create|vfs.Direct)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.Fallocate(0, int64(size)); err != nil {
		b.Fatal(err)
	}
	buf := vfs.AlignedBuf(benchIOSize)
	for off := 0; off < size; off += len(buf) {
		if _, err := f.WriteAt(buf, int64(off)); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return name
}

// openRaw opens name with O_DIRECT through unix, bypassing vfs entirely.
func openRaw(b *testing.B, name string) int {
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(fd) })
	return fd
}

// benchWriter opens name through vfs with O_DIRECT and returns a Writer
// over it with the benchmark's I/O size.
func benchWriter(b *testing.B, name string, inFlight int) *cowio.Writer {
	f, err := vfs.OS.OpenFile(name, vfs.ReadWrite|vfs.Direct)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	w, err := cowio.NewWriter(f, bs, fixedSpace{start: 2}, &cowio.Options{IOSize: benchIOSize, InFlight: inFlight})
	if err != nil {
		b.Fatal(err)
	}
	return w
}

// rawWrite writes size bytes from buf (benchIOSize, aligned) at offset base
// of fd in benchIOSize pwrites, from inFlight goroutines at once.
func rawWrite(b *testing.B, fd int, buf [][]byte, base, size int) {
	var wg sync.WaitGroup
	next := make(chan int, size/benchIOSize)
	for off := 0; off < size; off += benchIOSize {
		next <- off
	}
	close(next)
	for g := range buf {
		wg.Go(func() {
			for off := range next {
				if _, err := unix.Pwrite(fd, buf[g], int64(base+off)); err != nil {
					b.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkWriteNew32MiB writes a 32 MiB value with WriteNew (checksum of
// every block, 1 MiB O_DIRECT writes, 4 in flight) and the same bytes with
// raw O_DIRECT pwrites of 1 MiB into a preallocated file, one at a time
// ("raw1") and 4 at a time ("raw4"), in the same iterations. No side syncs.
// The value is either aligned (WriteNew writes from it directly) or not
// (WriteNew copies it through pooled aligned buffers). It reports each
// side's MB/s and the ratios cowio/raw1 and cowio/raw4.
func BenchmarkWriteNew32MiB(b *testing.B) {
	for _, aligned := range []bool{true, false} {
		name := "unaligned-source"
		if aligned {
			name = "aligned-source"
		}
		b.Run(name, func(b *testing.B) { benchWriteNew(b, aligned) })
	}
}

func benchWriteNew(b *testing.B, aligned bool) {
	const inFlight = 4
	w := benchWriter(b, prepare(b, b.TempDir(), benchValue+2*bs), inFlight)
	fd := openRaw(b, prepare(b, b.TempDir(), benchValue+2*bs))
	p := placed(randBytes(rand.New(rand.NewPCG(1, 2)), benchValue), aligned)
	bufs := make([][]byte, inFlight)
	for i := range bufs {
		bufs[i] = vfs.AlignedBuf(benchIOSize)
		copy(bufs[i], p)
	}
	var tCow, tRaw1, tRaw4 time.Duration
	b.ResetTimer()
	sides := []func(){
		func() {
			start := time.Now()
			if _, err := w.WriteNew(p, 2); err != nil {
				b.Fatal(err)
			}
			tCow += time.Since(start)
		},
		func() {
			start := time.Now()
			rawWrite(b, fd, bufs[:1], 2*bs, benchValue)
			tRaw1 += time.Since(start)
		},
		func() {
			start := time.Now()
			rawWrite(b, fd, bufs, 2*bs, benchValue)
			tRaw4 += time.Since(start)
		},
	}
	for i := range b.N {
		// Rotate the order, so no side always runs first after the others.
		for j := range sides {
			sides[(i+j)%len(sides)]()
		}
	}
	b.StopTimer()
	mbps := func(d time.Duration) float64 { return float64(b.N) * benchValue / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(tCow), "cowio-MB/s")
	b.ReportMetric(mbps(tRaw1), "raw1-MB/s")
	b.ReportMetric(mbps(tRaw4), "raw4-MB/s")
	b.ReportMetric(tRaw1.Seconds()/tCow.Seconds(), "cowio/raw1")
	b.ReportMetric(tRaw4.Seconds()/tCow.Seconds(), "cowio/raw4")
}

// BenchmarkReadAt4K reads random 4 KiB blocks of a 64 MiB value with
// ReadAt (aligned destination, checksums verified) and with raw O_DIRECT
// pread of the same blocks of the same file, alternating, and reports each
// side's reads per second and the ratio cowio/raw.
func BenchmarkReadAt4K(b *testing.B) {
	name := prepare(b, b.TempDir(), benchRegion+2*bs)
	w := benchWriter(b, name, cowio.InFlightDefault)
	m, err := w.WriteNew(randBytes(rand.New(rand.NewPCG(3, 4)), benchRegion), 2)
	if err != nil {
		b.Fatal(err)
	}
	fd := openRaw(b, name)
	p, raw := vfs.AlignedBuf(bs), vfs.AlignedBuf(bs)
	rng := rand.New(rand.NewPCG(5, 6))
	var tCow, tRaw time.Duration
	b.ResetTimer()
	for range b.N {
		blk := rng.IntN(benchRegion / bs)
		start := time.Now()
		if _, err := w.ReadAt(m, benchRegion, p, int64(blk)*bs); err != nil {
			b.Fatal(err)
		}
		tCow += time.Since(start)
		blk = rng.IntN(benchRegion / bs)
		start = time.Now()
		if _, err := unix.Pread(fd, raw, int64(2+blk)*bs); err != nil {
			b.Fatal(err)
		}
		tRaw += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/tCow.Seconds(), "cowio-reads/s")
	b.ReportMetric(float64(b.N)/tRaw.Seconds(), "raw-reads/s")
	b.ReportMetric(tRaw.Seconds()/tCow.Seconds(), "cowio/raw")
}

// BenchmarkReadAt4KCached reads random 4 KiB blocks of an 8 MiB hot set
// of a 64 MiB value, alternating between a Writer with a 32 MiB cache
// holding the hot set ("hot": each read a cache hit, copied out) and one
// without a cache ("cold": each read an O_DIRECT pread, verified), over
// the same file. It reports each side's ns per read, the ratio cold/hot,
// and the hot side's hit rate.
func BenchmarkReadAt4KCached(b *testing.B) {
	const hot = 8 << 20
	name := prepare(b, b.TempDir(), benchRegion+2*bs)
	cold := benchWriter(b, name, cowio.InFlightDefault)
	m, err := cold.WriteNew(randBytes(rand.New(rand.NewPCG(3, 4)), benchRegion), 2)
	if err != nil {
		b.Fatal(err)
	}
	c, err := cache.New(&cache.Options{MaxBytes: 32 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	f, err := vfs.OS.OpenFile(name, vfs.ReadWrite|vfs.Direct)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	warm, err := cowio.NewWriter(f, bs, fixedSpace{start: 2}, &cowio.Options{Cache: c})
	if err != nil {
		b.Fatal(err)
	}
	p := vfs.AlignedBuf(bs)
	for range 3 { // the cache may drop a Set: offer every block again
		for blk := range hot / bs {
			if _, err := warm.ReadAt(m, benchRegion, p, int64(blk)*bs); err != nil {
				b.Fatal(err)
			}
		}
		c.Wait()
	}
	rng := rand.New(rand.NewPCG(5, 6))
	before := warm.Stats()
	var tHot, tCold time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := warm.ReadAt(m, benchRegion, p, int64(rng.IntN(hot/bs))*bs); err != nil {
			b.Fatal(err)
		}
		tHot += time.Since(start)
		start = time.Now()
		if _, err := cold.ReadAt(m, benchRegion, p, int64(rng.IntN(hot/bs))*bs); err != nil {
			b.Fatal(err)
		}
		tCold += time.Since(start)
	}
	b.StopTimer()
	s := warm.Stats()
	b.ReportMetric(float64(tHot.Nanoseconds())/float64(b.N), "hot-ns/read")
	b.ReportMetric(float64(tCold.Nanoseconds())/float64(b.N), "cold-ns/read")
	b.ReportMetric(tCold.Seconds()/tHot.Seconds(), "cold/hot")
	b.ReportMetric(float64(s.CacheHits-before.CacheHits)/float64(b.N), "hit-rate")
}

// benchBlob is the size of the blob the random-overwrite benchmark
// rewrites; its data file has room for twice as much, for the new blocks
// and the CoW extent-size hint's reservations.
const benchBlob = 256 << 20

// benchSpace is a cheap near-goal allocator for the benchmarks: it tries
// a short window at the goal, then sweeps a cursor through the file, so an
// allocation costs O(1) amortized and the figures measure the data path,
// not a test allocator. Freed blocks are free again at once.
type benchSpace struct {
	mu     sync.Mutex
	free   []bool
	cursor int
}

func newBenchSpace(blocks int, used int) *benchSpace {
	s := &benchSpace{free: make([]bool, blocks), cursor: used}
	for b := used; b < blocks; b++ {
		s.free[b] = true
	}
	return s
}

func (s *benchSpace) AllocStaging(n uint64, goal format.Block) ([]extents.Extent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []extents.Extent
	take := func(b int) {
		s.free[b] = false
		if k := len(out) - 1; k >= 0 && out[k].End() == format.Block(b) {
			out[k].Len++
			return
		}
		out = append(out, extents.Extent{Start: format.Block(b), Len: 1})
	}
	left := int(n)
	for b := int(goal); b > 1 && b < len(s.free) && b < int(goal)+64 && left > 0; b++ {
		if s.free[b] {
			take(b)
			left--
		} else if len(out) > 0 {
			break
		}
	}
	for scanned := 0; left > 0; scanned++ {
		if scanned > len(s.free) {
			return nil, cowio.ErrNoSpace // never: the file is twice the blob
		}
		if s.cursor >= len(s.free) {
			s.cursor = 2
		}
		if s.free[s.cursor] {
			take(s.cursor)
			left--
		}
		s.cursor++
	}
	return out, nil
}

func (s *benchSpace) ReleaseStaging(exts []extents.Extent) { s.release(exts) }

func (s *benchSpace) release(exts []extents.Extent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range exts {
		for b := e.Start; b < e.End(); b++ {
			s.free[b] = true
		}
	}
}

// countingFile counts the bytes written through it.
type countingFile struct {
	vfs.File
	written atomic.Int64
}

func (f *countingFile) WriteAt(p []byte, off int64) (int, error) {
	f.written.Add(int64(len(p)))
	return f.File.WriteAt(p, off)
}

// BenchmarkWriteAt4KRandom overwrites random 4 KiB blocks of a 256 MiB blob
// through Inode.WriteAt and Inode.Commit (the log is a counter; the old
// block is freed at once), and in the same iterations writes 4 KiB in place
// with raw O_DIRECT pwrite at random offsets of another 256 MiB file,
// alternating. Neither side syncs. It reports both sides' ops/s, the ratio
// cowio/raw, the data bytes written per user byte, and the blob's extents
// and reserved blocks at the end, with the CoW extent-size hint off (1) and
// at its default (32). Figures are noisy: the machine is shared.
func BenchmarkWriteAt4KRandom(b *testing.B) {
	dir := b.TempDir()
	cowName := prepare(b, dir, 2*benchBlob+2*bs)
	rawName := filepath.Join(dir, "raw")
	if err := os.Rename(prepare(b, b.TempDir(), benchBlob), rawName); err != nil {
		b.Fatal(err)
	}
	fd := openRaw(b, rawName)
	for _, chunk := range []uint64{1, cowio.CowExtSizeDefault} {
		b.Run(fmt.Sprintf("cowextsize=%d", chunk), func(b *testing.B) {
			f, err := vfs.OS.OpenFile(cowName, vfs.ReadWrite|vfs.Direct)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			cf := &countingFile{File: f}
			const blocks = benchBlob / bs
			space := newBenchSpace(2*blocks+2, blocks+2)
			w, err := cowio.NewWriter(cf, bs, space, nil)
			if err != nil {
				b.Fatal(err)
			}
			ino, err := cowio.NewInode(w, 1, cowio.Mapping{Entries: []cowio.Entry{{Start: 2, Len: blocks}}},
				&cowio.InodeOptions{CowExtSize: chunk})
			if err != nil {
				b.Fatal(err)
			}
			p, raw := vfs.AlignedBuf(bs), vfs.AlignedBuf(bs)
			rng := rand.New(rand.NewPCG(9, 9))
			var lsn format.LSN
			logIt := func(*cowio.Remap) (format.LSN, error) { lsn++; return lsn, nil }
			var tCow, tRaw time.Duration
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				r, err := ino.WriteAt(p, int64(rng.IntN(blocks))*bs)
				if err != nil {
					b.Fatal(err)
				}
				old, err := ino.Commit(r, logIt)
				if err != nil {
					b.Fatal(err)
				}
				space.release(old)
				tCow += time.Since(start)
				start = time.Now()
				if _, err := unix.Pwrite(fd, raw, int64(rng.IntN(blocks))*bs); err != nil {
					b.Fatal(err)
				}
				tRaw += time.Since(start)
			}
			b.StopTimer()
			s := ino.Stats()
			b.ReportMetric(float64(b.N)/tCow.Seconds(), "cowio-ops/s")
			b.ReportMetric(float64(b.N)/tRaw.Seconds(), "raw-ops/s")
			b.ReportMetric(tRaw.Seconds()/tCow.Seconds(), "cowio/raw")
			b.ReportMetric(float64(cf.written.Load())/float64(b.N*bs), "written/user")
			b.ReportMetric(float64(s.Entries), "extents")
			b.ReportMetric(float64(s.Reserved), "reserved-blocks")
		})
	}
}

// BenchmarkWriteAt4KRandomCPU is BenchmarkWriteAt4KRandom on the in-memory
// file system: the CPU cost of WriteAt + Commit per 4 KiB overwrite (the
// copy into memory, the checksum, the lookup, allocation and splice of the
// mapping), as the blob fragments, without a device in the way.
func BenchmarkWriteAt4KRandomCPU(b *testing.B) {
	f, err := vfs.NewMem().OpenFile("data", vfs.Create|vfs.Direct)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const blocks = benchBlob / bs
	space := newBenchSpace(2*blocks+2, blocks+2)
	w, err := cowio.NewWriter(f, bs, space, nil)
	if err != nil {
		b.Fatal(err)
	}
	ino, err := cowio.NewInode(w, 1, cowio.Mapping{Entries: []cowio.Entry{{Start: 2, Len: blocks}}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	p := vfs.AlignedBuf(bs)
	rng := rand.New(rand.NewPCG(9, 9))
	var lsn format.LSN
	logIt := func(*cowio.Remap) (format.LSN, error) { lsn++; return lsn, nil }
	b.ResetTimer()
	for range b.N {
		r, err := ino.WriteAt(p, int64(rng.IntN(blocks))*bs)
		if err != nil {
			b.Fatal(err)
		}
		old, err := ino.Commit(r, logIt)
		if err != nil {
			b.Fatal(err)
		}
		space.release(old)
	}
	b.ReportMetric(float64(ino.Stats().Entries), "extents")
}

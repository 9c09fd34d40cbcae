package cowio_test

import (
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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

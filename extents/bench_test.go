package extents_test

import (
	"runtime"
	"testing"

	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
)

// A 1 TiB geometry: 4 KiB blocks, 128 MiB AGs, 8192 AGs, 2^28 blocks.
const benchAGs = 8192

var benchOpts = extents.Options{StoreID: 9, MaxAGCount: benchAGs}

// fragmentedImages returns the encoded bitmaps of nAG AGs where every
// free run is 1 to 8 blocks long between allocated runs of 1 to 24 (about
// one free extent per 17 blocks: 16M free extents in 1 TiB), and the
// number of free extents.
func fragmentedImages(tb testing.TB, o extents.Options, nAG uint32) ([][2][]byte, int) {
	g := geometryOf(tb, o)
	imgs := make([][2][]byte, nAG)
	x := uint32(12345)
	rnd := func(n uint32) uint32 { x = x*1664525 + 1013904223; return 1 + (x>>16)%n }
	extentsN := 0
	for ag := range nAG {
		bm := format.NewAGBitmap(o.StoreID, ag, 1, g.BlocksPerAG)
		b := uint32(0)
		for b < g.BlocksPerAG {
			used := rnd(24)
			if b < g.HeaderBlocks() {
				used = g.HeaderBlocks()
			}
			for i := uint32(0); i < used && b < g.BlocksPerAG; i++ {
				bm.SetAllocated(b, true)
				b++
			}
			if b < g.BlocksPerAG {
				extentsN++
				b += rnd(8)
			}
		}
		imgs[ag][0] = bm.Encode(g.BlockSize)
	}
	return imgs, extentsN
}

func geometryOf(tb testing.TB, o extents.Options) extents.Geometry {
	a, err := extents.New(&o, 1)
	if err != nil {
		tb.Fatal(err)
	}
	return a.Geometry()
}

func load(tb testing.TB, o extents.Options, imgs [][2][]byte) *extents.Allocator {
	l, err := extents.NewLoader(&o, uint32(len(imgs)), 1)
	if err != nil {
		tb.Fatal(err)
	}
	for ag, c := range imgs {
		if _, err := l.LoadAG(uint32(ag), c); err != nil {
			tb.Fatal(err)
		}
	}
	a, err := l.Finish(1)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// benchAllocFree allocates n blocks and gives them back (ReleaseStaging)
// per iteration, near a pseudo-random goal anywhere in the file (cache-cold
// indexes) or, if local, near the end of the previous allocation.
func benchAllocFree(b *testing.B, a *extents.Allocator, n uint64, local bool) {
	total := a.Geometry().TotalBlocks()
	x := uint64(1)
	goal := extents.Block(total / 2)
	for b.Loop() {
		x = x*6364136223846793005 + 1442695040888963407
		if !local {
			goal = extents.Block((x >> 20) % total)
		}
		e, err := a.Alloc(n, goal)
		goal = e.End() + extents.Block(x>>60) // skip 0-15 blocks
		if err != nil {
			b.Fatal(err)
		}
		if err := a.ReleaseStaging(e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAllocFree measures one Alloc + ReleaseStaging on an empty and
// on a heavily fragmented 1 TiB geometry; "fit" asks for 4 blocks (free
// runs are up to 8), "nofit" for 16, which no free extent holds, so every
// call searches all AGs and returns a partial extent.
func BenchmarkAllocFree(b *testing.B) {
	b.Run("empty", func(b *testing.B) {
		a, err := extents.New(&benchOpts, benchAGs)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("random", func(b *testing.B) { benchAllocFree(b, a, 16, false) })
		b.Run("local", func(b *testing.B) { benchAllocFree(b, a, 16, true) })
	})
	imgs, _ := fragmentedImages(b, benchOpts, benchAGs)
	a := load(b, benchOpts, imgs)
	imgs = nil
	b.Run("fragmented-fit/random", func(b *testing.B) { benchAllocFree(b, a, 4, false) })
	b.Run("fragmented-fit/local", func(b *testing.B) { benchAllocFree(b, a, 4, true) })
	b.Run("fragmented-nofit/random", func(b *testing.B) { benchAllocFree(b, a, 16, false) })
}

// BenchmarkCommitFreeCycle measures the full life of a block: Alloc,
// Commit, Free, and a checkpoint (Seal, CheckpointDurable, no images)
// every 1024 iterations that releases the busy blocks.
func BenchmarkCommitFreeCycle(b *testing.B) {
	a, err := extents.New(&benchOpts, benchAGs)
	if err != nil {
		b.Fatal(err)
	}
	var lsn extents.LSN
	var epoch extents.Epoch
	goal := extents.Block(0)
	for b.Loop() {
		e, err := a.Alloc(16, goal)
		if err != nil {
			b.Fatal(err)
		}
		goal = e.End()
		lsn++
		if err := a.Commit(e); err != nil {
			b.Fatal(err)
		}
		if err := a.Free(e, lsn); err != nil {
			b.Fatal(err)
		}
		if lsn%1024 == 0 {
			epoch++
			cp, err := a.Seal(epoch, lsn)
			if err != nil {
				b.Fatal(err)
			}
			if err := a.CheckpointDurable(cp); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkFreeExtentMemory reports the heap bytes the allocator uses per
// million free extents, loaded from fragmented bitmaps (bulk-built
// indexes), against the same number of AGs loaded empty (the baseline that
// holds the bitmaps and one extent per AG).
func BenchmarkFreeExtentMemory(b *testing.B) {
	const nAG = 512
	imgs, nExt := fragmentedImages(b, benchOpts, nAG)
	emptyImgs := make([][2][]byte, nAG)
	g := geometryOf(b, benchOpts)
	for ag := range uint32(nAG) {
		bm := format.NewAGBitmap(benchOpts.StoreID, ag, 1, g.BlocksPerAG)
		for i := range g.HeaderBlocks() {
			bm.SetAllocated(i, true)
		}
		emptyImgs[ag][0] = bm.Encode(g.BlockSize)
	}
	var perM float64
	for b.Loop() {
		h0 := heapInUse()
		base := load(b, benchOpts, emptyImgs)
		h1 := heapInUse()
		frag := load(b, benchOpts, imgs)
		h2 := heapInUse()
		perM = float64(h2-h1-(h1-h0)) / float64(nExt) * 1e6
		runtime.KeepAlive(base)
		runtime.KeepAlive(frag)
	}
	b.ReportMetric(perM, "bytes/Mextent")
	b.ReportMetric(float64(nExt), "extents")
}

// BenchmarkLoad1TiB measures loading the bitmaps of a 1 TiB geometry
// (8192 AGs), empty and fragmented, against decoding and checksumming the
// same images alone (the baseline a load cannot beat).
func BenchmarkLoad1TiB(b *testing.B) {
	g := geometryOf(b, benchOpts)
	empty := make([][2][]byte, benchAGs)
	for ag := range uint32(benchAGs) {
		bm := format.NewAGBitmap(benchOpts.StoreID, ag, 1, g.BlocksPerAG)
		for i := range g.HeaderBlocks() {
			bm.SetAllocated(i, true)
		}
		empty[ag][0] = bm.Encode(g.BlockSize)
	}
	b.Run("decode-only", func(b *testing.B) {
		for b.Loop() {
			for _, c := range empty {
				if _, err := format.DecodeAGBitmap(c[0]); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("empty", func(b *testing.B) {
		for b.Loop() {
			load(b, benchOpts, empty)
		}
	})
	frag, _ := fragmentedImages(b, benchOpts, benchAGs)
	b.Run("fragmented", func(b *testing.B) {
		for b.Loop() {
			load(b, benchOpts, frag)
		}
	})
	// As on a store past its second checkpoint: both copies valid, the
	// other one older, which the loader decodes too.
	for ag := range frag {
		bm := format.NewAGBitmap(benchOpts.StoreID, uint32(ag), 0, g.BlocksPerAG)
		for i := range g.HeaderBlocks() {
			bm.SetAllocated(i, true)
		}
		frag[ag][1] = bm.Encode(g.BlockSize)
	}
	b.Run("fragmented-2copies", func(b *testing.B) {
		for b.Loop() {
			load(b, benchOpts, frag)
		}
	})
}

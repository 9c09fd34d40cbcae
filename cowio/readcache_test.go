package cowio_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"

	"github.com/cowdb/cowdb/cache"
	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
)

// newCache returns a cache of maxBytes, closed when the test ends.
func newCache(t tester, maxBytes int64) *cache.Cache {
	c, err := cache.New(&cache.Options{MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// warm reads v's bytes [off, off+n) through w until every block of the
// range with a checksum is cached (the cache may drop a Set, so it retries
// a few times), and fails t if they never are.
func warm(t tester, w *cowio.Writer, c *cache.Cache, v value, off, n int) {
	for range 10 {
		before := w.Stats().BlocksRead
		got := make([]byte, n)
		if k, err := w.ReadAt(v.m, int64(len(v.p)), got, int64(off)); k != n || (err != nil && err != io.EOF) {
			t.Fatalf("warming read = %d, %v", k, err)
		}
		c.Wait()
		if w.Stats().BlocksRead == before {
			return
		}
	}
	t.Fatalf("blocks [%d,+%d) never stayed in the cache", off, n)
}

// TestReadAtCachedMatchesUncached checks, over random values (fragmented,
// with holes, entries split into physically contiguous pieces, some without
// checksums) and random reads, that a Writer with a cache returns exactly
// what the model and a Writer without one return, whether its blocks hit
// or miss: after each read it sometimes waits for the cache's Sets, so
// later reads hit. Some reads are larger than CacheReadMax and bypass it.
func TestReadAtCachedMatchesUncached(t *testing.T) {
	var total cowio.ReadStats
	rapid.Check(t, func(rt *rapid.T) {
		f := openData(rt, onMem)
		space := newFakeSpace(2048, rapid.Uint64Range(0, 4).Draw(rt, "maxRun"))
		plain := newWriter(rt, f, space, &cowio.Options{IOSize: 4 * bs})
		c := newCache(rt, 1<<20)
		cw := newWriter(rt, f, space, &cowio.Options{IOSize: 4 * bs, Cache: c, CacheReadMax: 6 * bs})
		n := rapid.IntRange(1, 24*bs).Draw(rt, "len")
		data := randBytes(rand.New(rand.NewPCG(uint64(n), 3)), n)
		m, err := plain.WriteNew(data, 0)
		if err != nil {
			rt.Fatal(err)
		}
		v := reshape(rt, m, data)
		size := int64(len(v.p))
		for range rapid.IntRange(1, 30).Draw(rt, "reads") {
			off := rapid.Int64Range(0, size+bs).Draw(rt, "off")
			n := rapid.IntRange(0, 8*bs).Draw(rt, "n")
			got, want := make([]byte, n), make([]byte, n)
			gn, gerr := cw.ReadAt(v.m, size, got, off)
			wn, werr := plain.ReadAt(v.m, size, want, off)
			if gn != wn || gerr != werr || !bytes.Equal(got[:gn], want[:wn]) {
				rt.Fatalf("%d bytes at %d: cached %d, %v; uncached %d, %v", n, off, gn, gerr, wn, werr)
			}
			if off < size && !bytes.Equal(got[:gn], v.p[off:off+int64(gn)]) {
				rt.Fatalf("%d bytes at %d: wrong bytes", n, off)
			}
			if rapid.Bool().Draw(rt, "wait") {
				c.Wait()
			}
		}
		s := cw.Stats()
		total.CacheHits += s.CacheHits
		total.CacheMisses += s.CacheMisses
		total.CacheBypassed += s.CacheBypassed
	})
	// The property is only worth something if both paths ran.
	if total.CacheHits == 0 || total.CacheMisses == 0 || total.CacheBypassed == 0 {
		t.Fatalf("the reads never hit, missed or bypassed the cache: %+v", total)
	}
	t.Logf("%+v", total)
}

// reshape lays the value m maps (data, from file block 0) out again: it
// splits entries into physically contiguous pieces, drops the checksums of
// some, and moves some along the value, leaving holes. It returns the new
// mapping with the value it holds.
func reshape(rt *rapid.T, m cowio.Mapping, data []byte) value {
	var out cowio.Mapping
	var model []byte
	var fb cowio.FileBlock
	for _, e := range m.Entries {
		fb += cowio.FileBlock(rapid.IntRange(0, 2).Draw(rt, "gap"))
		noSums := rapid.Bool().Draw(rt, "noSums")
		for at := uint64(0); at < e.Len; {
			n := rapid.Uint64Range(1, e.Len-at).Draw(rt, "piece")
			p := cowio.Entry{FileBlock: fb, Start: e.Start + format.Block(at), Len: n}
			if !noSums {
				p.Sums = e.Sums[at : at+n]
			}
			out.Entries = append(out.Entries, p)
			model = append(model, make([]byte, int(fb)*bs-len(model))...)
			src := data[min(len(data), int(e.FileBlock+cowio.FileBlock(at))*bs):]
			blk := make([]byte, n*bs)
			copy(blk, src)
			model = append(model, blk...)
			fb += cowio.FileBlock(n)
			at += n
		}
	}
	size := len(model) + rapid.IntRange(-bs, bs).Draw(rt, "tail")
	model = append(model, make([]byte, max(0, size-len(model)))...)
	return value{out, model[:max(size, 0)]}
}

// TestReadAtCacheHits checks that a block read once (or written through)
// is then read from the cache, not the disk, with the counters to show it,
// and that cached bytes are copies the caller may scribble on.
func TestReadAtCacheHits(t *testing.T) {
	c := newCache(t, 1<<20)
	space := newFakeSpace(256, 0)
	w := newWriter(t, openData(t, onMem), space, &cowio.Options{Cache: c, CacheReadMax: 4 * bs})
	p := randBytes(rand.New(rand.NewPCG(1, 1)), 3*bs)
	m, err := w.WriteNew(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s := w.Stats(); s.CacheWrittenThrough != 3 {
		t.Fatalf("a 3-block write wrote through %d blocks", s.CacheWrittenThrough)
	}
	c.Wait()
	before := w.Stats()
	got := make([]byte, 2*bs)
	if n, err := w.ReadAt(m, int64(len(p)), got, bs/2); n != len(got) || err != nil || !bytes.Equal(got, p[bs/2:bs/2+2*bs]) {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	s := w.Stats()
	if s.CacheHits-before.CacheHits != 3 || s.BlocksRead != before.BlocksRead || s.CacheMisses != before.CacheMisses {
		t.Fatalf("a read of 3 written-through blocks: before %+v, after %+v", before, s)
	}
	for i := range got {
		got[i] = 0xEE
	}
	readAll(t, w, m, p)
	s = w.Stats()
	if s.Reads != 2 || s.BytesRead != uint64(2*bs+len(p)) || s.BlocksRead != 0 || s.CacheHits != 6 {
		t.Fatalf("stats %+v", s)
	}
	if cs := c.Stats(); cs.Data.Hits != s.CacheHits || cs.Data.Misses != s.CacheMisses {
		t.Fatalf("the cache counted %+v, the Writer %+v", cs.Data, s)
	}
}

// TestReadAtCacheFillsOnRead checks that blocks written without the cache
// are cached by a read and hit by the next one.
func TestReadAtCacheFillsOnRead(t *testing.T) {
	f := openData(t, onMem)
	space := newFakeSpace(256, 2)
	plain := newWriter(t, f, space, nil)
	c := newCache(t, 1<<20)
	w := newWriter(t, f, space, &cowio.Options{Cache: c})
	p := randBytes(rand.New(rand.NewPCG(2, 2)), 5*bs+7)
	m, err := plain.WriteNew(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, w, m, p)
	if s := w.Stats(); s.CacheMisses != 6 || s.BlocksRead != 6 || s.CacheFilled != 6 || s.CacheHits != 0 {
		t.Fatalf("first read: %+v", s)
	}
	warm(t, w, c, value{m, p}, 0, len(p))
	readAll(t, w, m, p)

	// A block read straight into the caller's aligned buffer is cached as
	// a copy: scribbling on the buffer does not change what hits return.
	m2, err := plain.WriteNew(p[:2*bs], 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := vfs.AlignedBuf(2 * bs)
	for range 2 {
		if n, err := w.ReadAt(m2, 2*bs, buf, 0); n != 2*bs || err != nil || !bytes.Equal(buf, p[:2*bs]) {
			t.Fatalf("aligned ReadAt = %d, %v", n, err)
		}
		for i := range buf {
			buf[i] = 0xEE
		}
		c.Wait()
	}
}

// TestReadAtCacheRewrittenBlock rewrites the same physical blocks with new
// contents (a freed and reused block), behind the cache's back or through
// it, and checks that a read under the new mapping never returns the old
// cached bytes.
func TestReadAtCacheRewrittenBlock(t *testing.T) {
	f := openData(t, onMem)
	c := newCache(t, 1<<20)
	w := newWriter(t, f, sameSpace{start: 10}, &cowio.Options{Cache: c})
	plain := newWriter(t, f, sameSpace{start: 10}, nil)
	rng := rand.New(rand.NewPCG(3, 3))
	for round := range 6 {
		by := plain // no write-through: the cache keeps the old copy
		if round%3 == 2 {
			by = w
		}
		p := randBytes(rng, 2*bs)
		m, err := by.WriteNew(p, 0)
		if err != nil {
			t.Fatal(err)
		}
		if m.Entries[0].Start != 10 {
			t.Fatalf("round %d written at %d", round, m.Entries[0].Start)
		}
		readAll(t, w, m, p)
		c.Wait()
		readAll(t, w, m, p)
	}
	if s := w.Stats(); s.CacheHits == 0 {
		t.Fatalf("nothing hit: %+v", s)
	}
}

// TestReadAtCacheStaleEntryDetectsDamage caches a block under its old
// checksum, then makes the disk disagree with the block's new checksum, in
// two ways: the new write is lost (the disk still holds the old, cached
// bytes) or lands and is then damaged. A read under the new checksum must
// report corruption either way, never the stale cached copy.
func TestReadAtCacheStaleEntryDetectsDamage(t *testing.T) {
	for _, lost := range []bool{true, false} {
		fs := vfs.NewMem()
		f, err := fs.OpenFile("data", vfs.Create|vfs.Direct)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		c := newCache(t, 1<<20)
		w := newWriter(t, f, sameSpace{start: 4}, &cowio.Options{Cache: c})
		plain := newWriter(t, f, sameSpace{start: 4}, nil)
		rng := rand.New(rand.NewPCG(4, 4))
		old := randBytes(rng, bs)
		mOld, err := w.WriteNew(old, 0)
		if err != nil {
			t.Fatal(err)
		}
		warm(t, w, c, value{mOld, old}, 0, bs)
		fresh := randBytes(rng, bs)
		mNew, err := plain.WriteNew(fresh, 0) // no write-through
		if err != nil {
			t.Fatal(err)
		}
		if lost {
			if _, err := plain.WriteNew(old, 0); err != nil { // undo: the write never landed
				t.Fatal(err)
			}
		} else {
			flipByte(t, fs, 4*bs+100)
		}
		for range 2 {
			got := make([]byte, bs)
			n, err := w.ReadAt(mNew, bs, got, 0)
			if n != 0 || !errors.Is(err, format.ErrBadChecksum) {
				t.Fatalf("lost %v: read under the new checksum = %d, %v; want ErrBadChecksum", lost, n, err)
			}
			c.Wait() // nothing may have been cached under the new checksum
		}
		// The old mapping still hits its own, consistent, copy.
		readAll(t, w, mOld, old)
	}
}

// TestReadAtCacheBypass checks that a read larger than CacheReadMax goes
// to the disk without looking blocks up or adding them, and is counted.
func TestReadAtCacheBypass(t *testing.T) {
	c := newCache(t, 1<<20)
	f := openData(t, onMem)
	space := newFakeSpace(256, 0)
	plain := newWriter(t, f, space, nil)
	w := newWriter(t, f, space, &cowio.Options{Cache: c, CacheReadMax: 2 * bs})
	p := randBytes(rand.New(rand.NewPCG(5, 5)), 8*bs)
	m, err := plain.WriteNew(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2*bs+1)
	if n, err := w.ReadAt(m, int64(len(p)), got, 0); n != len(got) || err != nil || !bytes.Equal(got, p[:len(got)]) {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	// Only the part inside the value counts: 2 blocks at the end are not
	// above the limit, however large the buffer.
	if n, err := w.ReadAt(m, int64(len(p)), make([]byte, 10*bs), 6*bs); n != 2*bs || err != io.EOF {
		t.Fatalf("ReadAt at the end = %d, %v", n, err)
	}
	c.Wait()
	s := w.Stats()
	if s.CacheBypassed != 1 || s.CacheHits != 0 || s.CacheMisses != 2 || s.CacheFilled != 2 || s.BlocksRead != 5 {
		t.Fatalf("stats %+v", s)
	}
	if k := c.Stats().KeysAdded; k != 2 {
		t.Fatalf("cache holds %d keys, want the 2 blocks of the small read", k)
	}
	// A large write does not write through either.
	if _, err := w.WriteNew(p, 0); err != nil {
		t.Fatal(err)
	}
	if s := w.Stats(); s.CacheWrittenThrough != 0 {
		t.Fatalf("an 8-block write wrote %d blocks through", s.CacheWrittenThrough)
	}
}

// TestReadAtCacheSkipsUnverified checks that blocks whose entry carries no
// checksum are never looked up or cached.
func TestReadAtCacheSkipsUnverified(t *testing.T) {
	c := newCache(t, 1<<20)
	f := openData(t, onMem)
	space := newFakeSpace(256, 0)
	plain := newWriter(t, f, space, nil)
	w := newWriter(t, f, space, &cowio.Options{Cache: c})
	p := randBytes(rand.New(rand.NewPCG(6, 6)), 3*bs)
	m, err := plain.WriteNew(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Entries {
		m.Entries[i].Sums = nil
	}
	for range 3 {
		readAll(t, w, m, p)
		c.Wait()
	}
	if s := w.Stats(); s.CacheHits != 0 || s.CacheMisses != 0 || s.CacheFilled != 0 || s.BlocksRead != 9 {
		t.Fatalf("stats %+v", s)
	}
	if k := c.Stats().KeysAdded; k != 0 {
		t.Fatalf("cache holds %d keys", k)
	}
}

// TestReadAtCacheCorruptNotCached checks that a block failing its checksum
// is not cached: the next read fails again, and so does every later one.
func TestReadAtCacheCorruptNotCached(t *testing.T) {
	fs := vfs.NewMem()
	f, err := fs.OpenFile("data", vfs.Create|vfs.Direct)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := newCache(t, 1<<20)
	plain := newWriter(t, f, newFakeSpace(64, 0), nil)
	w := newWriter(t, f, newFakeSpace(64, 0), &cowio.Options{Cache: c})
	p := randBytes(rand.New(rand.NewPCG(7, 7)), 4*bs)
	m, err := plain.WriteNew(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	phys := int64(m.Entries[0].Start) + 2
	flipByte(t, fs, phys*bs+5)
	for range 3 {
		got := make([]byte, len(p))
		n, err := w.ReadAt(m, int64(len(p)), got, 0)
		if !errors.Is(err, format.ErrBadChecksum) || n > 2*bs || !bytes.Equal(got[:n], p[:n]) {
			t.Fatalf("ReadAt = %d, %v", n, err)
		}
		c.Wait()
	}
}

// TestReadAtCacheIOError warms every other block into the cache and then
// fails each disk read in turn: the count must stop at the first piece
// that failed, with every byte before it correct, hits included.
func TestReadAtCacheIOError(t *testing.T) {
	efs := vfs.WithErrors(vfs.NewMem(), nil)
	f, err := efs.OpenFile("data", vfs.Create|vfs.Direct)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	space := newFakeSpace(256, 0)
	p := randBytes(rand.New(rand.NewPCG(8, 8)), 8*bs)
	m, err := newWriter(t, f, space, nil).WriteNew(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	for k := int64(1); k <= 4; k++ {
		// A new cache each time: a failed read still caches the pieces
		// that succeeded.
		c := newCache(t, 1<<20)
		w := newWriter(t, f, space, &cowio.Options{IOSize: bs, InFlight: 1, Cache: c})
		for b := 0; b < 8; b += 2 {
			warm(t, w, c, value{m, p}, b*bs, bs)
		}
		efs.SetInjector(&vfs.Fault{Kind: vfs.OpRead, Index: k})
		got := make([]byte, len(p))
		n, err := w.ReadAt(m, int64(len(p)), got, 0)
		efs.SetInjector(nil)
		if !errors.Is(err, vfs.ErrIO) || n%bs != 0 || n >= len(p) || (n/bs)%2 != 1 || !bytes.Equal(got[:n], p[:n]) {
			t.Fatalf("read fault on I/O %d: ReadAt = %d, %v", k, n, err)
		}
	}
}

// sameSpace hands out the same blocks from start every time, so each write
// reuses the blocks of the one before, as a freed and reallocated block is.
type sameSpace struct{ start format.Block }

func (s sameSpace) AllocStaging(n uint64, _ format.Block) ([]extents.Extent, error) {
	return []extents.Extent{{Start: s.start, Len: n}}, nil
}

func (sameSpace) ReleaseStaging([]extents.Extent) {}

// readCounter counts the ReadAt calls made on a file.
type readCounter struct {
	vfs.File
	reads atomic.Int64
}

func (f *readCounter) ReadAt(p []byte, off int64) (int, error) {
	f.reads.Add(1)
	return f.File.ReadAt(p, off)
}

// TestReadAtCoalescesEntries checks that blocks contiguous in the value and
// on disk are read in one I/O even when the mapping lists them as separate
// entries (as extent records of at most ExtentRecordMaxBlocks blocks do),
// and that runs are still cut at IOSize, with and without a cache.
func TestReadAtCoalescesEntries(t *testing.T) {
	for _, withCache := range []bool{false, true} {
		rf := &readCounter{File: openData(t, onMem)}
		opts := &cowio.Options{IOSize: 8 * bs}
		if withCache {
			opts.Cache, opts.CacheReadMax = newCache(t, 1<<20), 1<<20
		}
		space := newFakeSpace(256, 0)
		w := newWriter(t, rf, space, opts)
		p := randBytes(rand.New(rand.NewPCG(9, 9)), 12*bs)
		m, err := newWriter(t, rf, space, nil).WriteNew(p, 0) // no write-through
		if err != nil || len(m.Entries) != 1 {
			t.Fatalf("WriteNew = %v, %v", m, err)
		}
		var split cowio.Mapping
		e := m.Entries[0]
		for at := uint64(0); at < e.Len; at++ {
			split.Entries = append(split.Entries, cowio.Entry{
				FileBlock: cowio.FileBlock(at), Start: e.Start + format.Block(at), Len: 1, Sums: e.Sums[at : at+1],
			})
		}
		got := make([]byte, 12*bs)
		rf.reads.Store(0)
		if n, err := w.ReadAt(split, int64(len(p)), got, 0); n != len(p) || err != nil || !bytes.Equal(got, p) {
			t.Fatalf("ReadAt = %d, %v", n, err)
		}
		if r := rf.reads.Load(); r != 2 {
			t.Fatalf("cache %v: 12 contiguous one-block entries took %d reads, want 2 (IOSize 8 blocks)", withCache, r)
		}
	}
}

// TestReadAtCacheConcurrent reads random ranges of values through one
// cached Writer from several goroutines while others write new values
// through it; under -race it checks the cache path's synchronization, and
// every read is checked against its value.
func TestReadAtCacheConcurrent(t *testing.T) {
	c := newCache(t, 64*bs) // small: blocks are evicted while read
	space := newFakeSpace(1<<13, 3)
	w := newWriter(t, openData(t, onMem), space, &cowio.Options{IOSize: 2 * bs, InFlight: 3, Cache: c, CacheReadMax: 6 * bs})
	var (
		mu     sync.Mutex
		values []value
	)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 21))
			for range 40 {
				p := randBytes(rng, rng.IntN(10*bs))
				m, err := w.WriteNew(p, 0)
				if err != nil {
					t.Error(err)
					return
				}
				space.commit(t, m)
				mu.Lock()
				values = append(values, value{m, p})
				v := values[rng.IntN(len(values))]
				mu.Unlock()
				for range 4 {
					readRandom(t, w, v, rng)
				}
			}
		})
	}
	wg.Wait()
	if s := w.Stats(); s.CacheHits == 0 || s.CacheMisses == 0 {
		t.Logf("no hits or no misses: %+v", s)
	}
}

// TestOptionsCacheReadMax checks that a negative CacheReadMax is refused.
func TestOptionsCacheReadMax(t *testing.T) {
	_, err := cowio.NewWriter(openData(t, onMem), bs, newFakeSpace(4, 0), &cowio.Options{CacheReadMax: -1})
	if !errors.Is(err, cowio.ErrInvalidOptions) {
		t.Fatalf("CacheReadMax -1: %v", err)
	}
}

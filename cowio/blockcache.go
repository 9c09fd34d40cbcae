package cowio

import (
	"sync/atomic"

	"github.com/cowdb/cowdb/cache"
	"github.com/cowdb/cowdb/internal/format"
)

// ReadStats are a Writer's read-path counters since NewWriter. Blocks are
// counted once per ReadAt that touches them.
type ReadStats struct {
	// Reads counts the ReadAt calls that read the value (valid arguments,
	// an offset before the end), and BytesRead the bytes they returned,
	// holes included.
	Reads, BytesRead uint64
	// BlocksRead counts the blocks read from the data file, whether or not
	// a cache is set, verified or not.
	BlocksRead uint64
	// CacheHits counts the blocks copied out of the cache instead of read,
	// and CacheMisses those looked up in it and read from the disk. Blocks
	// without a checksum are never looked up and count as neither.
	CacheHits, CacheMisses uint64
	// CacheBypassed counts the reads larger than Options.CacheReadMax,
	// which went straight to the disk with a cache set.
	CacheBypassed uint64
	// CacheFilled counts the block copies a read offered to the cache
	// after verifying them, and CacheWrittenThrough those a write offered
	// (see Options.CacheReadMax). The cache may still drop any of them.
	CacheFilled, CacheWrittenThrough uint64
}

// readCounters are the atomic counters behind ReadStats.
type readCounters struct {
	reads, bytes, blocksRead atomic.Uint64
	hits, misses, bypassed   atomic.Uint64
	filled, writtenThrough   atomic.Uint64
}

// Stats returns the Writer's read-path counters. Each counter is read
// atomically, but not all of them at one instant.
func (w *Writer) Stats() ReadStats {
	s := &w.stats
	return ReadStats{
		Reads: s.reads.Load(), BytesRead: s.bytes.Load(), BlocksRead: s.blocksRead.Load(),
		CacheHits: s.hits.Load(), CacheMisses: s.misses.Load(), CacheBypassed: s.bypassed.Load(),
		CacheFilled: s.filled.Load(), CacheWrittenThrough: s.writtenThrough.Load(),
	}
}

// dataKey is the cache key of physical block phys holding checksum sum.
func dataKey(phys format.Block, sum uint64) cache.Key {
	return cache.Key{Kind: cache.KindData, Block: phys, Sum: sum}
}

// blockCopy returns a new copy of one block, for the cache. Each cached
// block has its own allocation, so that evicting it frees it.
func (w *Writer) blockCopy(b []byte) []byte {
	c := make([]byte, w.blockSize)
	copy(c, b)
	return c
}

// cacheSet offers the cache block b (a copy nothing else will modify: the
// cache shares it with every reader) of physical block phys, which hashes
// to sum, at the cost of its size.
func (w *Writer) cacheSet(phys format.Block, sum uint64, b []byte) {
	w.cache.Set(dataKey(phys, sum), b, int64(w.blockSize))
}

// cacheGet copies into dst the bytes from skip on of physical block phys
// as cached under sum, and reports whether it was there. A value of the
// wrong type or size under the key is a miss.
func (w *Writer) cacheGet(phys format.Block, sum uint64, dst []byte, skip int) bool {
	v, ok := w.cache.Get(dataKey(phys, sum))
	b, isBlock := v.([]byte)
	if !ok || !isBlock || len(b) != w.blockSize {
		w.stats.misses.Add(1)
		return false
	}
	copy(dst, b[skip:])
	w.stats.hits.Add(1)
	return true
}

// Package cache is cowdb's clean-block cache: decoded B-tree nodes and
// clean data blocks (cowio's read path), kept in one ristretto cache under
// one byte budget (Options.MaxBytes, the store's CacheSize).
//
// What it owns: the mapping from a block's identity — its kind, its number
// and its checksum — to an in-memory copy of that block. Keying by the
// checksum as well as the number is what makes reuse safe: once a block is
// freed and rewritten with other contents, its new checksum gives it a new
// key, so a reader can never be handed the stale copy. Every hit is also
// compared against the full key, so a 64-bit hash collision is a miss, never
// a wrong block.
//
// What it must never do: be needed for correctness. Ristretto admits and
// evicts as its policy decides and applies Set asynchronously, so a Set may
// be dropped and a Get right after a Set may miss. Callers always fall back
// to reading the block.
//
// Dirty pages (DESIGN §7) are not kept here: they must never be evicted, so
// they will live in a pinned set beside this cache. SetPinned is the place
// where that set's size is charged to the same budget: the bytes pinned
// there are taken off what ristretto may hold.
//
// Concurrency: a *Cache is safe for concurrent use by multiple goroutines.
// Values stored in it are shared by every reader and must be immutable. A nil
// *Cache is valid and caches nothing.
package cache

import (
	"fmt"
	"sync/atomic"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/dgraph-io/ristretto/v2"
)

// Kind says what sort of block a key names; blocks of different kinds never
// share an entry even if their number and checksum agree.
type Kind uint8

const (
	// KindNode is a decoded B-tree node.
	KindNode Kind = 1
	// KindData is a clean data block.
	KindData Kind = 2
)

// Key identifies one version of one block: a freed and reused block gets a
// new Sum and so a new Key.
type Key struct {
	Kind  Kind
	Block format.Block
	Sum   uint64
}

// hash mixes the key into ristretto's 64-bit key (splitmix64 finalizer).
func (k Key) hash() uint64 {
	h := uint64(k.Block)*0x9e3779b97f4a7c15 ^ k.Sum ^ uint64(k.Kind)<<56
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// Defaults for the zero fields of Options.
const (
	// MaxBytesDefault is the budget when Options.MaxBytes is 0: 64 MiB.
	MaxBytesDefault = 64 << 20
	// BufferItemsDefault is ristretto's recommended Get buffer size.
	BufferItemsDefault = 64
	// countersPerItem is ristretto's advice: ten counters per item that
	// fits when the cache is full.
	countersPerItem = 10
	// itemBytesTypical sizes NumCounters: one 4 KiB block per item.
	itemBytesTypical = 4096
	// numCountersMin is the fewest admission counters a cache gets, so that
	// a tiny budget still has a working admission policy.
	numCountersMin = 100
	// ttlTickerSeconds is how often ristretto's expiry goroutine wakes
	// (twice per period). No entry here has a TTL, so it has nothing to do:
	// wake it rarely.
	ttlTickerSeconds = 60
)

// Options configure a Cache. The zero value is valid: every zero field
// takes its default.
type Options struct {
	// MaxBytes is the budget in bytes for everything cached, pinned bytes
	// included (SetPinned). Default MaxBytesDefault.
	MaxBytes int64
	// NumCounters is the number of ristretto's admission counters.
	// Default 10 × MaxBytes / 4096 (ten per 4 KiB block that fits), and
	// at least 100.
	NumCounters int64
	// BufferItems is ristretto's Get buffer size. Default 64.
	BufferItems int64
}

// entry is what ristretto stores: the value with its full key, so that a
// hit can be checked against the key asked for.
type entry struct {
	key   Key
	value any
}

// kindSlots sizes the per-kind lookup counters: one slot per Kind, slot 0
// standing for any kind not defined here.
const kindSlots = int(KindData) + 1

// Cache is a byte-budgeted cache of immutable block copies, safe for
// concurrent use.
type Cache struct {
	r        *ristretto.Cache[uint64, entry]
	maxBytes int64
	pinned   atomic.Int64
	lookups  [kindSlots]struct{ hits, misses atomic.Uint64 }
}

// New returns a cache configured by o (nil means all defaults). It returns
// ErrInvalidOptions for negative fields.
func New(o *Options) (*Cache, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	if opts.MaxBytes < 0 || opts.NumCounters < 0 || opts.BufferItems < 0 {
		return nil, fmt.Errorf("%w: %+v", ErrInvalidOptions, opts)
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = MaxBytesDefault
	}
	if opts.NumCounters == 0 {
		opts.NumCounters = max(countersPerItem*opts.MaxBytes/itemBytesTypical, numCountersMin)
	}
	if opts.BufferItems == 0 {
		opts.BufferItems = BufferItemsDefault
	}
	r, err := ristretto.NewCache(&ristretto.Config[uint64, entry]{
		NumCounters: opts.NumCounters,
		MaxCost:     opts.MaxBytes,
		BufferItems: opts.BufferItems,
		Metrics:     true,
		// The key is already a good 64-bit hash; the conflict check is
		// done by comparing entry.key, which is exact.
		KeyToHash: func(k uint64) (uint64, uint64) { return k, 0 },
		// Cost is the caller's byte count alone, so MaxBytes means bytes.
		IgnoreInternalCost: true,
		// Every Set passes its cost, so no Cost function is needed.
		Cost: nil,
		// Values are immutable copies owned by the garbage collector:
		// nothing to release when one leaves the cache.
		OnEvict:  nil,
		OnReject: nil,
		OnExit:   nil,
		// A Set for a key already present replaces it: under one Key the
		// value is the same block's copy, and under a colliding hash the
		// newer entry wins (Get compares the full key either way).
		ShouldUpdate:           nil,
		TtlTickerDurationInSec: ttlTickerSeconds,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidOptions, err)
	}
	return &Cache{r: r, maxBytes: opts.MaxBytes}, nil
}

// Get returns the value cached under k, if any.
func (c *Cache) Get(k Key) (any, bool) {
	if c == nil {
		return nil, false
	}
	e, ok := c.r.Get(k.hash())
	l := &c.lookups[k.slot()]
	if !ok || e.key != k {
		l.misses.Add(1)
		return nil, false
	}
	l.hits.Add(1)
	return e.value, true
}

// slot returns k's index in Cache.lookups.
func (k Key) slot() int {
	if int(k.Kind) < kindSlots {
		return int(k.Kind)
	}
	return 0
}

// Set offers v, costing cost bytes, to the cache under k. It may be dropped
// or applied later; it reports whether it was queued.
func (c *Cache) Set(k Key, v any, cost int64) bool {
	if c == nil {
		return false
	}
	return c.r.Set(k.hash(), entry{key: k, value: v}, cost)
}

// Del removes k's entry, if it is there. It may also remove an entry
// whose key hashes alike, which only costs that entry a later miss;
// checking first with a Get would count a hit and raise the entry's
// admission frequency.
func (c *Cache) Del(k Key) {
	if c == nil {
		return
	}
	c.r.Del(k.hash())
}

// Wait blocks until every Set queued so far has been applied or dropped.
// Tests use it; the store never needs to.
func (c *Cache) Wait() {
	if c != nil {
		c.r.Wait()
	}
}

// SetPinned charges n bytes held outside the cache (the pinned dirty pages)
// to the budget: the cache itself may then hold MaxBytes − n, and never less
// than a tenth of MaxBytes, so clean reads keep working under write load.
// A negative n counts as 0: the cache never holds more than MaxBytes.
func (c *Cache) SetPinned(n int64) {
	if c == nil {
		return
	}
	n = max(n, 0)
	c.pinned.Store(n)
	c.r.UpdateMaxCost(max(c.maxBytes-n, c.maxBytes/10))
}

// Stats are the cache's counters since New.
type Stats struct {
	// Hits and Misses count the Gets that returned a value and those that
	// did not, of every kind; Node and Data count those of one kind. They
	// are exact: a Get whose 64-bit hash matches another key's entry is a
	// miss here, though ristretto counts it as a hit.
	Hits, Misses              uint64
	Node, Data                KindStats
	KeysAdded, KeysEvicted    uint64
	SetsDropped, SetsRejected uint64
	// Bytes is the cost currently held; PinnedBytes what SetPinned charged.
	Bytes, PinnedBytes int64
	MaxBytes           int64
}

// KindStats count the Gets of one kind of block.
type KindStats struct {
	Hits, Misses uint64
}

// Stats returns the cache's counters. Each is read atomically, but not all
// of them at one instant.
func (c *Cache) Stats() Stats {
	if c == nil {
		return Stats{}
	}
	var kinds [kindSlots]KindStats
	var hits, misses uint64
	for i := range c.lookups {
		l := &c.lookups[i]
		kinds[i] = KindStats{Hits: l.hits.Load(), Misses: l.misses.Load()}
		hits += kinds[i].Hits
		misses += kinds[i].Misses
	}
	m := c.r.Metrics
	return Stats{
		Hits: hits, Misses: misses,
		Node: kinds[KindNode], Data: kinds[KindData],
		KeysAdded: m.KeysAdded(), KeysEvicted: m.KeysEvicted(),
		SetsDropped: m.SetsDropped(), SetsRejected: m.SetsRejected(),
		Bytes:       int64(m.CostAdded() - m.CostEvicted()),
		PinnedBytes: c.pinned.Load(),
		MaxBytes:    c.maxBytes,
	}
}

// Close stops ristretto's goroutines and drops every entry. The cache must
// not be used afterwards.
func (c *Cache) Close() {
	if c != nil {
		c.r.Close()
	}
}

package cache_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/cowdb/cowdb/cache"
)

// TestCacheKeyedByChecksum checks that a value is found under its exact
// key, and that the same block with another checksum (a freed and rewritten
// block) or another kind misses.
func TestCacheKeyedByChecksum(t *testing.T) {
	c, err := cache.New(&cache.Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k := cache.Key{Kind: cache.KindNode, Block: 7, Sum: 100}
	for range 10 { // Set may be dropped; retry until admitted.
		c.Set(k, "old", 4096)
		c.Wait()
		if _, ok := c.Get(k); ok {
			break
		}
	}
	s0 := c.Stats()
	if v, ok := c.Get(k); !ok || v != "old" {
		t.Fatalf("Get = %v, %v", v, ok)
	}
	if _, ok := c.Get(cache.Key{Kind: cache.KindNode, Block: 7, Sum: 101}); ok {
		t.Fatal("reused block hit the stale entry")
	}
	if _, ok := c.Get(cache.Key{Kind: cache.KindData, Block: 7, Sum: 100}); ok {
		t.Fatal("data key hit a node entry")
	}
	c.Del(k)
	if _, ok := c.Get(k); ok {
		t.Fatal("Del left the entry")
	}
	// Since s0: one hit of the node entry, then three misses, one of them
	// of a data key. The counters are exact, by kind.
	s := c.Stats()
	if s.Hits-s0.Hits != 1 || s.Misses-s0.Misses != 3 || s.Node.Hits-s0.Node.Hits != 1 ||
		s.Node.Misses-s0.Node.Misses != 2 || s.Data != (cache.KindStats{Misses: 1}) ||
		s.Hits != s.Node.Hits || s.Misses != s.Node.Misses+s.Data.Misses || s.MaxBytes != 1<<20 {
		t.Fatalf("stats %+v, then %+v", s0, s)
	}
}

// TestCacheBudget checks that the cache holds no more bytes than its
// budget, minus what SetPinned charges.
func TestCacheBudget(t *testing.T) {
	c, err := cache.New(&cache.Options{MaxBytes: 64 * 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 1000 {
		c.Set(cache.Key{Kind: cache.KindData, Block: 2, Sum: uint64(i)}, i, 4096)
	}
	c.Wait()
	if b := c.Stats().Bytes; b > 64*4096 {
		t.Fatalf("holds %d bytes, budget %d", b, 64*4096)
	}
	c.SetPinned(48 * 4096)
	for i := range 1000 {
		c.Set(cache.Key{Kind: cache.KindData, Block: 3, Sum: uint64(i)}, i, 4096)
	}
	c.Wait()
	if s := c.Stats(); s.Bytes > 16*4096 || s.PinnedBytes != 48*4096 {
		t.Fatalf("after pinning: %+v", s)
	}
}

// TestCacheNilAndOptions checks that a nil cache caches nothing without
// failing and that negative options are refused.
func TestCacheNilAndOptions(t *testing.T) {
	var c *cache.Cache
	c.Set(cache.Key{Block: 1}, 1, 1)
	if _, ok := c.Get(cache.Key{Block: 1}); ok {
		t.Fatal("nil cache hit")
	}
	c.Del(cache.Key{Block: 1})
	c.SetPinned(10)
	if s := c.Stats(); s != (cache.Stats{}) {
		t.Fatalf("nil cache stats %+v", s)
	}
	c.Wait()
	c.Close()
	if _, err := cache.New(&cache.Options{MaxBytes: -1}); !errors.Is(err, cache.ErrInvalidOptions) {
		t.Fatalf("negative MaxBytes: %v", err)
	}
	d, err := cache.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
}

// TestCacheConcurrent checks, under -race, that concurrent readers and
// writers only ever see values stored under the key they ask for.
func TestCacheConcurrent(t *testing.T) {
	c, err := cache.New(&cache.Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				k := cache.Key{Kind: cache.KindNode, Block: 1, Sum: uint64((i + g) % 50)}
				c.Set(k, k.Sum, 100)
				if v, ok := c.Get(k); ok && v.(uint64) != k.Sum {
					t.Errorf("key %v holds %v", k, v)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestCachePinnedNeverRaisesBudget checks that charging a negative number of
// pinned bytes (a caller's accounting slip) does not let the cache grow past
// MaxBytes, and that the charge reported is clamped to 0.
func TestCachePinnedNeverRaisesBudget(t *testing.T) {
	const budget = 64 * 4096
	c, err := cache.New(&cache.Options{MaxBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetPinned(-budget)
	for i := range 1000 {
		c.Set(cache.Key{Kind: cache.KindData, Block: 4, Sum: uint64(i)}, i, 4096)
		if i%50 == 49 {
			c.Wait()
		}
	}
	c.Wait()
	if s := c.Stats(); s.Bytes > budget || s.PinnedBytes != 0 {
		t.Fatalf("after a negative charge: %+v", s)
	}
}
